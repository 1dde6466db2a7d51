-- A generation is a task on the one queue (kind `generation`), claimed by
-- workers with the same lease and heartbeat as agent runs; its lease is its
-- task's. Such a task has no agent (none is written yet) but a generation.
-- SQLite cannot relax NOT NULL in place: the table is rebuilt, ids and the
-- id sequence kept.
CREATE TABLE tasks_new (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id       INTEGER REFERENCES agents (id) ON DELETE CASCADE,
    agent_version  INTEGER,
    generation_id  INTEGER REFERENCES generations (id) ON DELETE CASCADE,
    status         TEXT    NOT NULL,
    trigger_kind   TEXT    NOT NULL,
    kind           TEXT    NOT NULL DEFAULT 'agent',
    attempt        INTEGER NOT NULL DEFAULT 1,
    retry_of       INTEGER,
    scheduled_at   INTEGER NOT NULL,
    started_at     INTEGER,
    completed_at   INTEGER,
    result         TEXT,
    stdout         TEXT,
    stderr         TEXT,
    logs           TEXT,
    error          TEXT,
    exit_code      INTEGER,
    signal         INTEGER,
    duration_ms    INTEGER,
    cpu_ms         INTEGER,
    peak_memory_kb INTEGER,
    unsandboxed    INTEGER NOT NULL DEFAULT 0,
    worker         TEXT,
    lease_until    INTEGER,
    created_at     INTEGER NOT NULL,
    CONSTRAINT tasks_one_target CHECK (
        (kind <> 'generation' AND agent_id IS NOT NULL AND agent_version IS NOT NULL AND generation_id IS NULL)
        OR (kind = 'generation' AND agent_id IS NULL AND agent_version IS NULL AND generation_id IS NOT NULL))
);
INSERT INTO tasks_new (id, agent_id, agent_version, status, trigger_kind, kind, attempt, retry_of,
        scheduled_at, started_at, completed_at, result, stdout, stderr, logs, error, exit_code,
        signal, duration_ms, cpu_ms, peak_memory_kb, unsandboxed, worker, lease_until, created_at)
    SELECT id, agent_id, agent_version, status, trigger_kind, kind, attempt, retry_of,
        scheduled_at, started_at, completed_at, result, stdout, stderr, logs, error, exit_code,
        signal, duration_ms, cpu_ms, peak_memory_kb, unsandboxed, worker, lease_until, created_at
    FROM tasks;
DELETE FROM sqlite_sequence WHERE name = 'tasks_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'tasks_new', seq FROM sqlite_sequence WHERE name = 'tasks';
DROP TABLE tasks;
ALTER TABLE tasks_new RENAME TO tasks;
CREATE INDEX tasks_agent_id ON tasks (agent_id, id);
CREATE INDEX tasks_agent_status_id ON tasks (agent_id, status, id);
CREATE INDEX tasks_queued ON tasks (scheduled_at, id) WHERE status = 'queued';
CREATE INDEX tasks_running_lease ON tasks (lease_until) WHERE status = 'running';
CREATE INDEX tasks_agent_open ON tasks (agent_id) WHERE status IN ('queued', 'running');
CREATE INDEX tasks_generation ON tasks (generation_id) WHERE generation_id IS NOT NULL;
-- Generations running under their own lease go on as queued tasks, with
-- the attempts they had.
INSERT INTO tasks (generation_id, status, trigger_kind, kind, attempt, scheduled_at, created_at)
    SELECT id, 'queued', 'manual', 'generation', attempts, created_at, created_at
    FROM generations WHERE status = 'running' ORDER BY id;
UPDATE generations SET stage = 'queued' WHERE status = 'running';
DROP INDEX generations_running_lease;
ALTER TABLE generations DROP COLUMN owner;
ALTER TABLE generations DROP COLUMN lease_until;
ALTER TABLE generations DROP COLUMN attempts;

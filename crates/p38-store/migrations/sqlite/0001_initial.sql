-- Project38 schema, SQLite flavour. Times are Unix epoch milliseconds;
-- JSON documents are TEXT; booleans are 0/1 (the same on both backends).
CREATE TABLE agents (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE,
    description TEXT    NOT NULL DEFAULT '',
    code        TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    schedule    TEXT,
    config      TEXT    NOT NULL DEFAULT '{}',
    secrets     TEXT    NOT NULL DEFAULT '[]',
    tools       TEXT    NOT NULL DEFAULT '[]',
    network     INTEGER NOT NULL DEFAULT 0,
    settings    TEXT    NOT NULL DEFAULT '{}',
    version     INTEGER NOT NULL DEFAULT 1,
    created_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX agents_status_id ON agents (status, id);

CREATE TABLE agent_versions (
    agent_id   INTEGER NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    version    INTEGER NOT NULL,
    code       TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (agent_id, version)
);

CREATE TABLE tasks (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id       INTEGER NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    agent_version  INTEGER NOT NULL,
    status         TEXT    NOT NULL,
    trigger_kind   TEXT    NOT NULL,
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
    created_at     INTEGER NOT NULL
);
CREATE INDEX tasks_agent_id ON tasks (agent_id, id);
CREATE INDEX tasks_agent_status_id ON tasks (agent_id, status, id);
CREATE INDEX tasks_queued ON tasks (scheduled_at, id) WHERE status = 'queued';
CREATE INDEX tasks_running_lease ON tasks (lease_until) WHERE status = 'running';

CREATE TABLE agent_state (
    agent_id   INTEGER PRIMARY KEY REFERENCES agents (id) ON DELETE CASCADE,
    state      TEXT    NOT NULL,
    run_count  INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL,
    scope      TEXT    NOT NULL,
    token_hash TEXT    NOT NULL UNIQUE,
    prefix     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    actor  TEXT    NOT NULL,
    action TEXT    NOT NULL,
    target TEXT    NOT NULL,
    detail TEXT,
    at     INTEGER NOT NULL
);

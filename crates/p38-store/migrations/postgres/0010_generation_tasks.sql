-- A generation is a task on the one queue (kind `generation`), claimed by
-- workers with the same lease and heartbeat as agent runs; its lease is its
-- task's. Such a task has no agent (none is written yet) but a generation.
ALTER TABLE tasks ALTER COLUMN agent_id DROP NOT NULL;
ALTER TABLE tasks ALTER COLUMN agent_version DROP NOT NULL;
ALTER TABLE tasks ADD COLUMN generation_id BIGINT REFERENCES generations (id) ON DELETE CASCADE;
ALTER TABLE tasks ADD CONSTRAINT tasks_one_target CHECK (
    (kind <> 'generation' AND agent_id IS NOT NULL AND agent_version IS NOT NULL AND generation_id IS NULL)
    OR (kind = 'generation' AND agent_id IS NULL AND agent_version IS NULL AND generation_id IS NOT NULL));
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

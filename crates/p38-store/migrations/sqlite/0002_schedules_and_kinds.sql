-- Schedules: when each agent fires next (a compare-and-set target, so two
-- schedulers never fire the same instant twice); task kinds; the lease
-- that elects one scheduler.
ALTER TABLE agents ADD COLUMN next_fire_at INTEGER;
CREATE INDEX agents_next_fire ON agents (next_fire_at) WHERE next_fire_at IS NOT NULL;
ALTER TABLE tasks ADD COLUMN kind TEXT NOT NULL DEFAULT 'agent';
CREATE INDEX tasks_agent_open ON tasks (agent_id) WHERE status IN ('queued', 'running');
CREATE TABLE scheduler_lease (
    id     INTEGER PRIMARY KEY,
    holder TEXT    NOT NULL,
    until  INTEGER NOT NULL
);

-- How many runs of one agent may go at once (default 1), kept as a column
-- so the queue's claim can read it.
ALTER TABLE agents ADD COLUMN max_concurrency INTEGER NOT NULL DEFAULT 1;

-- Approval: who approved which code version; a change of code or
-- permissions clears it. Generations: a description being turned into an
-- agent, with every iteration of the repair loop kept in `report`.
ALTER TABLE agents ADD COLUMN approved_by TEXT;
ALTER TABLE agents ADD COLUMN approved_at INTEGER;
ALTER TABLE agents ADD COLUMN generation_id INTEGER;
CREATE TABLE generations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    description TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    stage       TEXT    NOT NULL,
    iteration   INTEGER NOT NULL DEFAULT 0,
    findings    INTEGER NOT NULL DEFAULT 0,
    cost_usd    REAL    NOT NULL DEFAULT 0,
    input_tokens  INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    model       TEXT    NOT NULL DEFAULT '',
    report      TEXT,
    error       TEXT,
    agent_id    INTEGER,
    created_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

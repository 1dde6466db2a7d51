-- Approval: who approved which code version; a change of code or
-- permissions clears it. Generations: a description being turned into an
-- agent, with every iteration of the repair loop kept in `report`.
ALTER TABLE agents ADD COLUMN approved_by TEXT;
ALTER TABLE agents ADD COLUMN approved_at BIGINT;
ALTER TABLE agents ADD COLUMN generation_id BIGINT;
CREATE TABLE generations (
    id          BIGSERIAL PRIMARY KEY,
    description TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    stage       TEXT    NOT NULL,
    iteration   BIGINT NOT NULL DEFAULT 0,
    findings    BIGINT NOT NULL DEFAULT 0,
    cost_usd    DOUBLE PRECISION NOT NULL DEFAULT 0,
    input_tokens  BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    model       TEXT    NOT NULL DEFAULT '',
    report      TEXT,
    error       TEXT,
    agent_id    BIGINT,
    created_by  TEXT    NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- Project38 schema, PostgreSQL flavour. Times are Unix epoch milliseconds;
-- JSON documents are TEXT; booleans are 0/1 (the same on both backends).
CREATE TABLE agents (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    description TEXT    NOT NULL DEFAULT '',
    code        TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    schedule    TEXT,
    config      TEXT    NOT NULL DEFAULT '{}',
    secrets     TEXT    NOT NULL DEFAULT '[]',
    tools       TEXT    NOT NULL DEFAULT '[]',
    network     BIGINT  NOT NULL DEFAULT 0,
    settings    TEXT    NOT NULL DEFAULT '{}',
    version     BIGINT  NOT NULL DEFAULT 1,
    created_by  TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
CREATE INDEX agents_status_id ON agents (status, id);

CREATE TABLE agent_versions (
    agent_id   BIGINT  NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    version    BIGINT  NOT NULL,
    code       TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    PRIMARY KEY (agent_id, version)
);

CREATE TABLE tasks (
    id             BIGSERIAL PRIMARY KEY,
    agent_id       BIGINT  NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    agent_version  BIGINT  NOT NULL,
    status         TEXT    NOT NULL,
    trigger_kind   TEXT    NOT NULL,
    attempt        BIGINT  NOT NULL DEFAULT 1,
    retry_of       BIGINT,
    scheduled_at   BIGINT  NOT NULL,
    started_at     BIGINT,
    completed_at   BIGINT,
    result         TEXT,
    stdout         TEXT,
    stderr         TEXT,
    logs           TEXT,
    error          TEXT,
    exit_code      BIGINT,
    signal         BIGINT,
    duration_ms    BIGINT,
    cpu_ms         BIGINT,
    peak_memory_kb BIGINT,
    unsandboxed    BIGINT  NOT NULL DEFAULT 0,
    worker         TEXT,
    lease_until    BIGINT,
    created_at     BIGINT  NOT NULL
);
CREATE INDEX tasks_agent_id ON tasks (agent_id, id);
CREATE INDEX tasks_agent_status_id ON tasks (agent_id, status, id);
CREATE INDEX tasks_queued ON tasks (scheduled_at, id) WHERE status = 'queued';
CREATE INDEX tasks_running_lease ON tasks (lease_until) WHERE status = 'running';

CREATE TABLE agent_state (
    agent_id   BIGINT PRIMARY KEY REFERENCES agents (id) ON DELETE CASCADE,
    state      TEXT    NOT NULL,
    run_count  BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL
);

CREATE TABLE api_tokens (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT    NOT NULL,
    scope      TEXT    NOT NULL,
    token_hash TEXT    NOT NULL UNIQUE,
    prefix     TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE audit_log (
    id     BIGSERIAL PRIMARY KEY,
    actor  TEXT    NOT NULL,
    action TEXT    NOT NULL,
    target TEXT    NOT NULL,
    detail TEXT,
    at     BIGINT  NOT NULL
);

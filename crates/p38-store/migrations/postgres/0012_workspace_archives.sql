-- Agents' workspaces carried between hosts: a compressed tar of the
-- workspace per saved version; only the latest few are kept per agent.
-- (Numbered with a gap so that migrations written meanwhile fit before it.)
CREATE TABLE workspace_archives (
    agent_id      BIGINT  NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    version       BIGINT  NOT NULL,
    sha256        TEXT    NOT NULL,
    size_bytes    BIGINT  NOT NULL,
    archive       BYTEA   NOT NULL,
    saved_by_task BIGINT,
    created_at    BIGINT  NOT NULL,
    PRIMARY KEY (agent_id, version)
);

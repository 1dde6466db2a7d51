-- Agents' workspaces carried between hosts: a compressed tar of the
-- workspace per saved version; only the latest few are kept per agent.
-- (Numbered with a gap so that migrations written meanwhile fit before it.)
CREATE TABLE workspace_archives (
    agent_id      INTEGER NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    version       INTEGER NOT NULL,
    sha256        TEXT    NOT NULL,
    size_bytes    INTEGER NOT NULL,
    archive       BLOB    NOT NULL,
    saved_by_task INTEGER,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (agent_id, version)
);

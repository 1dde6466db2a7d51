-- A generation is held by the process running its repair loop, through a
-- lease that process renews. When that process dies, another takes the
-- generation over and runs it again (up to 3 attempts), so none is lost.
ALTER TABLE generations ADD COLUMN owner TEXT;
ALTER TABLE generations ADD COLUMN lease_until BIGINT;
ALTER TABLE generations ADD COLUMN attempts BIGINT NOT NULL DEFAULT 1;
CREATE INDEX generations_running_lease ON generations (lease_until) WHERE status = 'running';
-- Generations left running by an earlier version have no lease to lapse:
-- they were interrupted by the upgrade.
UPDATE generations SET status = 'failed', stage = 'failed',
    error = 'interrupted by an upgrade of Project38; start it again'
    WHERE status = 'running';

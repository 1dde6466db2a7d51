-- What an approval covers (see p38-core's approval module): the hosts an
-- agent may reach, who last changed a covered field (four eyes), why it
-- was rejected, and what was approved (the covered fields as JSON, and the
-- code version), kept when the approval is withdrawn so that the next
-- approver sees what changed since. Tokens can expire and record their last
-- use (to the minute).
ALTER TABLE agents ADD COLUMN allow_hosts TEXT NOT NULL DEFAULT '[]';
ALTER TABLE agents ADD COLUMN changed_by TEXT;
ALTER TABLE agents ADD COLUMN rejected_reason TEXT;
ALTER TABLE agents ADD COLUMN approved_version INTEGER;
ALTER TABLE agents ADD COLUMN approved_snapshot TEXT;
UPDATE agents SET
    approved_version = version,
    approved_snapshot = json_object(
        'code', code,
        'config', json(config),
        'secrets', json(secrets),
        'tools', json(tools),
        'network', CASE WHEN network <> 0 THEN json('true') ELSE json('false') END,
        'allow_hosts', json('[]'),
        'tool_limits', NULL)
WHERE approved_by IS NOT NULL;
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN last_used_at INTEGER;

-- The fields given along with a description (name, schedule, config,
-- settings) win over what the model proposes; kept with the generation so
-- that a generation taken over by another process honours them too.
ALTER TABLE generations ADD COLUMN overrides TEXT NOT NULL DEFAULT '{}';

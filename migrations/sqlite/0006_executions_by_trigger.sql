-- The console lists executions by trigger (`?trigger=schedule`), newest
-- first, a page at a time: served by this index as the other filters are.
CREATE INDEX executions_by_trigger ON executions (trigger, created_at, id);

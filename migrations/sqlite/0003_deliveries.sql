-- Notifications: one row per (execution, terminal event, notify rule), the
-- id derived from those three, so creating it twice is a no-op and a
-- restarted daemon neither loses nor repeats one (at-least-once: a request
-- sent but not yet recorded as acknowledged is sent again, with the same
-- `X-Weir-Delivery` id). Every attempt is kept in `attempts` (JSON array).

CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY NOT NULL,
    execution       TEXT NOT NULL REFERENCES executions (id),
    event           TEXT NOT NULL,
    rule            INTEGER NOT NULL,
    target          TEXT NOT NULL,
    destination     TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        TEXT NOT NULL,
    next_attempt_at TEXT,
    created_at      TEXT NOT NULL,
    delivered_at    TEXT
);
CREATE INDEX deliveries_by_execution ON deliveries (execution);
-- What the notifier reads each tick: only the pending rows, soonest first.
-- Queries must repeat this WHERE clause word for word to use it.
CREATE INDEX deliveries_pending ON deliveries (next_attempt_at, id)
    WHERE status = 'pending';

-- The notifier's scan of executions that ended since it last looked.
CREATE INDEX executions_by_finished_at ON executions (finished_at, id)
    WHERE finished_at IS NOT NULL;

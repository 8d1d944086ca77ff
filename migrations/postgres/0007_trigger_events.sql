-- Event triggers (DESIGN.md section 13).
--
-- `trigger_events` holds every event a launch plan's trigger saw, once:
-- its key is (project, launch plan, trigger, event), where `trigger` names
-- the trigger across the launch plan's versions (`artifact:<url><pattern>`,
-- `upstream:<launch plan>`, `webhook`) and `event` the event within it
-- (an object's key and ETag, an upstream execution's id, a call's
-- Idempotency-Key). `execution` is the id its execution gets, fixed when
-- the event is recorded, so that creating it again (a restart, a second
-- replica, a replayed call, a new version of the launch plan) finds the
-- first (I4); NULL for an object that was already there when the trigger
-- began (never run). `created_at` is NULL while the execution waits for
-- room under the trigger's maxPending (deferred, never dropped).
--
-- `trigger_cursors` holds, per trigger, where it stands: since when it
-- watches, its cursor (an upstream trigger's last ended execution seen),
-- its last poll and its last error (shown by `weir status`).
--
-- The upstream triggers' one query of the executions ended since their
-- cursor is served by `executions_by_finished_at` (0003).

CREATE TABLE trigger_events (
    project      TEXT NOT NULL,
    launch_plan  TEXT NOT NULL,
    trigger      TEXT NOT NULL,
    event        TEXT NOT NULL,
    execution    TEXT,
    version      TEXT NOT NULL,
    inputs       JSONB NOT NULL,
    detail       JSONB NOT NULL,
    seen_at      TIMESTAMPTZ NOT NULL,
    created_at   TIMESTAMPTZ,
    PRIMARY KEY (project, launch_plan, trigger, event)
);

CREATE INDEX trigger_events_by_execution ON trigger_events (execution);
CREATE INDEX trigger_events_deferred ON trigger_events (project, launch_plan, trigger, seen_at, event)
    WHERE execution IS NOT NULL AND created_at IS NULL;

CREATE TABLE trigger_cursors (
    project      TEXT NOT NULL,
    launch_plan  TEXT NOT NULL,
    trigger      TEXT NOT NULL,
    since        TIMESTAMPTZ NOT NULL,
    cursor       TEXT,
    polled_at    TIMESTAMPTZ,
    error        TEXT,
    error_since  TIMESTAMPTZ,
    PRIMARY KEY (project, launch_plan, trigger)
);

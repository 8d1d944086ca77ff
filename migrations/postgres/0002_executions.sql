-- Executions: one row per execution, one per node of its plan, lineage
-- edges from node executions to artifact digests (I5), and cache entries.
--
-- Timestamps are timestamptz (microseconds); JSON is jsonb. Statuses are
-- checked when read (an unknown one is a corrupt row), not by CHECK
-- constraints, as in SQLite, so both backends accept the same rows.
--
-- Executions do not reference the registry's rows: they keep the names,
-- digests and commit they ran, which is all I5 asks, and an execution never
-- depends on what the registry holds later.

CREATE TABLE executions (
    -- Deterministic for scheduled runs: the primary key makes I4 hold.
    -- Collation C: ties of `created_at` order by id as SQLite's do.
    id                  TEXT COLLATE "C" PRIMARY KEY,
    project             TEXT NOT NULL,
    workflow            TEXT NOT NULL,
    workflow_version    TEXT NOT NULL,
    launch_plan         TEXT,
    launch_plan_version TEXT,
    source              TEXT NOT NULL,
    commit_sha          TEXT NOT NULL,
    trigger             TEXT NOT NULL,
    scheduled_at        TIMESTAMPTZ,
    inputs              JSONB NOT NULL,
    plan                JSONB NOT NULL,
    options             JSONB NOT NULL,
    status              TEXT NOT NULL,
    outputs             JSONB,
    error               TEXT,
    created_at          TIMESTAMPTZ NOT NULL,
    started_at          TIMESTAMPTZ,
    finished_at         TIMESTAMPTZ,
    cancel_requested    BOOLEAN NOT NULL DEFAULT FALSE
);
-- `weir executions`, newest first: unfiltered, or by launch plan, workflow
-- or status, each an index scan read backwards that stops at the limit.
CREATE INDEX executions_by_created_at ON executions (created_at, id);
CREATE INDEX executions_by_launch_plan ON executions (launch_plan, created_at, id);
CREATE INDEX executions_by_workflow ON executions (workflow, created_at, id);
CREATE INDEX executions_by_status ON executions (status, created_at, id);
-- What the engine reads each tick: only the unfinished rows, oldest first.
-- Queries must repeat this WHERE clause word for word to use it.
CREATE INDEX executions_unfinished ON executions (created_at, id)
    WHERE status IN ('queued', 'running');

CREATE TABLE node_executions (
    execution       TEXT COLLATE "C" NOT NULL REFERENCES executions (id),
    -- The node's path in the plan (`train`, `sub/train`).
    node            TEXT NOT NULL,
    -- Its position in the plan: `nodes()` returns them in this order.
    plan_order      INTEGER NOT NULL,
    task            TEXT NOT NULL,
    task_version    TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    inputs          JSONB,
    outputs         JSONB,
    error           TEXT,
    cached_from     TEXT,
    started_at      TIMESTAMPTZ,
    finished_at     TIMESTAMPTZ,
    next_attempt_at TIMESTAMPTZ,
    handle          JSONB,
    PRIMARY KEY (execution, node),
    UNIQUE (execution, plan_order)
);

-- One row per (node execution, direction, port, artifact); recording an
-- edge twice is a no-op. `id` is insertion order, which breaks ties of `at`.
CREATE TABLE lineage (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    execution    TEXT COLLATE "C" NOT NULL,
    node         TEXT NOT NULL,
    direction    TEXT NOT NULL CHECK (direction IN ('input', 'output')),
    name         TEXT NOT NULL,
    digest       TEXT NOT NULL,
    task         TEXT NOT NULL,
    task_version TEXT NOT NULL,
    commit_sha   TEXT NOT NULL,
    at           TIMESTAMPTZ NOT NULL,
    FOREIGN KEY (execution, node) REFERENCES node_executions (execution, node),
    -- Also the index of an execution's edges (its leading column).
    UNIQUE (execution, node, direction, name, digest)
);
-- An artifact's edges, oldest first, without a sort: the query that must
-- stay fast at 10 million rows.
CREATE INDEX lineage_by_digest ON lineage (digest, at, id);

-- The first result stored for a cache key; later puts keep it.
CREATE TABLE cache_entries (
    key        TEXT PRIMARY KEY,
    execution  TEXT NOT NULL,
    node       TEXT NOT NULL,
    outputs    JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

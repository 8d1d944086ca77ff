-- Launch plans paused without a commit (`weir pause`, `weir resume`), the
-- decisions of approval gates (`weir approve`), and an audit log open to
-- changes that come from no commit.
--
-- `launch_plan_pauses` holds, per launch plan (project and name, whatever
-- its version), its last pause or resume: the scheduler starts none of its
-- instants while `paused`, and after a resume decides only the instants
-- after `changed_at` unless the resume asked to `catch_up`. Its history is
-- the audit log's `paused` and `resumed` entries, whose source and commit
-- are NULL (no commit made the change).
--
-- `approvals` holds the one decision on an approval gate (a node with
-- `approve:`) of an execution: the first decision stands, later ones are
-- refused. Each is also an audit entry, `approval`.

CREATE TABLE launch_plan_pauses (
    project     TEXT NOT NULL,
    name        TEXT NOT NULL,
    paused      BOOLEAN NOT NULL,
    changed_at  TIMESTAMPTZ NOT NULL,
    actor_name  TEXT NOT NULL,
    actor_email TEXT NOT NULL,
    comment     TEXT,
    catch_up    BOOLEAN NOT NULL,
    PRIMARY KEY (project, name)
);

CREATE TABLE approvals (
    execution   TEXT NOT NULL REFERENCES executions (id),
    node        TEXT NOT NULL,
    approved    BOOLEAN NOT NULL,
    decided_at  TIMESTAMPTZ NOT NULL,
    actor_name  TEXT NOT NULL,
    comment     TEXT,
    PRIMARY KEY (execution, node)
);

ALTER TABLE audit
    ALTER COLUMN source DROP NOT NULL,
    ALTER COLUMN commit_sha DROP NOT NULL,
    DROP CONSTRAINT audit_action_check,
    ADD CONSTRAINT audit_action_check
        CHECK (action IN ('reconciled', 'rejected', 'paused', 'resumed', 'approval')),
    ADD CONSTRAINT audit_commit_with_source
        CHECK ((source IS NULL) = (commit_sha IS NULL)),
    ADD CONSTRAINT audit_commitless_pauses
        CHECK ((source IS NULL) = (action IN ('paused', 'resumed', 'approval')));

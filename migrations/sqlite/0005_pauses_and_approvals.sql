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
-- refused. Each is also an audit entry, `approval`. Times as in 0001.

CREATE TABLE launch_plan_pauses (
    project     TEXT NOT NULL,
    name        TEXT NOT NULL,
    paused      INTEGER NOT NULL CHECK (paused IN (0, 1)),
    changed_at  TEXT NOT NULL,
    actor_name  TEXT NOT NULL,
    actor_email TEXT NOT NULL,
    comment     TEXT,
    catch_up    INTEGER NOT NULL CHECK (catch_up IN (0, 1)),
    PRIMARY KEY (project, name)
) WITHOUT ROWID;

CREATE TABLE approvals (
    execution   TEXT NOT NULL REFERENCES executions (id),
    node        TEXT NOT NULL,
    approved    INTEGER NOT NULL CHECK (approved IN (0, 1)),
    decided_at  TEXT NOT NULL,
    actor_name  TEXT NOT NULL,
    comment     TEXT,
    PRIMARY KEY (execution, node)
) WITHOUT ROWID;

-- SQLite changes a column's constraints only by copying the table.
CREATE TABLE audit_with_pauses (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    source      TEXT REFERENCES sources (key),
    commit_sha  TEXT REFERENCES commits (sha),
    actor_name  TEXT NOT NULL,
    actor_email TEXT NOT NULL,
    action      TEXT NOT NULL
                CHECK (action IN ('reconciled', 'rejected', 'paused', 'resumed', 'approval')),
    details     TEXT NOT NULL,
    CHECK ((source IS NULL) = (commit_sha IS NULL)),
    CHECK ((source IS NULL) = (action IN ('paused', 'resumed', 'approval')))
);
INSERT INTO audit_with_pauses (id, at, source, commit_sha, actor_name, actor_email, action, details)
    SELECT id, at, source, commit_sha, actor_name, actor_email, action, details FROM audit;
DROP TABLE audit;
ALTER TABLE audit_with_pauses RENAME TO audit;

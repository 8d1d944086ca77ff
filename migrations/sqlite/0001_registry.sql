-- The registry: commits, versions, activations, active sets, audit, sources.
--
-- Versions are insert-only (I1): nothing updates or deletes a row of
-- `versions`, `activations`, `commits` or `audit`. `active` holds, per source,
-- exactly the active set of its last reconciled commit (I2).
--
-- Timestamps are RFC 3339 text in UTC with exactly six fractional digits
-- (`2026-01-02T03:04:05.000000Z`), so text order is time order and values
-- round-trip through chrono at the precision PostgreSQL keeps. JSON is text.

CREATE TABLE commits (
    sha             TEXT PRIMARY KEY NOT NULL,
    author_name     TEXT NOT NULL,
    author_email    TEXT NOT NULL,
    committer_name  TEXT NOT NULL,
    committer_email TEXT NOT NULL,
    time            TEXT NOT NULL,
    message         TEXT NOT NULL
);

CREATE TABLE sources (
    key                TEXT PRIMARY KEY NOT NULL,
    last_reconciled    TEXT REFERENCES commits (sha),
    last_reconciled_at TEXT,
    last_attempted     TEXT REFERENCES commits (sha),
    last_attempted_at  TEXT,
    -- `SourceError` as JSON; NULL when the last attempt succeeded.
    error              TEXT
);

CREATE TABLE versions (
    project       TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('Task', 'Workflow', 'LaunchPlan')),
    name          TEXT NOT NULL,
    digest        TEXT NOT NULL,
    spec          TEXT NOT NULL,
    document      TEXT NOT NULL,
    path          TEXT NOT NULL,
    first_commit  TEXT NOT NULL REFERENCES commits (sha),
    registered_at TEXT NOT NULL,
    PRIMARY KEY (project, kind, name, digest)
);
CREATE INDEX versions_by_kind_name ON versions (kind, name);
CREATE INDEX versions_by_registered_at ON versions (registered_at);

-- One row each time a version became active in a source (or was registered
-- without becoming active), oldest first by id.
CREATE TABLE activations (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    project    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    digest     TEXT NOT NULL,
    source     TEXT NOT NULL REFERENCES sources (key),
    commit_sha TEXT NOT NULL REFERENCES commits (sha),
    at         TEXT NOT NULL,
    change     TEXT NOT NULL CHECK (change IN ('registered', 'activated', 'updated', 'reactivated')),
    FOREIGN KEY (project, kind, name, digest) REFERENCES versions (project, kind, name, digest)
);
CREATE INDEX activations_by_version ON activations (project, kind, name, digest, id);

CREATE TABLE active (
    source  TEXT NOT NULL REFERENCES sources (key),
    project TEXT NOT NULL,
    kind    TEXT NOT NULL,
    name    TEXT NOT NULL,
    digest  TEXT NOT NULL,
    PRIMARY KEY (source, project, kind, name),
    FOREIGN KEY (project, kind, name, digest) REFERENCES versions (project, kind, name, digest)
) WITHOUT ROWID;
CREATE INDEX active_by_version ON active (project, kind, name, digest);

CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    source      TEXT NOT NULL REFERENCES sources (key),
    commit_sha  TEXT NOT NULL REFERENCES commits (sha),
    actor_name  TEXT NOT NULL,
    actor_email TEXT NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ('reconciled', 'rejected')),
    details     TEXT NOT NULL
);

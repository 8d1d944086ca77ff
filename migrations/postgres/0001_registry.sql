-- The registry: commits, versions, activations, active sets, audit, sources.
--
-- Versions are insert-only (I1): nothing updates or deletes a row of
-- `versions`, `activations`, `commits` or `audit`. `active` holds, per source,
-- exactly the active set of its last reconciled commit (I2).
--
-- Timestamps are timestamptz (microseconds); JSON is jsonb.

CREATE TABLE commits (
    sha             TEXT PRIMARY KEY,
    author_name     TEXT NOT NULL,
    author_email    TEXT NOT NULL,
    committer_name  TEXT NOT NULL,
    committer_email TEXT NOT NULL,
    time            TIMESTAMPTZ NOT NULL,
    message         TEXT NOT NULL
);

CREATE TABLE sources (
    key                TEXT PRIMARY KEY,
    last_reconciled    TEXT REFERENCES commits (sha),
    last_reconciled_at TIMESTAMPTZ,
    last_attempted     TEXT REFERENCES commits (sha),
    last_attempted_at  TIMESTAMPTZ,
    -- `SourceError` as JSON; NULL when the last attempt succeeded.
    error              JSONB
);

CREATE TABLE versions (
    project       TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('Task', 'Workflow', 'LaunchPlan')),
    name          TEXT NOT NULL,
    digest        TEXT NOT NULL,
    spec          JSONB NOT NULL,
    document      JSONB NOT NULL,
    path          TEXT NOT NULL,
    first_commit  TEXT NOT NULL REFERENCES commits (sha),
    registered_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project, kind, name, digest)
);
CREATE INDEX versions_by_kind_name ON versions (kind, name);
CREATE INDEX versions_by_registered_at ON versions (registered_at);

-- One row each time a version became active in a source (or was registered
-- without becoming active), oldest first by id.
CREATE TABLE activations (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    digest     TEXT NOT NULL,
    source     TEXT NOT NULL REFERENCES sources (key),
    commit_sha TEXT NOT NULL REFERENCES commits (sha),
    at         TIMESTAMPTZ NOT NULL,
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
);
CREATE INDEX active_by_version ON active (project, kind, name, digest);

CREATE TABLE audit (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    source      TEXT NOT NULL REFERENCES sources (key),
    commit_sha  TEXT NOT NULL REFERENCES commits (sha),
    actor_name  TEXT NOT NULL,
    actor_email TEXT NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ('reconciled', 'rejected')),
    details     JSONB NOT NULL
);

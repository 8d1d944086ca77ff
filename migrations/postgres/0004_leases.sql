-- Leases: one row per name, held by one holder until it expires. The
-- engine lease (`engine`) makes one engine at a time drive a store's
-- executions, so two engines never take each other's attempts for
-- interrupted ones. A released lease's row is deleted.

CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    acquired_at TIMESTAMPTZ NOT NULL,
    renewed_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);

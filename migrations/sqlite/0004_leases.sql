-- Leases: one row per name, held by one holder until it expires. The
-- engine lease (`engine`) makes one engine at a time drive a store's
-- executions, so two engines never take each other's attempts for
-- interrupted ones. Timestamps as in 0001 (fixed-precision RFC 3339 text,
-- which compares as time does). A released lease's row is deleted.

CREATE TABLE leases (
    name        TEXT PRIMARY KEY NOT NULL,
    holder      TEXT NOT NULL,
    acquired_at TEXT NOT NULL,
    renewed_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);

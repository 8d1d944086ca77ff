//! What the store keeps so that one engine drives it at a time: named
//! leases, each a row with its holder and its expiry (DESIGN.md section 5).
//!
//! Two engines on one store would each take the other's running attempts
//! for interrupted ones, kill them and retry them. The engine lease
//! ([`ENGINE_LEASE`]) makes one of them the driver: a holder renews it well
//! before it expires; anyone may take it over once it has expired; a
//! holder that stops cleanly releases it, so a successor takes over at
//! once. Taking and renewing are one statement inside one transaction on
//! both backends (an upsert whose update applies only when the row is
//! the caller's or has expired), so of two racers exactly one holds it.
//! A holder proved dead (an engine of this host whose process is gone) is
//! taken over at once, by an update conditional on the holder still being
//! that dead one, so again one racer wins.
//!
//! Time is the caller's (`now`), never the database's: the lease logic is
//! tested with an injected clock, and holders on one host agree on it.

use chrono::{DateTime, SubsecRound, Utc};

use super::StoreFuture;

/// The lease of the engine that drives a store's executions.
pub const ENGINE_LEASE: &str = "engine";

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    /// Who holds (or last held) it: an engine's identity.
    pub holder: String,
    /// When its holder took it.
    pub acquired_at: DateTime<Utc>,
    /// When its holder last renewed it.
    pub renewed_at: DateTime<Utc>,
    /// From then on, anyone may take it over.
    pub expires_at: DateTime<Utc>,
}

impl Lease {
    /// Whether its holder still holds it at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
    }

    /// Whether `holder` holds it at `now`.
    pub fn is_held_by(&self, holder: &str, now: DateTime<Utc>) -> bool {
        self.holder == holder && self.is_live(now)
    }
}

/// Named leases. Every method is one transaction.
pub trait LeaseStore: Send + Sync {
    /// Takes the lease `name` for `holder` until `now + duration`, or
    /// renews it, when it is free, expired at `now`, or `holder`'s already.
    /// Returns the lease as stored afterwards: `holder` holds it exactly
    /// when [`Lease::is_held_by`] says so; otherwise it is the live
    /// holder's, untouched. A renewal keeps `acquired_at`.
    fn acquire_lease<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        now: DateTime<Utc>,
        duration: std::time::Duration,
    ) -> StoreFuture<'a, Lease>;

    /// Takes the lease `name` over from `dead`, a holder proved dead
    /// (`engine::identity::holder_is_gone_here`), for `holder` until
    /// `now + duration`, live or not, when `dead` still holds it: of two
    /// engines taking over from one dead holder, exactly one does. Returns
    /// the lease as stored afterwards (`None` when it was released), which
    /// [`Lease::is_held_by`] `holder` exactly when it took it over.
    fn take_over_lease<'a>(
        &'a self,
        name: &'a str,
        dead: &'a str,
        holder: &'a str,
        now: DateTime<Utc>,
        duration: std::time::Duration,
    ) -> StoreFuture<'a, Option<Lease>>;

    /// Gives the lease up when `holder` holds it (a successor may take it
    /// at once); whether it did.
    fn release_lease<'a>(&'a self, name: &'a str, holder: &'a str) -> StoreFuture<'a, bool>;

    /// The lease `name` as stored (live or not), if it was ever taken.
    fn lease<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Lease>>;
}

/// The longest term a lease is taken for: a longer duration is cut to it.
pub const MAX_TERM: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The instants of a take-over or renewal at `now` (`renewed_at`,
/// `expires_at`), at the precision both backends keep, so that a lease
/// read back equals the one written. A term past the representable time
/// (which [`MAX_TERM`] rules out for any real clock) ends at once.
pub(crate) fn term(
    now: DateTime<Utc>,
    duration: std::time::Duration,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let now = now.trunc_subsecs(6);
    let expires = chrono::Duration::from_std(duration.min(MAX_TERM))
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(now)
        .trunc_subsecs(6);
    (now, expires)
}

/// The columns [`LeaseRow`] decodes, in order.
pub(crate) const LEASE_COLUMNS: &str = "name, holder, acquired_at, renewed_at, expires_at";

/// A row of `leases` (both backends).
#[derive(sqlx::FromRow)]
pub(crate) struct LeaseRow {
    name: String,
    holder: String,
    acquired_at: DateTime<Utc>,
    renewed_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl From<LeaseRow> for Lease {
    fn from(row: LeaseRow) -> Lease {
        Lease {
            name: row.name,
            holder: row.holder,
            acquired_at: row.acquired_at,
            renewed_at: row.renewed_at,
            expires_at: row.expires_at,
        }
    }
}

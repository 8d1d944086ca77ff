//! The store's named leases (`LeaseStore`), run alike against SQLite and
//! PostgreSQL with an injected clock: the engine lease that lets one engine
//! at a time drive a store's executions. Taken when free, renewed by its
//! holder, refused to others while live, taken over once expired, released
//! on a clean stop; of two racers for an expired lease exactly one wins.
//! A live lease whose holder was proved dead is taken over at once, only
//! from that holder, and by exactly one of two racers.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use tokio::sync::Barrier;
use weir::store::{ENGINE_LEASE, Lease};

use crate::common::{Backend, on_every_backend};

on_every_backend!(
    a_free_lease_is_taken_renewed_and_refused_to_others_while_live,
    an_expired_lease_is_taken_over_and_a_released_one_at_once,
    of_two_engines_racing_for_an_expired_lease_exactly_one_holds_it,
    a_dead_holders_live_lease_is_taken_over_only_from_that_holder,
    of_two_engines_taking_over_from_one_dead_holder_exactly_one_holds_it,
);

const TERM: Duration = Duration::from_secs(15);

/// `seconds` after a fixed instant, with microseconds (what both backends keep).
fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 29, 0, 30, 0)
        .single()
        .expect("a valid instant")
        + chrono::Duration::seconds(seconds)
        + chrono::Duration::microseconds(123_456)
}

async fn take(b: &Backend, holder: &str, now: i64) -> Lease {
    b.store
        .acquire_lease(ENGINE_LEASE, holder, at(now), TERM)
        .await
        .expect("acquire")
}

async fn a_free_lease_is_taken_renewed_and_refused_to_others_while_live(b: Backend) {
    assert_eq!(b.store.lease(ENGINE_LEASE).await.expect("read"), None);
    let taken = take(&b, "a", 0).await;
    assert_eq!(
        taken,
        Lease {
            name: ENGINE_LEASE.into(),
            holder: "a".into(),
            acquired_at: at(0),
            renewed_at: at(0),
            expires_at: at(15),
        }
    );
    assert!(taken.is_held_by("a", at(0)));

    let refused = take(&b, "b", 1).await;
    assert_eq!(refused, taken, "a live lease of another is left as it is");
    assert!(!refused.is_held_by("b", at(1)));

    let renewed = take(&b, "a", 5).await;
    assert_eq!(
        renewed.acquired_at,
        at(0),
        "a renewal keeps the acquisition"
    );
    assert_eq!(renewed.renewed_at, at(5));
    assert_eq!(renewed.expires_at, at(20));
    assert_eq!(
        take(&b, "b", 19).await.holder,
        "a",
        "still live one second before it expires"
    );
    assert_eq!(
        b.store.lease(ENGINE_LEASE).await.expect("read"),
        Some(renewed)
    );
}

async fn an_expired_lease_is_taken_over_and_a_released_one_at_once(b: Backend) {
    take(&b, "a", 0).await;
    let taken_over = take(&b, "b", 15).await;
    assert_eq!(
        (
            taken_over.holder.as_str(),
            taken_over.acquired_at,
            taken_over.expires_at
        ),
        ("b", at(15), at(30)),
        "expired at its expiry: taken over, a new term"
    );
    assert_eq!(
        take(&b, "a", 16).await.holder,
        "b",
        "the old holder follows"
    );

    assert!(
        !b.store
            .release_lease(ENGINE_LEASE, "a")
            .await
            .expect("release"),
        "only the holder releases"
    );
    assert!(
        b.store
            .release_lease(ENGINE_LEASE, "b")
            .await
            .expect("release")
    );
    assert_eq!(b.store.lease(ENGINE_LEASE).await.expect("read"), None);
    let next = take(&b, "a", 17).await;
    assert!(next.is_held_by("a", at(17)), "released: taken at once");
    assert_eq!(next.acquired_at, at(17));
}

async fn of_two_engines_racing_for_an_expired_lease_exactly_one_holds_it(b: Backend) {
    take(&b, "old", 0).await;
    for round in 0..10 {
        let now = 15 * (round + 1);
        let barrier = Arc::new(Barrier::new(2));
        let racers = ["x", "y"].map(|holder| {
            let (store, barrier) = (b.store.clone(), barrier.clone());
            let holder = format!("{holder}{round}");
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .acquire_lease(ENGINE_LEASE, &holder, at(now), TERM)
                    .await
                    .expect("acquire")
            })
        });
        let mut seen = Vec::new();
        for racer in racers {
            seen.push(racer.await.expect("racer"));
        }
        assert_eq!(seen[0].holder, seen[1].holder, "both see one holder");
        assert!(seen[0].holder.ends_with(&round.to_string()), "{seen:?}");
    }
}

async fn take_over(b: &Backend, dead: &str, holder: &str, now: i64) -> Option<Lease> {
    b.store
        .take_over_lease(ENGINE_LEASE, dead, holder, at(now), TERM)
        .await
        .expect("take over")
}

async fn a_dead_holders_live_lease_is_taken_over_only_from_that_holder(b: Backend) {
    assert_eq!(
        take_over(&b, "dead", "b", 0).await,
        None,
        "never taken: nothing to take over"
    );
    take(&b, "dead", 0).await;
    let kept = take_over(&b, "someone-else", "b", 1).await;
    assert_eq!(
        kept.as_ref().map(|l| l.holder.as_str()),
        Some("dead"),
        "a take-over names the holder it replaces"
    );
    let taken = take_over(&b, "dead", "b", 1).await.expect("a lease");
    assert_eq!(
        taken,
        Lease {
            name: ENGINE_LEASE.into(),
            holder: "b".into(),
            acquired_at: at(1),
            renewed_at: at(1),
            expires_at: at(16),
        },
        "taken over while live, for a new term"
    );
    assert_eq!(
        take_over(&b, "dead", "c", 2).await.map(|l| l.holder),
        Some("b".into()),
        "the new holder's lease is not the dead one's"
    );
    assert_eq!(take(&b, "b", 3).await.acquired_at, at(1), "renewed by b");
}

async fn of_two_engines_taking_over_from_one_dead_holder_exactly_one_holds_it(b: Backend) {
    for round in 0..10 {
        let dead = format!("dead{round}");
        // The last round's winner dies in turn.
        if let Some(last) = b.store.lease(ENGINE_LEASE).await.expect("read") {
            assert!(
                b.store
                    .release_lease(ENGINE_LEASE, &last.holder)
                    .await
                    .expect("release")
            );
        }
        take(&b, &dead, round).await;
        let barrier = Arc::new(Barrier::new(2));
        let racers = ["x", "y"].map(|holder| {
            let (store, barrier, dead) = (b.store.clone(), barrier.clone(), dead.clone());
            let holder = format!("{holder}{round}");
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .take_over_lease(ENGINE_LEASE, &dead, &holder, at(round + 1), TERM)
                    .await
                    .expect("take over")
                    .expect("a lease")
            })
        });
        let mut seen = Vec::new();
        for racer in racers {
            seen.push(racer.await.expect("racer"));
        }
        assert_eq!(seen[0], seen[1], "both see one lease: {seen:?}");
        assert!(seen[0].holder.ends_with(&round.to_string()), "{seen:?}");
        assert!(seen[0].is_held_by(&seen[0].holder, at(round + 1)));
    }
}

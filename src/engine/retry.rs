//! When a failed attempt is retried: after the task's `retries.backoff`,
//! doubled per retry (DESIGN.md section 6).
//!
//! What it guarantees: the computed instant is always a valid time. The
//! wait saturates at [`MAX_RETRY_WAIT`] (7 days), and adding it to `now`
//! is checked, so a version registered before durations were bounded at
//! validation (or any other oversized value) delays the retry by at most
//! the bound instead of panicking in the engine.
//!
//! It takes the backoff parsed: a stored text that does not parse is the
//! caller's to report (the node fails naming it), never replaced here by
//! a default.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::spec::duration::MAX_RETRY_WAIT;

/// The wait after the `attempt`-th failed attempt (1 for the first): the
/// task's `backoff` doubled `attempt - 1` times, at most [`MAX_RETRY_WAIT`].
pub fn wait(backoff: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
    backoff.saturating_mul(factor).min(MAX_RETRY_WAIT)
}

/// The instant the retry after the `attempt`-th failed attempt is due.
pub fn due_at(now: DateTime<Utc>, backoff: Duration, attempt: u32) -> DateTime<Utc> {
    let wait = chrono::Duration::from_std(wait(backoff, attempt))
        .expect("a wait of at most 7 days fits a chrono duration");
    // Only a `now` within 7 days of the end of chrono's calendar overflows.
    now.checked_add_signed(wait)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, 3, 29, 0, 30, 0)
            .single()
            .expect("an instant")
    }

    fn d(text: &str) -> Duration {
        crate::spec::duration::parse(text).expect("a duration")
    }

    #[test]
    fn the_backoff_doubles_per_retry() {
        assert_eq!(wait(d("10s"), 1).as_secs(), 10);
        assert_eq!(wait(d("10s"), 2).as_secs(), 20);
        assert_eq!(wait(d("10s"), 4).as_secs(), 80);
        assert_eq!(
            due_at(at(2026), d("1m"), 2),
            at(2026) + chrono::Duration::minutes(2)
        );
    }

    #[test]
    fn a_huge_backoff_saturates_instead_of_panicking() {
        // The value that used to overflow `DateTime + TimeDelta`.
        assert_eq!(wait(d("100000000d"), 1), MAX_RETRY_WAIT);
        assert_eq!(wait(d("7d"), 30), MAX_RETRY_WAIT);
        assert_eq!(
            due_at(at(2026), d("100000000d"), 1),
            at(2026) + chrono::Duration::days(7)
        );
        assert_eq!(
            due_at(DateTime::<Utc>::MAX_UTC, d("1d"), 1),
            DateTime::<Utc>::MAX_UTC
        );
    }
}

//! The time weir's loops read: one [`Clock`] handed to the scheduler, the
//! engine, the notifier and the electors, so that a test can run them on
//! virtual time instead of waiting for real seconds to pass.
//!
//! [`Clock::system`] is the wall clock (`Utc::now()`), what the daemon and
//! the CLI use. [`Clock::virtual_from`] starts at a given instant and moves
//! with tokio's clock: under `tokio::time::pause()` it stands still until
//! the runtime advances it (`tokio::time::advance`, or a paused runtime
//! auto-advancing past a sleep), so a loop's `sleep` and the time it then
//! reads agree. A clock never goes backwards unless the system clock does.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

/// Where "now" comes from. Cheap to clone; clones read the same time.
#[derive(Clone)]
pub struct Clock(Source);

#[derive(Clone)]
enum Source {
    System,
    Virtual(Arc<Virtual>),
}

struct Virtual {
    start: DateTime<Utc>,
    origin: tokio::time::Instant,
}

impl Clock {
    /// The wall clock.
    pub fn system() -> Clock {
        Clock(Source::System)
    }

    /// A clock reading `start` now and then moving with tokio's clock (see
    /// the module doc). Must be called within a tokio runtime.
    pub fn virtual_from(start: DateTime<Utc>) -> Clock {
        Clock(Source::Virtual(Arc::new(Virtual {
            start,
            origin: tokio::time::Instant::now(),
        })))
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        match &self.0 {
            Source::System => Utc::now(),
            Source::Virtual(v) => {
                let elapsed = tokio::time::Instant::now().duration_since(v.origin);
                TimeDelta::from_std(elapsed)
                    .ok()
                    .and_then(|elapsed| v.start.checked_add_signed(elapsed))
                    .unwrap_or(DateTime::<Utc>::MAX_UTC)
            }
        }
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Source::System => f.write_str("Clock::system"),
            Source::Virtual(v) => write!(f, "Clock::virtual_from({})", v.start),
        }
    }
}

/// A clock reading taken once, read again later moved on by the monotonic
/// time elapsed since: the current time of an operation handed one `now`
/// (a scheduler tick, a backfill) that writes in batches, so that a batch
/// written after another is created after it, even if the wall clock
/// steps back meanwhile. It moves with tokio's time, as a virtual
/// [`Clock`] does, so an operation handed a virtual `now` stays virtual.
#[derive(Debug, Clone, Copy)]
pub struct Since {
    at: DateTime<Utc>,
    origin: tokio::time::Instant,
}

impl Since {
    /// Reads `at` now.
    pub fn new(at: DateTime<Utc>) -> Since {
        Since {
            at,
            origin: tokio::time::Instant::now(),
        }
    }

    /// `at` plus the time elapsed since [`Since::new`].
    pub fn now(&self) -> DateTime<Utc> {
        TimeDelta::from_std(self.origin.elapsed())
            .ok()
            .and_then(|elapsed| self.at.checked_add_signed(elapsed))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_reading_moved_on_follows_tokio_time() {
        let at = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("instant")
            .with_timezone(&Utc);
        let since = Since::new(at);
        assert_eq!(since.now(), at);
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(since.now(), at + TimeDelta::milliseconds(1500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_virtual_clock_moves_only_with_tokio_time() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("instant")
            .with_timezone(&Utc);
        let clock = Clock::virtual_from(start);
        assert_eq!(clock.now(), start);
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(clock.now(), start + TimeDelta::seconds(90));
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(clock.clone().now(), start + TimeDelta::seconds(3690));
    }
}

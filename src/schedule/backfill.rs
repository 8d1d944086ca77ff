//! Which instants a backfill covers, decided purely with the clock injected
//! (DESIGN.md section 6, "Backfill").
//!
//! A backfill names a half-open range `[from, to)`. Its bounds are dates
//! (midnight), local times (`2026-03-25T06:00`) read in the schedule's own
//! time zone, or RFC 3339 times with an offset, which are absolute. The
//! instants are exactly those the scheduler computes
//! ([`Rule::instants_between`]), with the same daylight-saving rules: a
//! daily 02:30 in Europe/Berlin fires once on 29 March 2026, at 03:00 CEST
//! right after the gap, and once on 25 October, at the first 02:30.
//!
//! What it guarantees: instants are oldest first, each once, all `>= from`,
//! `< to` and not after `now` (later ones are the scheduler's to start);
//! at most [`MAX_INSTANTS`], and the cost of finding out is bounded by that
//! number, not by the length of the range.
//!
//! Nothing here reads the clock, the store or the network.

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::Rule;

/// The most instants one backfill may cover.
pub const MAX_INSTANTS: usize = 10_000;

/// Why a range cannot be backfilled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error(
        "--{flag} `{text}` is not a date (2026-03-25), a local time (2026-03-25T06:00) \
         or an RFC 3339 time (2026-03-25T06:00:00Z)"
    )]
    Unreadable { flag: &'static str, text: String },
    #[error("--from {from} is not before --to {to}: the range [from, to) is empty")]
    Empty { from: String, to: String },
    #[error(
        "--from {from} is in the future (now is {now}): instants to come are the scheduler's to start"
    )]
    Future { from: String, now: String },
    #[error(
        "the range holds more than {MAX_INSTANTS} instants of the schedule; narrow it: \
         the last {MAX_INSTANTS} start at {last_start}, so `--from {last_start}` backfills \
         those, and another backfill with `--to {last_start}` the rest"
    )]
    TooMany { last_start: String },
}

/// The instants of a backfill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Covered {
    /// Oldest first.
    pub instants: Vec<DateTime<Utc>>,
    /// `to` was after `now`: the range stops at `now`.
    pub cut_at_now: bool,
}

/// Reads a bound of the range: a date is midnight in `tz`, a time without
/// an offset is read in `tz`, an RFC 3339 time is absolute.
pub fn parse_bound(flag: &'static str, text: &str, tz: Tz) -> Result<DateTime<Utc>, RangeError> {
    let unreadable = || RangeError::Unreadable {
        flag,
        text: text.to_owned(),
    };
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        day.and_hms_opt(0, 0, 0).ok_or_else(unreadable)?
    } else {
        [
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%d %H:%M",
        ]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .ok_or_else(unreadable)?
    };
    at_local(tz, local).ok_or_else(unreadable)
}

/// The first instant at which the wall clock in `tz` shows `local` or
/// later: the earlier of a repeated time (a fall-back overlap), the end of
/// the gap for a skipped one (spring forward; some zones skip midnight).
fn at_local(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    // No gap in the tz database is longer than a day; transitions fall on
    // whole minutes.
    (0..=24 * 60).find_map(|minutes| {
        let shown = local + chrono::Duration::minutes(minutes);
        match tz.from_local_datetime(&shown) {
            LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
            LocalResult::None => None,
        }
    })
}

/// The instants of `rule` in `[from, to)` that are not after `now`.
pub fn instants(
    rule: &Rule,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Covered, RangeError> {
    let tz = rule.timezone;
    let show = |t: DateTime<Utc>| {
        t.with_timezone(&tz)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
    };
    if from >= to {
        return Err(RangeError::Empty {
            from: show(from),
            to: show(to),
        });
    }
    if from > now {
        return Err(RangeError::Future {
            from: show(from),
            now: show(now),
        });
    }
    let cut_at_now = to > now;
    // The scheduler's own search, over (from - 1ns, min(to - 1ns, now)]:
    // exactly [from, to) up to now, since instants are whole seconds.
    let tick = chrono::Duration::nanoseconds(1);
    let until = if cut_at_now { now } else { to - tick };
    // One more than allowed, to know whether the range holds too many.
    let instants = rule.instants_between(from - tick, until, MAX_INSTANTS + 1);
    if instants.len() > MAX_INSTANTS {
        return Err(RangeError::TooMany {
            last_start: show(instants[1]),
        });
    }
    Ok(Covered {
        instants,
        cut_at_now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{CatchUp, Concurrency, DurationText, Schedule};

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("RFC 3339")
            .with_timezone(&Utc)
    }

    fn berlin(cron: Option<&str>, every: Option<&str>) -> Rule {
        Rule::from_spec(&Schedule {
            cron: cron.map(str::to_owned),
            every: every.map(DurationText::new),
            timezone: "Europe/Berlin".to_owned(),
            kickoff_time_input: None,
            concurrency: Concurrency::Forbid,
            catch_up: CatchUp::Latest,
            max_catch_up: 10,
            starting_deadline: None,
        })
        .expect("a valid schedule")
    }

    fn utc(instants: &[DateTime<Utc>]) -> Vec<String> {
        instants
            .iter()
            .map(|t| t.format("%m-%dT%H:%MZ").to_string())
            .collect()
    }

    const LATER: &str = "2026-06-01T00:00:00Z";

    #[test]
    fn dates_are_midnight_in_the_schedule_zone_and_offsets_are_absolute() {
        let tz = berlin(Some("30 2 * * *"), None).timezone;
        assert_eq!(
            parse_bound("from", "2026-03-25", tz),
            Ok(at("2026-03-24T23:00:00Z"))
        );
        assert_eq!(
            parse_bound("from", "2026-04-03", tz),
            Ok(at("2026-04-02T22:00:00Z")),
            "summer time"
        );
        assert_eq!(
            parse_bound("to", "2026-03-25T06:00", tz),
            Ok(at("2026-03-25T05:00:00Z"))
        );
        assert_eq!(
            parse_bound("to", "2026-03-25T06:00:00-04:00", tz),
            Ok(at("2026-03-25T10:00:00Z"))
        );
        // 02:30 does not exist on 29 March: the clock shows 03:00 next.
        assert_eq!(
            parse_bound("to", "2026-03-29T02:30", tz),
            Ok(at("2026-03-29T01:00:00Z"))
        );
        // 02:30 happens twice on 25 October: the first one.
        assert_eq!(
            parse_bound("to", "2026-10-25T02:30", tz),
            Ok(at("2026-10-25T00:30:00Z"))
        );
        assert_eq!(
            parse_bound("to", "next week", tz),
            Err(RangeError::Unreadable {
                flag: "to",
                text: "next week".into()
            })
        );
    }

    #[test]
    fn a_daily_job_in_the_skipped_hour_runs_once_on_the_spring_forward_day() {
        let rule = berlin(Some("30 2 * * *"), None);
        let tz = rule.timezone;
        let from = parse_bound("from", "2026-03-25", tz).expect("date");
        let to = parse_bound("to", "2026-04-03", tz).expect("date");
        let covered = instants(&rule, from, to, at(LATER)).expect("a range");
        assert_eq!(covered.instants.len(), 9, "one a day");
        // 02:30 does not exist on the 29th: 03:00 CEST, right after the gap.
        let gap_day: Vec<_> = covered
            .instants
            .iter()
            .filter(|t| t.format("%d").to_string() == "29")
            .collect();
        assert_eq!(gap_day, [&at("2026-03-29T01:00:00Z")]);
        assert!(!covered.cut_at_now);
        // Exactly what the scheduler finds in the same window.
        assert_eq!(
            covered.instants,
            rule.instants_between(from, to, 100),
            "no instant falls on a bound here"
        );
    }

    #[test]
    fn the_range_is_half_open() {
        let rule = berlin(Some("30 2 * * *"), None);
        let from = at("2026-03-25T01:30:00Z");
        let to = at("2026-03-27T01:30:00Z");
        let covered = instants(&rule, from, to, at(LATER)).expect("a range");
        assert_eq!(utc(&covered.instants), ["03-25T01:30Z", "03-26T01:30Z"]);
    }

    #[test]
    fn instants_after_now_are_left_to_the_scheduler() {
        let rule = berlin(Some("30 2 * * *"), None);
        let covered = instants(
            &rule,
            at("2026-03-24T23:00:00Z"),
            at("2026-04-02T22:00:00Z"),
            at("2026-03-27T01:30:00Z"),
        )
        .expect("a range");
        assert_eq!(
            utc(&covered.instants),
            ["03-25T01:30Z", "03-26T01:30Z", "03-27T01:30Z"]
        );
        assert!(covered.cut_at_now);
        let future = instants(
            &rule,
            at("2026-05-01T00:00:00Z"),
            at("2026-05-02T00:00:00Z"),
            at("2026-04-01T00:00:00Z"),
        );
        assert!(matches!(future, Err(RangeError::Future { .. })));
    }

    #[test]
    fn an_empty_or_reversed_range_is_refused() {
        let rule = berlin(Some("30 2 * * *"), None);
        let t = at("2026-03-25T00:00:00Z");
        let err = instants(&rule, t, t, at(LATER)).expect_err("empty");
        assert_eq!(
            err.to_string(),
            "--from 2026-03-25T01:00:00+01:00 is not before --to 2026-03-25T01:00:00+01:00: \
             the range [from, to) is empty"
        );
    }

    #[test]
    fn too_many_instants_are_refused_with_where_to_cut() {
        let rule = berlin(None, Some("1m"));
        let from = at("2026-01-01T00:00:00Z");
        let to = at("2026-01-08T00:00:00Z");
        let err = instants(&rule, from, to, at(LATER)).expect_err("a week of minutes");
        let RangeError::TooMany { last_start } = &err else {
            panic!("{err}");
        };
        let last_start = parse_bound("from", last_start, rule.timezone).expect("a bound");
        let tail = instants(&rule, last_start, to, at(LATER)).expect("the last part");
        assert_eq!(tail.instants.len(), MAX_INSTANTS, "the help's cut is exact");
        assert!(err.to_string().contains("narrow it"));
    }
}

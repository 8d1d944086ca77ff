//! Scheduler tests with an injected clock: daylight-saving transitions of
//! 2026 in Europe/Berlin (29 March, 25 October), fixed rates, catch-up after
//! an outage under each policy, concurrency, deadlines, and I4's
//! deterministic ids.

use chrono::{DateTime, Utc};

use super::tick::{Decision, SkipReason, tick};
use super::*;
use crate::spec::{DurationText, ExecutionId, Kind};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

fn rule(
    cron: Option<&str>,
    every: Option<&str>,
    catch_up: CatchUp,
    concurrency: Concurrency,
) -> Rule {
    let schedule = Schedule {
        cron: cron.map(str::to_owned),
        every: every.map(DurationText::new),
        timezone: "Europe/Berlin".to_owned(),
        kickoff_time_input: None,
        concurrency,
        catch_up,
        max_catch_up: 10,
        starting_deadline: None,
    };
    Rule::from_spec(&schedule).expect("valid schedule")
}

fn hourly() -> Rule {
    rule(Some("0 * * * *"), None, CatchUp::Latest, Concurrency::Allow)
}

fn utc(instants: &[DateTime<Utc>]) -> Vec<String> {
    instants
        .iter()
        .map(|t| t.format("%m-%dT%H:%MZ").to_string())
        .collect()
}

/// A stored schedule whose durations do not parse (registered before
/// validation refused them) is not read, and the error names the field
/// and the text: no instant is computed from a guess.
#[test]
fn a_duration_that_does_not_parse_is_named_not_guessed() {
    let schedule = |every: &str, deadline: Option<&str>| Schedule {
        cron: None,
        every: Some(DurationText::new(every)),
        timezone: "UTC".to_owned(),
        kickoff_time_input: None,
        concurrency: Concurrency::Allow,
        catch_up: CatchUp::Latest,
        max_catch_up: 10,
        starting_deadline: deadline.map(DurationText::new),
    };
    let refused = Rule::from_spec(&schedule("hourly", None)).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "schedule.every: `hourly` is not a duration (expected e.g. `30m`, `1h30m`, `10s`) \
         (a version registered before validation refused it: fix the definition in Git)"
    );
    let refused = Rule::from_spec(&schedule("1m", Some("90"))).unwrap_err();
    assert!(
        refused
            .to_string()
            .starts_with("schedule.startingDeadline: `90` has no unit"),
        "{refused}"
    );
    let read = Rule::from_spec(&schedule("1m", Some("90m"))).expect("valid");
    assert!(matches!(read.when, When::Every(60)));
    assert_eq!(read.starting_deadline, Some(chrono::Duration::minutes(90)));
}

#[test]
fn hourly_cron_fires_every_real_hour_across_spring_forward() {
    // 29 March 2026: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
    let got =
        hourly().instants_between(at("2026-03-28T22:30:00Z"), at("2026-03-29T04:00:00Z"), 100);
    assert_eq!(
        utc(&got),
        [
            "03-28T23:00Z",
            "03-29T00:00Z",
            "03-29T01:00Z",
            "03-29T02:00Z",
            "03-29T03:00Z",
            "03-29T04:00Z"
        ]
    );
}

#[test]
fn hourly_cron_fires_every_real_hour_across_fall_back() {
    // 25 October 2026: 03:00 CEST falls back to 02:00 CET (01:00 UTC);
    // local 02:00 happens twice and both are real hours.
    let got =
        hourly().instants_between(at("2026-10-24T21:30:00Z"), at("2026-10-25T04:00:00Z"), 100);
    assert_eq!(
        utc(&got),
        [
            "10-24T22:00Z",
            "10-24T23:00Z",
            "10-25T00:00Z",
            "10-25T01:00Z",
            "10-25T02:00Z",
            "10-25T03:00Z",
            "10-25T04:00Z"
        ]
    );
}

#[test]
fn a_daily_job_in_the_skipped_hour_fires_once_right_after_the_gap() {
    let daily = rule(
        Some("30 2 * * *"),
        None,
        CatchUp::Latest,
        Concurrency::Allow,
    );
    let got = daily.instants_between(at("2026-03-27T12:00:00Z"), at("2026-03-30T12:00:00Z"), 100);
    // 02:30 CET = 01:30Z; on the 29th 02:30 does not exist: 03:00 CEST = 01:00Z; then 02:30 CEST = 00:30Z.
    assert_eq!(utc(&got), ["03-28T01:30Z", "03-29T01:00Z", "03-30T00:30Z"]);
}

#[test]
fn a_daily_job_in_the_repeated_hour_fires_once() {
    let daily = rule(
        Some("30 2 * * *"),
        None,
        CatchUp::Latest,
        Concurrency::Allow,
    );
    let got = daily.instants_between(at("2026-10-24T12:00:00Z"), at("2026-10-26T12:00:00Z"), 100);
    // The first 02:30 (CEST, 00:30Z) only; then 02:30 CET = 01:30Z.
    assert_eq!(utc(&got), ["10-25T00:30Z", "10-26T01:30Z"]);
}

#[test]
fn every_is_a_fixed_rate_in_real_time() {
    let every = rule(None, Some("15m"), CatchUp::All, Concurrency::Allow);
    let got = every.instants_between(at("2026-10-25T00:50:00Z"), at("2026-10-25T01:50:00Z"), 100);
    assert_eq!(
        utc(&got),
        [
            "10-25T01:00Z",
            "10-25T01:15Z",
            "10-25T01:30Z",
            "10-25T01:45Z"
        ]
    );
    assert_eq!(
        every.next_after(at("2026-10-25T01:45:00Z")),
        Some(at("2026-10-25T02:00:00Z"))
    );
}

fn lp() -> EntityRef {
    EntityRef::new("churn", Kind::LaunchPlan, "churn-nightly")
}

fn version() -> Digest {
    Digest::of_json(&serde_json::json!("v1"))
}

fn started(decisions: &[Decision]) -> Vec<String> {
    decisions
        .iter()
        .filter_map(|d| match d {
            Decision::Start(t) => Some(t.instant.format("%H:%M").to_string()),
            Decision::Skip(..) => None,
        })
        .collect()
}

fn skipped(decisions: &[Decision], reason: SkipReason) -> usize {
    decisions
        .iter()
        .filter(|d| matches!(d, Decision::Skip(_, r) if *r == reason))
        .count()
}

/// A six-hour outage: the scheduler last decided at 00:00Z and wakes at 06:30Z.
fn outage(catch_up: CatchUp, max: u32) -> tick::Tick {
    let mut r = rule(Some("0 * * * *"), None, catch_up, Concurrency::Allow);
    r.max_catch_up = max;
    tick(
        &lp(),
        &version(),
        &r,
        Some(at("2026-06-01T00:00:00Z")),
        at("2026-05-01T00:00:00Z"),
        at("2026-06-01T06:30:00Z"),
        &[],
    )
}

#[test]
fn catch_up_none_runs_nothing_missed() {
    let t = outage(CatchUp::None, 10);
    assert!(started(&t.decisions).is_empty());
    assert_eq!(skipped(&t.decisions, SkipReason::CatchUpPolicy), 6);
    assert_eq!(t.watermark, Some(at("2026-06-01T06:30:00Z")));
}

#[test]
fn catch_up_latest_runs_the_most_recent_missed_instant() {
    let t = outage(CatchUp::Latest, 10);
    assert_eq!(started(&t.decisions), ["06:00"]);
    assert_eq!(skipped(&t.decisions, SkipReason::CatchUpPolicy), 5);
}

#[test]
fn catch_up_all_runs_every_missed_instant_up_to_the_bound() {
    assert_eq!(
        started(&outage(CatchUp::All, 10).decisions),
        ["01:00", "02:00", "03:00", "04:00", "05:00", "06:00"]
    );
    let bounded = outage(CatchUp::All, 4);
    assert_eq!(
        started(&bounded.decisions),
        ["03:00", "04:00", "05:00", "06:00"]
    );
    assert_eq!(skipped(&bounded.decisions, SkipReason::CatchUpLimit), 1);
}

#[test]
fn an_on_time_instant_runs_under_every_policy() {
    for policy in [CatchUp::None, CatchUp::Latest, CatchUp::All] {
        let r = rule(Some("0 * * * *"), None, policy, Concurrency::Allow);
        let t = tick(
            &lp(),
            &version(),
            &r,
            Some(at("2026-06-01T05:59:00Z")),
            at("2026-05-01T00:00:00Z"),
            at("2026-06-01T06:00:05Z"),
            &[],
        );
        assert_eq!(started(&t.decisions), ["06:00"], "{policy:?}");
    }
}

#[test]
fn starting_deadline_skips_instants_that_are_too_late() {
    let mut r = rule(Some("0 * * * *"), None, CatchUp::All, Concurrency::Allow);
    r.starting_deadline = Some(chrono::Duration::minutes(90));
    let t = tick(
        &lp(),
        &version(),
        &r,
        Some(at("2026-06-01T00:00:00Z")),
        at("2026-05-01T00:00:00Z"),
        at("2026-06-01T06:30:00Z"),
        &[],
    );
    assert_eq!(started(&t.decisions), ["05:00", "06:00"]);
    assert_eq!(skipped(&t.decisions, SkipReason::DeadlineMissed), 4);
}

#[test]
fn forbid_skips_while_one_runs_and_replace_cancels_it() {
    let running = [ExecutionId::from("churn-nightly-aaaaaaaaaaaa")];
    let now = at("2026-06-01T06:00:10Z");
    let watermark = Some(at("2026-06-01T05:59:00Z"));
    let forbid = rule(
        Some("0 * * * *"),
        None,
        CatchUp::Latest,
        Concurrency::Forbid,
    );
    let t = tick(&lp(), &version(), &forbid, watermark, now, now, &running);
    assert!(started(&t.decisions).is_empty());
    assert_eq!(skipped(&t.decisions, SkipReason::ConcurrencyForbid), 1);
    assert!(t.cancel.is_empty());

    let replace = rule(Some("0 * * * *"), None, CatchUp::All, Concurrency::Replace);
    let t = tick(
        &lp(),
        &version(),
        &replace,
        Some(at("2026-06-01T03:30:00Z")),
        now,
        now,
        &running,
    );
    assert_eq!(started(&t.decisions), ["06:00"], "only the newest runs");
    assert_eq!(skipped(&t.decisions, SkipReason::ReplacedByNewer), 2);
    assert_eq!(t.cancel, running);

    let allow = rule(Some("0 * * * *"), None, CatchUp::Latest, Concurrency::Allow);
    let t = tick(&lp(), &version(), &allow, watermark, now, now, &running);
    assert_eq!(started(&t.decisions), ["06:00"]);
}

#[test]
fn a_new_version_does_not_run_its_past() {
    let t = tick(
        &lp(),
        &version(),
        &hourly(),
        None,
        at("2026-06-01T05:30:00Z"),
        at("2026-06-01T05:40:00Z"),
        &[],
    );
    assert!(t.decisions.is_empty());
    assert_eq!(t.watermark, Some(at("2026-06-01T05:40:00Z")));
}

#[test]
fn ticking_twice_over_a_window_gives_the_same_executions() {
    let r = hourly();
    let (w, now) = (Some(at("2026-06-01T05:30:00Z")), at("2026-06-01T06:00:20Z"));
    let a = tick(&lp(), &version(), &r, w, now, now, &[]);
    let b = tick(&lp(), &version(), &r, w, now, now, &[]);
    assert_eq!(
        a, b,
        "a second scheduler (or a restart) computes the same ids (I4)"
    );
    let again = tick(
        &lp(),
        &version(),
        &r,
        a.watermark,
        now,
        at("2026-06-01T06:00:40Z"),
        &[],
    );
    assert!(
        again.decisions.is_empty(),
        "the watermark stops a second start"
    );
}

#[test]
fn execution_ids_are_deterministic_dns_labels() {
    let t = at("2026-03-29T01:00:00Z");
    let id = execution_id(&lp(), &version(), t);
    assert_eq!(id, execution_id(&lp(), &version(), t));
    assert_ne!(
        id,
        execution_id(&lp(), &version(), at("2026-03-29T02:00:00Z"))
    );
    assert_ne!(
        id,
        execution_id(&lp(), &Digest::of_json(&serde_json::json!("v2")), t)
    );
    let long = EntityRef::new("p", Kind::LaunchPlan, "a".repeat(63));
    let long_id = execution_id(&long, &version(), t);
    assert!(long_id.as_str().len() <= 63);
    assert!(id.as_str().starts_with("churn-nightly-"));
    assert!(
        id.as_str()
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    );
}

#[test]
fn advance_skips_work_until_the_next_instant_and_decides_like_tick() {
    use super::tick::{PlanState, advance};
    let r = hourly();
    let mut state = PlanState::default();
    let activated = at("2026-06-01T04:30:00Z");
    let mut starts = Vec::new();
    let mut now = at("2026-06-01T04:30:00Z");
    while now < at("2026-06-01T07:30:00Z") {
        now += chrono::Duration::seconds(20);
        if let Some(t) = advance(&mut state, &lp(), &version(), &r, activated, now, &[]) {
            starts.extend(started(&t.decisions));
        }
    }
    assert_eq!(
        starts,
        ["05:00", "06:00", "07:00"],
        "each instant exactly once"
    );
    assert_eq!(state.next_due, Some(at("2026-06-01T08:00:00Z")));
}

#[test]
fn instants_at_the_end_of_the_calendar_are_none_not_a_panic() {
    // Registered before durations were bounded: a rate of ~274,000 years.
    let huge = rule(None, Some("100000000d"), CatchUp::All, Concurrency::Allow);
    let now = at("2026-03-29T00:30:00Z");
    assert_eq!(huge.next_after(now), None);
    assert!(
        huge.instants_between(now, DateTime::<Utc>::MAX_UTC, 3)
            .is_empty()
    );
    let every_second = rule(None, Some("1s"), CatchUp::All, Concurrency::Allow);
    assert_eq!(every_second.next_after(DateTime::<Utc>::MAX_UTC), None);
}

/// A plan whose instants from 06:00 on were not written (a store failure)
/// decides them again at the next tick, by its own rules: under `all`
/// each still runs, under `none` those now missed are skipped; nothing
/// before 06:00 is decided twice.
#[test]
fn instants_not_written_are_decided_again_from_the_first() {
    use super::tick::{PlanState, advance};
    // The tick after the failure, at 07:00:30, under `catch_up`.
    let retry = |catch_up| {
        let rule = rule(Some("0 * * * *"), None, catch_up, Concurrency::Allow);
        let mut state = PlanState::undecided_from(at("2026-06-01T06:00:00Z"));
        let (activated, now) = (at("2026-06-01T04:30:00Z"), at("2026-06-01T07:00:30Z"));
        advance(&mut state, &lp(), &version(), &rule, activated, now, &[]).expect("due")
    };
    let retried = retry(CatchUp::All);
    assert_eq!(started(&retried.decisions), ["06:00", "07:00"]);
    assert_eq!(retried.decisions.len(), 2, "05:00 is not decided again");
    let late = retry(CatchUp::None);
    assert_eq!(started(&late.decisions), ["07:00"]);
    assert_eq!(skipped(&late.decisions, SkipReason::CatchUpPolicy), 1);
}

/// The 06:00 instant was decided again after a write whose commit
/// succeeded unacknowledged: its execution is running under its own id.
/// It is that instant already started, found existing: `Replace` does not
/// cancel it and `Forbid` does not skip it, while another running
/// execution is still cancelled or still forbids.
#[test]
fn the_instant_already_started_is_neither_cancelled_nor_skipped() {
    use super::tick::{PlanState, advance};
    let six = at("2026-06-01T06:00:00Z");
    let mine = execution_id(&lp(), &version(), six);
    let other = ExecutionId::from("churn-nightly-aaaaaaaaaaaa");
    let now = at("2026-06-01T06:00:30Z");
    let retry = |concurrency, running: &[ExecutionId]| {
        let rule = rule(Some("0 * * * *"), None, CatchUp::Latest, concurrency);
        let mut state = PlanState::undecided_from(six);
        advance(&mut state, &lp(), &version(), &rule, six, now, running).expect("due")
    };

    let t = retry(Concurrency::Replace, std::slice::from_ref(&mine));
    assert_eq!(started(&t.decisions), ["06:00"]);
    assert!(t.cancel.is_empty(), "{:?}", t.cancel);
    let t = retry(Concurrency::Replace, &[mine.clone(), other.clone()]);
    assert_eq!(started(&t.decisions), ["06:00"]);
    assert_eq!(t.cancel, std::slice::from_ref(&other));

    let t = retry(Concurrency::Forbid, std::slice::from_ref(&mine));
    assert_eq!(started(&t.decisions), ["06:00"]);
    assert_eq!(skipped(&t.decisions, SkipReason::ConcurrencyForbid), 0);
    assert!(t.cancel.is_empty());
    let t = retry(Concurrency::Forbid, &[mine, other]);
    assert_eq!(started(&t.decisions), ["06:00"], "it runs already");
}

/// Under `Forbid` with several instants decided again, the one already
/// started is the one that runs; the others are skipped for it.
#[test]
fn forbid_keeps_the_instant_already_started_and_skips_the_rest() {
    let five = at("2026-06-01T05:00:00Z");
    let rule = rule(Some("0 * * * *"), None, CatchUp::All, Concurrency::Forbid);
    let running = [execution_id(&lp(), &version(), at("2026-06-01T06:00:00Z"))];
    let watermark = Some(five - chrono::Duration::nanoseconds(1));
    let now = at("2026-06-01T06:00:30Z");
    let t = tick(&lp(), &version(), &rule, watermark, five, now, &running);
    assert_eq!(started(&t.decisions), ["06:00"]);
    assert_eq!(skipped(&t.decisions, SkipReason::ConcurrencyForbid), 1);
}

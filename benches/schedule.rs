//! Benchmark: one scheduler tick over 5,000 active schedules.
//!
//! `cargo bench --bench schedule` builds 5,000 launch plan schedules (crons
//! at every minute of the hour, daily crons in several time zones, and
//! fixed rates) and times one tick for all of them, as the daemon runs it
//! (`advance`: a plan whose next instant is later costs no cron search).
//! The first tick computes every plan's next instant and is counted too. Target: under 10 ms on 2 cores.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use weir::schedule::Rule;
use weir::schedule::tick::{Decision, PlanState, advance};
use weir::spec::{CatchUp, Concurrency, Digest, DurationText, EntityRef, Kind, Schedule};

const SCHEDULES: usize = 5_000;
const RUNS: usize = 21;

fn schedule(i: usize) -> Schedule {
    let zones = [
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "Asia/Tokyo",
        "Australia/Sydney",
    ];
    let (cron, every) = match i % 4 {
        0 => (Some(format!("{} * * * *", i % 60)), None),
        1 => (Some(format!("{} {} * * *", i % 60, i % 24)), None),
        2 => (Some("*/5 * * * *".to_owned()), None),
        _ => (None, Some(DurationText::new(["1m", "15m", "1h"][i % 3]))),
    };
    Schedule {
        cron,
        every,
        timezone: zones[i % zones.len()].to_owned(),
        kickoff_time_input: None,
        concurrency: [
            Concurrency::Allow,
            Concurrency::Forbid,
            Concurrency::Replace,
        ][i % 3],
        catch_up: [CatchUp::None, CatchUp::Latest, CatchUp::All][i % 3],
        max_catch_up: 10,
        starting_deadline: None,
    }
}

fn main() {
    let plans: Vec<(EntityRef, Digest, Rule)> = (0..SCHEDULES)
        .map(|i| {
            let lp = EntityRef::new(
                format!("team-{}", i % 20),
                Kind::LaunchPlan,
                format!("plan-{i}"),
            );
            let version = Digest::of_json(&serde_json::json!(i));
            (lp, version, Rule::from_spec(&schedule(i)).expect("valid"))
        })
        .collect();
    let mut now: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-03-29T00:30:00Z")
        .expect("time")
        .with_timezone(&Utc);
    let activated = now - chrono::Duration::days(1);
    let mut states = vec![
        PlanState {
            watermark: Some(now - chrono::Duration::seconds(1)),
            next_due: None
        };
        SCHEDULES
    ];
    let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
    let mut starts = 0;
    for _ in 0..RUNS {
        // One tick per simulated minute, across the spring-forward night.
        now += chrono::Duration::minutes(1);
        let start = Instant::now();
        for ((lp, version, rule), state) in plans.iter().zip(&mut states) {
            if let Some(t) = advance(state, lp, version, rule, activated, now, &[]) {
                starts += t
                    .decisions
                    .iter()
                    .filter(|d| matches!(d, Decision::Start(_)))
                    .count();
            }
        }
        times.push(start.elapsed());
    }
    times.sort();
    println!(
        "schedule: one tick over {SCHEDULES} schedules: median {:.2} ms (min {:.2} ms, max {:.2} ms) over {RUNS} ticks; {starts} executions started",
        times[RUNS / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[RUNS - 1].as_secs_f64() * 1e3,
    );
}

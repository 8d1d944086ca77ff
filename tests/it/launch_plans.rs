//! Schedules at a glance, and held without a commit: `weir launchplans`
//! shows each active launch plan's schedule in words, its next instants in
//! its own time zone (the spring-forward day of Europe/Berlin reads as
//! one), its last run and whether it is paused; `weir pause` stops a
//! schedule from starting anything, `weir resume` goes on from the resume
//! (or, with `--catch-up`, runs what the pause missed), both recorded in
//! the audit log, the same against the store and through a daemon.

use chrono::{DateTime, Utc};
use serde_json::Value;
use weir::engine::scheduler::Scheduler;
use weir::store::Store;
use weir::views::{self, PauseBody, PauseError};

use crate::common::{
    Backend, Daemon, GitRepo, SourceRepo, TestDb, assert_same_both_ways, on_every_backend, stderr,
    stdout, weir, weir_json, weir_with,
};

const HOURLY: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: hello }
spec:
  script: { interpreter: bash, source: 'echo hello' }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: greet }
spec:
  nodes: [ { id: hello, task: hello } ]
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: hourly }
spec:
  workflow: greet
  schedule: { every: 1h, catchUp: all }
"#;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("an RFC 3339 instant")
        .with_timezone(&Utc)
}

/// The instants (as `HH:MM`) of the executions a scheduler tick at `now`
/// created.
async fn created(scheduler: &mut Scheduler, store: &dyn Store, now: &str) -> Vec<String> {
    let report = scheduler.tick(store, at(now)).await.expect("a tick");
    let mut instants = Vec::new();
    for id in &report.created {
        let execution = store.execution(id).await.expect("read").expect("created");
        let instant = execution.scheduled_at.expect("scheduled");
        instants.push(instant.format("%H:%M").to_string());
    }
    instants.sort();
    instants
}

fn asked(by: &str, comment: Option<&str>, catch_up: bool) -> PauseBody {
    PauseBody {
        by: Some(by.into()),
        comment: comment.map(Into::into),
        catch_up,
    }
}

async fn pause_skips_instants_and_resume_goes_on(b: Backend) {
    let store = b.store.as_ref();
    let repo = SourceRepo::new(&[("hourly.yaml", HOURLY)]);
    repo.reconcile(&b, at("2026-03-28T00:10:00Z")).await;
    let set = |paused, body: PauseBody, now: &'static str| async move {
        views::set_paused(store, "default", "hourly", paused, &body, "", at(now)).await
    };
    let mut scheduler = Scheduler::new();
    assert_eq!(
        created(&mut scheduler, store, "2026-03-28T01:00:05Z").await,
        ["01:00"]
    );

    // Paused: the instants of 02:00 and 03:00 start nothing.
    let paused = set(
        true,
        asked("ada", Some("upstream outage"), false),
        "2026-03-28T01:30:00Z",
    )
    .await
    .expect("paused");
    assert!(paused.changed && paused.paused);
    for now in ["2026-03-28T02:00:05Z", "2026-03-28T03:00:05Z"] {
        assert!(
            created(&mut scheduler, store, now).await.is_empty(),
            "{now}"
        );
    }
    // Pausing again changes nothing and is not logged again.
    let again = set(true, asked("bob", None, false), "2026-03-28T03:10:00Z")
        .await
        .expect("idempotent");
    assert!(!again.changed);

    // Resumed: the schedule goes on from the resume; the missed instants
    // are skipped, even by a scheduler that never saw the pause (a
    // restart), though the plan catches up everything after an outage.
    set(false, asked("ada", None, false), "2026-03-28T03:30:00Z")
        .await
        .expect("resumed");
    assert_eq!(
        created(&mut scheduler, store, "2026-03-28T04:00:05Z").await,
        ["04:00"]
    );
    assert!(
        created(&mut Scheduler::new(), store, "2026-03-28T04:00:10Z")
            .await
            .is_empty(),
        "a restarted scheduler runs none of the paused instants"
    );

    // A resume with catch-up runs what the pause missed.
    set(true, asked("ada", None, false), "2026-03-28T04:30:00Z")
        .await
        .expect("paused");
    assert!(
        created(&mut scheduler, store, "2026-03-28T05:00:05Z")
            .await
            .is_empty()
    );
    set(
        false,
        asked("ada", Some("caught up"), true),
        "2026-03-28T06:30:00Z",
    )
    .await
    .expect("resumed");
    assert_eq!(
        created(&mut scheduler, store, "2026-03-28T06:30:01Z").await,
        ["05:00", "06:00"]
    );

    // Each change once in the audit log, newest first, from no commit.
    let audit = store.audit(10).await.expect("audit");
    let changes: Vec<(&str, &str)> = audit
        .iter()
        .filter(|a| a.source.is_none())
        .map(|a| (a.action.as_str(), a.actor.name.as_str()))
        .collect();
    assert_eq!(
        changes,
        [
            ("resumed", "ada"),
            ("paused", "ada"),
            ("resumed", "ada"),
            ("paused", "ada")
        ]
    );
    assert!(
        audit
            .iter()
            .all(|a| a.source.is_none() == a.commit.is_none())
    );
    assert_eq!(audit[0].details["catchUp"], true);
    assert_eq!(audit[3].details["comment"], "upstream outage");
    assert_eq!(audit[3].details["name"], "hourly");

    // What cannot be paused is refused, and writes nothing.
    let unknown = views::set_paused(
        store,
        "default",
        "nope",
        true,
        &asked("ada", None, false),
        "",
        at("2026-03-28T07:00:00Z"),
    )
    .await;
    assert!(
        matches!(unknown, Err(PauseError::Unknown { .. })),
        "{unknown:?}"
    );
    let catch_up = set(true, asked("ada", None, true), "2026-03-28T07:00:00Z").await;
    assert!(
        matches!(catch_up, Err(PauseError::CatchUpOnPause)),
        "{catch_up:?}"
    );
    let control = set(
        false,
        asked("ada\u{1b}[2J", None, false),
        "2026-03-28T07:00:00Z",
    )
    .await;
    assert!(
        matches!(control, Err(PauseError::Invalid(_))),
        "{control:?}"
    );
    assert_eq!(store.audit(10).await.expect("audit").len(), audit.len());
}

on_every_backend!(pause_skips_instants_and_resume_goes_on);

const PLANS: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: hello }
spec:
  script: { interpreter: bash, source: 'echo hello' }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: greet }
spec:
  nodes: [ { id: hello, task: hello } ]
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: nightly }
spec:
  workflow: greet
  schedule: { cron: "30 2 * * *", timezone: Europe/Berlin, catchUp: none }
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: quarter-hourly }
spec:
  workflow: greet
  schedule: { every: 15m, catchUp: none }
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: by-hand }
spec: { workflow: greet }
"#;

const TOKEN: &str = "s3cret-api-token";

fn plan<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .expect("a list")
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no launch plan {name} in {list:#}"))
}

#[test]
fn launchplans_shows_schedules_and_pause_is_the_same_through_a_daemon() {
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    repo.write("defs/plans.yaml", PLANS);
    repo.commit("Three launch plans");
    let daemon = Daemon::with_token(&db, &repo, TOKEN);
    let server = daemon.server();
    let list = |extra: &[&str]| {
        let args = [&["launchplans", "-o", "json"][..], extra].concat();
        weir_json(&args, &db)
    };

    // The next instants across the spring-forward night: 02:30 does not
    // exist in Berlin on 2026-03-29, so that night's run is right after
    // the gap, at 03:00 summer time.
    let from = ["--next", "3", "--from", "2026-03-27T12:00:00Z"];
    let (code, plans) = list(&from);
    assert_eq!(code, 0, "{plans:#}");
    let nightly = plan(&plans, "nightly");
    assert_eq!(nightly["status"], "scheduled");
    assert_eq!(nightly["schedule"]["timezone"], "Europe/Berlin");
    assert_eq!(nightly["schedule"]["cron"], "30 2 * * *");
    let next: Vec<(&str, &str)> = nightly["next"]
        .as_array()
        .expect("next instants")
        .iter()
        .map(|i| (i["at"].as_str().unwrap(), i["offset"].as_str().unwrap()))
        .collect();
    assert_eq!(
        next,
        [
            ("2026-03-28T01:30:00.000Z", "+01:00"),
            ("2026-03-29T01:00:00.000Z", "+02:00"),
            ("2026-03-30T00:30:00.000Z", "+02:00"),
        ]
    );
    let quarter = plan(&plans, "quarter-hourly");
    assert_eq!(quarter["schedule"]["words"], "every 15 minutes");
    assert_eq!(quarter["next"][0]["at"], "2026-03-27T12:15:00.000Z");
    let by_hand = plan(&plans, "by-hand");
    assert_eq!(by_hand["status"], "unscheduled");
    assert_eq!(by_hand["next"], Value::Array(vec![]));
    assert!(by_hand.get("lastRun").is_none(), "{by_hand:#}");

    // The same table and JSON from the store and through the daemon.
    let table = assert_same_both_ways(
        &["launchplans", "--next", "2", "--from", from[3]],
        &db,
        &server,
    );
    let text = stdout(&table);
    assert!(text.starts_with("PROJECT"), "{text}");
    assert!(
        text.contains("2026-03-28T02:30:00+01:00, 2026-03-29T03:00:00+02:00"),
        "{text}"
    );
    assert_same_both_ways(
        &["launchplans", "-o", "json", "--from", from[3]],
        &db,
        &server,
    );

    // Paused through the daemon, as someone, with a reason.
    let out = weir(
        &[
            &[
                "pause",
                "nightly",
                "--by",
                "ada",
                "--comment",
                "upstream outage",
            ][..],
            &server,
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("paused default/nightly"),
        "{}",
        stdout(&out)
    );
    let (_, plans) = list(&[]);
    let nightly = plan(&plans, "nightly");
    assert_eq!(nightly["status"], "paused");
    assert_eq!(nightly["pause"]["by"]["name"], "ada");
    assert_eq!(nightly["pause"]["comment"], "upstream outage");
    // `weir status` says so too, the same either way.
    let status = assert_same_both_ways(&["status"], &db, &server);
    assert!(
        stdout(&status).contains("paused: default/nightly since"),
        "{}",
        stdout(&status)
    );
    // Again, against the store: already so, nothing written.
    let again = weir_with(&["pause", "nightly"], &db);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(stdout(&again).trim(), "default/nightly was already paused");

    // Resumed against the store, catching up; both in the audit log.
    let out = weir_with(&["resume", "nightly", "--catch-up", "--by", "bob"], &db);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (_, audit) = weir_json(&["audit", "-o", "json"], &db);
    let entries: Vec<(&str, &str, &Value)> = audit
        .as_array()
        .expect("entries")
        .iter()
        .take(2)
        .map(|a| {
            (
                a["action"].as_str().unwrap(),
                a["actor"]["name"].as_str().unwrap(),
                &a["commit"],
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("resumed", "bob", &Value::Null),
            ("paused", "ada", &Value::Null)
        ]
    );
    let audit_table = assert_same_both_ways(&["audit", "--limit", "2"], &db, &server);
    assert!(
        stdout(&audit_table).contains("launch plan default/nightly (catch up)"),
        "{}",
        stdout(&audit_table)
    );

    // Mistakes: the same exit code and message either way.
    let unknown = assert_same_both_ways(&["pause", "nope"], &db, &server);
    assert_eq!(unknown.status.code(), Some(3), "{}", stderr(&unknown));
    assert!(stderr(&unknown).contains("no active launch plan `default/nope`"));
    let bad_from = assert_same_both_ways(&["launchplans", "--from", "yesterday"], &db, &server);
    assert_eq!(bad_from.status.code(), Some(2));
    assert!(
        stderr(&bad_from).contains("not an RFC 3339 instant"),
        "{}",
        stderr(&bad_from)
    );
    let no_token = weir(&["pause", "nightly", "--server", &daemon.daemon.url]);
    assert_eq!(no_token.status.code(), Some(2), "{}", stderr(&no_token));
    assert!(stderr(&no_token).contains("token"), "{}", stderr(&no_token));
}

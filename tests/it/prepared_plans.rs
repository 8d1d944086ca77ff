//! The scheduler keeps each launch plan prepared (its closure resolved,
//! its workflow compiled) while every version it resolved is still the one
//! active version of its name, in the same source (`Prepared::resolves_alike`,
//! checked after each reconcile). A definition moved to another source keeps
//! its versions (same content, same digests, same launch plan version), so
//! only that check tells the preparation is stale: the next instant must run
//! as the new source's, not the old one's. (A changed task is a new launch
//! plan version, prepared anew: `engine::a_changed_task_runs_at_the_next_instant`.)

use chrono::{DurationRound, Utc};
use weir::engine::scheduler::Scheduler;

use crate::common::{Backend, SourceRepo, every_second, on_every_backend};

on_every_backend!(
    a_plan_moved_to_another_source_runs_as_that_source_s,
    an_instant_decided_under_a_version_runs_that_version_after_a_reconcile,
    a_reconcile_between_two_ticks_adds_and_removes_schedules,
);

const KEEP: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: keep }
spec:
  script: { interpreter: bash, source: "true" }
"#;

async fn a_plan_moved_to_another_source_runs_as_that_source_s(b: Backend) {
    let plan = every_second("true", "none");
    let first = SourceRepo::new(&[("plan.yaml", plan.as_str()), ("keep.yaml", KEEP)]);
    let second = SourceRepo::new(&[("keep-too.yaml", &KEEP.replace("keep", "keep-too"))]);
    // Time is injected: whole seconds after the activation.
    let activated = Utc::now()
        .duration_trunc(chrono::Duration::seconds(1))
        .expect("truncates");
    let at = |seconds| activated + chrono::Duration::seconds(seconds);
    let from = first.reconcile(&b, activated).await;
    let to = second.reconcile(&b, activated).await;

    let mut scheduler = Scheduler::new();
    let before = scheduler.tick(b.store.as_ref(), at(2)).await.expect("tick");
    assert_eq!(before.created.len(), 2, "{before:?}");
    for id in &before.created {
        let run = b.store.execution(id).await.expect("read").expect("exists");
        assert_eq!(run.source, from);
    }

    // Moved: out of the first source, then into the second (a definition
    // is active in one source at a time).
    first.repo.remove("plan.yaml");
    first.repo.commit("Move the schedule out");
    first.reconcile(&b, at(3)).await;
    second.repo.write("plan.yaml", &plan);
    second.repo.commit("Move the schedule in");
    second.reconcile(&b, at(3)).await;

    let after = scheduler.tick(b.store.as_ref(), at(5)).await.expect("tick");
    assert!(!after.created.is_empty(), "{after:?}");
    for id in &after.created {
        let run = b.store.execution(id).await.expect("read").expect("exists");
        assert_eq!(
            run.launch_plan_version,
            b.store
                .execution(&before.created[0])
                .await
                .expect("read")
                .expect("exists")
                .launch_plan_version,
            "the same launch plan version"
        );
        assert_eq!(run.source, to, "{id} runs as the second source's");
    }
}

/// A scheduler reads the active launch plans again after each reconcile
/// (and only then): one a reconcile adds between two ticks is scheduled at
/// the next tick, one it removes stops there.
async fn a_reconcile_between_two_ticks_adds_and_removes_schedules(b: Backend) {
    let store = b.store.as_ref();
    let repo = SourceRepo::new(&[("keep.yaml", KEEP)]);
    let activated = Utc::now()
        .duration_trunc(chrono::Duration::seconds(1))
        .expect("truncates");
    let at = |seconds| activated + chrono::Duration::seconds(seconds);
    repo.reconcile(&b, activated).await;
    let mut scheduler = Scheduler::new();
    let before = scheduler.tick(store, at(1)).await.expect("tick");
    assert!(before.created.is_empty(), "{before:?}");
    assert_eq!(scheduler.schedules(), 0);

    repo.repo.write("plan.yaml", &every_second("true", "none"));
    repo.repo.commit("Add a schedule");
    repo.reconcile(&b, at(2)).await;
    let added = scheduler.tick(store, at(4)).await.expect("tick");
    assert!(!added.created.is_empty(), "{added:?}");
    assert_eq!(scheduler.schedules(), 1);

    repo.repo.remove("plan.yaml");
    repo.repo.commit("Remove the schedule");
    repo.reconcile(&b, at(5)).await;
    let removed = scheduler.tick(store, at(8)).await.expect("tick");
    assert!(removed.created.is_empty(), "{removed:?}");
    assert_eq!(scheduler.schedules(), 0);
}

/// The scheduler prepares the launch plan version its tick read active, by
/// its key: should a reconcile land between that read and the preparation,
/// an instant decided under version 1 still runs version 1 (not version 2's
/// inputs or schedule), in the source that has the launch plan.
async fn an_instant_decided_under_a_version_runs_that_version_after_a_reconcile(b: Backend) {
    use weir::spec::Kind;
    use weir::store::VersionFilter;

    let plan = every_second("true", "none");
    let repo = SourceRepo::new(&[("plan.yaml", plan.as_str())]);
    let activated = Utc::now()
        .duration_trunc(chrono::Duration::seconds(1))
        .expect("truncates");
    let source = repo.reconcile(&b, activated).await;
    let versions = |store: std::sync::Arc<dyn weir::store::Store>| async move {
        let filter = VersionFilter {
            kind: Some(Kind::LaunchPlan),
            ..VersionFilter::default()
        };
        store.versions(&filter).await.expect("versions")
    };
    let first = versions(b.store.clone()).await;
    let first = first.iter().find(|v| v.active).expect("active").key.clone();

    repo.repo
        .write("plan.yaml", &plan.replace("every: 1s", "every: 2s"));
    repo.repo.commit("Every two seconds");
    repo.reconcile(&b, activated + chrono::Duration::seconds(1))
        .await;
    let now_active = versions(b.store.clone()).await;
    let second = now_active.iter().find(|v| v.active).expect("active");
    assert_ne!(second.key, first, "a new version is active");

    let prepared = weir::engine::create::launch_plan_version(b.store.as_ref(), &first)
        .await
        .expect("the first version reads")
        .prepare(b.store.as_ref())
        .await
        .expect("it prepares");
    assert_eq!(prepared.launch_plan(), Some(&first));
    let request = weir::engine::create::Request {
        trigger: weir::spec::Trigger::Schedule,
        scheduled_at: Some(activated + chrono::Duration::seconds(1)),
        ..Default::default()
    };
    let new = prepared
        .execution(&request, None, Utc::now())
        .expect("an execution");
    assert_eq!(
        new.execution.launch_plan_version.as_ref(),
        Some(&first.digest)
    );
    assert_eq!(new.execution.source, source);
}

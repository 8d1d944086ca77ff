//! Which execution a diff compares with when none is named: the last
//! succeeded execution of the same launch plan and workflow created before
//! it ("the last good run").

use super::DiffError;
use crate::store::Store;
use crate::store::execution::{Execution, ExecutionFilter, Status};

/// The last succeeded execution of `to`'s launch plan and workflow created
/// before `to`. The store has no query for exactly that, so this reads the
/// launch plan's succeeded executions newest first, in growing pages, until
/// one is older. (A store query for "the latest succeeded execution of this
/// launch plan before this instant" would make it one indexed read.)
pub async fn base_of(store: &dyn Store, to: &Execution) -> Result<Execution, DiffError> {
    let Some(launch_plan) = &to.launch_plan else {
        return Err(DiffError::NoLaunchPlan(to.id.clone()));
    };
    let mut limit = 100;
    loop {
        let filter = ExecutionFilter {
            project: Some(to.project.clone()),
            launch_plan: Some(launch_plan.clone()),
            workflow: Some(to.workflow.clone()),
            status: Some(Status::Succeeded),
            limit: Some(limit),
            ..ExecutionFilter::default()
        };
        let page = store.executions(&filter).await?;
        let earlier = page
            .iter()
            .find(|e| e.project == to.project && e.id != to.id && e.created_at < to.created_at);
        if let Some(base) = earlier {
            return Ok(base.clone());
        }
        if page.len() < limit as usize || limit >= 100_000 {
            return Err(DiffError::NoBase {
                execution: to.id.clone(),
                launch_plan: format!("{}/{launch_plan}", to.project),
            });
        }
        limit *= 10;
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use serde_json::json;

    use super::*;
    use crate::spec::{CommitId, Digest};
    use crate::store;
    use crate::views::diff;
    use crate::views::precise_instant;

    fn execution(
        id: &str,
        launch_plan: Option<&str>,
        status: Status,
        age_minutes: i64,
    ) -> Execution {
        Execution {
            id: id.into(),
            project: "lab".into(),
            workflow: "pipeline".into(),
            workflow_version: Digest::from_hex("a".repeat(64)),
            launch_plan: launch_plan.map(str::to_owned),
            launch_plan_version: None,
            source: crate::spec::SourceKey("file:///nonexistent#main:".into()),
            commit: CommitId("c".repeat(40)),
            trigger: crate::spec::Trigger::Manual,
            scheduled_at: None,
            inputs: json!({}),
            plan: json!({}).into(),
            options: Default::default(),
            status,
            outputs: None,
            error: None,
            created_at: precise_instant() - Duration::minutes(age_minutes),
            started_at: None,
            finished_at: None,
            cancel_requested: false,
        }
    }

    #[tokio::test]
    async fn the_base_is_the_last_succeeded_run_of_the_launch_plan_before() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store::open(&format!("sqlite://{}/weir.db", dir.path().display()))
            .await
            .expect("store");
        let mut runs = [
            execution("old-good", Some("nightly"), Status::Succeeded, 40),
            execution("good", Some("nightly"), Status::Succeeded, 30),
            execution("bad", Some("nightly"), Status::Failed, 20),
            execution("other-plan", Some("hourly"), Status::Succeeded, 15),
            execution("now", Some("nightly"), Status::Succeeded, 10),
            execution("later", Some("nightly"), Status::Succeeded, 0),
            execution("direct", None, Status::Succeeded, 5),
        ];
        runs[1].commit = CommitId("d".repeat(40));
        for run in &runs {
            store.create_execution(run, &[]).await.expect("create");
        }
        let base = base_of(store.as_ref(), &runs[4]).await.expect("a base");
        assert_eq!(base.id, "good");
        let first = base_of(store.as_ref(), &runs[0]).await;
        assert!(
            matches!(&first, Err(DiffError::NoBase { execution, launch_plan }) if execution == "old-good" && launch_plan == "lab/nightly"),
            "{first:?}"
        );
        let direct = base_of(store.as_ref(), &runs[6]).await;
        assert!(
            matches!(direct, Err(DiffError::NoLaunchPlan(_))),
            "{direct:?}"
        );

        let view = diff(store.as_ref(), None, &"now".into(), None)
            .await
            .expect("a diff");
        assert_eq!(view.from.id, "good");
        assert!(
            view.commits
                .error
                .as_deref()
                .is_some_and(|e| e.contains("cannot open the repository")),
            "the history is missing, the rest stands: {view:?}"
        );
        let unknown = diff(store.as_ref(), None, &"now".into(), Some(&"nope".into())).await;
        assert!(matches!(unknown, Err(DiffError::UnknownExecution(id)) if id == "nope"));
    }
}

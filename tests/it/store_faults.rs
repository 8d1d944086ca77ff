//! A write that fails inside a transaction leaves the store usable: the
//! failed transaction is rolled back and its connection is never handed out
//! again in an unknown state, so the next scheduler tick creates executions
//! without a restart (issue 13, item 2).
//!
//! The failure is real: a trigger on `executions` aborts the whole
//! transaction, as SQLite does by itself on a disk I/O error or a full disk
//! (`RAISE(ROLLBACK)` on SQLite, an exception on PostgreSQL).

use chrono::{DurationRound, Utc};
use weir::engine::scheduler::Scheduler;
use weir::source::git::{GitSource, SourceSpec};

use crate::common::{Backend, GitRepo, every_second, on_every_backend};

on_every_backend!(a_failed_write_leaves_the_scheduler_working,);

/// Installs (`true`) or removes the trigger that fails every insert into
/// `executions`, through a connection of its own.
async fn fail_inserts(url: &str, on: bool) {
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
        let sql = if on {
            "CREATE TRIGGER injected_fault BEFORE INSERT ON executions \
             BEGIN SELECT RAISE(ROLLBACK, 'disk I/O error (injected)'); END"
        } else {
            "DROP TRIGGER injected_fault"
        };
        sqlx::query(sql).execute(&pool).await.expect("trigger");
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.expect("connect");
        let statements: &[&str] = if on {
            &[
                "CREATE FUNCTION injected_fault() RETURNS trigger AS $$ \
                 BEGIN RAISE EXCEPTION 'disk I/O error (injected)'; END $$ LANGUAGE plpgsql",
                "CREATE TRIGGER injected_fault BEFORE INSERT ON executions \
                 FOR EACH ROW EXECUTE FUNCTION injected_fault()",
            ]
        } else {
            &["DROP TRIGGER injected_fault ON executions"]
        };
        for sql in statements {
            sqlx::query(sql).execute(&pool).await.expect("trigger");
        }
        pool.close().await;
    }
}

async fn a_failed_write_leaves_the_scheduler_working(backend: Backend) {
    let repo = GitRepo::new();
    repo.write("plan.yaml", &every_second("true", "none"));
    repo.commit("A schedule every second");
    let state = tempfile::tempdir().expect("tempdir");
    let spec = SourceSpec {
        repo: repo.path().display().to_string(),
        branch: None,
        path: String::new(),
        credentials: Default::default(),
    };
    let git = GitSource::open(&spec, state.path()).expect("source");
    let loaded =
        weir::reconcile::load(&git, &weir::reconcile::Options::default(), None).expect("load");
    weir::reconcile::register(backend.store.as_ref(), loaded, chrono::Utc::now())
        .await
        .expect("register");

    // Time is injected: instants after the plan's activation, on the second.
    let start = Utc::now()
        .duration_round(chrono::Duration::seconds(1))
        .expect("rounds")
        + chrono::Duration::seconds(2);
    let mut scheduler = Scheduler::new();
    fail_inserts(&backend.url, true).await;
    let failed = scheduler.tick(backend.store.as_ref(), start).await;
    assert!(
        failed.is_err(),
        "the injected fault fails the tick: {failed:?}"
    );
    fail_inserts(&backend.url, false).await;

    // More ticks than the pool has connections: whichever connection the
    // failed transaction used, every later write succeeds.
    for second in 1..=10 {
        let now = start + chrono::Duration::seconds(second);
        let report = scheduler
            .tick(backend.store.as_ref(), now)
            .await
            .unwrap_or_else(|e| panic!("tick {second} after the fault: {e}"));
        assert_eq!(report.created.len(), 1, "tick {second}: {report:?}");
    }
}

//! A write that fails inside a transaction leaves the store usable: the
//! failed transaction is rolled back and its connection is never handed out
//! again in an unknown state, so the next scheduler tick creates executions
//! without a restart (issue 13, item 2), and the instants whose executions
//! were not written are created by it, none lost and none twice (I4).
//!
//! The failure is real: a trigger on `executions` aborts the whole
//! transaction, as SQLite does by itself on a disk I/O error or a full disk
//! (`RAISE(ROLLBACK)` on SQLite, an exception on PostgreSQL).
//!
//! Without a fault, a burst's batches are created one after another, each
//! at its own time (what an engine's cheap check relies on).

use chrono::{DateTime, DurationRound, Utc};
use weir::engine::scheduler::{BATCH, Scheduler};
use weir::store::ExecutionFilter;

use crate::common::{
    Backend, SourceRepo, assert_created_batch_after_batch, every_second, on_every_backend,
};

on_every_backend!(
    a_failed_write_leaves_the_scheduler_working,
    a_failed_write_loses_no_instant,
    each_batch_of_a_burst_is_created_after_the_one_before,
);

/// Which inserts into `executions` fail.
#[derive(Clone, Copy)]
enum Fault {
    /// Every one.
    Every,
    /// Those made once the table holds this many rows: a burst written in
    /// several batches fails part way.
    Beyond(usize),
}

/// Installs (`Some`) or removes (`None`) the trigger that fails inserts
/// into `executions`, through a connection of its own.
async fn fail_inserts(url: &str, fault: Option<Fault>) {
    let beyond = |n: usize| format!("(SELECT COUNT(*) FROM executions) >= {n}");
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
        let sql = match fault {
            Some(fault) => {
                let when = match fault {
                    Fault::Every => String::new(),
                    Fault::Beyond(n) => format!("WHEN {}", beyond(n)),
                };
                format!(
                    "CREATE TRIGGER injected_fault BEFORE INSERT ON executions {when} \
                     BEGIN SELECT RAISE(ROLLBACK, 'disk I/O error (injected)'); END"
                )
            }
            None => "DROP TRIGGER injected_fault".to_owned(),
        };
        sqlx::query(&sql).execute(&pool).await.expect("trigger");
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.expect("connect");
        let statements = match fault {
            Some(fault) => {
                let when = match fault {
                    Fault::Every => "TRUE".to_owned(),
                    // A row-level trigger sees the rows its statement
                    // inserted before this one.
                    Fault::Beyond(n) => beyond(n),
                };
                vec![
                    format!(
                        "CREATE OR REPLACE FUNCTION injected_fault() RETURNS trigger AS $$ \
                         BEGIN IF {when} THEN RAISE EXCEPTION 'disk I/O error (injected)'; \
                         END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
                    ),
                    "CREATE TRIGGER injected_fault BEFORE INSERT ON executions \
                     FOR EACH ROW EXECUTE FUNCTION injected_fault()"
                        .to_owned(),
                ]
            }
            None => vec!["DROP TRIGGER injected_fault ON executions".to_owned()],
        };
        for sql in statements {
            sqlx::query(&sql).execute(&pool).await.expect("trigger");
        }
        pool.close().await;
    }
}

/// Registers `definitions` (one commit) as activated at `activated`.
async fn register(backend: &Backend, definitions: &str, activated: DateTime<Utc>) -> SourceRepo {
    let repo = SourceRepo::new(&[("plan.yaml", definitions)]);
    repo.reconcile(backend, activated).await;
    repo
}

/// The scheduled instants of every execution of `every-second`, in order.
async fn instants(backend: &Backend) -> Vec<DateTime<Utc>> {
    let filter = ExecutionFilter {
        launch_plan: Some("every-second".into()),
        limit: Some(10_000),
        ..ExecutionFilter::default()
    };
    let all = backend.store.executions(&filter).await.expect("list");
    let mut instants: Vec<_> = all
        .iter()
        .map(|e| e.scheduled_at.expect("scheduled"))
        .collect();
    instants.sort();
    instants
}

/// Every whole second in `(after, until]`.
fn seconds(after: DateTime<Utc>, until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut t = after
        .duration_trunc(chrono::Duration::seconds(1))
        .expect("truncates");
    let mut all = Vec::new();
    loop {
        t += chrono::Duration::seconds(1);
        if t > until {
            return all;
        }
        all.push(t);
    }
}

async fn a_failed_write_leaves_the_scheduler_working(backend: Backend) {
    let activated = Utc::now();
    let _kept = register(&backend, &every_second("true", "none"), activated).await;

    // Time is injected: instants after the plan's activation, on the second.
    let start = activated
        .duration_round(chrono::Duration::seconds(1))
        .expect("rounds")
        + chrono::Duration::seconds(2);
    let mut scheduler = Scheduler::new();
    fail_inserts(&backend.url, Some(Fault::Every)).await;
    let failed = scheduler.tick(backend.store.as_ref(), start).await;
    assert!(
        failed.is_err(),
        "the injected fault fails the tick: {failed:?}"
    );
    fail_inserts(&backend.url, None).await;

    // More ticks than the pool has connections: whichever connection the
    // failed transaction used, every later write succeeds. The first also
    // writes the instants of the failed tick, on time still (`catchUp:
    // none` skips only missed ones), and no earlier one.
    for second in 1..=10 {
        let now = start + chrono::Duration::seconds(second);
        let report = scheduler
            .tick(backend.store.as_ref(), now)
            .await
            .unwrap_or_else(|e| panic!("tick {second} after the fault: {e}"));
        let expected = if second == 1 {
            seconds(activated, now).len()
        } else {
            1
        };
        assert_eq!(report.created.len(), expected, "tick {second}: {report:?}");
        assert!(report.existing.is_empty(), "tick {second}: {report:?}");
    }
    assert_eq!(
        instants(&backend).await,
        seconds(activated, start + chrono::Duration::seconds(10)),
        "every instant since the activation, once"
    );
}

/// `every-second` under `catchUp: all`, activated 300 s before the
/// returned second: 300 missed instants, more than a batch. Returns that
/// second, the activation and the repository to keep.
async fn burst(backend: &Backend) -> (DateTime<Utc>, DateTime<Utc>, SourceRepo) {
    let start = Utc::now()
        .duration_trunc(chrono::Duration::seconds(1))
        .expect("truncates");
    let activated = start - chrono::Duration::milliseconds(299_500);
    let all = every_second("true", "all").replace("catchUp: all", "catchUp: all, maxCatchUp: 1000");
    let kept = register(backend, &all, activated).await;
    (start, activated, kept)
}

/// A burst whose writes fail part way, then entirely, loses no instant and
/// writes none twice: the next tick creates exactly what was not written
/// (`catchUp: all`).
async fn a_failed_write_loses_no_instant(backend: Backend) {
    let (start, activated, _kept) = burst(&backend).await;
    let mut scheduler = Scheduler::new();

    // The first batch is written, the second fails.
    fail_inserts(&backend.url, Some(Fault::Beyond(BATCH))).await;
    let failed = scheduler.tick(backend.store.as_ref(), start).await;
    assert!(failed.is_err(), "the second batch fails: {failed:?}");
    fail_inserts(&backend.url, None).await;
    assert_eq!(
        instants(&backend).await.len(),
        BATCH,
        "the first batch is written"
    );
    let second = start + chrono::Duration::seconds(1);
    let report = scheduler
        .tick(backend.store.as_ref(), second)
        .await
        .expect("the tick after the fault");
    assert_eq!(
        report.created.len(),
        300 - BATCH + 1,
        "the second batch's instants and the new one: {report:?}"
    );
    assert!(
        report.existing.is_empty(),
        "the first batch is not decided again"
    );

    // Every write of a tick fails: its instant comes with the next one.
    fail_inserts(&backend.url, Some(Fault::Every)).await;
    let third = second + chrono::Duration::seconds(1);
    let failed = scheduler.tick(backend.store.as_ref(), third).await;
    assert!(
        failed.is_err(),
        "the injected fault fails the tick: {failed:?}"
    );
    fail_inserts(&backend.url, None).await;
    let fourth = third + chrono::Duration::seconds(1);
    let report = scheduler
        .tick(backend.store.as_ref(), fourth)
        .await
        .expect("the tick after the fault");
    assert_eq!(report.created.len(), 2, "{report:?}");

    let expected = seconds(activated, fourth);
    assert_eq!(expected.len(), 303);
    assert_eq!(
        instants(&backend).await,
        expected,
        "every instant since the activation, once"
    );
}

/// A burst of more instants than a batch is written in batches, each
/// created at its own time: a later batch after the earlier one, so that an
/// engine comparing the unfinished executions' newest creation instant
/// notices each (`UnfinishedSummary::newest`).
async fn each_batch_of_a_burst_is_created_after_the_one_before(backend: Backend) {
    let (start, _, _kept) = burst(&backend).await;
    let report = Scheduler::new()
        .tick(backend.store.as_ref(), start)
        .await
        .expect("a tick");
    assert_eq!(report.created.len(), 300, "{report:?}");
    let mut created = Vec::new();
    for id in &report.created {
        let execution = backend.store.execution(id).await.expect("read");
        created.push(execution.expect("created").created_at);
    }
    // The report lists the created ids batch by batch.
    assert_created_batch_after_batch(&created);
}

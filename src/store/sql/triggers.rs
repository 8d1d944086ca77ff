//! [`TriggerStore`] on SQL: `trigger_events` and `trigger_cursors`
//! (migration 0007). An event is recorded with `ON CONFLICT DO NOTHING`
//! on its key, so of two recorders the second reads the first's record
//! (SQLite's write lock; PostgreSQL's wait on the uncommitted row), and
//! the execution id in it is the one both create.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use super::rows;
use super::statement::{Param, Statement};
use super::{Dialect, SqlStore, commit};
use crate::spec::{Digest, ExecutionId};
use crate::store::trigger::{
    Ended, EventRecord, TriggerCursor, TriggerKey, TriggerStatus, TriggerStore,
};
use crate::store::{Error, StoreFuture};

const EVENT_COLUMNS: &str = "project, launch_plan, trigger, event, execution, version, inputs, \
     detail, seen_at, created_at";

const CURSOR_COLUMNS: &str =
    "project, launch_plan, trigger, since, cursor, polled_at, error, error_since";

#[derive(sqlx::FromRow)]
struct EventRow {
    project: String,
    launch_plan: String,
    trigger: String,
    event: String,
    execution: Option<String>,
    version: String,
    inputs: Json<Value>,
    detail: Json<Value>,
    seen_at: DateTime<Utc>,
    created_at: Option<DateTime<Utc>>,
}

impl From<EventRow> for EventRecord {
    fn from(row: EventRow) -> EventRecord {
        EventRecord {
            key: TriggerKey {
                project: row.project,
                launch_plan: row.launch_plan,
                trigger: row.trigger,
            },
            event: row.event,
            execution: row.execution.map(ExecutionId::from),
            version: Digest::from_hex(row.version),
            inputs: row.inputs.0,
            detail: row.detail.0,
            seen_at: row.seen_at,
            created_at: row.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct CursorRow {
    project: String,
    launch_plan: String,
    trigger: String,
    since: DateTime<Utc>,
    cursor: Option<String>,
    polled_at: Option<DateTime<Utc>>,
    error: Option<String>,
    error_since: Option<DateTime<Utc>>,
}

impl From<CursorRow> for TriggerCursor {
    fn from(row: CursorRow) -> TriggerCursor {
        TriggerCursor {
            key: TriggerKey {
                project: row.project,
                launch_plan: row.launch_plan,
                trigger: row.trigger,
            },
            since: row.since,
            cursor: row.cursor,
            polled_at: row.polled_at,
            error: row.error,
            error_since: row.error_since,
        }
    }
}

#[derive(sqlx::FromRow)]
struct EndedRow {
    id: String,
    project: String,
    launch_plan: Option<String>,
    trigger: String,
    status: String,
    inputs: Json<Value>,
    outputs: Option<Json<Value>>,
    finished_at: DateTime<Utc>,
}

impl EndedRow {
    fn into_ended(self, doing: &'static str) -> Result<Ended, Error> {
        Ok(Ended {
            id: ExecutionId::from(self.id),
            project: self.project,
            launch_plan: self.launch_plan,
            trigger: rows::parse_trigger(&self.trigger, doing)?,
            status: rows::parse_status(&self.status, doing)?,
            inputs: self.inputs.0,
            outputs: self.outputs.map(|Json(v)| v),
            finished_at: self.finished_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct CountRow {
    project: String,
    launch_plan: String,
    trigger: String,
    events: i64,
    deferred: i64,
    last_event_at: Option<DateTime<Utc>>,
}

/// `WHERE` of one trigger's rows, its key bound as `$1`–`$3`.
const OF_TRIGGER: &str = "project = $1 AND launch_plan = $2 AND trigger = $3";

fn of_trigger<'q>(sql: String, key: &'q TriggerKey) -> Statement<'q> {
    Statement::new(sql)
        .bind(key.project.as_str())
        .bind(key.launch_plan.as_str())
        .bind(key.trigger.as_str())
}

/// Writes `c`, keeping `since` from its first write.
fn cursor_upsert(c: &TriggerCursor) -> Statement<'_> {
    of_trigger(
        format!(
            "INSERT INTO trigger_cursors ({CURSOR_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (project, launch_plan, trigger) DO UPDATE SET \
             cursor = excluded.cursor, polled_at = excluded.polled_at, \
             error = excluded.error, error_since = excluded.error_since"
        ),
        &c.key,
    )
    .bind(c.since)
    .bind(Param::Text(c.cursor.as_deref()))
    .bind(c.polled_at)
    .bind(Param::Text(c.error.as_deref()))
    .bind(c.error_since)
}

impl<D: Dialect> SqlStore<D> {
    async fn record_trigger_events(
        &self,
        events: &[EventRecord],
        cursors: &[TriggerCursor],
    ) -> Result<Vec<(EventRecord, bool)>, Error> {
        const DOING: &str = "recording trigger events";
        // In key order: two recorders of overlapping events lock their
        // rows in one order.
        let mut order: Vec<usize> = (0..events.len()).collect();
        order.sort_by(|&a, &b| {
            (&events[a].key, &events[a].event).cmp(&(&events[b].key, &events[b].event))
        });
        let mut out: Vec<Option<(EventRecord, bool)>> = vec![None; events.len()];
        let mut tx = self.begin_write(DOING).await?;
        for i in order {
            let e = &events[i];
            let insert = of_trigger(
                format!(
                    "INSERT INTO trigger_events ({EVENT_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (project, launch_plan, trigger, event) DO NOTHING"
                ),
                &e.key,
            )
            .bind(e.event.as_str())
            .bind(e.execution.as_ref().map(ExecutionId::as_str))
            .bind(e.version.as_str())
            .bind(Param::json(&e.inputs))
            .bind(Param::json(&e.detail))
            .bind(e.seen_at)
            .bind(e.created_at);
            if D::execute(&mut tx, DOING, insert).await? == 1 {
                out[i] = Some((e.clone(), true));
                continue;
            }
            let select = of_trigger(
                format!(
                    "SELECT {EVENT_COLUMNS} FROM trigger_events WHERE {OF_TRIGGER} AND event = $4"
                ),
                &e.key,
            )
            .bind(e.event.as_str());
            let row: Option<EventRow> = D::fetch_optional(&mut tx, DOING, select).await?;
            let row = row.ok_or_else(|| Error::NotFound {
                doing: DOING,
                what: format!("trigger event {}", e.event),
            })?;
            out[i] = Some((row.into(), false));
        }
        for cursor in cursors {
            D::execute(&mut tx, DOING, cursor_upsert(cursor)).await?;
        }
        commit(tx, DOING).await?;
        Ok(out
            .into_iter()
            .map(|o| o.expect("every event recorded"))
            .collect())
    }

    async fn deferred(&self, key: &TriggerKey, limit: u32) -> Result<Vec<EventRecord>, Error> {
        let select = of_trigger(
            format!(
                "SELECT {EVENT_COLUMNS} FROM trigger_events WHERE {OF_TRIGGER} \
                 AND execution IS NOT NULL AND created_at IS NULL \
                 ORDER BY seen_at, event LIMIT $4"
            ),
            key,
        )
        .bind(i64::from(limit));
        let rows: Vec<EventRow> = self.read("reading deferred trigger events", select).await?;
        Ok(rows.into_iter().map(EventRecord::from).collect())
    }

    async fn mark(
        &self,
        key: &TriggerKey,
        events: &[String],
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        const DOING: &str = "marking trigger events created";
        let mut tx = self.begin_write(DOING).await?;
        for event in events {
            let update = of_trigger(
                format!(
                    "UPDATE trigger_events SET created_at = $4 WHERE {OF_TRIGGER} \
                     AND event = $5 AND created_at IS NULL"
                ),
                key,
            )
            .bind(at)
            .bind(event.as_str());
            D::execute(&mut tx, DOING, update).await?;
        }
        commit(tx, DOING).await
    }

    async fn count_unfinished(&self, key: &TriggerKey) -> Result<i64, Error> {
        // The unfinished executions (a partial index) joined to their
        // event by id.
        let select = of_trigger(
            "SELECT COUNT(*) FROM executions x JOIN trigger_events t ON t.execution = x.id \
             WHERE x.status IN ('queued', 'running') AND t.project = $1 \
             AND t.launch_plan = $2 AND t.trigger = $3"
                .to_owned(),
            key,
        );
        let row: Option<(i64,)> = self
            .read_optional("counting a trigger's unfinished executions", select)
            .await?;
        Ok(row.map_or(0, |(n,)| n))
    }

    async fn details(&self, key: &TriggerKey) -> Result<Vec<Value>, Error> {
        let select = of_trigger(
            format!("SELECT detail FROM trigger_events WHERE {OF_TRIGGER}"),
            key,
        );
        let rows: Vec<(Json<Value>,)> = self.read("reading trigger events", select).await?;
        Ok(rows.into_iter().map(|(Json(v),)| v).collect())
    }

    async fn cursor(&self, key: &TriggerKey) -> Result<Option<TriggerCursor>, Error> {
        let select = of_trigger(
            format!("SELECT {CURSOR_COLUMNS} FROM trigger_cursors WHERE {OF_TRIGGER}"),
            key,
        );
        let row: Option<CursorRow> = self
            .read_optional("reading a trigger's cursor", select)
            .await?;
        Ok(row.map(TriggerCursor::from))
    }

    async fn write_cursor(&self, c: &TriggerCursor) -> Result<(), Error> {
        self.run("writing a trigger's cursor", cursor_upsert(c))
            .await?;
        Ok(())
    }

    async fn count_deferred(&self) -> Result<Vec<(TriggerKey, i64)>, Error> {
        let rows: Vec<(String, String, String, i64)> = self
            .read(
                "counting deferred trigger events",
                Statement::new(
                    "SELECT project, launch_plan, trigger, COUNT(*) FROM trigger_events \
                     WHERE execution IS NOT NULL AND created_at IS NULL \
                     GROUP BY project, launch_plan, trigger",
                ),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(project, launch_plan, trigger, n)| {
                (
                    TriggerKey {
                        project,
                        launch_plan,
                        trigger,
                    },
                    n,
                )
            })
            .collect())
    }

    async fn statuses(&self) -> Result<Vec<TriggerStatus>, Error> {
        const DOING: &str = "reading the triggers' status";
        let mut tx = self.begin_read(DOING).await?;
        let cursors: Vec<CursorRow> = D::fetch_all(
            &mut tx,
            DOING,
            Statement::new(format!(
                "SELECT {CURSOR_COLUMNS} FROM trigger_cursors ORDER BY project, launch_plan, trigger"
            )),
        )
        .await?;
        let counts: Vec<CountRow> = D::fetch_all(
            &mut tx,
            DOING,
            Statement::new(
                "SELECT project, launch_plan, trigger, \
                 COUNT(execution) AS events, \
                 COUNT(CASE WHEN execution IS NOT NULL AND created_at IS NULL THEN 1 END) AS deferred, \
                 MAX(CASE WHEN execution IS NOT NULL THEN seen_at END) AS last_event_at \
                 FROM trigger_events GROUP BY project, launch_plan, trigger",
            ),
        )
        .await?;
        commit(tx, DOING).await?;
        let mut counts: std::collections::HashMap<(String, String, String), CountRow> = counts
            .into_iter()
            .map(|c| {
                (
                    (c.project.clone(), c.launch_plan.clone(), c.trigger.clone()),
                    c,
                )
            })
            .collect();
        Ok(cursors
            .into_iter()
            .map(|row| {
                let cursor = TriggerCursor::from(row);
                let count = counts.remove(&(
                    cursor.key.project.clone(),
                    cursor.key.launch_plan.clone(),
                    cursor.key.trigger.clone(),
                ));
                TriggerStatus {
                    events: count.as_ref().map_or(0, |c| c.events),
                    deferred: count.as_ref().map_or(0, |c| c.deferred),
                    last_event_at: count.and_then(|c| c.last_event_at),
                    cursor,
                }
            })
            .collect())
    }

    async fn ended(&self, after: (DateTime<Utc>, &str), limit: u32) -> Result<Vec<Ended>, Error> {
        const DOING: &str = "reading ended executions";
        let select = Statement::new(
            "SELECT id, project, launch_plan, trigger, status, inputs, outputs, finished_at \
             FROM executions WHERE finished_at IS NOT NULL \
             AND (finished_at > $1 OR (finished_at = $1 AND id > $2)) \
             ORDER BY finished_at, id LIMIT $3",
        )
        .bind(after.0)
        .bind(after.1)
        .bind(i64::from(limit));
        let rows: Vec<EndedRow> = self.read(DOING, select).await?;
        rows.into_iter().map(|row| row.into_ended(DOING)).collect()
    }
}

impl<D: Dialect> TriggerStore for SqlStore<D> {
    fn record_events<'a>(
        &'a self,
        events: &'a [EventRecord],
        cursors: &'a [TriggerCursor],
    ) -> StoreFuture<'a, Vec<(EventRecord, bool)>> {
        Box::pin(self.record_trigger_events(events, cursors))
    }

    fn deferred_events<'a>(
        &'a self,
        key: &'a TriggerKey,
        limit: u32,
    ) -> StoreFuture<'a, Vec<EventRecord>> {
        Box::pin(self.deferred(key, limit))
    }

    fn mark_created<'a>(
        &'a self,
        key: &'a TriggerKey,
        events: &'a [String],
        at: DateTime<Utc>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.mark(key, events, at))
    }

    fn unfinished_of_trigger<'a>(&'a self, key: &'a TriggerKey) -> StoreFuture<'a, i64> {
        Box::pin(self.count_unfinished(key))
    }

    fn event_details<'a>(&'a self, key: &'a TriggerKey) -> StoreFuture<'a, Vec<Value>> {
        Box::pin(self.details(key))
    }

    fn trigger_cursor<'a>(&'a self, key: &'a TriggerKey) -> StoreFuture<'a, Option<TriggerCursor>> {
        Box::pin(self.cursor(key))
    }

    fn write_trigger_cursor<'a>(&'a self, cursor: &'a TriggerCursor) -> StoreFuture<'a, ()> {
        Box::pin(self.write_cursor(cursor))
    }

    fn deferred_counts(&self) -> StoreFuture<'_, Vec<(TriggerKey, i64)>> {
        Box::pin(self.count_deferred())
    }

    fn trigger_statuses(&self) -> StoreFuture<'_, Vec<TriggerStatus>> {
        Box::pin(self.statuses())
    }

    fn ended_executions<'a>(
        &'a self,
        after: (DateTime<Utc>, &'a str),
        limit: u32,
    ) -> StoreFuture<'a, Vec<Ended>> {
        Box::pin(self.ended(after, limit))
    }
}

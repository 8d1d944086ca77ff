//! What the store keeps of event triggers (`TriggerStore`), alike on
//! SQLite and PostgreSQL: an event is recorded once, whoever records it
//! again reads the first record (its execution id included); of two
//! recorders racing over the same events each event is new to exactly
//! one; deferred events come oldest first until marked created; a
//! trigger's cursor keeps the instant it began.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use tokio::sync::Barrier;
use weir::spec::{Digest, ExecutionId};
use weir::store::{EventRecord, TriggerCursor, TriggerKey};

use crate::common::{Backend, on_every_backend};

on_every_backend!(
    an_event_is_recorded_once_and_a_second_recorder_reads_the_first,
    of_two_recorders_racing_over_the_same_events_each_is_new_to_exactly_one,
    a_cursor_keeps_when_its_trigger_began_and_shows_its_last_error,
    ended_executions_come_in_the_order_they_ended_and_unfinished_ones_count_against_their_trigger,
);

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, 0)
        .single()
        .expect("a valid instant")
        + chrono::Duration::seconds(seconds)
}

fn key() -> TriggerKey {
    TriggerKey {
        project: "default".into(),
        launch_plan: "on-orders".into(),
        trigger: "artifact:s3://landing/orders/*.csv".into(),
    }
}

fn event(name: &str, version: &str, seen: i64) -> EventRecord {
    EventRecord {
        key: key(),
        event: name.into(),
        execution: Some(ExecutionId::from(format!("on-orders-{version}-{name}"))),
        version: Digest::of_json(&json!(version)),
        inputs: json!({ "file": format!("sha256:{name}") }),
        detail: json!({ "key": name, "etag": "\"e1\"" }),
        seen_at: at(seen),
        created_at: None,
    }
}

async fn an_event_is_recorded_once_and_a_second_recorder_reads_the_first(b: Backend) {
    let first = [event("a.csv", "v1", 0), event("b.csv", "v1", 1)];
    let recorded = b.store.record_events(&first, &[]).await.expect("record");
    assert!(recorded.iter().all(|(_, new)| *new));
    assert_eq!(recorded[0].0, first[0]);

    // The next version of the launch plan sees a.csv again: it reads the
    // first record, whose execution id is the one to create.
    let again = b
        .store
        .record_events(&[event("a.csv", "v2", 5), event("c.csv", "v2", 6)], &[])
        .await
        .expect("record");
    assert_eq!(again[0], (first[0].clone(), false));
    assert!(again[1].1, "c.csv is new");

    let deferred = b.store.deferred_events(&key(), 10).await.expect("deferred");
    let names: Vec<&str> = deferred.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, ["a.csv", "b.csv", "c.csv"], "oldest first");
    assert_eq!(
        b.store
            .deferred_events(&key(), 2)
            .await
            .expect("deferred")
            .len(),
        2
    );
    assert_eq!(
        b.store.deferred_counts().await.expect("counts"),
        [(key(), 3)]
    );

    b.store
        .mark_created(&key(), &["a.csv".to_owned(), "b.csv".to_owned()], at(7))
        .await
        .expect("mark");
    let left = b.store.deferred_events(&key(), 10).await.expect("deferred");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].event, "c.csv");
    let (stored, new) = b
        .store
        .record_events(&[event("a.csv", "v3", 9)], &[])
        .await
        .expect("record")
        .remove(0);
    assert!(!new);
    assert_eq!(stored.created_at, Some(at(7)));
    assert!(!stored.is_deferred());

    // A baseline object (no execution) is recorded, never deferred.
    let mut baseline = event("old.csv", "v1", 10);
    baseline.execution = None;
    b.store
        .record_events(&[baseline], &[])
        .await
        .expect("record");
    assert_eq!(
        b.store
            .deferred_events(&key(), 10)
            .await
            .expect("deferred")
            .len(),
        1
    );
    assert_eq!(
        b.store.event_details(&key()).await.expect("details").len(),
        4
    );
    // Nothing of these executions exists: none is unfinished.
    assert_eq!(
        b.store.unfinished_of_trigger(&key()).await.expect("count"),
        0
    );
}

async fn of_two_recorders_racing_over_the_same_events_each_is_new_to_exactly_one(b: Backend) {
    let store = b.store.clone();
    let barrier = Arc::new(Barrier::new(2));
    let racer = |version: &'static str, reversed: bool| {
        let (store, barrier) = (store.clone(), barrier.clone());
        tokio::spawn(async move {
            let mut events: Vec<EventRecord> = (0..40)
                .map(|i| event(&format!("{i:02}.csv"), version, i))
                .collect();
            if reversed {
                events.reverse();
            }
            barrier.wait().await;
            store.record_events(&events, &[]).await.expect("record")
        })
    };
    let (a, b_) = (racer("v1", false), racer("v2", true));
    let (a, b_) = (a.await.expect("join"), b_.await.expect("join"));
    for (x, y) in a.iter().zip(b_.iter().rev()) {
        assert_eq!(x.0.event, y.0.event);
        assert!(x.1 != y.1, "{} is new to exactly one recorder", x.0.event);
        assert_eq!(
            x.0.execution, y.0.execution,
            "both create the id the first recorded"
        );
    }
}

async fn a_cursor_keeps_when_its_trigger_began_and_shows_its_last_error(b: Backend) {
    assert_eq!(b.store.trigger_cursor(&key()).await.expect("read"), None);
    let mut cursor = TriggerCursor {
        key: key(),
        since: at(0),
        cursor: None,
        polled_at: None,
        error: None,
        error_since: None,
    };
    b.store.write_trigger_cursor(&cursor).await.expect("write");
    cursor.since = at(100);
    cursor.error = Some("`s3://landing/orders/`: no such bucket".into());
    cursor.error_since = Some(at(5));
    b.store.write_trigger_cursor(&cursor).await.expect("write");
    let stored = b
        .store
        .trigger_cursor(&key())
        .await
        .expect("read")
        .expect("one");
    assert_eq!(stored.since, at(0), "a trigger begins once");
    assert_eq!(stored.error, cursor.error);
    // A baseline and the trigger's first poll are written in one go.
    let first_poll = TriggerCursor {
        polled_at: Some(at(3)),
        error: None,
        error_since: None,
        ..stored.clone()
    };
    b.store
        .record_events(&[event("a.csv", "v1", 1)], &[first_poll])
        .await
        .expect("record");
    let stored = b
        .store
        .trigger_cursor(&key())
        .await
        .expect("read")
        .expect("one");
    assert_eq!((stored.polled_at, stored.error), (Some(at(3)), None));
    let statuses = b.store.trigger_statuses().await.expect("statuses");
    assert_eq!(statuses.len(), 1);
    assert_eq!((statuses[0].events, statuses[0].deferred), (1, 1));
    assert_eq!(statuses[0].last_event_at, Some(at(1)));
    assert_eq!(statuses[0].cursor.polled_at, Some(at(3)));
}

async fn ended_executions_come_in_the_order_they_ended_and_unfinished_ones_count_against_their_trigger(
    b: Backend,
) {
    use weir::store::Status;
    let ended = |id: &str, status, minute: i64| weir::store::Execution {
        finished_at: Some(at(minute * 60)),
        ..crate::executions_store::execution(id, status, 0)
    };
    for e in [
        ended("b-late", Status::Succeeded, 20),
        ended("b-first", Status::Failed, 10),
        ended("a-first", Status::Succeeded, 10),
        crate::executions_store::execution("c-queued", Status::Queued, 0),
    ] {
        b.store.create_execution(&e, &[]).await.expect("create");
    }
    let ids = |list: Vec<weir::store::trigger::Ended>| -> Vec<String> {
        list.into_iter().map(|e| e.id.to_string()).collect()
    };
    let all = b
        .store
        .ended_executions((at(0), ""), 10)
        .await
        .expect("read");
    assert_eq!(all[1].status, Status::Failed);
    assert_eq!(all[0].inputs, json!({ "date": "2026-03-29" }));
    assert_eq!(
        ids(all),
        ["a-first", "b-first", "b-late"],
        "by end, then id"
    );
    let page = b
        .store
        .ended_executions((at(0), ""), 1)
        .await
        .expect("read");
    assert_eq!(ids(page), ["a-first"]);
    let next = b
        .store
        .ended_executions((at(600), "a-first"), 10)
        .await
        .expect("read");
    assert_eq!(
        ids(next),
        ["b-first", "b-late"],
        "after the keyset, the same instant included"
    );

    let mut queued = event("q.csv", "v1", 0);
    queued.execution = Some(ExecutionId::from("c-queued"));
    let mut done = event("d.csv", "v1", 0);
    done.execution = Some(ExecutionId::from("a-first"));
    b.store
        .record_events(&[queued, done], &[])
        .await
        .expect("record");
    assert_eq!(
        b.store.unfinished_of_trigger(&key()).await.expect("count"),
        1,
        "only the queued execution is pending"
    );
}

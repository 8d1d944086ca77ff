//! The store's contract, run alike against SQLite (a temporary file) and
//! PostgreSQL (a fresh schema at `WEIR_TEST_POSTGRES_URL`; skipped when it
//! is unset, a failure when `CI=true`).
//!
//! Each story commits trees to a source and checks what weir remembers:
//! I1 (a version's content never changes), I2 (the active set is exactly the
//! last reconciled tree), I3 (a refused commit changes nothing but status
//! and audit). Changes are decided here as `registry::plan` decides them, so
//! no YAML or Git is needed.

use std::collections::HashSet;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use serde_json::json;
use weir::spec::{CommitId, Digest, EntityRef, Kind, SourceKey};
use weir::store::{
    self, ActiveSet, Changes, CommitInfo, JsonText, NewVersion, Person, SourceError, Store,
    VersionFilter, VersionKey,
};

use crate::common::{Backend, on_every_backend};

on_every_backend!(
    apply_registers_versions_and_sets_the_active_set,
    registering_a_known_digest_changes_nothing_and_records_the_reactivation,
    apply_replaces_the_active_set_exactly,
    a_refused_commit_changes_neither_active_set_nor_versions,
    audit_is_newest_first_with_details,
    versions_filter_and_flag_the_active_ones,
    two_stores_on_one_database_apply_concurrently,
    ten_thousand_versions_apply_in_one_transaction,
    registering_inactive_versions_activates_nothing,
    every_stamp_is_the_instant_the_caller_gives,
    the_active_versions_of_several_names_are_each_name_s_in_one_read,
);

// ---------------------------------------------------------------- fixtures

fn source(name: &str) -> SourceKey {
    SourceKey::new("file:///srv/repo", "main", name)
}

fn commit(n: u32) -> CommitInfo {
    let ada = Person {
        name: "Ada Lovelace".into(),
        email: "ada@example.com".into(),
    };
    CommitInfo {
        id: CommitId(format!("{n:040x}")),
        author: ada.clone(),
        committer: Person {
            name: "Bot".into(),
            email: "bot@example.com".into(),
        },
        time: Utc
            .with_ymd_and_hms(2026, 3, 29, 0, 30, 0)
            .single()
            .expect("a valid instant")
            + chrono::Duration::minutes(i64::from(n)),
        message: format!("change {n}"),
    }
}

/// A definition of `kind` `project/name` whose content is `body`.
fn def(project: &str, kind: Kind, name: &str, body: &str) -> NewVersion {
    let spec = json!({ "name": name, "body": body });
    NewVersion {
        key: VersionKey {
            entity: EntityRef::new(project, kind, name),
            digest: Digest::of_json(&spec),
        },
        document: JsonText::of(
            &json!({ "kind": kind.as_str(), "metadata": { "name": name }, "spec": spec }),
        ),
        spec: JsonText::of(&spec),
        path: format!("{name}.yaml"),
    }
}

fn task(name: &str, body: &str) -> NewVersion {
    def("default", Kind::Task, name, body)
}

/// What `registry::plan` decides for a tree holding exactly `tree`, asked of
/// the store as the reconciler asks it.
async fn plan(store: &dyn Store, src: &SourceKey, n: u32, tree: &[&NewVersion]) -> Changes {
    let current = store.active_set(src).await.expect("active set");
    let previous = store
        .sources()
        .await
        .expect("sources")
        .into_iter()
        .find(|s| &s.source == src)
        .and_then(|s| s.last_reconciled);
    let keys: Vec<VersionKey> = tree.iter().map(|v| v.key.clone()).collect();
    let known = store.known_versions(&keys).await.expect("known versions");
    let mut changes = Changes {
        source: src.clone(),
        commit: commit(n),
        previous,
        registered: vec![],
        activated: vec![],
        reactivated: vec![],
        deactivated: vec![],
        updated: vec![],
        active: ActiveSet::new(),
    };
    for v in tree {
        changes
            .active
            .insert(v.key.entity.clone(), v.key.digest.clone());
        if current.get(&v.key.entity) == Some(&v.key.digest) {
            continue;
        }
        if known.contains(&v.key) {
            changes.reactivated.push(v.key.clone());
            continue;
        }
        changes.registered.push((*v).clone());
        if current.contains_key(&v.key.entity) {
            changes.updated.push(v.key.clone());
        } else {
            changes.activated.push(v.key.clone());
        }
    }
    for (entity, digest) in &current {
        if !changes.active.contains_key(entity) {
            let (entity, digest) = (entity.clone(), digest.clone());
            changes.deactivated.push(VersionKey { entity, digest });
        }
    }
    changes
}

/// Plans and applies commit `n` of `src` with exactly `tree`.
async fn sync(store: &dyn Store, src: &SourceKey, n: u32, tree: &[&NewVersion]) -> Changes {
    let changes = plan(store, src, n, tree).await;
    store.apply(&changes, Utc::now()).await.expect("apply");
    changes
}

fn active_of(tree: &[&NewVersion]) -> ActiveSet {
    tree.iter()
        .map(|v| (v.key.entity.clone(), v.key.digest.clone()))
        .collect()
}

fn ids(commits: &[u32]) -> Vec<CommitId> {
    commits.iter().map(|n| commit(*n).id).collect()
}

fn refused() -> SourceError {
    SourceError {
        reason: "ValidationFailed".into(),
        message: "1 error in 1 file".into(),
        diagnostics: json!([{ "code": "W012", "file": "wf.yaml", "line": 7 }]),
    }
}

// ----------------------------------------------------------------- stories

async fn apply_registers_versions_and_sets_the_active_set(b: Backend) {
    let store = &*b.store;
    let (src, a, w) = (
        source("p"),
        task("a", "echo a"),
        def("default", Kind::Workflow, "w", "a"),
    );
    let before = Utc::now();
    let changes = sync(store, &src, 1, &[&a, &w]).await;
    assert_eq!(changes.activated.len(), 2);

    assert_eq!(
        store.active_set(&src).await.expect("active"),
        active_of(&[&a, &w])
    );
    assert!(
        store
            .active_set(&source("other"))
            .await
            .expect("active")
            .is_empty()
    );
    let versions = store
        .versions(&VersionFilter::default())
        .await
        .expect("versions");
    assert_eq!(versions.len(), 2);
    for v in &versions {
        assert_eq!(v.commit, commit(1).id);
        assert!(v.active);
        assert_eq!(v.activations, ids(&[1]));
        assert_eq!(v.path, format!("{}.yaml", v.key.entity.name));
    }
    let document = store.version_document(&a.key).await.expect("document");
    assert_eq!(document, Some(a.document.value()));
    let unknown = VersionKey {
        digest: Digest::of_json(&json!(0)),
        ..a.key.clone()
    };
    assert_eq!(
        store.version_document(&unknown).await.expect("document"),
        None
    );

    // Timestamps of one apply are one instant, kept to the microsecond.
    let sources = store.sources().await.expect("sources");
    assert_eq!(sources.len(), 1);
    let status = &sources[0];
    assert_eq!((&status.source, status.error.as_ref()), (&src, None));
    assert_eq!(status.last_reconciled, Some(commit(1).id));
    assert_eq!(status.last_attempted, Some(commit(1).id));
    let at = status.last_reconciled_at.expect("reconciled at");
    assert_eq!(status.last_attempted_at, Some(at));
    assert!(before - chrono::Duration::microseconds(1) <= at && at <= Utc::now());
    assert_eq!(at.timestamp_subsec_nanos() % 1000, 0);
    assert!(versions.iter().all(|v| v.registered_at == at));
    let audit = store.audit(10).await.expect("audit");
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0].at, audit[0].actor.name.as_str()),
        (at, "Ada Lovelace")
    );
}

async fn registering_a_known_digest_changes_nothing_and_records_the_reactivation(b: Backend) {
    let store = &*b.store;
    let src = source("p");
    let (v1, v2) = (task("a", "echo 1"), task("a", "echo 2"));
    sync(store, &src, 1, &[&v1]).await;
    sync(store, &src, 2, &[&v2]).await;
    // `git revert`: the old content comes back and is reactivated, not registered.
    let back = sync(store, &src, 3, &[&v1]).await;
    assert!(back.registered.is_empty());
    assert_eq!(back.reactivated, vec![v1.key.clone()]);

    // Even told to register the digest again with other content, the store
    // keeps the first content and first commit (I1).
    let mut again = plan(store, &src, 4, &[&v1]).await;
    let forged = NewVersion {
        spec: JsonText::of(&json!("forged")),
        document: JsonText::of(&json!("forged")),
        ..v1.clone()
    };
    again.registered.push(forged);
    again.reactivated.push(v1.key.clone());
    store.apply(&again, Utc::now()).await.expect("apply");

    assert_eq!(
        store.version_document(&v1.key).await.expect("doc"),
        Some(v1.document.value())
    );
    let versions = store
        .versions(&VersionFilter::default())
        .await
        .expect("versions");
    assert_eq!(versions.len(), 2, "no duplicate version rows");
    let first = versions
        .iter()
        .find(|v| v.key == v1.key)
        .expect("v1 listed");
    assert_eq!(first.commit, commit(1).id);
    assert!(first.active);
    assert_eq!(first.activations, ids(&[1, 3, 4]));
    let second = versions
        .iter()
        .find(|v| v.key == v2.key)
        .expect("v2 listed");
    assert_eq!(
        (second.active, second.activations.clone()),
        (false, ids(&[2]))
    );
    let keys = [v1.key.clone(), v2.key.clone(), task("a", "never").key];
    let known = store.known_versions(&keys).await.expect("known");
    assert_eq!(known, HashSet::from([v1.key.clone(), v2.key.clone()]));
}

/// A preview (`weir run --ref`) registers a branch's versions without
/// activating them: the active set, the source's status and the audit log
/// stay; a digest that exists keeps its first commit and content (I1).
async fn registering_inactive_versions_activates_nothing(b: Backend) {
    let store = &*b.store;
    let src = source("p");
    let (a1, w1) = (
        task("a", "echo 1"),
        def("default", Kind::Workflow, "w", "a1"),
    );
    sync(store, &src, 1, &[&a1, &w1]).await;
    let status_before = store.sources().await.expect("sources");
    let audit_before = store.audit(100).await.expect("audit");

    // The branch changes task `a` (and so workflow `w`), and repeats `a1`
    // with other content: the store keeps what it has (I1).
    let (a2, w2) = (
        task("a", "echo 2"),
        def("default", Kind::Workflow, "w", "a2"),
    );
    let forged = NewVersion {
        document: JsonText::of(&json!("forged")),
        ..a1.clone()
    };
    let branch = [a2.clone(), w2.clone(), forged];
    store
        .register_inactive(&commit(7), &branch, Utc::now())
        .await
        .expect("register");
    // Twice is the same as once.
    store
        .register_inactive(&commit(8), &branch, Utc::now())
        .await
        .expect("register again");

    assert_eq!(
        store.active_set(&src).await.expect("active"),
        active_of(&[&a1, &w1])
    );
    assert_eq!(store.sources().await.expect("sources"), status_before);
    assert_eq!(store.audit(100).await.expect("audit"), audit_before);
    let versions = store
        .versions(&VersionFilter::default())
        .await
        .expect("versions");
    assert_eq!(versions.len(), 4, "two active, two previewed");
    for v in &versions {
        let previewed = v.key == a2.key || v.key == w2.key;
        assert_eq!(v.active, !previewed, "{:?}", v.key);
        if previewed {
            assert_eq!(v.commit, commit(7).id, "first commit stays the first");
            assert!(v.activations.is_empty(), "never activated");
        } else {
            assert_eq!(v.commit, commit(1).id);
        }
    }
    assert_eq!(
        store.version_document(&a1.key).await.expect("doc"),
        Some(a1.document.value())
    );
    let known = store
        .known_versions(&[a2.key.clone(), w2.key.clone()])
        .await
        .expect("known");
    assert_eq!(known.len(), 2);

    // Merged later, the previewed version is activated, not registered again.
    let merged = sync(store, &src, 9, &[&a2, &w2]).await;
    assert!(merged.registered.is_empty());
    assert_eq!(merged.reactivated.len(), 2);
}

/// The store never reads the clock: each write is stamped with the instant
/// its caller gives (the daemon's or a test's clock), here one in 2031 that
/// no wall clock reads, to the microsecond both databases keep.
async fn every_stamp_is_the_instant_the_caller_gives(b: Backend) {
    let store = &*b.store;
    let src = source("p");
    let at = Utc
        .with_ymd_and_hms(2031, 5, 6, 7, 8, 9)
        .single()
        .expect("a valid instant")
        + chrono::Duration::microseconds(123_456);
    let day = chrono::Duration::days(1);
    let a = task("a", "echo a");
    let changes = plan(store, &src, 1, &[&a]).await;
    store.apply(&changes, at).await.expect("apply");
    let status = &store.sources().await.expect("sources")[0];
    assert_eq!(status.last_reconciled_at, Some(at));
    assert_eq!(status.last_attempted_at, Some(at));
    let versions = store
        .versions(&VersionFilter::default())
        .await
        .expect("versions");
    assert_eq!(versions[0].registered_at, at);
    assert_eq!(versions[0].last_activated_at, Some(at));
    assert_eq!(store.audit(1).await.expect("audit")[0].at, at);

    store
        .record_failure(&src, &commit(2), &refused(), at + day)
        .await
        .expect("record the refusal");
    let status = &store.sources().await.expect("sources")[0];
    assert_eq!(
        status.last_reconciled_at,
        Some(at),
        "the last good one stays"
    );
    assert_eq!(status.last_attempted_at, Some(at + day));
    assert_eq!(store.audit(1).await.expect("audit")[0].at, at + day);

    store
        .record_source_error(&src, &refused(), at + day * 2)
        .await
        .expect("record the read error");
    let status = &store.sources().await.expect("sources")[0];
    assert_eq!(status.last_attempted_at, Some(at + day * 2));

    let b = task("b", "echo b");
    store
        .register_inactive(&commit(4), std::slice::from_ref(&b), at + day * 3)
        .await
        .expect("register a preview");
    let filter = VersionFilter {
        name: Some("b".into()),
        ..VersionFilter::default()
    };
    let previewed = store.versions(&filter).await.expect("versions");
    assert_eq!(previewed[0].registered_at, at + day * 3);
}

async fn apply_replaces_the_active_set_exactly(b: Backend) {
    let store = &*b.store;
    let (src, other) = (source("p"), source("q"));
    let (a, bb, c, c2, d) = (
        task("a", "1"),
        task("b", "1"),
        task("c", "1"),
        task("c", "2"),
        task("d", "1"),
    );
    sync(store, &src, 1, &[&a, &bb, &c]).await;
    sync(store, &other, 1, &[&d]).await;
    // b is removed and c changes: b's version stays, inactive.
    let gone = sync(store, &src, 2, &[&a, &c2]).await;
    assert_eq!(gone.deactivated, vec![bb.key.clone()]);
    assert_eq!(
        store.active_set(&src).await.expect("active"),
        active_of(&[&a, &c2])
    );
    assert_eq!(
        store.active_set(&other).await.expect("active"),
        active_of(&[&d])
    );
    let versions = store
        .versions(&VersionFilter::default())
        .await
        .expect("versions");
    assert_eq!(versions.len(), 5);
    for (key, active) in [
        (&bb.key, false),
        (&c.key, false),
        (&c2.key, true),
        (&d.key, true),
    ] {
        let v = versions.iter().find(|v| &v.key == key).expect("listed");
        assert_eq!(v.active, active, "{}", key.entity);
    }

    // Changes decided before another process reconciled the source are
    // refused (compare-and-swap on the last reconciled commit): a stale plan
    // never overwrites a newer active set.
    let stale = plan(store, &src, 3, &[&a]).await;
    sync(store, &src, 4, &[&a, &c2, &d]).await;
    let refused = store
        .apply(&stale, Utc::now())
        .await
        .expect_err("a stale plan is refused");
    assert!(
        matches!(refused, weir::store::Error::Conflict { .. }),
        "{refused}"
    );
    assert_eq!(
        store.active_set(&src).await.expect("active"),
        active_of(&[&a, &c2, &d])
    );

    // An empty tree empties the source's active set.
    sync(store, &src, 5, &[]).await;
    assert!(store.active_set(&src).await.expect("active").is_empty());
    assert_eq!(
        store.active_set(&other).await.expect("active"),
        active_of(&[&d])
    );
}

async fn a_refused_commit_changes_neither_active_set_nor_versions(b: Backend) {
    let store = &*b.store;
    let (src, fresh) = (source("p"), source("new"));
    let a = task("a", "1");
    sync(store, &src, 1, &[&a]).await;
    let versions_before = store
        .versions(&VersionFilter::default())
        .await
        .expect("versions");

    store
        .record_failure(&src, &commit(2), &refused(), Utc::now())
        .await
        .expect("record");
    store
        .record_failure(&fresh, &commit(2), &refused(), Utc::now())
        .await
        .expect("record");

    assert_eq!(
        store.active_set(&src).await.expect("active"),
        active_of(&[&a])
    );
    assert!(store.active_set(&fresh).await.expect("active").is_empty());
    let versions = store
        .versions(&VersionFilter::default())
        .await
        .expect("versions");
    assert_eq!(versions, versions_before);
    let sources = store.sources().await.expect("sources");
    let keys: Vec<&SourceKey> = sources.iter().map(|s| &s.source).collect();
    assert_eq!(keys, vec![&fresh, &src], "ordered by key");
    let (never, status) = (&sources[0], &sources[1]);
    assert_eq!(status.last_reconciled, Some(commit(1).id));
    assert_eq!(status.last_attempted, Some(commit(2).id));
    assert!(status.last_attempted_at >= status.last_reconciled_at);
    assert_eq!(status.error, Some(refused()));
    assert_eq!(
        (never.last_reconciled.clone(), never.last_reconciled_at),
        (None, None)
    );
    assert_eq!(never.error, Some(refused()));

    let audit = store.audit(1).await.expect("audit");
    assert_eq!(
        (audit[0].action.as_str(), audit[0].commit.as_ref()),
        ("rejected", Some(&commit(2).id))
    );
    assert_eq!(audit[0].details["reason"], "ValidationFailed");
    assert_eq!(audit[0].details["diagnostics"][0]["code"], "W012");

    // The next good commit clears the error.
    sync(store, &src, 3, &[&a]).await;
    let status = store.sources().await.expect("sources").remove(1);
    assert_eq!(
        (status.last_reconciled, status.error),
        (Some(commit(3).id), None)
    );
}

async fn audit_is_newest_first_with_details(b: Backend) {
    let store = &*b.store;
    let src = source("p");
    let (a1, a2, old) = (task("a", "1"), task("a", "2"), task("old", "1"));
    sync(store, &src, 1, &[&a1, &old]).await;
    sync(store, &src, 2, &[&a2]).await;
    let unchanged = sync(store, &src, 3, &[&a2]).await;
    assert!(unchanged.is_empty());
    sync(store, &src, 4, &[&a1]).await;
    store
        .record_failure(&src, &commit(5), &refused(), Utc::now())
        .await
        .expect("record");

    let audit = store.audit(100).await.expect("audit");
    let seen: Vec<(&str, &CommitId)> = audit
        .iter()
        .map(|e| (e.action.as_str(), e.commit.as_ref().expect("a commit")))
        .collect();
    let expected = [
        ("rejected", 5),
        ("reconciled", 4),
        ("reconciled", 2),
        ("reconciled", 1),
    ];
    let expected: Vec<(&str, CommitId)> =
        expected.iter().map(|(a, n)| (*a, commit(*n).id)).collect();
    assert_eq!(
        seen,
        expected.iter().map(|(a, c)| (*a, c)).collect::<Vec<_>>()
    );
    assert!(audit.windows(2).all(|w| w[0].id > w[1].id));
    assert!(
        audit
            .iter()
            .all(|e| e.source.as_ref() == Some(&src) && e.actor.email == "ada@example.com")
    );

    let entry = |key: &VersionKey| {
        json!({
            "project": "default", "kind": "Task", "name": key.entity.name,
            "version": key.digest.short(), "digest": key.digest.as_str(),
        })
    };
    let second = &audit[2].details;
    assert_eq!(second["registered"], json!([entry(&a2.key)]));
    assert_eq!(second["updated"], json!([entry(&a2.key)]));
    assert_eq!(second["deactivated"], json!([entry(&old.key)]));
    assert_eq!(
        (second["activated"].clone(), second["reactivated"].clone()),
        (json!([]), json!([]))
    );
    assert_eq!(audit[1].details["reactivated"], json!([entry(&a1.key)]));
    assert_eq!(entry(&a1.key)["version"].as_str().map(str::len), Some(12));

    assert_eq!(store.audit(2).await.expect("audit").len(), 2);
    assert!(store.audit(0).await.expect("audit").is_empty());
}

async fn versions_filter_and_flag_the_active_ones(b: Backend) {
    let store = &*b.store;
    let (p, q) = (source("p"), source("q"));
    let t = def("ml", Kind::Task, "train", "1");
    let t2 = def("ml", Kind::Task, "train", "2");
    let w = def("ml", Kind::Workflow, "train", "1");
    let other = def("etl", Kind::Task, "train", "1");
    sync(store, &p, 1, &[&t, &w]).await;
    sync(store, &p, 2, &[&t2, &w]).await;
    // Source q still runs the old task version: it is active, in q.
    sync(store, &q, 3, &[&t, &other]).await;

    let list = |filter: VersionFilter| async move {
        let versions = store.versions(&filter).await.expect("versions");
        versions
            .into_iter()
            .map(|v| (v.key, v.active))
            .collect::<Vec<_>>()
    };
    let all = list(VersionFilter::default()).await;
    assert_eq!(all.len(), 4);
    assert_eq!(
        all[0],
        (other.key.clone(), true),
        "newest registration first"
    );
    assert_eq!(all[1], (t2.key.clone(), true));
    let tasks = VersionFilter {
        kind: Some(Kind::Task),
        name: Some("train".into()),
        project: Some("ml".into()),
    };
    let tasks = list(tasks).await;
    assert_eq!(tasks, vec![(t2.key.clone(), true), (t.key.clone(), true)]);
    let workflows = list(VersionFilter {
        kind: Some(Kind::Workflow),
        ..VersionFilter::default()
    })
    .await;
    assert_eq!(workflows, vec![(w.key.clone(), true)]);
    let etl = list(VersionFilter {
        project: Some("etl".into()),
        ..VersionFilter::default()
    })
    .await;
    assert_eq!(etl, vec![(other.key.clone(), true)]);
    assert!(
        list(VersionFilter {
            name: Some("nope".into()),
            ..VersionFilter::default()
        })
        .await
        .is_empty()
    );

    // Once q moves on too, the old task version is no longer active anywhere.
    sync(store, &q, 4, &[&other]).await;
    let old = list(VersionFilter {
        kind: Some(Kind::Task),
        project: Some("ml".into()),
        ..VersionFilter::default()
    })
    .await;
    assert_eq!(old, vec![(t2.key.clone(), true), (t.key.clone(), false)]);
    let record = store
        .versions(&VersionFilter::default())
        .await
        .expect("versions");
    let t_record = record.iter().find(|v| v.key == t.key).expect("listed");
    assert_eq!(t_record.activations, ids(&[1, 3]));
}

/// What resolving a workflow's callees reads at once is what reading each
/// callee's name reads: its active versions in the project, newest first.
async fn the_active_versions_of_several_names_are_each_name_s_in_one_read(b: Backend) {
    let store = &*b.store;
    let (p, q) = (source("p"), source("q"));
    let t = def("ml", Kind::Task, "train", "1");
    let t2 = def("ml", Kind::Task, "train", "2");
    let w = def("ml", Kind::Workflow, "train", "1");
    let score = def("ml", Kind::Task, "score", "1");
    let other = def("etl", Kind::Task, "train", "1");
    sync(store, &p, 1, &[&t, &w, &score]).await;
    sync(store, &p, 2, &[&t2, &w, &score]).await;
    // Source q still runs the old task version: two are active.
    sync(store, &q, 3, &[&t, &other, &score]).await;

    let names = [
        (Kind::Workflow, "train"),
        (Kind::Task, "train"),
        (Kind::Task, "missing"),
        (Kind::Task, "score"),
    ];
    let together = store
        .active_versions_of("ml", &names)
        .await
        .expect("active versions of names");
    let mut each = Vec::new();
    for (kind, name) in [
        (Kind::Task, "score"),
        (Kind::Task, "train"),
        (Kind::Workflow, "train"),
    ] {
        let versions = store
            .active_versions(kind, name, Some("ml"))
            .await
            .expect("active versions");
        each.extend(versions.into_iter().map(|v| (v.key, v.source)));
    }
    let together: Vec<_> = together.into_iter().map(|v| (v.key, v.source)).collect();
    assert_eq!(together, each);
    assert_eq!(
        together.iter().map(|(key, _)| key).collect::<Vec<_>>(),
        [&score.key, &t2.key, &t.key, &w.key],
        "grouped by name, the newest of a name first, a version active in two sources once"
    );
    assert!(
        store
            .active_versions_of("ml", &[])
            .await
            .expect("no names")
            .is_empty()
    );
}

/// Two weir processes on one state directory (or replicas on one database)
/// write at once; both succeed and shared versions are registered once.
async fn two_stores_on_one_database_apply_concurrently(b: Backend) {
    let second = store::open(&b.url).await.expect("open a second time");
    let shared: Vec<NewVersion> = (0..300).map(|i| task(&format!("shared{i}"), "1")).collect();
    for round in 0..4u32 {
        let own = |prefix: &str| -> Vec<NewVersion> {
            let body = round.to_string();
            (0..500)
                .map(|i| task(&format!("{prefix}{i}"), &body))
                .collect()
        };
        let (p_own, q_own) = (own("p"), own("q"));
        let p: Vec<&NewVersion> = shared.iter().chain(&p_own).collect();
        let q: Vec<&NewVersion> = shared.iter().chain(&q_own).collect();
        let (p_source, q_source) = (source("p"), source("q"));
        let (first_done, second_done) = tokio::join!(
            sync(&*b.store, &p_source, 10 + round, &p),
            sync(&*second, &q_source, 20 + round, &q),
        );
        assert!(!first_done.is_empty() && !second_done.is_empty());
        let active = second.active_set(&p_source).await.expect("active");
        assert_eq!(active, active_of(&p));
    }
    let versions = b
        .store
        .versions(&VersionFilter::default())
        .await
        .expect("versions");
    assert_eq!(versions.len(), 300 + 2 * 4 * 500);
}

/// A repository of 10,000 definitions registers in one apply, and a
/// commit that changes nothing costs no writes of versions.
async fn ten_thousand_versions_apply_in_one_transaction(b: Backend) {
    let store = &*b.store;
    let src = source("big");
    let definitions: Vec<NewVersion> = (0..10_000)
        .map(|i| task(&format!("t{i:05}"), "echo"))
        .collect();
    let tree: Vec<&NewVersion> = definitions.iter().collect();
    let changes = plan(store, &src, 1, &tree).await;
    let started = Instant::now();
    store.apply(&changes, Utc::now()).await.expect("apply");
    let took = started.elapsed();
    eprintln!(
        "applying 10,000 new versions on {} took {took:?}",
        b.url.split(':').next().unwrap_or("")
    );
    assert!(
        took.as_secs() < 30,
        "applying 10,000 versions took {took:?}"
    );

    let again = plan(store, &src, 2, &tree).await;
    assert!(again.is_empty());
    store.apply(&again, Utc::now()).await.expect("apply");
    assert_eq!(store.active_set(&src).await.expect("active").len(), 10_000);
    let keys: Vec<VersionKey> = tree.iter().map(|v| v.key.clone()).collect();
    assert_eq!(
        store.known_versions(&keys).await.expect("known").len(),
        10_000
    );
    assert_eq!(
        store
            .versions(&VersionFilter::default())
            .await
            .expect("versions")
            .len(),
        10_000
    );
    assert_eq!(
        store.audit(10).await.expect("audit").len(),
        1,
        "an unchanged commit is not audited"
    );
}

// ------------------------------------------------------------ SQLite only

#[tokio::test]
async fn a_missing_state_directory_is_created_and_reopening_keeps_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state/nested/weir.db");
    let a = task("a", "1");
    {
        let store = store::open(&format!("sqlite://{}", path.display()))
            .await
            .expect("open");
        sync(&*store, &source("p"), 1, &[&a]).await;
    }
    // A bare path names the same file; migrations already ran.
    let store = store::open(path.to_str().expect("utf-8 path"))
        .await
        .expect("reopen");
    assert_eq!(
        store.active_set(&source("p")).await.expect("active"),
        active_of(&[&a])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_opening_a_fresh_file_at_once_both_succeed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("weir.db").display());
    let (first, second) = tokio::join!(store::open(&url), store::open(&url));
    let (first, second) = (first.expect("first open"), second.expect("second open"));
    sync(&*first, &source("p"), 1, &[&task("a", "1")]).await;
    assert_eq!(
        second.active_set(&source("p")).await.expect("active").len(),
        1
    );
}

#[tokio::test]
async fn a_corrupt_sqlite_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("weir.db");
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, garbage).expect("write garbage");
    let error = match store::open(&format!("sqlite://{}", path.display())).await {
        Ok(_) => panic!("a corrupt file opened"),
        Err(error) => error,
    };
    assert!(
        matches!(
            error,
            store::Error::Connect { .. } | store::Error::Migrate { .. }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
}

#[tokio::test]
async fn a_malformed_stored_value_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("weir.db").display());
    let store = store::open(&url).await.expect("open");
    sync(&*store, &source("p"), 1, &[&task("a", "1")]).await;
    let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
    sqlx::query("UPDATE sources SET last_reconciled_at = 'yesterday'")
        .execute(&pool)
        .await
        .expect("update");
    let error = store.sources().await.expect_err("a corrupt timestamp");
    assert!(matches!(error, store::Error::Corrupt { .. }), "{error:?}");
    assert!(error.to_string().contains("listing sources"), "{error}");
}

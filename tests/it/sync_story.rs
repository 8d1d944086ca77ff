//! The user's story of DESIGN.md sections 2 and 5, on real Git repositories
//! and on both stores: commit → sync → versions; reformat → nothing new;
//! change a task → new versions for it and exactly what is above it;
//! `git revert` → old versions active again, none added (I1); a bad commit →
//! exit 1, active set unchanged, `status` shows why (I3); delete a file →
//! deactivated, versions kept; reset to an older commit → the active set
//! follows (I2).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::common::{GitRepo, TestDb, stdout, weir, weir_json, weir_with};

const TASKS: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: extract, project: churn }
spec:
  inputs: { day: { type: datetime } }
  outputs: { rows: { type: int } }
  script: { interpreter: bash, source: "echo extract" }
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: cleanup, project: churn }
spec:
  script: { interpreter: bash, source: "echo cleanup" }
"#;

const PIPELINE: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: training, project: churn }
spec:
  inputs: { day: { type: datetime } }
  nodes:
    - { id: extract, task: extract, inputs: { day: "{{ inputs.day }}" } }
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: nightly, project: churn }
spec:
  workflow: training
  schedule: { cron: "0 2 * * *", kickoffTimeInput: day }
"#;

/// `weir versions -o json` as name → [(version, active)].
fn versions(db: &TestDb) -> BTreeMap<String, Vec<(String, bool)>> {
    let (code, json) = weir_json(&["versions", "-o", "json"], db);
    assert_eq!(code, 0, "{json:#}");
    let mut map: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
    for v in json.as_array().expect("array") {
        for field in [
            "project",
            "kind",
            "name",
            "version",
            "digest",
            "commit",
            "active",
            "registeredAt",
        ] {
            assert!(!v[field].is_null(), "{field} missing in {v}");
        }
        map.entry(v["name"].as_str().expect("name").to_owned())
            .or_default()
            .push((
                v["version"].as_str().expect("version").to_owned(),
                v["active"].as_bool().expect("active"),
            ));
    }
    map
}

fn active(db: &TestDb) -> BTreeMap<String, String> {
    versions(db)
        .into_iter()
        .filter_map(|(name, vs)| vs.into_iter().find(|(_, a)| *a).map(|(v, _)| (name, v)))
        .collect()
}

fn count(db: &TestDb) -> usize {
    versions(db).values().map(Vec::len).sum()
}

fn sync(repo: &GitRepo, db: &TestDb) -> (i32, Value) {
    weir_json(
        &[
            "sync",
            "--repo",
            repo.path().to_str().expect("utf-8"),
            "--path",
            "defs",
            "-o",
            "json",
        ],
        db,
    )
}

fn story(db: &TestDb) {
    let repo = GitRepo::new();
    repo.write("defs/tasks.yaml", TASKS);
    repo.write("defs/pipeline.yaml", PIPELINE);
    let first = repo.commit("Add the churn pipeline");

    // commit → sync → versions
    let (code, out) = sync(&repo, db);
    assert_eq!(code, 0, "{out:#}");
    assert_eq!(out["status"], "reconciled");
    assert_eq!(out["commit"], first);
    assert_eq!(out["activated"].as_array().expect("list").len(), 4);
    let v1 = active(db);
    assert_eq!(v1.len(), 4);
    let (_, versions_json) = weir_json(&["versions", "-o", "json", "--name", "extract"], db);
    assert_eq!(
        versions_json[0]["commit"], first,
        "a version records the commit where it first appeared"
    );

    // A second sync of the same commit changes nothing.
    let (code, out) = sync(&repo, db);
    assert_eq!(code, 0);
    assert_eq!(out["registered"].as_array().expect("list").len(), 0);

    // Reformat only → no new version.
    let reformatted = TASKS.replace(
        "metadata: { name: cleanup, project: churn }",
        "metadata:\n  project: churn   # same task\n  name: cleanup",
    );
    repo.write("defs/tasks.yaml", &reformatted);
    repo.commit("Reformat");
    assert_eq!(sync(&repo, db).0, 0);
    assert_eq!(count(db), 4, "reformatting registers nothing");

    // Change one task → new versions for it, the workflow and the launch plan; not for `cleanup`.
    repo.write(
        "defs/tasks.yaml",
        &reformatted.replace("echo extract", "echo extract --fast"),
    );
    let change = repo.commit("Speed up extract");
    let (code, out) = sync(&repo, db);
    assert_eq!(code, 0, "{out:#}");
    let v2 = active(db);
    for name in ["extract", "training", "nightly"] {
        assert_ne!(v1[name], v2[name], "{name} gets a new version");
    }
    assert_eq!(v1["cleanup"], v2["cleanup"]);
    assert_eq!(count(db), 7);

    // git revert → the old versions are active again; nothing is registered (I1).
    repo.revert(&change);
    let (code, out) = sync(&repo, db);
    assert_eq!(code, 0, "{out:#}");
    assert_eq!(out["registered"].as_array().expect("list").len(), 0);
    assert_eq!(out["reactivated"].as_array().expect("list").len(), 3);
    assert_eq!(active(db), v1);
    assert_eq!(count(db), 7);
    let (_, versions_json) = weir_json(&["versions", "-o", "json", "--name", "extract"], db);
    let old = versions_json
        .as_array()
        .expect("array")
        .iter()
        .find(|v| v["version"] == v1["extract"].as_str())
        .expect("old version listed");
    assert!(
        old["activations"].as_array().expect("activations").len() >= 2,
        "the reactivation is recorded: {old:#}"
    );
    let good_before_bad = repo
        .repo
        .head()
        .expect("head")
        .peel_to_commit()
        .expect("commit")
        .id()
        .to_string();

    // A bad commit → exit 1; the active set is unchanged; status says why (I3).
    repo.write(
        "defs/pipeline.yaml",
        &PIPELINE.replace("task: extract,", "task: extrakt,"),
    );
    let bad = repo.commit("Break the pipeline");
    let (code, out) = sync(&repo, db);
    assert_eq!(code, 1, "{out:#}");
    assert_eq!(out["status"], "rejected");
    assert_eq!(out["diagnostics"][0]["code"], "W012");
    assert_eq!(active(db), v1, "I3: the previous active set keeps running");
    assert_eq!(count(db), 7);
    let (_, status) = weir_json(&["status", "-o", "json"], db);
    let source = &status[0];
    assert_eq!(source["lastAttemptedCommit"], bad);
    assert_eq!(source["lastReconciledCommit"], good_before_bad);
    assert_eq!(source["error"]["reason"], "ValidationFailed");
    assert_eq!(source["error"]["diagnostics"][0]["code"], "W012");
    assert!(source["error"]["diagnostics"][0]["line"].as_u64().is_some());

    // Fix it by deleting the pipeline file → deactivated, versions kept.
    repo.remove("defs/pipeline.yaml");
    repo.commit("Drop the pipeline for now");
    let (code, out) = sync(&repo, db);
    assert_eq!(code, 0, "{out:#}");
    assert_eq!(out["deactivated"].as_array().expect("list").len(), 2);
    let now = active(db);
    assert_eq!(now.keys().collect::<Vec<_>>(), ["cleanup", "extract"]);
    assert_eq!(count(db), 7, "deactivation deletes no version");
    let (_, status) = weir_json(&["status", "-o", "json"], db);
    assert!(
        status[0]["error"].is_null(),
        "a good commit clears the error"
    );

    // Force-push to the first commit → the active set follows (I2).
    repo.reset_hard(&first);
    let (code, out) = sync(&repo, db);
    assert_eq!(code, 0, "{out:#}");
    assert_eq!(active(db), v1);
    assert_eq!(count(db), 7);

    // The audit log, newest first, says who did what.
    let (code, audit) = weir_json(&["audit", "-o", "json"], db);
    assert_eq!(code, 0);
    let entries = audit.as_array().expect("array");
    assert_eq!(entries[0]["commit"], first);
    assert_eq!(entries[0]["actor"]["email"], "ada@example.com");
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "rejected" && e["commit"] == bad)
    );
    let ids: Vec<i64> = entries
        .iter()
        .map(|e| e["id"].as_i64().expect("id"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
}

#[test]
fn story_on_sqlite() {
    story(&TestDb::sqlite());
}

#[test]
fn story_on_postgres() {
    if let Some(db) = TestDb::postgres() {
        story(&db);
    }
}

#[test]
fn uncommitted_edits_are_not_read_and_missing_things_are_clear_errors() {
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    repo.write("defs/tasks.yaml", TASKS);
    repo.commit("tasks");
    repo.write("defs/tasks.yaml", "this: [is not committed");
    let (code, out) = sync(&repo, &db);
    assert_eq!(code, 0, "{out:#}");

    let path = repo.path().to_str().expect("utf-8");
    let missing_path = weir_with(&["sync", "--repo", path, "--path", "nope"], &db);
    assert_eq!(missing_path.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing_path.stderr).contains("path `nope` does not exist"));
    let (_, status) = weir_json(&["status", "-o", "json"], &db);
    let broken = status
        .as_array()
        .expect("array")
        .iter()
        .find(|s| s["source"].as_str().is_some_and(|k| k.ends_with(":nope")))
        .expect("the unreadable source has a status");
    assert_eq!(broken["error"]["reason"], "MissingPath", "{broken:#}");

    let missing_branch = weir_with(&["sync", "--repo", path, "--branch", "release"], &db);
    assert_eq!(missing_branch.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing_branch.stderr).contains("branch `release` does not exist")
    );

    let missing_repo = weir_with(&["sync", "--repo", "/nonexistent/repo"], &db);
    assert_eq!(missing_repo.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing_repo.stderr).contains("/nonexistent/repo"));
}

#[test]
fn a_remote_repository_is_cloned_into_the_state_directory_and_fetched() {
    let db = TestDb::sqlite();
    let origin = GitRepo::new();
    origin.write("defs/tasks.yaml", TASKS);
    origin.commit("tasks");
    let url = format!("file://{}", origin.path().display());
    let (code, out) = weir_json(
        &["sync", "--repo", &url, "--path", "defs", "-o", "json"],
        &db,
    );
    assert_eq!(code, 0, "{out:#}");
    assert_eq!(active(&db).len(), 2);
    origin.write(
        "defs/more.yaml",
        &TASKS
            .replace("name: extract", "name: extract-two")
            .replace("name: cleanup", "name: cleanup-two"),
    );
    let second = origin.commit("more tasks");
    let (code, out) = weir_json(
        &["sync", "--repo", &url, "--path", "defs", "-o", "json"],
        &db,
    );
    assert_eq!(code, 0, "{out:#}");
    assert_eq!(out["commit"], second, "the clone was fetched");
    assert_eq!(active(&db).len(), 4);
}

#[test]
fn plan_shows_what_a_pull_request_would_change_without_a_store() {
    let repo = GitRepo::new();
    repo.write("defs/tasks.yaml", TASKS);
    repo.write("defs/pipeline.yaml", PIPELINE);
    let base = repo.commit("base");
    repo.write(
        "defs/tasks.yaml",
        &TASKS.replace("echo extract", "echo extract v2"),
    );
    repo.write(
        "defs/pipeline.yaml",
        &PIPELINE.replace("0 2 * * *", "30 3 * * *").replace(
            "kickoffTimeInput: day",
            "kickoffTimeInput: day, timezone: Europe/Berlin",
        ),
    );
    repo.write(
        "defs/hourly.yaml",
        &PIPELINE
            .split("---")
            .nth(1)
            .expect("launch plan")
            .replace("name: nightly", "name: hourly")
            .replace("0 2 * * *", "@hourly"),
    );
    let head = repo.commit("head");
    let path = repo.path().to_str().expect("utf-8");
    let json = plan_json(path, &base, &head);
    let names = |k: &str| -> Vec<String> {
        json[k]
            .as_array()
            .expect("list")
            .iter()
            .map(|e| e["name"].as_str().expect("name").to_owned())
            .collect()
    };
    assert_eq!(names("added"), ["hourly"]);
    assert_eq!(
        names("changed"),
        ["extract", "training", "nightly"],
        "ordered by kind"
    );
    assert!(names("removed").is_empty());
    assert_eq!(json["unchanged"], 1);
    let schedules: Vec<(String, String)> = json["schedules"]
        .as_array()
        .expect("list")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().expect("name").to_owned(),
                s["change"].as_str().expect("change").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        schedules,
        [
            ("hourly".to_owned(), "started".to_owned()),
            ("nightly".to_owned(), "changed".to_owned())
        ]
    );

    let md = crate::common::weir(&[
        "plan", "--repo", path, "--base", &base, "--head", &head, "--path", "defs", "--format",
        "markdown",
    ]);
    let text = String::from_utf8_lossy(&md.stdout);
    assert!(text.contains("**1 added, 3 changed, 0 removed**"), "{text}");
    assert!(
        text.contains("| changed | Task | churn | `extract` |"),
        "{text}"
    );

    // An invalid head exits 1 with its diagnostics.
    repo.write(
        "defs/pipeline.yaml",
        &PIPELINE.replace("workflow: training", "workflow: trainin"),
    );
    let bad = repo.commit("bad");
    let out = crate::common::weir(&[
        "plan", "--repo", path, "--base", &base, "--head", &bad, "--path", "defs",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("W013"));
}

#[test]
fn rollback_writes_a_commit_and_the_next_sync_reactivates_the_old_version() {
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    repo.write("defs/tasks.yaml", TASKS);
    repo.write("defs/pipeline.yaml", PIPELINE);
    repo.commit("Add the churn pipeline");
    assert_eq!(sync(&repo, &db).0, 0);
    let v1 = active(&db);
    repo.write(
        "defs/tasks.yaml",
        &TASKS.replace("echo extract", "echo extract --broken"),
    );
    let bad = repo.commit("Try a faster extract");
    assert_eq!(sync(&repo, &db).0, 0);
    assert_ne!(active(&db)["extract"], v1["extract"]);

    let path = repo.path().to_str().expect("utf-8");
    let rollback = |extra: &[&str]| {
        let mut args = vec![
            "rollback", "extract", "--kind", "Task", "--repo", path, "--path", "defs",
        ];
        args.extend_from_slice(extra);
        weir_with(&args, &db)
    };

    // Uncommitted edits to the files it would restore: refused, nothing written.
    repo.write("defs/tasks.yaml", "# work in progress\n");
    let refused = rollback(&[]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("uncommitted changes to defs/tasks.yaml")
    );
    repo.write(
        "defs/tasks.yaml",
        &TASKS.replace("echo extract", "echo extract --broken"),
    );

    let out = rollback(&[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let head = repo
        .repo
        .head()
        .expect("head")
        .peel_to_commit()
        .expect("commit");
    let message = head.message().ok().unwrap_or_default().to_owned();
    assert!(
        message.starts_with(&format!("Roll back Task/extract to {}", v1["extract"])),
        "{message}"
    );
    assert!(
        message.contains(&format!("Weir-Rollback-Of: {bad}")),
        "{message}"
    );

    let (code, out) = sync(&repo, &db);
    assert_eq!(code, 0, "{out:#}");
    assert_eq!(
        out["registered"].as_array().expect("list").len(),
        0,
        "nothing re-registered"
    );
    assert_eq!(active(&db), v1, "the old versions are active again");
    let (_, audit) = weir_json(&["audit", "-o", "json"], &db);
    assert_eq!(
        audit[0]["actor"]["email"], "ada@example.com",
        "the audit says who rolled back"
    );
    assert_eq!(
        audit[0]["details"]["reactivated"]
            .as_array()
            .expect("list")
            .len(),
        3
    );

    // A version that is not there: a clear refusal, not found (exit 3).
    let again = rollback(&["--to", "ffffffffffff"]);
    assert_eq!(again.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&again.stderr).contains("has no version ffffffffffff"));
}

#[test]
fn an_unreachable_remote_is_a_clear_error_and_changes_nothing() {
    let db = TestDb::sqlite();
    let (code, _) = {
        let repo = GitRepo::new();
        repo.write("defs/tasks.yaml", TASKS);
        repo.commit("tasks");
        sync(&repo, &db)
    };
    assert_eq!(code, 0);
    let before = active(&db);
    let out = weir_with(
        &["sync", "--repo", "file:///nonexistent/pipelines.git"],
        &db,
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot clone `file:///nonexistent/pipelines.git`"),
        "{stderr}"
    );
    assert_eq!(active(&db), before, "the last good state is kept");

    // A token that cannot be had is named before any network access.
    let out = weir_with(
        &[
            "sync",
            "--repo",
            "https://git.example.invalid/pipelines.git",
            "--token-env",
            "WEIR_IT_NO_SUCH_TOKEN",
        ],
        &db,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("`WEIR_IT_NO_SUCH_TOKEN` (--token-env) is not set")
    );
}

#[test]
fn two_syncs_at_once_on_one_state_directory_both_succeed() {
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    repo.write("defs/tasks.yaml", TASKS);
    repo.write("defs/pipeline.yaml", PIPELINE);
    repo.commit("pipeline");
    let path = repo.path().to_str().expect("utf-8").to_owned();
    let store = db.args();
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
                .args(["sync", "--repo", &path, "--path", "defs", "-o", "json"])
                .args(&store)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(count(&db), 4, "each version registered once");
    assert_eq!(active(&db).len(), 4);
}

#[test]
fn rollback_commits_only_what_it_checked_and_never_writes_through_links() {
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    repo.write("defs/tasks.yaml", TASKS);
    repo.commit("v1");
    assert_eq!(sync(&repo, &db).0, 0);
    let v1 = active(&db);
    repo.write(
        "defs/tasks.yaml",
        &TASKS.replace("echo extract", "echo extract v2"),
    );
    repo.commit("v2");
    assert_eq!(sync(&repo, &db).0, 0);

    // Something unrelated and broken is staged: it must not ride along.
    repo.write("defs/wip.yaml", "kind: [broken\n");
    let mut index = repo.repo.index().expect("index");
    index
        .add_path(std::path::Path::new("defs/wip.yaml"))
        .expect("stage");
    index.write().expect("write");

    let path = repo.path().to_str().expect("utf-8");
    let args = ["rollback", "extract", "--repo", path, "--path", "defs"];
    let out = weir_with(&args, &db);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let head = repo
        .repo
        .head()
        .expect("head")
        .peel_to_tree()
        .expect("tree");
    assert!(
        head.get_path(std::path::Path::new("defs/wip.yaml"))
            .is_err(),
        "staged files are not committed"
    );
    assert_eq!(sync(&repo, &db).0, 0, "the rollback commit is valid");
    assert_eq!(active(&db)["extract"], v1["extract"]);

    // The file to restore is a symbolic link in the working tree: refused.
    std::fs::remove_file(repo.path().join("defs/wip.yaml")).expect("rm");
    let mut index = repo.repo.index().expect("index");
    index
        .remove_path(std::path::Path::new("defs/wip.yaml"))
        .expect("unstage");
    index.write().expect("write");
    repo.write(
        "defs/tasks.yaml",
        &TASKS.replace("echo extract", "echo extract v3"),
    );
    repo.commit("v3");
    assert_eq!(sync(&repo, &db).0, 0);
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("victim.txt"), "untouched").expect("write");
    std::fs::remove_file(repo.path().join("defs/tasks.yaml")).expect("rm");
    std::os::unix::fs::symlink(
        outside.path().join("victim.txt"),
        repo.path().join("defs/tasks.yaml"),
    )
    .expect("link");
    let out = weir_with(&args, &db);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("symbolic link"));
    assert_eq!(
        std::fs::read_to_string(outside.path().join("victim.txt")).expect("read"),
        "untouched"
    );
}

#[test]
fn the_source_follows_its_branch_not_the_checkout() {
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    repo.write("defs/tasks.yaml", TASKS);
    let main = repo.commit("main");
    assert_eq!(sync(&repo, &db).0, 0);
    let commit = repo
        .repo
        .find_commit(git2::Oid::from_str(&main).expect("sha"))
        .expect("commit");
    repo.repo.branch("feature", &commit, false).expect("branch");
    repo.repo.set_head("refs/heads/feature").expect("checkout");
    repo.write(
        "defs/tasks.yaml",
        &TASKS.replace("echo cleanup", "echo feature work"),
    );
    repo.commit("feature work");
    let (code, out) = sync(&repo, &db);
    assert_eq!(code, 0, "{out:#}");
    assert_eq!(out["commit"], main, "still main's head");
    let (_, status) = weir_json(&["status", "-o", "json"], &db);
    assert_eq!(
        status.as_array().expect("array").len(),
        1,
        "one source, not one per checkout"
    );
}

#[test]
fn links_that_cannot_carry_definitions_do_not_block_a_commit_and_secrets_stay_out_of_errors() {
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    repo.write("defs/v2/tasks.yaml", TASKS);
    std::os::unix::fs::symlink("v2", repo.path().join("defs/latest")).expect("link");
    std::os::unix::fs::symlink("/usr/share/doc/README", repo.path().join("defs/NOTES"))
        .expect("link");
    repo.commit("links");
    let (code, out) = sync(&repo, &db);
    assert_eq!(code, 0, "{out:#}");
    assert_eq!(active(&db).len(), 2);

    let out = weir_with(
        &[
            "sync",
            "--repo",
            "https://bob:ghp_SECRET123@127.0.0.1:9/x.git",
        ],
        &db,
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("SECRET"), "{stderr}");
    assert!(stderr.contains("https://127.0.0.1:9/x.git"), "{stderr}");
}

#[test]
fn plan_of_a_pull_request_that_creates_the_folder() {
    let repo = GitRepo::new();
    repo.write("README.md", "pipelines come next\n");
    let base = repo.commit("empty");
    repo.write("defs/tasks.yaml", TASKS);
    let head = repo.commit("first pipelines");
    let path = repo.path().to_str().expect("utf-8");
    let json = plan_json(path, &base, &head);
    assert_eq!(json["added"].as_array().expect("list").len(), 2);
}

#[test]
fn an_identity_belongs_to_one_source() {
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    repo.write("team-a/tasks.yaml", TASKS);
    repo.write("team-b/tasks.yaml", TASKS);
    repo.commit("two folders define the same tasks");
    let path = repo.path().to_str().expect("utf-8");
    let (code, out) = weir_json(
        &["sync", "--repo", path, "--path", "team-a", "-o", "json"],
        &db,
    );
    assert_eq!(code, 0, "{out:#}");
    let (code, out) = weir_json(
        &["sync", "--repo", path, "--path", "team-b", "-o", "json"],
        &db,
    );
    assert_eq!(code, 1, "{out:#}");
    assert_eq!(out["diagnostics"][0]["code"], "W010");
    assert!(
        out["diagnostics"][0]["message"]
            .as_str()
            .expect("message")
            .contains("already defined by source")
    );
    assert_eq!(out["diagnostics"][0]["file"], "team-b/tasks.yaml");
    assert_eq!(
        active(&db).len(),
        2,
        "team-a keeps its entities, team-b activates nothing"
    );
}

/// `weir plan -o json` of `base..head` for `defs`; it must succeed.
fn plan_json(repo: &str, base: &str, head: &str) -> Value {
    let out = crate::common::weir(&[
        "plan", "--repo", repo, "--base", base, "--head", head, "--path", "defs", "-o", "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// A pass reads only what changed since the snapshot of the last one; a
/// snapshot that is damaged, or that describes another store's state, is
/// never trusted: the pass reads the whole tree and decides the same.
#[test]
fn a_damaged_or_foreign_snapshot_costs_speed_not_correctness() {
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    repo.write("defs/tasks.yaml", TASKS);
    repo.write("defs/pipeline.yaml", PIPELINE);
    repo.commit("Add the churn pipeline");
    assert_eq!(sync(&repo, &db).0, 0);
    let TestDb::Sqlite(state) = &db else {
        unreachable!()
    };
    let snapshots: Vec<_> = std::fs::read_dir(state.path().join("snapshots"))
        .expect("a pass keeps a snapshot")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(snapshots.len(), 1);

    // Damaged: the next pass still registers exactly what changed.
    std::fs::write(&snapshots[0], b"{ not json").expect("damage");
    repo.write(
        "defs/tasks.yaml",
        &TASKS.replace("echo cleanup", "echo tidy"),
    );
    repo.commit("Change the cleanup step");
    let (code, out) = sync(&repo, &db);
    assert_eq!(code, 0, "{out:#}");
    assert_eq!(out["updated"].as_array().expect("list").len(), 1, "{out:#}");
    assert_eq!(out["active"], 4);

    // Foreign: the same state directory against an empty database. The
    // snapshot's commit is not that store's, so everything is registered.
    let other = tempfile::tempdir().expect("tempdir");
    let other_db = format!("sqlite://{}", other.path().join("other.db").display());
    let out = weir(&[
        "sync",
        "--repo",
        repo.path().to_str().expect("utf-8"),
        "--path",
        "defs",
        "--state-dir",
        state.path().to_str().expect("utf-8"),
        "--db",
        &other_db,
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let json: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        json["activated"].as_array().expect("list").len(),
        4,
        "{json:#}"
    );
}

//! The web console in a real browser (headless Chromium, `browser.rs`),
//! on the examples served by the real daemon: what a user sees from the
//! commit to a run's lineage, a refused commit, and hostile text shown as
//! text. The console's session and CSRF rules are pinned over plain HTTP
//! in `src/http/tests.rs`.

use fantoccini::Locator;
use serde_json::Value;

use crate::browser::Browser;
use crate::common::{Daemon, GitRepo, TestDb, eventually, http};
use crate::engine::copy_into;

const TOKEN: &str = "console-token";

/// The examples under `pipelines/`, and a project whose task's
/// description, log and output hold HTML and script tags.
fn repository() -> GitRepo {
    let repo = GitRepo::new();
    copy_into(
        &repo,
        &crate::common::root().join("examples/repo"),
        "pipelines",
    );
    for file in ["xss.yaml", "ticks.yaml"] {
        let text = std::fs::read_to_string(crate::common::fixture(&format!("console/{file}")));
        repo.write(&format!("pipelines/xss/{file}"), &text.expect("fixture"));
    }
    repo
}

/// Waits (as [`eventually`] does) until the daemon's API document at
/// `path` (`/api/v1/…`) satisfies `check`: what the daemon does is asked
/// of it, and the page is opened once it is done.
fn until_api(daemon: &Daemon, what: &str, path: &str, check: impl Fn(&Value) -> bool) {
    let auth = format!("Bearer {TOKEN}");
    tokio::task::block_in_place(|| {
        eventually(what, || {
            let (code, body) = http(&daemon.addr, "GET", path, &[("Authorization", &auth)], b"");
            code == 200 && serde_json::from_str(&body).is_ok_and(|v: Value| check(&v))
        })
    });
}

/// Waits until the execution whose page is `page` has ended.
fn until_ended(daemon: &Daemon, page: &str) {
    until_api(
        daemon,
        "the execution ended",
        &format!("/api/v1{page}"),
        |e| !matches!(e["status"].as_str(), Some("queued" | "running")),
    );
}

/// Waits until the source's `field` (`lastReconciledCommit`,
/// `lastAttemptedCommit`) is `commit`.
fn until_source(daemon: &Daemon, field: &str, commit: &str) {
    until_api(
        daemon,
        &format!("{field} is {commit}"),
        "/api/v1/sources",
        |sources| sources[0][field] == commit,
    );
}

/// Starts a run of launch plan `project/name` from its page's form (with
/// `inputs` typed in), waits on the execution's page until it ended, and
/// returns its path and its status.
async fn run_from_the_console(
    browser: &Browser,
    daemon: &Daemon,
    plan: &str,
    inputs: &[(&str, &str)],
) -> (String, String) {
    let path = start_from_the_console(browser, &daemon.url, plan, inputs).await;
    until_ended(daemon, &path);
    browser.open(&format!("{}{path}", daemon.url)).await;
    (path, browser.text("h1 .badge").await)
}

/// Starts a run of launch plan `project/name` from its page's form; the
/// path of the execution's page, where it leads.
async fn start_from_the_console(
    browser: &Browser,
    base: &str,
    plan: &str,
    inputs: &[(&str, &str)],
) -> String {
    browser.open(&format!("{base}/launchplans/{plan}")).await;
    browser.follow("a.button[href$='/run']").await;
    browser.assert_no_console_errors("the run form").await;
    for (name, value) in inputs {
        browser
            .type_into(&format!("[name='in.{name}']"), value)
            .await;
    }
    browser.follow("form.stack button[type=submit]").await;
    let path = browser.path().await;
    assert!(path.starts_with("/executions/"), "the run's page: {path}");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_runs_from_their_commit_to_their_lineage_and_refusals_as_they_are() {
    let db = TestDb::sqlite();
    let repo = repository();
    let good = repo.commit("The examples, and <b>a project</b> that shouts");
    let secrets = tempfile::tempdir().expect("tempdir");
    let token_file = secrets.path().join("api-token");
    std::fs::write(&token_file, TOKEN).expect("write the token");
    let daemon = Daemon::start(
        &db,
        &[
            "--repo",
            repo.path().to_str().expect("utf-8"),
            "--path",
            "pipelines",
            "--interval",
            "1s",
            "--api-token-file",
            token_file.to_str().expect("utf-8"),
            "--console-rollback",
            "commit",
        ],
    );
    let base = daemon.url.clone();
    let browser = Browser::start(1280, 900).await;

    // The token once, then a session.
    browser.open(&format!("{base}/")).await;
    assert_eq!(browser.path().await, "/login");
    browser.type_into("#token", "not the token").await;
    browser.follow("form.stack button[type=submit]").await;
    assert!(
        browser
            .text("p.error")
            .await
            .contains("not this server's API token")
    );
    browser.type_into("#token", TOKEN).await;
    browser.follow("form.stack button[type=submit]").await;
    assert_eq!(browser.path().await, "/");
    browser.assert_no_console_errors("the overview").await;
    assert_eq!(
        browser.attr("dd.reconciled code", "title").await.as_deref(),
        Some(good.as_str()),
        "the overview shows the reconciled commit"
    );
    assert!(
        browser
            .text("dd.reconciled")
            .await
            .contains("<b>a project</b>"),
        "a commit subject is text"
    );

    // A run started from the console: every node succeeded on the graph,
    // a node's log, an output's lineage back to the commit.
    let hour = [("hour", "2026-12-01T10:00:00Z")];
    let (execution, status) =
        run_from_the_console(&browser, &daemon, "etl/hourly-etl-schedule", &hour).await;
    assert_eq!(status, "succeeded");
    let nodes = browser
        .client
        .find_all(Locator::Css("svg.graph g.node"))
        .await
        .expect("the graph's nodes");
    assert_eq!(nodes.len(), 8, "every node of hourly-etl");
    for node in &nodes {
        let class = node.attr("class").await.expect("class").unwrap_or_default();
        assert!(class.contains("s-succeeded"), "{class}");
    }
    assert_eq!(
        browser.attr("dd.commit code", "title").await.as_deref(),
        Some(good.as_str())
    );
    browser.follow("a[href*='/log?node=check']").await;
    browser.assert_no_console_errors("a node's log").await;
    assert!(
        browser.text("pre#log").await.contains("row count"),
        "the check's log"
    );
    browser.open(&format!("{base}{execution}")).await;
    let artifact = browser
        .attr("pre.value a[href^='/lineage/sha256:']", "href")
        .await
        .expect("an output artifact links to its lineage");
    browser.open(&format!("{base}{artifact}")).await;
    let commits = browser
        .client
        .find_all(Locator::Css("ul.commits code"))
        .await
        .expect("commits");
    let mut shown = Vec::new();
    for c in &commits {
        shown.push(c.attr("title").await.expect("title").unwrap_or_default());
    }
    assert_eq!(
        shown,
        [good.as_str()],
        "the lineage goes back to the commit"
    );
    assert!(
        browser
            .client
            .find(Locator::Css("svg.graph g.node.k-commit"))
            .await
            .is_ok(),
        "drawn as a graph"
    );

    // HTML and script tags in a description, a log and an output are text.
    let (shouted, status) = run_from_the_console(&browser, &daemon, "xss/shout-now", &[]).await;
    assert_eq!(status, "succeeded");
    assert!(
        browser
            .text("main")
            .await
            .contains("<script>alert(3)</script>")
    );
    browser
        .open(&format!("{base}{shouted}/log?node=shout"))
        .await;
    assert!(
        browser
            .text("pre#log")
            .await
            .contains("<script>alert(1)</script><img src=x onerror=alert(2)>")
    );
    browser
        .open(&format!("{base}/entities/xss/Task/shout"))
        .await;
    assert_eq!(
        browser.text("p.description").await,
        "<script>alert(1)</script><b>not bold</b>"
    );
    let scripts = browser
        .client
        .execute("return document.scripts.length", vec![])
        .await
        .expect("a script count");
    assert_eq!(scripts, 1, "weir.js alone: nothing shown became a script");
    assert!(
        browser.client.get_alert_text().await.is_err(),
        "no alert was opened"
    );

    // A running node's log is followed live, without reloading the page.
    let ticking = start_from_the_console(&browser, &base, "xss/tick-tock", &[]).await;
    browser
        .open(&format!("{base}{ticking}/log?node=tick"))
        .await;
    assert!(
        browser
            .client
            .find(Locator::Css("pre#log[data-follow]"))
            .await
            .is_ok(),
        "the page follows the running node"
    );
    browser
        .wait_for("//pre[@id='log' and contains(., 'done')]")
        .await;
    let log = browser.text("pre#log").await;
    assert!(log.contains("tick 1") && log.contains("tick 2"), "{log}");
    assert_eq!(log.matches("tick 1").count(), 1, "each line once: {log}");
    browser
        .wait_for("//*[@id='log-status' and text()='ended']")
        .await;
    browser.assert_no_console_errors("a followed log").await;

    // An approval gate decided from the console.
    let gated = start_from_the_console(&browser, &base, "xss/gated-ship", &[]).await;
    until_api(&daemon, "the gate waits", &format!("/api/v1{gated}"), |e| {
        e["nodes"].as_array().is_some_and(|nodes| {
            nodes
                .iter()
                .any(|n| n["id"] == "gate" && n["status"] == "waiting")
        })
    });
    browser.open(&format!("{base}{gated}")).await;
    browser
        .follow("a.button[href*='/approval?node=gate']")
        .await;
    assert_eq!(browser.text("strong.prompt").await, "Ship <b>it</b>?");
    browser.type_into("#by", "Ada Lovelace").await;
    browser.type_into("#comment", "<i>looks good</i>").await;
    browser.follow("button[value=approve]").await;
    assert_eq!(browser.path().await, gated);
    until_ended(&daemon, &gated);
    browser.open(&format!("{base}{gated}")).await;
    assert_eq!(browser.text("h1 .badge").await, "succeeded");
    browser.assert_no_console_errors("an approved run").await;

    // A rollback from the console is a commit, which the daemon reconciles.
    let shout = "pipelines/xss/xss.yaml";
    let text = std::fs::read_to_string(repo.path().join(shout)).expect("read");
    repo.write(
        shout,
        &text.replace("echo '<script>", "echo louder; echo '<script>"),
    );
    let louder = repo.commit("Shout louder");
    until_source(&daemon, "lastReconciledCommit", &louder);
    browser
        .open(&format!("{base}/entities/xss/Task/shout"))
        .await;
    let old = browser
        .attr("tr[data-version]:nth-child(2)", "data-version")
        .await
        .expect("the earlier version");
    browser
        .follow(&format!("a[href$='/rollback?to={old}']"))
        .await;
    browser
        .assert_no_console_errors("the rollback's confirmation")
        .await;
    assert!(
        browser.text("pre.diff").await.contains("echo louder"),
        "what changes"
    );
    browser.follow("form.actions button[type=submit]").await;
    browser
        .assert_no_console_errors("the history after a rollback")
        .await;
    assert!(browser.text("p.notice").await.starts_with("Committed"));
    let head = repo
        .repo
        .head()
        .expect("head")
        .peel_to_commit()
        .expect("a commit");
    assert!(
        head.message()
            .unwrap_or_default()
            .starts_with("Roll back Task/shout to "),
        "{:?}",
        head.message()
    );
    let rolled_back = head.id().to_string();
    until_source(&daemon, "lastReconciledCommit", &rolled_back);
    browser
        .open(&format!("{base}/entities/xss/Task/shout"))
        .await;
    assert_eq!(
        browser
            .text(&format!("tr[data-version='{old}'] .badge"))
            .await,
        "active",
        "the version it restored is active again"
    );

    // A commit that breaks a file: its diagnostic on the overview, the
    // last good versions still run.
    let partitions = "pipelines/etl/tasks/partitions.yaml";
    let text = std::fs::read_to_string(repo.path().join(partitions)).expect("read");
    repo.write(
        partitions,
        &text.replacen("spec:\n", "spec:\n  bogus_field: lots\n", 1),
    );
    let broken = repo.commit("Break the partitions task");
    until_source(&daemon, "lastAttemptedCommit", &broken);
    browser.open(&format!("{base}/")).await;
    assert_eq!(
        browser.attr("dd.attempted code", "title").await.as_deref(),
        Some(broken.as_str()),
        "the overview shows the refused commit"
    );
    assert_eq!(
        browser.attr("dd.reconciled code", "title").await.as_deref(),
        Some(rolled_back.as_str()),
        "the last good commit stays reconciled"
    );
    let diagnostics = browser.text("ul.diagnostics").await;
    let line = diagnostics
        .lines()
        .find(|line| line.starts_with(&format!("{partitions}:")))
        .unwrap_or_else(|| panic!("a diagnostic in {partitions}: {diagnostics}"));
    let place = line.split_whitespace().next().expect("its place");
    assert_eq!(place.matches(':').count(), 2, "file:line:col: {place}");
    assert!(
        diagnostics.contains("bogus_field: lots"),
        "with its line: {diagnostics}"
    );
    let hour = [("hour", "2026-12-01T11:00:00Z")];
    let (_, status) =
        run_from_the_console(&browser, &daemon, "etl/hourly-etl-schedule", &hour).await;
    assert_eq!(status, "succeeded", "the last good versions keep running");

    // Every page as a user meets it, without an error in the console.
    for page in [
        "/executions",
        "/executions?status=succeeded&trigger=api",
        "/entities",
        "/entities/etl/Workflow/hourly-etl",
        "/launchplans",
        "/launchplans/sales/daily-sales-report",
        "/launchplans/etl/hourly-etl-schedule/backfill?from=2026-11-01T00:00:00Z&to=2026-11-01T03:00:00Z",
        "/audit",
    ] {
        browser.open(&format!("{base}{page}")).await;
    }
    // From the keyboard: the first Tab reaches "Skip to content", then the
    // navigation, each link focusable in order.
    browser.open(&format!("{base}{execution}")).await;
    let tab = fantoccini::key::Key::Tab.to_string();
    let body = browser
        .client
        .find(Locator::Css("body"))
        .await
        .expect("a body");
    body.send_keys(&tab).await.expect("Tab");
    let focused = browser.client.active_element().await.expect("a focus");
    assert_eq!(focused.text().await.expect("text"), "Skip to content");
    focused.send_keys(&tab).await.expect("Tab");
    let focused = browser.client.active_element().await.expect("a focus");
    assert_eq!(focused.text().await.expect("text"), "weir");
    browser.follow("dd a[href^='/workflows/']").await;
    browser
        .assert_no_console_errors("a workflow version's graph")
        .await;
    let drawn = browser
        .client
        .find_all(Locator::Css("svg.graph g.node"))
        .await
        .expect("its nodes");
    assert_eq!(drawn.len(), 8, "the workflow as written");
    browser
        .open(&format!("{base}/entities/xss/Task/shout"))
        .await;
    browser.follow("main form button[type=submit]").await;
    browser
        .assert_no_console_errors("a diff of two versions")
        .await;
    assert!(browser.text("pre.diff").await.contains("echo louder"));

    // The README's pictures, when asked for (WEIR_CONSOLE_SCREENSHOTS=docs/console).
    if let Some(dir) = std::env::var_os("WEIR_CONSOLE_SCREENSHOTS") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("the screenshots' folder");
        let pages = [
            ("overview", "/".to_owned()),
            ("executions", "/executions".to_owned()),
            ("execution", execution.clone()),
            ("lineage", artifact.clone()),
            (
                "launch-plan",
                "/launchplans/etl/hourly-etl-schedule".to_owned(),
            ),
            ("definition", "/entities/etl/Workflow/hourly-etl".to_owned()),
        ];
        for dark in [false, true] {
            browser.prefer_dark(dark).await;
            for (name, page) in &pages {
                browser.open(&format!("{base}{page}")).await;
                let scheme = if dark { "dark" } else { "light" };
                browser
                    .screenshot(&dir.join(format!("{name}-{scheme}.png")))
                    .await;
            }
        }
        // On a phone.
        browser.prefer_dark(false).await;
        browser
            .client
            .set_window_size(390, 844)
            .await
            .expect("a phone's size");
        browser.open(&format!("{base}{execution}")).await;
        browser.screenshot(&dir.join("execution-phone.png")).await;
    }
    browser.close().await;
    daemon.stop();
}

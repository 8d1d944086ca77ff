//! The HTTP server as a client sees it: each test starts the real router on
//! 127.0.0.1:0 over a real SQLite store and speaks HTTP/1.1 to it through a
//! plain TCP stream (what curl or GitHub would send, nothing more).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::outbound::sign;
use crate::source::git::{GitSource, SourceSpec};
use crate::spec::SourceKey;

const GITHUB_SECRET: &[u8] = b"it's a secret to everybody";
const GENERIC_TOKEN: &str = "generic-token";
const API_TOKEN: &str = "api-token";

/// A running server and the handles a test looks at.
struct Server {
    addr: SocketAddr,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    /// `github`: the source following `master` of the fixture's repository;
    /// `local`: a local path following `dev` (no URLs).
    github: SourceHandle,
    local: SourceHandle,
    shutdown: CancellationToken,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts a server with every secret set; `configure` may change the
    /// state first.
    async fn start(configure: impl FnOnce(&mut AppState)) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::open(&format!("sqlite://{}/weir.db", dir.path().display()))
            .await
            .expect("sqlite store");
        let github = SourceHandle {
            key: SourceKey("https://github.com/Codertocat/Hello-World.git#master:".into()),
            branch: "master".into(),
            repo_urls: vec!["https://github.com/Codertocat/Hello-World.git".into()],
            trigger: Arc::new(Notify::new()),
        };
        let local = SourceHandle {
            key: SourceKey("/srv/pipelines#dev:".into()),
            branch: "dev".into(),
            repo_urls: Vec::new(),
            trigger: Arc::new(Notify::new()),
        };
        let metrics = Arc::new(Metrics::new());
        let readiness = Arc::new(Readiness::new(&[github.key.clone(), local.key.clone()]));
        let mut state = AppState {
            store: store.clone(),
            metrics: metrics.clone(),
            sources: vec![github.clone(), local.clone()],
            readiness: readiness.clone(),
            secrets: Secrets {
                github_webhook_secret: Some(GITHUB_SECRET.to_vec()),
                generic_webhook_token: Some(GENERIC_TOKEN.into()),
                api_token: None,
            },
            max_payload: DEFAULT_MAX_PAYLOAD,
            state_dir: None,
            clock: crate::clock::Clock::system(),
            artifacts: None,
            rollback: None,
        };
        configure(&mut state);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let shutdown = CancellationToken::new();
        let served = tokio::spawn(serve(listener, router(state), shutdown.clone()));
        Server {
            addr,
            store,
            metrics,
            readiness,
            github,
            local,
            shutdown,
            served,
            _dir: dir,
        }
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        send(self.addr, "GET", path, headers, b"").await
    }

    async fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        send(self.addr, "POST", path, headers, body).await
    }

    /// Stops the server and checks it stopped cleanly.
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.served)
            .await
            .expect("the server stops when cancelled")
            .expect("the server task does not panic")
            .expect("the server ends without an IO error");
    }
}

/// What came back.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), read
/// to the end.
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        stream.write_all(&bytes).await.expect("write request");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read response");
        parse_reply(&raw)
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("the server answers within 10 s")
}

fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = std::str::from_utf8(&raw[..split]).expect("an ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut reply = Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    };
    if reply
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        reply.body = dechunk(&reply.body);
    }
    reply
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size_text = std::str::from_utf8(&raw[..end]).expect("ASCII chunk size");
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("hex chunk size");
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 2 + size + 2..];
    }
}

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// The real push delivery (`refs/heads/master` of Codertocat/Hello-World).
fn github_push() -> Vec<u8> {
    std::fs::read(fixture("webhooks/github-push.json")).expect("push fixture")
}

/// Whether `notify` holds a wake-up. The handler has answered before this
/// is asked, so a wake-up would be a stored permit already: no waiting.
async fn was_woken(notify: &Notify) -> bool {
    tokio::select! {
        biased;
        _ = notify.notified() => true,
        _ = std::future::ready(()) => false,
    }
}

/// Waits (at most 5 s) for `notify`'s wake-up.
async fn woken_soon(notify: &Notify) -> bool {
    tokio::time::timeout(Duration::from_secs(5), notify.notified())
        .await
        .is_ok()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Registers `tests/fixtures/valid/minimal.yaml` (task `greet`, workflow
/// `hello`, launch plan `hello-hourly`, project `demo`) from a fresh Git
/// repository, through the real reconcile steps.
async fn register_minimal(store: &dyn Store) -> SourceKey {
    let repo_dir = tempfile::tempdir().expect("repo dir");
    let state_dir = tempfile::tempdir().expect("state dir");
    let mut init = git2::RepositoryInitOptions::new();
    init.initial_head("main");
    let repo = git2::Repository::init_opts(repo_dir.path(), &init).expect("git init");
    std::fs::copy(
        fixture("valid/minimal.yaml"),
        repo_dir.path().join("minimal.yaml"),
    )
    .expect("copy definitions");
    let mut index = repo.index().expect("index");
    index
        .add_path(std::path::Path::new("minimal.yaml"))
        .expect("add");
    let tree = repo
        .find_tree(index.write_tree().expect("tree"))
        .expect("tree");
    let who = git2::Signature::now("Ada Lovelace", "ada@example.com").expect("signature");
    repo.commit(Some("HEAD"), &who, &who, "definitions", &tree, &[])
        .expect("commit");
    let spec = SourceSpec {
        repo: repo_dir.path().display().to_string(),
        branch: None,
        path: String::new(),
        credentials: Default::default(),
    };
    let source = GitSource::open(&spec, state_dir.path()).expect("open source");
    let loaded = crate::reconcile::load(&source, &Default::default(), None).expect("load");
    match crate::reconcile::register(store, loaded, chrono::Utc::now())
        .await
        .expect("register")
    {
        crate::reconcile::Outcome::Reconciled { .. } => source.key(),
        crate::reconcile::Outcome::Rejected { report, .. } => {
            panic!("the fixture is invalid: {:?}", report.diagnostics)
        }
        crate::reconcile::Outcome::Untrusted { refusal, .. } => panic!("{refusal}"),
    }
}

#[tokio::test]
async fn healthz_says_ok() {
    let server = Server::start(|_| {}).await;
    let reply = server.get("/healthz", &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "ok");
    server.stop().await;
}

#[tokio::test]
async fn readyz_waits_until_every_source_reconciled_once() {
    let server = Server::start(|_| {}).await;
    let reply = server.get("/readyz", &[]).await;
    assert_eq!(reply.status, 503);
    assert_eq!(
        reply.json()["pending"],
        json!([server.local.key.0, server.github.key.0])
    );

    server.readiness.mark_reconciled(&server.github.key);
    let reply = server.get("/readyz", &[]).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json()["pending"], json!([server.local.key.0]));

    server.readiness.mark_reconciled(&server.local.key);
    let reply = server.get("/readyz", &[]).await;
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert_eq!(body["ready"], true, "{body:#}");
    assert_eq!(body["pending"], json!([]), "{body:#}");
    assert_eq!(body["store"], json!({ "ok": true }), "{body:#}");
    server.stop().await;
}

#[tokio::test]
async fn readyz_names_a_failing_source_a_stalled_loop_and_a_missing_store() {
    // The server's store is one the test can close.
    let dir = tempfile::tempdir().expect("tempdir");
    let gone = crate::store::sqlite::SqliteStore::open(&format!(
        "sqlite://{}/weir.db",
        dir.path().display()
    ))
    .await
    .expect("sqlite store");
    let server = Server::start({
        let gone = gone.clone();
        move |state| state.store = Arc::new(gone)
    })
    .await;
    server.readiness.mark_reconciled(&server.local.key);
    // A source that cannot be read completed its pass: ready, and shown.
    server
        .readiness
        .mark_failed(&server.github.key, "cannot clone: connection refused");
    let reply = server.get("/readyz", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json()["failing"],
        json!([{ "source": server.github.key.0, "error": "cannot clone: connection refused" }])
    );

    // A loop expected to pass at once and never beating is stalled.
    let engine = server.readiness.register_loop("engine", Duration::ZERO);
    let reply = server.get("/readyz", &[]).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(reply.json()["stalled"][0]["loop"], "engine");
    assert_eq!(
        server.get("/healthz", &[]).await.status,
        200,
        "stalled is not dead"
    );
    server
        .readiness
        .register_loop("engine", Duration::from_secs(30));
    drop(engine);
    assert_eq!(server.get("/readyz", &[]).await.status, 200);

    // The store is gone (its pool is closed: every query fails at once):
    // not ready, and said, once the last answer (kept a second) is out of
    // date. The store is asked as a second from now does, so the probe
    // that follows finds that answer instead of waiting for real.
    gone.close().await;
    server
        .readiness
        .store_state(
            &gone,
            std::time::Instant::now() + super::health::STORE_CACHE,
        )
        .await;
    let reply = server.get("/readyz", &[]).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    let store = &reply.json()["store"];
    assert_eq!(store["ok"], false, "{store}");
    assert!(
        store["error"]
            .as_str()
            .expect("error")
            .contains("pinging the store"),
        "{store}"
    );
    server.stop().await;
}

#[tokio::test]
async fn healthz_fails_when_a_loop_keeps_dying() {
    let server = Server::start(|_| {}).await;
    let engine = server
        .readiness
        .register_loop("engine", Duration::from_secs(30));
    let now = std::time::Instant::now();
    for _ in 0..crate::http::health::CRASH_LOOP {
        engine.restarted(now);
    }
    let reply = server.get("/healthz", &[]).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(reply.json()["crashLooping"], json!(["engine"]));
    server.stop().await;
}

#[tokio::test]
async fn metrics_expose_every_family_in_valid_prometheus_text() {
    let server = Server::start(|_| {}).await;
    let m = &server.metrics;
    let source = &server.github.key.0;
    m.reconciled(source, Duration::from_millis(120), "reconciled");
    m.reconciled(source, Duration::from_millis(80), "rejected");
    m.reconciled(source, Duration::from_millis(30), "FetchFailed");
    m.source_commit(source, "1111111111111111111111111111111111111111");
    m.source_commit(source, "2222222222222222222222222222222222222222");
    m.versions_registered(source, 3);
    m.execution_finished("succeeded");
    m.execution_finished("failed");
    m.schedule_lag(Duration::from_millis(250));
    m.node_finished("train", "succeeded", Duration::from_secs(42));

    let reply = server.get("/metrics", &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = reply.text();
    for expected in [
        "# TYPE weir_reconcile_duration_seconds histogram",
        &format!("weir_reconcile_duration_seconds_count{{source=\"{source}\"}} 3"),
        &format!("weir_reconcile_errors_total{{source=\"{source}\",reason=\"rejected\"}} 1"),
        &format!("weir_reconcile_errors_total{{source=\"{source}\",reason=\"FetchFailed\"}} 1"),
        &format!(
            "weir_source_info{{source=\"{source}\",commit=\"2222222222222222222222222222222222222222\"}} 1"
        ),
        &format!("weir_versions_registered_total{{source=\"{source}\"}} 3"),
        "weir_executions_total{status=\"succeeded\"} 1",
        "weir_executions_total{status=\"failed\"} 1",
        "weir_schedule_lag_seconds_count 1",
        "weir_node_duration_seconds_count{status=\"succeeded\"} 1",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    assert!(
        !text.contains("1111111111"),
        "the old commit stays:\n{text}"
    );
    assert!(
        !text.contains("train"),
        "node durations are not by task:\n{text}"
    );
    promtool_check(&text);
    server.stop().await;
}

/// `promtool check metrics` on `text`: skipped when promtool is not
/// installed, except on CI (`CI=true`), where it must be.
fn promtool_check(text: &str) {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "promtool is needed on CI (Debian package `prometheus`)"
            );
            eprintln!("promtool not installed: skipping `promtool check metrics`");
            return;
        }
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn github_push_with_a_good_signature_wakes_its_source() {
    let server = Server::start(|_| {}).await;
    let body = github_push();
    let signature = sign(GITHUB_SECRET, &body);
    let reply = server
        .post(
            "/hooks/github",
            &[
                ("Content-Type", "application/json"),
                ("X-GitHub-Event", "push"),
                ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
                ("X-Hub-Signature-256", &signature),
            ],
            &body,
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({ "status": "triggered", "sources": [server.github.key.0] })
    );
    assert!(woken_soon(&server.github.trigger).await);
    assert!(
        !was_woken(&server.local.trigger).await,
        "a source on another branch stays asleep"
    );
    server.stop().await;
}

#[tokio::test]
async fn github_ping_is_answered() {
    let server = Server::start(|_| {}).await;
    let body = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    let signature = sign(GITHUB_SECRET, body);
    let reply = server
        .post(
            "/hooks/github",
            &[
                ("X-GitHub-Event", "ping"),
                ("X-Hub-Signature-256", &signature),
            ],
            body,
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["status"], "pong");
    assert!(!was_woken(&server.github.trigger).await);
    server.stop().await;
}

#[tokio::test]
async fn github_push_with_a_bad_signature_is_refused_and_wakes_nothing() {
    let server = Server::start(|_| {}).await;
    let body = github_push();
    for signature in [
        sign(b"not the secret", &body),
        sign(GITHUB_SECRET, b"another body"),
        "sha256=".to_owned(),
        "sha1=0000".to_owned(),
    ] {
        let reply = server
            .post(
                "/hooks/github",
                &[
                    ("X-GitHub-Event", "push"),
                    ("X-Hub-Signature-256", &signature),
                ],
                &body,
            )
            .await;
        assert_eq!(reply.status, 401, "{signature}: {}", reply.text());
    }
    assert!(!was_woken(&server.github.trigger).await);
    assert!(!was_woken(&server.local.trigger).await);
    server.stop().await;
}

#[tokio::test]
async fn github_push_without_a_signature_is_refused() {
    let server = Server::start(|_| {}).await;
    let reply = server
        .post(
            "/hooks/github",
            &[("X-GitHub-Event", "push")],
            &github_push(),
        )
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["error"], "missing X-Hub-Signature-256");
    assert!(!was_woken(&server.github.trigger).await);
    server.stop().await;
}

#[tokio::test]
async fn github_push_to_another_branch_is_acknowledged_and_ignored() {
    let server = Server::start(|_| {}).await;
    let mut push: Value = serde_json::from_slice(&github_push()).expect("JSON fixture");
    push["ref"] = json!("refs/heads/feature");
    let body = serde_json::to_vec(&push).expect("serialize");
    let signature = sign(GITHUB_SECRET, &body);
    let reply = server
        .post(
            "/hooks/github",
            &[
                ("X-GitHub-Event", "push"),
                ("X-Hub-Signature-256", &signature),
            ],
            &body,
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["status"], "ignored");
    assert!(!was_woken(&server.github.trigger).await);
    assert!(!was_woken(&server.local.trigger).await);
    server.stop().await;
}

#[tokio::test]
async fn github_body_over_the_limit_is_413() {
    let server = Server::start(|state| state.max_payload = 1024).await;
    let body = vec![b' '; 2048];
    let signature = sign(GITHUB_SECRET, &body);
    let reply = server
        .post(
            "/hooks/github",
            &[
                ("X-GitHub-Event", "push"),
                ("X-Hub-Signature-256", &signature),
            ],
            &body,
        )
        .await;
    assert_eq!(reply.status, 413);
    assert!(!was_woken(&server.github.trigger).await);
    server.stop().await;
}

#[tokio::test]
async fn github_hook_is_off_without_a_secret() {
    let server = Server::start(|state| state.secrets.github_webhook_secret = None).await;
    let body = github_push();
    let signature = sign(GITHUB_SECRET, &body);
    let reply = server
        .post(
            "/hooks/github",
            &[
                ("X-GitHub-Event", "push"),
                ("X-Hub-Signature-256", &signature),
            ],
            &body,
        )
        .await;
    assert_eq!(reply.status, 404);
    assert!(!was_woken(&server.github.trigger).await);
    server.stop().await;
}

#[tokio::test]
async fn generic_hook_needs_its_token() {
    let server = Server::start(|_| {}).await;
    let reply = server.post("/hooks/generic", &[], b"").await;
    assert_eq!(reply.status, 401);
    let wrong = bearer("nope");
    let reply = server
        .post("/hooks/generic", &[("Authorization", &wrong)], b"")
        .await;
    assert_eq!(reply.status, 401);
    assert!(!was_woken(&server.github.trigger).await);
    assert!(!was_woken(&server.local.trigger).await);

    let right = bearer(GENERIC_TOKEN);
    let reply = server
        .post("/hooks/generic", &[("Authorization", &right)], b"")
        .await;
    assert_eq!(reply.status, 202);
    assert!(woken_soon(&server.github.trigger).await);
    assert!(woken_soon(&server.local.trigger).await);

    let one = format!(
        "/hooks/generic?source={}",
        server.local.key.0.replace('/', "%2F").replace('#', "%23")
    );
    let reply = server.post(&one, &[("Authorization", &right)], b"").await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    assert_eq!(reply.json()["sources"], json!([server.local.key.0]));
    assert!(woken_soon(&server.local.trigger).await);
    assert!(!was_woken(&server.github.trigger).await);

    let reply = server
        .post(
            "/hooks/generic?source=unknown",
            &[("Authorization", &right)],
            b"",
        )
        .await;
    assert_eq!(reply.status, 404);
    server.stop().await;
}

#[tokio::test]
async fn api_returns_what_the_cli_prints_as_json() {
    let server = Server::start(|_| {}).await;
    let source = register_minimal(server.store.as_ref()).await;

    let reply = server.get("/api/v1/sources", &[]).await;
    assert_eq!(reply.status, 200);
    let sources = reply.json();
    assert_eq!(sources[0]["source"], source.0.as_str());
    assert_eq!(sources[0]["ready"], true);

    let reply = server.get("/api/v1/versions", &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json().as_array().map(Vec::len), Some(3));
    let reply = server
        .get("/api/v1/versions?kind=workflow&project=demo", &[])
        .await;
    let versions = reply.json();
    assert_eq!(versions.as_array().map(Vec::len), Some(1), "{versions}");
    assert_eq!(versions[0]["name"], "hello");
    assert_eq!(versions[0]["active"], true);
    let reply = server.get("/api/v1/versions?kind=Pipeline", &[]).await;
    assert_eq!(reply.status, 400);

    let reply = server.get("/api/v1/executions", &[]).await;
    assert_eq!(reply.json(), json!([]));
    let reply = server.get("/api/v1/executions?status=done", &[]).await;
    assert_eq!(reply.status, 400);
    let reply = server.get("/api/v1/executions/nope", &[]).await;
    assert_eq!(reply.status, 404);

    let request = crate::engine::create::Request {
        name: "hello-hourly".into(),
        trigger: crate::spec::Trigger::Manual,
        ..Default::default()
    };
    let (execution, _) = crate::engine::create::create(server.store.as_ref(), &request)
        .await
        .expect("create an execution");
    let reply = server.get("/api/v1/executions?limit=5", &[]).await;
    let list = reply.json();
    assert_eq!(list[0]["id"], execution.id.as_str());
    assert_eq!(list[0]["launchPlan"], "hello-hourly");
    let reply = server
        .get(&format!("/api/v1/executions/{}", execution.id), &[])
        .await;
    assert_eq!(reply.status, 200);
    let nodes = server.store.nodes(&execution.id).await.expect("nodes");
    assert_eq!(
        reply.json(),
        crate::views::to_json(&crate::views::ExecutionView::new(&execution, &nodes))
    );
    assert_eq!(reply.json()["nodes"][0]["task"], "greet");

    let reply = server
        .get(&format!("/api/v1/lineage/{}", execution.id), &[])
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({ "target": execution.id, "kind": "execution", "edges": [], "commits": [] })
    );
    let artifact = format!("sha256:{}", "ab".repeat(32));
    let reply = server
        .get(&format!("/api/v1/lineage/{artifact}?upstream=true"), &[])
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["kind"], "artifact");
    let reply = server.get("/api/v1/lineage/unknown", &[]).await;
    assert_eq!(reply.status, 404);
    server.stop().await;
}

#[tokio::test]
async fn api_token_guards_every_api_route() {
    let server = Server::start(|state| {
        state.secrets.api_token = Some(API_TOKEN.into());
        // Logs are read there (execution `x` has none: 404).
        state.state_dir = Some(std::env::temp_dir());
    })
    .await;
    let right = bearer(API_TOKEN);
    let wrong = bearer("guess");
    for path in [
        "/api/v1/sources",
        "/api/v1/versions",
        "/api/v1/executions",
        "/api/v1/executions/x",
        "/api/v1/executions/x/diff/y",
        "/api/v1/executions/x/logs",
        "/api/v1/lineage/x",
        "/api/v1/audit",
        "/api/v1/status",
        "/api/v1/launchplans",
        "/api/v1/artifacts/sha256:0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        let reply = server.get(path, &[]).await;
        assert_eq!(reply.status, 401, "{path}");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
        let reply = server.get(path, &[("Authorization", &wrong)]).await;
        assert_eq!(reply.status, 401, "{path}");
        let reply = server.get(path, &[("Authorization", &right)]).await;
        assert!(
            reply.status == 200 || reply.status == 404,
            "{path}: {}",
            reply.status
        );
    }
    for path in [
        "/api/v1/runs",
        "/api/v1/backfills",
        "/api/v1/executions/x/cancel",
        "/api/v1/executions/x/relaunch",
        "/api/v1/executions/x/recover",
        "/api/v1/executions/x/nodes/gate/approval",
        "/api/v1/launchplans/default/nope/pause",
        "/api/v1/launchplans/default/nope/resume",
    ] {
        let reply = server.post(path, &[], b"{}").await;
        assert_eq!(reply.status, 401, "{path}");
        let reply = server.post(path, &[("Authorization", &wrong)], b"{}").await;
        assert_eq!(reply.status, 401, "{path}");
        let reply = server.post(path, &[("Authorization", &right)], b"{}").await;
        assert!(
            reply.status == 400 || reply.status == 404,
            "{path}: {}",
            reply.status
        );
    }
    // Health, readiness and metrics stay open for probes and scrapers.
    assert_eq!(server.get("/healthz", &[]).await.status, 200);
    assert_eq!(server.get("/metrics", &[]).await.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn runs_are_refused_without_a_configured_token() {
    let server = Server::start(|_| {}).await;
    register_minimal(server.store.as_ref()).await;
    let reply = server
        .post(
            "/api/v1/runs",
            &[("Authorization", "Bearer anything")],
            br#"{"name":"hello","inputs":{"who":"ada"}}"#,
        )
        .await;
    assert_eq!(reply.status, 403);
    assert!(
        reply.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("configure")),
        "{}",
        reply.text()
    );
    let list = server
        .store
        .executions(&Default::default())
        .await
        .expect("executions");
    assert!(list.is_empty(), "nothing was started");
    server.stop().await;
}

#[tokio::test]
async fn runs_start_an_execution_with_the_token() {
    let server = Server::start(|state| state.secrets.api_token = Some(API_TOKEN.into())).await;
    register_minimal(server.store.as_ref()).await;
    let body = br#"{"name":"hello","project":"demo","inputs":{"who":"ada"},"noCache":true}"#;
    let reply = server.post("/api/v1/runs", &[], body).await;
    assert_eq!(reply.status, 401);

    let right = bearer(API_TOKEN);
    let auth = [("Authorization", right.as_str())];
    let reply = server.post("/api/v1/runs", &auth, body).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let created = reply.json();
    assert_eq!(created["workflow"], "hello");
    assert_eq!(created["trigger"], "api");
    assert_eq!(created["status"], "queued");
    assert_eq!(created["inputs"]["who"], "ada");
    let id = created["id"].as_str().expect("an id");
    assert_eq!(
        reply.header("location"),
        Some(format!("/api/v1/executions/{id}").as_str())
    );
    let reply = server.get(&format!("/api/v1/executions/{id}"), &auth).await;
    assert_eq!(reply.json(), created);

    let reply = server
        .post("/api/v1/runs", &auth, br#"{"name":"no-such-plan"}"#)
        .await;
    assert_eq!(reply.status, 404, "as `weir run`'s not-found");
    assert!(reply.json()["error"].is_string());
    let reply = server.post("/api/v1/runs", &auth, b"{not json").await;
    assert_eq!(reply.status, 400);
    let reply = server
        .post("/api/v1/runs", &auth, br#"{"name":"hello","inputs":{}}"#)
        .await;
    assert_eq!(reply.status, 400, "a required input is missing");
    server.stop().await;
}

#[tokio::test]
async fn cancellations_need_the_token_and_say_what_cannot_be_cancelled() {
    let open = Server::start(|_| {}).await;
    for write in [
        "/api/v1/executions/x/cancel",
        "/api/v1/executions/x/nodes/gate/approval",
        "/api/v1/launchplans/default/nightly/pause",
    ] {
        let reply = open.post(write, &[], b"").await;
        assert_eq!(reply.status, 403, "{write}: writes need a configured token");
    }
    open.stop().await;

    let server = Server::start(|state| state.secrets.api_token = Some(API_TOKEN.into())).await;
    register_minimal(server.store.as_ref()).await;
    let right = bearer(API_TOKEN);
    let auth = [("Authorization", right.as_str())];
    let body = br#"{"name":"hello","project":"demo","inputs":{"who":"ada"}}"#;
    let started = server.post("/api/v1/runs", &auth, body).await.json();
    let id = started["id"].as_str().expect("an id");
    let path = format!("/api/v1/executions/{id}/cancel");
    let reply = server.post(&path, &auth, b"").await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    assert_eq!(reply.json()["id"], id);
    assert_eq!(reply.json()["engine"], Value::Null, "no engine leads here");
    let unknown = server
        .post("/api/v1/executions/nope/cancel", &auth, b"")
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"], "no execution `nope`");

    let mut ended = server
        .store
        .execution(&id.into())
        .await
        .expect("read")
        .expect("there");
    ended.id = "ended".into();
    ended.status = crate::store::Status::Succeeded;
    server
        .store
        .create_execution(&ended, &[])
        .await
        .expect("insert an ended execution");
    let reply = server
        .post("/api/v1/executions/ended/cancel", &auth, b"")
        .await;
    assert_eq!(reply.status, 409, "{}", reply.text());
    assert!(
        reply.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("has already ended (succeeded)")),
        "{}",
        reply.text()
    );
    server.stop().await;
}

#[tokio::test]
async fn backfills_need_the_token_and_answer_what_the_cli_prints() {
    let server = Server::start(|_| {}).await;
    register_minimal(server.store.as_ref()).await;
    let body = br#"{"launchPlan":"hello-hourly","from":"2026-03-29","to":"2026-03-29T04:00"}"#;
    let reply = server
        .post("/api/v1/backfills", &[("Authorization", "Bearer x")], body)
        .await;
    assert_eq!(reply.status, 403, "no token configured: {}", reply.text());
    server.stop().await;

    let server = Server::start(|state| state.secrets.api_token = Some(API_TOKEN.into())).await;
    register_minimal(server.store.as_ref()).await;
    assert_eq!(
        server.post("/api/v1/backfills", &[], body).await.status,
        401
    );
    let right = bearer(API_TOKEN);
    let auth = [("Authorization", right.as_str())];

    // Hourly in Berlin from midnight to 04:00 on the spring-forward day:
    // 00:00, 01:00, then 03:00 (02:00 does not exist).
    let dry = br#"{"launchPlan":"hello-hourly","project":"demo","from":"2026-03-29","to":"2026-03-29T04:00","dryRun":true}"#;
    let reply = server.post("/api/v1/backfills", &auth, dry).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let dry_run = reply.json();
    assert_eq!(dry_run["timezone"], "Europe/Berlin", "{dry_run:#}");
    assert_eq!(dry_run["dryRun"], true);
    let listed = &dry_run["entries"];
    let instants: Vec<&str> = listed
        .as_array()
        .expect("an array")
        .iter()
        .map(|e| e["instant"].as_str().expect("an instant"))
        .collect();
    assert_eq!(
        instants,
        [
            "2026-03-28T23:00:00.000Z",
            "2026-03-29T00:00:00.000Z",
            "2026-03-29T01:00:00.000Z"
        ]
    );
    assert!(
        listed
            .as_array()
            .expect("an array")
            .iter()
            .all(|e| e["status"] == "new")
    );

    let reply = server.post("/api/v1/backfills", &auth, body).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let created = reply.json()["entries"].clone();
    for (made, named) in created
        .as_array()
        .expect("an array")
        .iter()
        .zip(listed.as_array().expect("an array"))
    {
        assert_eq!(made["status"], "created");
        assert_eq!(made["executionStatus"], "queued");
        assert_eq!(
            made["executionId"], named["executionId"],
            "the dry run named it"
        );
    }
    let reply = server.post("/api/v1/backfills", &auth, body).await;
    assert_eq!(reply.status, 200, "nothing new: {}", reply.text());
    assert!(
        reply.json()["entries"]
            .as_array()
            .expect("an array")
            .iter()
            .all(|e| e["status"] == "exists")
    );
    let id = created[0]["executionId"].as_str().expect("an id");
    let reply = server.get(&format!("/api/v1/executions/{id}"), &auth).await;
    assert_eq!(reply.json()["trigger"], "backfill");

    for (body, status) in [
        (&br#"{"launchPlan":"nope","from":"2026-03-29","to":"2026-03-30"}"#[..], 404),
        (br#"{"launchPlan":"hello-hourly","from":"2026-03-30","to":"2026-03-29"}"#, 400),
        (br#"{"launchPlan":"hello-hourly","from":"2026-03-29","to":"2026-03-30","maxParallel":0}"#, 400),
        (br#"{"launchPlan":"hello-hourly","from":"2025-01-01","to":"2026-03-30"}"#, 400),
        (br#"{"launchPlan":"hello-hourly","from":"2026-03-29","until":"2026-03-30"}"#, 400),
        (b"{not json", 400),
    ] {
        let reply = server.post("/api/v1/backfills", &auth, body).await;
        assert_eq!(reply.status, status, "{}", reply.text());
        assert!(reply.json()["error"].is_string());
    }
    server.stop().await;
}

#[tokio::test]
async fn api_diffs_two_executions_as_weir_diff_prints_them() {
    let server = Server::start(|state| state.secrets.api_token = Some(API_TOKEN.into())).await;
    register_minimal(server.store.as_ref()).await;
    let request = crate::engine::create::Request {
        name: "hello-hourly".into(),
        inputs: [("who".to_owned(), json!("grace"))].into(),
        trigger: crate::spec::Trigger::Manual,
        ..Default::default()
    };
    let (later, _) = crate::engine::create::create(server.store.as_ref(), &request)
        .await
        .expect("create an execution");
    // An earlier succeeded run of the same launch plan, and a run of
    // another workflow.
    let mut base = later.clone();
    base.id = "hello-hourly-base".into();
    base.inputs = json!({ "who": "ada" });
    base.status = crate::store::Status::Succeeded;
    base.created_at = later.created_at - chrono::Duration::minutes(1);
    let mut other = later.clone();
    other.id = "other-run".into();
    other.workflow = "other".into();
    for execution in [&base, &other] {
        server
            .store
            .create_execution(execution, &[])
            .await
            .expect("insert an execution");
    }

    let path = format!("/api/v1/executions/{}/diff/{}", later.id, base.id);
    assert_eq!(server.get(&path, &[]).await.status, 401);
    let right = bearer(API_TOKEN);
    let auth = [("Authorization", right.as_str())];
    let reply = server.get(&path, &auth).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let expected = crate::views::diff(server.store.as_ref(), None, &later.id, Some(&base.id))
        .await
        .expect("the diff");
    assert_eq!(reply.json(), crate::views::to_json(&expected));
    assert_eq!(
        reply.json()["inputs"],
        json!([{ "name": "who", "from": "ada", "to": "grace" }])
    );
    assert_eq!(reply.json()["nodes"][0]["change"], "added");

    // Without a base: the last succeeded run of the launch plan before it.
    let reply = server
        .get(&format!("/api/v1/executions/{}/diff", later.id), &auth)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["from"]["id"], base.id.as_str());

    for (path, status) in [
        (format!("/api/v1/executions/{}/diff", base.id), 404),
        (format!("/api/v1/executions/nope/diff/{}", base.id), 404),
        (format!("/api/v1/executions/{}/diff/nope", later.id), 404),
        (
            format!("/api/v1/executions/{}/diff/other-run", later.id),
            400,
        ),
    ] {
        let reply = server.get(&path, &auth).await;
        assert_eq!(reply.status, status, "{path}: {}", reply.text());
        assert!(reply.json()["error"].is_string());
    }
    server.stop().await;
}

/// Signs in to the console of `server` (which has [`API_TOKEN`]): the
/// session's `Cookie` header value, and the CSRF token its forms carry.
async fn console_session(server: &Server) -> (String, String) {
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let body = format!("token={API_TOKEN}");
    let login = server.post("/login", &[form], body.as_bytes()).await;
    let cookie = login.header("set-cookie").expect("a session cookie");
    let session = cookie.split(';').next().expect("name=value").to_owned();
    let page = server
        .get(
            "/launchplans/demo/hello-hourly/run",
            &[("Cookie", &session)],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.text());
    let csrf = page
        .text()
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form carries a CSRF token")
        .to_owned();
    (session, csrf)
}

/// The console's session: every page needs it once a token is configured,
/// the login gives it in a cookie no script can read and no other site
/// sends, and it never redirects off the site.
#[tokio::test]
async fn the_console_asks_for_the_token_once_and_keeps_a_strict_session() {
    let server = Server::start(|state| state.secrets.api_token = Some(API_TOKEN.into())).await;
    register_minimal(server.store.as_ref()).await;
    let reply = server.get("/executions?status=failed", &[]).await;
    assert_eq!(reply.status, 303);
    assert_eq!(
        reply.header("location"),
        Some("/login?next=%2Fexecutions%3Fstatus%3Dfailed")
    );
    assert_eq!(reply.header("content-security-policy"), Some(console::CSP));
    let login = server.get("/login?next=/executions", &[]).await;
    assert_eq!(login.status, 200);
    assert!(login.text().contains(r#"type="password""#));

    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let wrong = server
        .post("/login", &[form], b"token=nope&next=%2Fexecutions")
        .await;
    assert_eq!(wrong.status, 303);
    assert_eq!(
        wrong.header("location"),
        Some("/login?failed=true&next=%2Fexecutions")
    );
    assert!(wrong.header("set-cookie").is_none());
    let body = format!("token={API_TOKEN}&next=%2F%2Fevil.example%2F");
    let right = server.post("/login", &[form], body.as_bytes()).await;
    assert_eq!(right.status, 303);
    assert_eq!(right.header("location"), Some("/"), "never off the site");
    let cookie = right.header("set-cookie").expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(API_TOKEN),
        "the cookie proves, never holds, the token"
    );
    let session = cookie.split(';').next().expect("name=value").to_owned();
    let page = server
        .get("/executions?status=failed", &[("Cookie", &session)])
        .await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains("<h1>Executions</h1>"));
    let forged = server
        .get("/", &[("Cookie", "weir_session=1800000000.00ff")])
        .await;
    assert_eq!(forged.status, 303, "a forged session is no session");
    server.stop().await;
}

/// A console action needs a session, the session's CSRF token and a form
/// from this origin; without a configured token the console only reads.
#[tokio::test]
async fn console_actions_need_the_session_its_csrf_token_and_this_origin() {
    let open = Server::start(|_| {}).await;
    register_minimal(open.store.as_ref()).await;
    let page = open.get("/launchplans/demo/hello-hourly", &[]).await;
    assert_eq!(
        page.status, 200,
        "reads are open without a token, as the API's"
    );
    assert!(
        !page.text().contains("Run…"),
        "and nothing is offered to act"
    );
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let reply = open
        .post("/launchplans/demo/hello/run", &[form], b"csrf=x")
        .await;
    assert_eq!(reply.status, 403);
    open.stop().await;

    let server = Server::start(|state| state.secrets.api_token = Some(API_TOKEN.into())).await;
    register_minimal(server.store.as_ref()).await;
    let (session, csrf) = console_session(&server).await;
    let jar = ("Cookie", session.as_str());

    let path = "/launchplans/demo/hello-hourly/run";
    let without = server.post(path, &[form, jar], b"in.who=ada").await;
    assert_eq!(
        without.status, 422,
        "no CSRF field: the form is refused as malformed"
    );
    let wrong = server.post(path, &[form, jar], b"csrf=00&in.who=ada").await;
    assert_eq!(wrong.status, 403);
    assert!(wrong.text().contains("CSRF token does not match"));
    let body = format!("csrf={csrf}&in.who=ada");
    let elsewhere = server
        .post(
            path,
            &[form, jar, ("Origin", "https://evil.example")],
            body.as_bytes(),
        )
        .await;
    assert_eq!(elsewhere.status, 403, "a form from another origin");
    assert!(
        server
            .store
            .executions(&Default::default())
            .await
            .expect("list")
            .is_empty(),
        "nothing refused started anything"
    );
    let origin = format!("http://{}", server.addr);
    let started = server
        .post(path, &[form, jar, ("Origin", &origin)], body.as_bytes())
        .await;
    assert_eq!(started.status, 303, "{}", started.text());
    let location = started.header("location").expect("the execution's page");
    let list = server
        .store
        .executions(&Default::default())
        .await
        .expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(location, format!("/executions/{}", list[0].id));
    assert_eq!(list[0].inputs["who"], "ada");
    assert_eq!(list[0].trigger, crate::spec::Trigger::Api);

    // An input the workflow does not have is refused on the form, saying
    // why, as `weir run` refuses it.
    let bad = format!("csrf={csrf}&in.whom=ada");
    let refused = server.post(path, &[form, jar], bad.as_bytes()).await;
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(
        refused.text().contains("input `whom`"),
        "{}",
        refused.text()
    );

    let cancel = format!("{location}/cancel");
    let confirm = server.get(&cancel, &[jar]).await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.text().contains("Cancel the execution"));
    let wrong = server.post(&cancel, &[form, jar], b"csrf=00").await;
    assert_eq!(wrong.status, 403);
    let body = format!("csrf={csrf}");
    let done = server.post(&cancel, &[form, jar], body.as_bytes()).await;
    assert_eq!(done.status, 303, "{}", done.text());
    let id = location.trim_start_matches("/executions/");
    let asked = server
        .store
        .execution(&id.into())
        .await
        .expect("read")
        .expect("there");
    assert!(asked.cancel_requested);
    server.stop().await;
}

/// Without `--console-rollback`, the console never writes to the
/// repository: it shows the `weir rollback` command that would.
#[tokio::test]
async fn a_console_that_does_not_write_rollbacks_shows_the_command() {
    let server = Server::start(|state| state.secrets.api_token = Some(API_TOKEN.into())).await;
    register_minimal(server.store.as_ref()).await;
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let (session, csrf) = console_session(&server).await;
    let jar = ("Cookie", session.as_str());
    let body = format!("csrf={csrf}&to=0123456789ab");
    let reply = server
        .post(
            "/entities/demo/Task/greet/rollback",
            &[form, jar],
            body.as_bytes(),
        )
        .await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert!(
        reply
            .text()
            .contains("weir rollback greet --kind Task --project demo --to 0123456789ab --push"),
        "{}",
        reply.text()
    );
    let confirm = server
        .get("/entities/demo/Task/greet/rollback?to=0123456789ab", &[jar])
        .await;
    assert_eq!(confirm.status, 404, "no such version: no command to show");
    server.stop().await;
}

/// A backfill from the console shows its dry run first, creates nothing
/// until confirmed, then creates each instant's execution once.
#[tokio::test]
async fn a_console_backfill_shows_its_dry_run_before_creating_anything() {
    let server = Server::start(|state| state.secrets.api_token = Some(API_TOKEN.into())).await;
    register_minimal(server.store.as_ref()).await;
    let (session, csrf) = console_session(&server).await;
    let jar = ("Cookie", session.as_str());
    let path = "/launchplans/demo/hello-hourly/backfill";
    let range = "from=2026-11-01T00%3A00%3A00Z&to=2026-11-01T02%3A00%3A00Z";
    let dry = server.get(&format!("{path}?{range}"), &[jar]).await;
    assert_eq!(dry.status, 200, "{}", dry.text());
    assert!(
        dry.text().contains("Dry run: 2 to create, 0 existing"),
        "{}",
        dry.text()
    );
    assert!(dry.text().contains("Create 2 executions"));
    let none = server
        .store
        .executions(&Default::default())
        .await
        .expect("list");
    assert!(none.is_empty(), "a dry run creates nothing");

    let bad = server
        .get(&format!("{path}?{range}&maxParallel=zero"), &[jar])
        .await;
    assert!(
        bad.text().contains("maxParallel: `zero` is not a count"),
        "{}",
        bad.text()
    );

    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let body = format!("csrf={csrf}&{range}&maxParallel=2");
    let created = server.post(path, &[form, jar], body.as_bytes()).await;
    assert_eq!(created.status, 303, "{}", created.text());
    let location = created.header("location").expect("the range again");
    let shown = server.get(location, &[jar]).await;
    assert!(
        shown.text().contains("Created 2 executions"),
        "{}",
        shown.text()
    );
    assert!(
        shown.text().contains("<h2>2 existing</h2>"),
        "{}",
        shown.text()
    );
    let list = server
        .store
        .executions(&Default::default())
        .await
        .expect("list");
    assert_eq!(list.len(), 2, "00:00 and 01:00: `to` is excluded");
    assert!(
        list.iter()
            .all(|e| e.trigger == crate::spec::Trigger::Backfill)
    );
    let again = server.get(&format!("{path}?{range}"), &[jar]).await;
    assert!(
        again.text().contains("Dry run: 0 to create, 2 existing"),
        "{}",
        again.text()
    );
    let wrong = format!("csrf=00&{range}");
    let refused = server.post(path, &[form, jar], wrong.as_bytes()).await;
    assert_eq!(refused.status, 403);
    server.stop().await;
}

/// A launch plan's next instants are shown in its own time zone, with the
/// daylight-saving change said in words.
#[tokio::test]
async fn a_launch_plan_page_marks_a_daylight_saving_change() {
    let server = Server::start(|_| {}).await;
    register_minimal(server.store.as_ref()).await;
    let page = server
        .get(
            "/launchplans/demo/hello-hourly?from=2026-10-24T23:30:00Z",
            &[],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.text());
    let text = page.text();
    assert!(text.contains("Next runs, in Europe/Berlin"), "{text}");
    assert!(text.contains("2026-10-25T02:00:00+02:00"), "{text}");
    assert!(
        text.contains("2026-10-25T02:00:00+01:00"),
        "the hour repeated: {text}"
    );
    assert!(
        text.contains("daylight-saving change: +02:00 → +01:00"),
        "{text}"
    );
    let bad = server
        .get("/launchplans/demo/hello-hourly?from=yesterday-ish", &[])
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text());
    server.stop().await;
}

//! Shared helpers: run the built `weir` binary, read fixtures, build trees.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use weir::validate::{self, Options, Report, SourceFile, Tree};

/// The repository root (where `Cargo.toml` is).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures").join(rel)
}

/// Runs `weir ARGS` from the repository root, with colours off.
pub fn weir(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .output()
        .expect("the weir binary runs")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `weir ARGS` with `env` set on top of the test's environment (and
/// no `WEIR_API_TOKEN` but the one `env` gives).
pub fn weir_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .env_remove("WEIR_API_TOKEN")
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .output()
        .expect("the weir binary runs")
}

/// `ARGS` reading the store `db`, then `ARGS` through a daemon (`server`:
/// `--server URL` and its token): the same exit code, stdout and stderr.
#[track_caller]
pub fn assert_same_both_ways(args: &[&str], db: &TestDb, server: &[&str]) -> Output {
    let store = db.args();
    let direct: Vec<&str> = args
        .iter()
        .copied()
        .chain(store.iter().map(String::as_str))
        .collect();
    let served: Vec<&str> = args.iter().chain(server).copied().collect();
    let (direct, served) = (weir(&direct), weir(&served));
    assert_eq!(
        (direct.status.code(), stderr(&direct)),
        (served.status.code(), stderr(&served)),
        "weir {args:?}: exit code and stderr"
    );
    assert_eq!(stdout(&direct), stdout(&served), "weir {args:?}: stdout");
    served
}

/// Runs `weir validate ARGS -o json` and parses the result.
pub fn validate_json(path: &Path) -> (i32, serde_json::Value) {
    let out = weir(&["validate", path.to_str().expect("utf-8 path"), "-o", "json"]);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "invalid JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out.status.code().expect("exited"), json)
}

/// Validates in-memory files with the library.
pub fn validate_files(files: &[(&str, &str)]) -> Report {
    validate_files_with(files, &Options::default())
}

/// [`validate_files`] with other options (other task types, say).
pub fn validate_files_with(files: &[(&str, &str)], options: &Options) -> Report {
    let tree = Tree {
        files: files
            .iter()
            .map(|(path, text)| SourceFile {
                path: (*path).to_owned(),
                text: (*text).to_owned(),
            })
            .collect(),
        ..Tree::default()
    };
    validate::validate(tree, options)
}

/// A Git repository in a temporary folder, driven with git2.
pub struct GitRepo {
    pub dir: tempfile::TempDir,
    pub repo: git2::Repository,
}

impl GitRepo {
    /// An empty repository whose branch is `main`.
    pub fn new() -> GitRepo {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut opts = git2::RepositoryInitOptions::new();
        opts.initial_head("main");
        let repo = git2::Repository::init_opts(dir.path(), &opts).expect("git init");
        let mut config = repo.config().expect("config");
        config.set_str("user.name", "Ada Lovelace").expect("name");
        config
            .set_str("user.email", "ada@example.com")
            .expect("email");
        GitRepo { dir, repo }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.dir.path().join(rel)).expect("remove");
    }

    /// Stages everything (additions and deletions) and commits on HEAD.
    pub fn commit(&self, message: &str) -> String {
        let mut index = self.repo.index().expect("index");
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .expect("add");
        index.update_all(["*"], None).expect("update");
        index.write().expect("write index");
        let tree = self
            .repo
            .find_tree(index.write_tree().expect("tree"))
            .expect("tree");
        let sig = self.repo.signature().expect("signature");
        let parent = self.repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        self.repo
            .commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
            .expect("commit")
            .to_string()
    }

    /// `git revert SHA` (no conflicts expected).
    pub fn revert(&self, sha: &str) -> String {
        let commit = self
            .repo
            .find_commit(git2::Oid::from_str(sha).expect("sha"))
            .expect("commit");
        self.repo.revert(&commit, None).expect("revert");
        self.repo.cleanup_state().expect("cleanup");
        let summary = commit
            .summary()
            .ok()
            .flatten()
            .unwrap_or_default()
            .to_owned();
        self.commit(&format!("Revert \"{summary}\""))
    }

    /// `git reset --hard SHA` (what a force-push looks like to a reader).
    pub fn reset_hard(&self, sha: &str) {
        let object = self.repo.revparse_single(sha).expect("revision");
        self.repo
            .reset(&object, git2::ResetType::Hard, None)
            .expect("reset");
    }
}

/// Where a test's store lives: a SQLite file, or a fresh PostgreSQL schema.
pub enum TestDb {
    Sqlite(tempfile::TempDir),
    Postgres {
        url: String,
        base: String,
        schema: String,
        /// Clones and snapshots still live in a state directory.
        state: tempfile::TempDir,
    },
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { base, schema, .. } = self {
            let _ = Command::new("psql")
                .args([
                    base.as_str(),
                    "-qc",
                    &format!("drop schema if exists {schema} cascade"),
                ])
                .status();
        }
    }
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        TestDb::Sqlite(tempfile::tempdir().expect("tempdir"))
    }

    /// A fresh schema in the database at `WEIR_TEST_POSTGRES_URL`; `None`
    /// (skip) when it is not set, a failure when `CI=true`.
    pub fn postgres() -> Option<TestDb> {
        let Ok(base) = std::env::var("WEIR_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "WEIR_TEST_POSTGRES_URL is not set; CI must test PostgreSQL"
            );
            eprintln!("skipping: WEIR_TEST_POSTGRES_URL is not set");
            return None;
        };
        let schema = format!("weir_it_{}_{}", std::process::id(), rand_suffix());
        let status = Command::new("psql")
            .args([base.as_str(), "-qc", &format!("create schema {schema}")])
            .status()
            .expect("psql runs");
        assert!(status.success(), "cannot create schema {schema} at {base}");
        let sep = if base.contains('?') { '&' } else { '?' };
        Some(TestDb::Postgres {
            url: format!("{base}{sep}options=-csearch_path%3D{schema}"),
            base,
            schema,
            state: tempfile::tempdir().expect("tempdir"),
        })
    }

    /// The database URL of this store.
    pub fn url(&self) -> String {
        match self {
            TestDb::Sqlite(dir) => format!("sqlite://{}", dir.path().join("weir.db").display()),
            TestDb::Postgres { url, .. } => url.clone(),
        }
    }

    /// The flags that point weir at this store.
    pub fn args(&self) -> Vec<String> {
        match self {
            TestDb::Sqlite(dir) => vec!["--state-dir".into(), dir.path().display().to_string()],
            TestDb::Postgres { url, state, .. } => vec![
                "--db".into(),
                url.clone(),
                "--state-dir".into(),
                state.path().display().to_string(),
            ],
        }
    }
}

fn rand_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{nanos:x}")
}

/// Runs `weir ARGS` followed by the flags that point it at `db`.
pub fn weir_with(args: &[&str], db: &TestDb) -> Output {
    let store = db.args();
    let all: Vec<&str> = args
        .iter()
        .copied()
        .chain(store.iter().map(String::as_str))
        .collect();
    weir(&all)
}

/// Runs weir with `args` followed by the store flags, and parses JSON stdout.
pub fn weir_json(args: &[&str], db: &TestDb) -> (i32, serde_json::Value) {
    let out = weir_with(args, db);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "weir {args:?}: not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("exited"), json)
}

/// The node `id` of a document with `nodes` (an execution, a diff).
pub fn node<'a>(document: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    document["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["id"] == id)
        .unwrap_or_else(|| panic!("no node {id} in {document:#}"))
}

/// A store under test, and the database that outlives it.
pub struct Backend {
    pub store: std::sync::Arc<dyn weir::store::Store>,
    pub url: String,
    _db: TestDb,
}

pub async fn backend(db: TestDb) -> Backend {
    let url = db.url();
    let store = weir::store::open(&url)
        .await
        .unwrap_or_else(|e| panic!("open {url}: {e}"));
    Backend {
        store,
        url,
        _db: db,
    }
}

/// Runs each story (an `async fn(Backend)` of the calling module) once per
/// backend: `<module>::sqlite::NAME`, `<module>::postgres::NAME`.
macro_rules! on_every_backend {
    ($($story:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $story() {
                let db = crate::common::TestDb::sqlite();
                super::$story(crate::common::backend(db).await).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $story() {
                if let Some(db) = crate::common::TestDb::postgres() {
                    super::$story(crate::common::backend(db).await).await;
                }
            })*
        }
    };
}
pub(crate) use on_every_backend;

/// A free local port, as `127.0.0.1:PORT` (nothing listens on it once
/// returned).
pub fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").to_string()
}

/// Polls `check` until it holds (a generous bound only guards against a hang).
/// What it waits for is another process's doing (`weir serve`, a task), so
/// it is polled; it returns as soon as `check` holds.
pub fn eventually(what: &str, check: impl FnMut() -> bool) {
    eventually_within(what, Duration::from_secs(60), check, String::new);
}

/// [`eventually`] with its own bound, and `explain` saying, once the bound
/// is reached, what was still missing.
pub fn eventually_within(
    what: &str,
    bound: Duration,
    mut check: impl FnMut() -> bool,
    explain: impl FnOnce() -> String,
) {
    let deadline = std::time::Instant::now() + bound;
    while std::time::Instant::now() < deadline {
        if check() {
            return;
        }
        // The pace of polling another process, not a wait for a decision.
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting until {what}\n{}", explain());
}

/// `weir serve` on a free port over a test store; killed when dropped, so a
/// failing test leaves no daemon behind.
pub struct Daemon {
    child: std::process::Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Daemon {
    /// Starts `weir serve ARGS` on `db` (a 200 ms tick) and returns once
    /// `/readyz` answers 200: every source reconciled once.
    pub fn start(db: &TestDb, args: &[&str]) -> Daemon {
        Daemon::start_with_env(db, args, &[])
    }

    /// [`Daemon::start`] with environment variables `env`.
    pub fn start_with_env(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::start_logged(db, args, env, std::process::Stdio::null())
    }

    /// [`Daemon::start_with_env`], the daemon's stderr (its logs) to `stderr`.
    pub fn start_logged(
        db: &TestDb,
        args: &[&str],
        env: &[(&str, &str)],
        stderr: impl Into<std::process::Stdio>,
    ) -> Daemon {
        Daemon::start_configured(db, args, stderr, |command| {
            command.envs(env.iter().copied()).env("WEIR_LOG", "info");
        })
    }

    /// `weir serve ARGS` as [`Daemon::start_logged`], its command further
    /// set by `configure` (it logs as the daemon does by default).
    pub fn start_configured(
        db: &TestDb,
        args: &[&str],
        stderr: impl Into<std::process::Stdio>,
        configure: impl FnOnce(&mut Command),
    ) -> Daemon {
        let addr = free_addr();
        let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
        command
            .arg("serve")
            .args(args)
            .args(["--listen", &addr, "--tick", "200ms"])
            .args(db.args())
            .env_remove("WEIR_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(stderr);
        configure(&mut command);
        let child = command.spawn().expect("weir serve starts");
        let daemon = Daemon {
            child,
            url: format!("http://{addr}"),
            addr,
        };
        eventually("/readyz answers 200", || {
            http(&daemon.addr, "GET", "/readyz", &[], b"").0 == 200
        });
        daemon
    }

    /// [`Daemon::start`] following repository `repo` (checked hourly)
    /// with API token `token`; the daemon, and what reaches it with the
    /// token: [`Served::server`].
    pub fn with_token(db: &TestDb, repo: &GitRepo, token: &str) -> Served {
        let secrets = tempfile::tempdir().expect("tempdir");
        let token_file = secrets.path().join("api-token");
        std::fs::write(&token_file, token).expect("write the token");
        let token_file = token_file.to_str().expect("utf-8").to_owned();
        let path = repo.path().to_str().expect("utf-8");
        let daemon = Daemon::start(
            db,
            &[
                "--repo",
                path,
                "--interval",
                "1h",
                "--api-token-file",
                &token_file,
            ],
        );
        Served {
            daemon,
            token_file,
            _secrets: secrets,
        }
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    /// SIGTERM: a graceful stop, which must exit 0.
    pub fn stop(mut self) {
        let pid = self.child.id();
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "a graceful stop exits 0: {status:?}");
    }
}

/// One HTTP/1.1 request; the status and the body.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return (0, String::new());
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("write");
    stream.write_all(body).expect("write body");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts that executions written in batches (`created`: their creation
/// instants, in the order written, more than one batch) were created batch
/// after batch: the first batch's latest before the rest's earliest.
#[track_caller]
pub fn assert_created_batch_after_batch(created: &[chrono::DateTime<chrono::Utc>]) {
    let batch = weir::engine::scheduler::BATCH;
    assert!(created.len() > batch, "more than one batch");
    let (first, rest) = created.split_at(batch);
    let first_latest = first.iter().max().expect("a first batch");
    let rest_earliest = rest.iter().min().expect("a second batch");
    assert!(
        first_latest < rest_earliest,
        "{first_latest} is not before {rest_earliest}"
    );
}

/// A task running `script` (bash), a one-node workflow `tick-flow` and a
/// launch plan `every-second` scheduling it every second with `catch_up`
/// (`none` or `all`): the schedule the daemon stories run.
pub fn every_second(script: &str, catch_up: &str) -> String {
    format!(
        r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: {{ name: tick }}
spec:
  script: {{ interpreter: bash, source: "{script}" }}
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: {{ name: tick-flow }}
spec:
  nodes: [ {{ id: tick, task: tick }} ]
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: {{ name: every-second }}
spec:
  workflow: tick-flow
  schedule: {{ every: 1s, catchUp: {catch_up} }}
"#
    )
}

/// A Git repository holding `files` in one commit, and the source
/// reading it (whose head each [`SourceRepo::reconcile`] registers).
pub struct SourceRepo {
    pub repo: GitRepo,
    source: weir::source::git::GitSource,
    _state: tempfile::TempDir,
}

impl SourceRepo {
    pub fn new(files: &[(&str, &str)]) -> SourceRepo {
        let repo = GitRepo::new();
        for (path, text) in files {
            repo.write(path, text);
        }
        repo.commit("Definitions");
        let state = tempfile::tempdir().expect("tempdir");
        let spec = weir::source::git::SourceSpec {
            repo: repo.path().display().to_string(),
            branch: None,
            path: String::new(),
            credentials: Default::default(),
        };
        let source = weir::source::git::GitSource::open(&spec, state.path()).expect("source");
        SourceRepo {
            repo,
            source,
            _state: state,
        }
    }

    /// Reconciles the source's head at `at`.
    pub async fn reconcile(
        &self,
        b: &Backend,
        at: chrono::DateTime<chrono::Utc>,
    ) -> weir::spec::SourceKey {
        let options = weir::reconcile::Options::default();
        let loaded = weir::reconcile::load(&self.source, &options, None).expect("load");
        match weir::reconcile::register(b.store.as_ref(), loaded, at)
            .await
            .expect("register")
        {
            weir::reconcile::Outcome::Reconciled { .. } => self.source.key(),
            weir::reconcile::Outcome::Rejected { report, .. } => {
                panic!("refused: {:?}", report.diagnostics)
            }
            weir::reconcile::Outcome::Untrusted { refusal, .. } => panic!("{refusal}"),
        }
    }
}

/// An execution run to its end by an engine on the local executor.
pub struct Ran {
    pub status: String,
    pub nodes: Vec<weir::store::NodeState>,
    /// The engine's state folder (attempt folders under `runs/`).
    pub state: tempfile::TempDir,
}

impl Ran {
    /// The folder of `node`'s attempt `attempt`.
    pub fn attempt_dir(&self, node: &str, attempt: u32) -> PathBuf {
        let execution = &self.nodes[0].execution;
        weir::executor::local::attempt_dir(self.state.path(), execution, node, attempt)
    }

    /// The error of `node`'s last attempt.
    pub fn error(&self, node: &str) -> String {
        let node = self
            .nodes
            .iter()
            .find(|n| n.node == node)
            .unwrap_or_else(|| panic!("no node {node} in {:#?}", self.nodes));
        node.error.clone().unwrap_or_default()
    }
}

/// Commits `files` to a new repository, registers the commit in a SQLite
/// store, and runs workflow `workflow` with `inputs` to its end, as the
/// daemon would (the engine, the local executor, the task types weir
/// ships).
pub async fn run_committed(
    files: &[(&str, &str)],
    workflow: &str,
    inputs: serde_json::Value,
) -> Ran {
    let repo = GitRepo::new();
    for (path, text) in files {
        repo.write(path, text);
    }
    repo.commit("Definitions");
    let backend = backend(TestDb::sqlite()).await;
    run_head(
        &repo,
        weir::task::TaskTypes::builtin(),
        &backend,
        workflow,
        inputs,
    )
    .await
}

/// Registers `repo`'s head in `backend`'s store with `types`, and runs
/// workflow `workflow` with `inputs` to its end with an engine given them.
pub async fn run_head(
    repo: &GitRepo,
    types: weir::task::TaskTypes,
    backend: &Backend,
    workflow: &str,
    inputs: serde_json::Value,
) -> Ran {
    let state = tempfile::tempdir().expect("tempdir");
    run_head_in(repo, types, backend, state, workflow, inputs).await
}

/// [`run_head`] with the engine's state (attempt folders, artifacts) in
/// `state`: a second run in the state of a first finds its artifacts.
pub async fn run_head_in(
    repo: &GitRepo,
    types: weir::task::TaskTypes,
    backend: &Backend,
    state: tempfile::TempDir,
    workflow: &str,
    inputs: serde_json::Value,
) -> Ran {
    let spec = weir::source::git::SourceSpec {
        repo: repo.path().display().to_string(),
        branch: None,
        path: String::new(),
        credentials: Default::default(),
    };
    let source =
        weir::source::git::GitSource::open(&spec, &state.path().join("source")).expect("source");
    let options = weir::reconcile::Options {
        validate: Options {
            task_types: types.clone(),
            ..Options::default()
        },
        ..weir::reconcile::Options::default()
    };
    let loaded = weir::reconcile::load(&source, &options, None).expect("load");
    match weir::reconcile::register(backend.store.as_ref(), loaded, chrono::Utc::now())
        .await
        .expect("register")
    {
        weir::reconcile::Outcome::Reconciled { .. } => {}
        weir::reconcile::Outcome::Rejected { report, .. } => {
            panic!("refused: {:#?}", report.diagnostics)
        }
        weir::reconcile::Outcome::Untrusted { refusal, .. } => panic!("{refusal}"),
    }
    let artifacts = std::sync::Arc::new(weir::artifact::LocalArtifacts::new(
        state.path().join("artifacts"),
    ));
    let engine =
        weir::engine::Engine::new(backend.store.clone(), artifacts, state.path().to_path_buf())
            .with_task_env(weir::executor::environment::Inherited::from_process(
                Default::default(),
            ))
            .with_task_types(types);
    let request = weir::engine::create::Request {
        name: workflow.into(),
        inputs: serde_json::from_value(inputs).expect("inputs are a map"),
        ..weir::engine::create::Request::default()
    };
    let (execution, _) = weir::engine::create::create(backend.store.as_ref(), &request)
        .await
        .expect("create");
    let finished = tokio::time::timeout(
        Duration::from_secs(300),
        engine.run_until_finished(&execution.id),
    )
    .await
    .expect("the execution ends")
    .expect("run");
    let nodes = backend.store.nodes(&execution.id).await.expect("nodes");
    Ran {
        status: finished.status.as_str().to_owned(),
        nodes,
        state,
    }
}

/// A daemon with an API token ([`Daemon::with_token`]).
pub struct Served {
    pub daemon: Daemon,
    pub token_file: String,
    _secrets: tempfile::TempDir,
}

impl Served {
    /// `--server URL --api-token-file FILE`.
    pub fn server(&self) -> [&str; 4] {
        [
            "--server",
            &self.daemon.url,
            "--api-token-file",
            &self.token_file,
        ]
    }

    /// `weir ARGS --server …`.
    pub fn weir(&self, args: &[&str]) -> Output {
        weir(&[args, &self.server()[..]].concat())
    }
}

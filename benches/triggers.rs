//! Benchmark: artifact triggers through the `weir` binary's `serve`, on a
//! local folder (`file://`) and on a real S3 API (moto's server, which
//! `scripts/test-env` starts at `$WEIR_TEST_S3_ENDPOINT`; the S3 parts are
//! skipped when it is not set).
//!
//! `latency`: one launch plan whose trigger lists its prefix every 500 ms;
//! 40 objects put one at a time, 0–500 ms apart (so that they land at
//! every point of the listing's cycle), each after the one before started
//! its execution. From the put's return (the rename into place, for a
//! folder) to the execution's first node started (`nodes[].startedAt` of
//! `GET /api/v1/executions/{id}`): p50, p95, max. Target: p95 under 1 s.
//! The execution's `createdAt` is the instant of the listing pass that saw
//! the object, which splits the latency in two: waiting for that pass, and
//! the pass (copy, record, create) and the engine starting the node.
//!
//! `prefixes` (5 s listings) and `default` (the default 30 s): 1,000
//! launch plans, each with an artifact trigger on its own prefix (a folder
//! each under one temporary folder; 1,000 prefixes of one bucket), each
//! prefix holding 5 objects already (the baseline, never run). After the
//! daemon took the baseline and settled, its share of one core over 30 s
//! (`/proc/<pid>/stat`, utime + stime, as `idle`), its resident memory,
//! and (S3) moto's share. With 5 s listings, then one new object in each
//! of the 1,000 prefixes at once: how long until all 1,000 executions
//! exist (the `weir_trigger_executions_total` counter of `/metrics`), and
//! how long the engine takes to run them (a task that runs `true`).
//!
//! `cargo bench --bench triggers -- latency` runs only that part.

#[path = "support/repo.rs"]
mod repo;
#[path = "support/select.rs"]
mod select;

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use serde_json::Value;

/// Objects put in the latency part (after one to warm up).
const OBJECTS: usize = 40;
/// The latency part's listing interval.
const FAST: &str = "500ms";
/// Prefixes (and launch plans) of the prefixes part.
const PREFIXES: usize = 1_000;
/// Objects already in each prefix when its trigger begins.
const BASELINE: usize = 5;
/// How long the daemon's CPU time is measured over.
const WINDOW: Duration = Duration::from_secs(30);
/// How long the daemon is left alone after its baseline, before measuring.
const SETTLE: Duration = Duration::from_secs(5);
/// Puts to moto at once.
const PUTS: usize = 32;
/// How long the engine gets to run the 1,000 executions before the
/// benchmark stops waiting.
const ENGINE_WAIT: Duration = Duration::from_secs(90);

/// The workflow every trigger starts: one task that ignores its file.
const FLOW: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: noop }
spec:
  inputs: { file: { type: file } }
  script: { interpreter: bash, source: 'true' }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: land }
spec:
  inputs: { file: { type: file } }
  nodes: [ { id: noop, task: noop, inputs: { file: "{{ inputs.file }}" } } ]
"#;

fn launch_plan(name: &str, url: &str, interval: &str) -> String {
    format!(
        r#"apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: {{ name: {name} }}
spec:
  workflow: land
  triggers:
    - artifact: {{ url: "{url}", pattern: "*.csv", input: file, interval: {interval} }}
"#
    )
}

// ---------------------------------------------------------------- HTTP

/// One request with `Connection: close`: the status and the body (0 when
/// nothing answers).
fn http(addr: &str, method: &str, path: &str) -> (u16, String) {
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return (0, String::new());
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let Some(split) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return (0, String::new());
    };
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    let body = &response[split + 4..];
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_vec()
    };
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A chunked body's bytes.
fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..end]);
        let Ok(n) = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16) else {
            break;
        };
        let data = &rest[end + 2..];
        if n == 0 || data.len() < n {
            break;
        }
        out.extend_from_slice(&data[..n]);
        rest = data[n..].strip_prefix(b"\r\n").unwrap_or(&data[n..]);
    }
    out
}

fn get_json(addr: &str, path: &str) -> Value {
    let (status, body) = http(addr, "GET", path);
    if status != 200 {
        return Value::Null;
    }
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

fn instant(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A counter or gauge of `/metrics` (0 when absent).
fn metric(addr: &str, series: &str) -> f64 {
    let (_, text) = http(addr, "GET", "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

// ---------------------------------------------------------------- /proc

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // The command may hold spaces: fields count from after its `)`.
    let rest = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15, that is 11 and 12 after `)`.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// A line of `/proc/<pid>/status` in MB (`VmRSS`, `VmHWM`).
fn memory_mb(pid: u32, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The process of moto's server, when one runs here.
fn moto_pid() -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline);
        cmdline.contains("moto.server").then_some(pid)
    })
}

/// Shares of one core (%) of the processes `pids` over `window`: the
/// whole window's, and the largest of its seconds' (the daemon's).
fn cpu_over(pids: &[u32], window: Duration) -> (Vec<f64>, f64) {
    let hz = clock_ticks_per_second();
    let before: Vec<u64> = pids.iter().map(|&p| cpu_ticks(p)).collect();
    let start = Instant::now();
    let mut last = before[0];
    let mut peak = 0u64;
    while start.elapsed() < window {
        std::thread::sleep(Duration::from_secs(1).min(window.saturating_sub(start.elapsed())));
        let now = cpu_ticks(pids[0]);
        peak = peak.max(now - last);
        last = now;
    }
    let seconds = start.elapsed().as_secs_f64();
    let shares = pids
        .iter()
        .zip(&before)
        .map(|(&p, &b)| (cpu_ticks(p) - b) as f64 / hz / seconds * 100.0)
        .collect();
    (shares, peak as f64 / hz * 100.0)
}

// ---------------------------------------------------------------- landing

/// Where objects land: a folder, or a bucket in moto.
enum Landing {
    Folder(tempfile::TempDir),
    Bucket {
        name: String,
        store: Arc<dyn ObjectStore>,
    },
}

impl Landing {
    fn folder() -> Landing {
        Landing::Folder(tempfile::tempdir().expect("landing folder"))
    }

    /// A fresh bucket in moto at `endpoint`.
    fn bucket(endpoint: &str) -> Landing {
        let name = format!(
            "weir-bench-{}-{}",
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        let addr = endpoint.trim_start_matches("http://").trim_end_matches('/');
        let (status, body) = http(addr, "PUT", &format!("/{name}"));
        assert_eq!(status, 200, "moto creates bucket {name}: {body}");
        let store = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_allow_http(true)
            .with_bucket_name(&name)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .expect("an S3 client of moto");
        Landing::Bucket {
            name,
            store: Arc::new(store),
        }
    }

    fn scheme(&self) -> &'static str {
        match self {
            Landing::Folder(_) => "file://",
            Landing::Bucket { .. } => "s3:// (moto)",
        }
    }

    /// The URL of `prefix` (a folder name), which exists.
    fn url(&self, prefix: &str) -> String {
        match self {
            Landing::Folder(dir) => {
                let folder = dir.path().join(prefix);
                std::fs::create_dir_all(&folder).expect("mkdir");
                format!("file://{}/", folder.display())
            }
            Landing::Bucket { name, .. } => format!("s3://{name}/{prefix}/"),
        }
    }

    /// Puts object `name` under `prefix`: in a folder written under a
    /// temporary name and renamed into place, as a producer should.
    async fn put(&self, prefix: &str, name: &str, content: String) {
        match self {
            Landing::Folder(dir) => {
                let folder = dir.path().join(prefix);
                std::fs::create_dir_all(&folder).expect("mkdir");
                let staged = folder.join(format!(".{name}.partial"));
                std::fs::write(&staged, content).expect("write");
                std::fs::rename(&staged, folder.join(name)).expect("rename");
            }
            Landing::Bucket { store, .. } => {
                store
                    .put(
                        &ObjectPath::from(format!("{prefix}/{name}")),
                        PutPayload::from(content.into_bytes()),
                    )
                    .await
                    .expect("put an object");
            }
        }
    }

    /// Puts `objects` (prefix, name, content), at most [`PUTS`] at once.
    async fn put_all(&self, objects: Vec<(String, String, String)>) {
        futures_util::stream::iter(objects)
            .map(|(prefix, name, content)| async move { self.put(&prefix, &name, content).await })
            .buffer_unordered(PUTS)
            .collect::<Vec<()>>()
            .await;
    }
}

// ---------------------------------------------------------------- daemon

/// `weir serve` on a repository, as a process.
struct Daemon {
    child: Child,
    addr: String,
    pid: u32,
    log: PathBuf,
    _state: tempfile::TempDir,
}

impl Daemon {
    /// Starts `weir serve` on `repo` (definitions under `defs/`, the Git
    /// source checked hourly: only the triggers work) and waits for its
    /// first reconcile; the daemon and how long that took.
    fn start(repo: &Path, env: &[(&str, String)], logs: &Path, name: &str) -> (Daemon, Duration) {
        let state = tempfile::tempdir().expect("state");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        let addr = listener.local_addr().expect("addr").to_string();
        drop(listener);
        let log = logs.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["serve", "--repo"])
            .arg(repo)
            .args(["--path", "defs", "--interval", "1h", "--listen", &addr])
            .arg("--state-dir")
            .arg(state.path())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("WEIR_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("weir serve starts");
        let pid = child.id();
        let mut daemon = Daemon {
            child,
            addr,
            pid,
            log,
            _state: state,
        };
        let start = Instant::now();
        while http(&daemon.addr, "GET", "/readyz").0 != 200 {
            daemon.alive("reconcile");
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "weir serve did not reconcile within 5 minutes; see {}",
                daemon.log.display()
            );
            // The pace of polling another process for readiness.
            std::thread::sleep(Duration::from_millis(50));
        }
        (daemon, start.elapsed())
    }

    fn alive(&mut self, doing: &str) {
        if let Some(status) = self.child.try_wait().expect("the daemon") {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            panic!(
                "weir serve exited ({status}) during {doing}:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }

    /// The triggers of `/api/v1/status`.
    fn triggers(&self) -> Vec<Value> {
        get_json(&self.addr, "/api/v1/status")["triggers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `n` triggers have taken their baseline (were polled);
    /// how long that took.
    fn baseline(&mut self, n: usize) -> Duration {
        let start = Instant::now();
        loop {
            let triggers = self.triggers();
            let polled = triggers
                .iter()
                .filter(|t| t["polledAt"].is_string())
                .count();
            if polled >= n {
                return start.elapsed();
            }
            self.alive("the baseline");
            let failing: Vec<&Value> = triggers.iter().filter(|t| t["error"].is_string()).collect();
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "{polled} of {n} triggers took their baseline in 5 minutes; {} failing, e.g. {:?}",
                failing.len(),
                failing.first().map(|t| &t["error"])
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The log's lines at WARN or ERROR.
    fn warnings(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Git repository whose `main` holds `files` under `defs/`.
fn repository(files: &[(String, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("repo");
    let mut opts = git2::RepositoryInitOptions::new();
    opts.initial_head("main");
    let git = git2::Repository::init_opts(dir.path(), &opts).expect("init");
    repo::commit(&git, files, "triggers");
    dir
}

/// The daemon's environment for the S3 API at `endpoint`.
fn s3_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ALLOW_HTTP", "true".to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
    ]
}

/// A pause of 0 to `max` ms, from a xorshift of the clock.
struct Pauses(u64);

impl Pauses {
    fn new() -> Pauses {
        Pauses(Utc::now().timestamp_nanos_opt().unwrap_or(1).unsigned_abs() | 1)
    }

    fn next(&mut self, max: u64) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_millis(self.0 % (max + 1))
    }
}

/// p50, p95 and max of `values` (nearest rank).
fn percentiles(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.5), at(0.95), v[v.len() - 1])
}

fn ms(d: chrono::TimeDelta) -> f64 {
    d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
}

// ---------------------------------------------------------------- latency

/// What one object's run took, in ms from the put's return: to its
/// execution's creation (the listing pass that saw it began), and to its
/// first node's start.
struct Run {
    created: f64,
    started: f64,
}

/// Puts object `name` and waits for its execution's first node to start.
fn put_and_wait(
    runtime: &tokio::runtime::Runtime,
    landing: &Landing,
    daemon: &mut Daemon,
    name: &str,
) -> Run {
    runtime.block_on(landing.put("orders", name, format!("order {name}")));
    let put = Utc::now();
    let start = Instant::now();
    let addr = daemon.addr.clone();
    let mut waiting = || {
        daemon.alive("the latency runs");
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{name} started no execution within 60 s; see {}",
            daemon.log.display()
        );
        // The pace of polling the daemon's API; what is measured is the
        // instants it records, not when this loop sees them.
        std::thread::sleep(Duration::from_millis(20));
    };
    let id = loop {
        let list = get_json(&addr, "/api/v1/executions?launchPlan=on-landing&limit=5");
        let found = list.as_array().into_iter().flatten().find(|e| {
            e["event"]["detail"]["key"]
                .as_str()
                .is_some_and(|k| k.ends_with(name))
        });
        if let Some(e) = found {
            break e["id"].as_str().expect("an id").to_owned();
        }
        waiting();
    };
    loop {
        let e = get_json(&addr, &format!("/api/v1/executions/{id}"));
        let first = e["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| instant(&n["startedAt"]))
            .min();
        if let (Some(first), Some(created)) = (first, instant(&e["createdAt"])) {
            return Run {
                created: ms(created - put),
                started: ms(first - put),
            };
        }
        waiting();
    }
}

fn latency(
    runtime: &tokio::runtime::Runtime,
    landing: &Landing,
    env: &[(&str, String)],
    logs: &Path,
) {
    let url = landing.url("orders");
    let repo = repository(&[
        ("flow.yaml".to_owned(), FLOW.to_owned()),
        (
            "plan.yaml".to_owned(),
            launch_plan("on-landing", &url, FAST),
        ),
    ]);
    let (mut daemon, _) = Daemon::start(repo.path(), env, logs, "latency");
    daemon.baseline(1);
    // One object to warm up (the launch plan prepared, the artifact
    // store's first write), not counted.
    let warm = put_and_wait(runtime, landing, &mut daemon, "warm-up.csv");
    let mut pauses = Pauses::new();
    let mut runs = Vec::with_capacity(OBJECTS);
    for i in 0..OBJECTS {
        std::thread::sleep(pauses.next(500));
        runs.push(put_and_wait(
            runtime,
            landing,
            &mut daemon,
            &format!("{i:03}.csv"),
        ));
    }
    let started: Vec<f64> = runs.iter().map(|r| r.started).collect();
    let seen: Vec<f64> = runs.iter().map(|r| r.created).collect();
    let after: Vec<f64> = runs.iter().map(|r| r.started - r.created).collect();
    let (p50, p95, max) = percentiles(&started);
    let (s50, s95, smax) = percentiles(&seen);
    let (a50, a95, amax) = percentiles(&after);
    println!(
        "triggers: object put → its execution's first node started, {} with `interval: {FAST}` (default --tick), {OBJECTS} objects put one at a time 0–500 ms apart: p50 {p50:.0} ms, p95 {p95:.0} ms, max {max:.0} ms (target p95 < 1 s: {}); of which put → the listing pass that saw it began: p50 {s50:.0} ms, p95 {s95:.0} ms, max {smax:.0} ms; that pass's start → first node started: p50 {a50:.0} ms, p95 {a95:.0} ms, max {amax:.0} ms (warm-up object: {:.0} ms; daemon {:.0} MB resident)",
        landing.scheme(),
        if p95 < 1000.0 { "met" } else { "MISSED" },
        warm.started,
        memory_mb(daemon.pid, "VmRSS"),
    );
    let warnings = daemon.warnings();
    if !warnings.is_empty() {
        println!(
            "triggers:   {} warnings in the daemon's log, first: {}",
            warnings.len(),
            warnings[0]
        );
    }
}

// ---------------------------------------------------------------- prefixes

fn prefix(i: usize) -> String {
    format!("p{i:04}")
}

/// Fills the 1,000 prefixes with their baseline objects; how long it took.
fn fill(runtime: &tokio::runtime::Runtime, landing: &Landing) -> Duration {
    let start = Instant::now();
    let objects = (0..PREFIXES)
        .flat_map(|i| {
            (0..BASELINE).map(move |j| (prefix(i), format!("old-{j}.csv"), format!("old {i} {j}")))
        })
        .collect();
    runtime.block_on(landing.put_all(objects));
    start.elapsed()
}

fn many(
    runtime: &tokio::runtime::Runtime,
    landing: &Landing,
    interval: &str,
    env: &[(&str, String)],
    logs: &Path,
    burst: bool,
) {
    let mut files = vec![("flow.yaml".to_owned(), FLOW.to_owned())];
    for file in 0..PREFIXES / 100 {
        let plans: Vec<String> = (file * 100..(file + 1) * 100)
            .map(|i| launch_plan(&format!("watch-{i:04}"), &landing.url(&prefix(i)), interval))
            .collect();
        files.push((format!("plans-{file:02}.yaml"), plans.join("---\n")));
    }
    let repo = repository(&files);
    let name = format!(
        "prefixes-{}-{interval}",
        if matches!(landing, Landing::Folder(_)) {
            "file"
        } else {
            "s3"
        }
    );
    let (mut daemon, ready) = Daemon::start(repo.path(), env, logs, &name);
    let baseline = daemon.baseline(PREFIXES);
    std::thread::sleep(SETTLE);
    let moto = match landing {
        Landing::Bucket { .. } => moto_pid(),
        Landing::Folder(_) => None,
    };
    let pids: Vec<u32> = std::iter::once(daemon.pid).chain(moto).collect();
    let (shares, peak) = cpu_over(&pids, WINDOW);
    daemon.alive("the measurement");
    let (rss, hwm) = (
        memory_mb(daemon.pid, "VmRSS"),
        memory_mb(daemon.pid, "VmHWM"),
    );
    let errors = metric(&daemon.addr, "weir_trigger_errors_total{kind=\"artifact\"}");
    println!(
        "triggers: {PREFIXES} artifact triggers on {PREFIXES} prefixes of {} ({BASELINE} objects each, the baseline), `interval: {interval}`: ready {:.1} s after start, every baseline taken {:.1} s later; over {:.0} s after {:.0} s settling: {:.2} % of a core (busiest second {peak:.0} %), {rss:.0} MB resident (peak {hwm:.0} MB){}; {errors} failed listings",
        landing.scheme(),
        ready.as_secs_f64(),
        baseline.as_secs_f64(),
        WINDOW.as_secs_f64(),
        SETTLE.as_secs_f64(),
        shares[0],
        shares.get(1).map_or(String::new(), |m| format!(
            "; moto's server meanwhile: {m:.1} % of a core"
        )),
    );
    if burst {
        events(runtime, landing, &mut daemon);
    }
    let warnings = daemon.warnings();
    if !warnings.is_empty() {
        println!(
            "triggers:   {} warnings in the daemon's log, first: {}",
            warnings.len(),
            warnings[0]
        );
    }
}

/// One new object in each prefix at once: how long until every execution
/// exists, and until the engine ran them.
fn events(runtime: &tokio::runtime::Runtime, landing: &Landing, daemon: &mut Daemon) {
    let counter = "weir_trigger_executions_total{kind=\"artifact\"}";
    let before = metric(&daemon.addr, counter);
    let hz = clock_ticks_per_second();
    let ticks = cpu_ticks(daemon.pid);
    let objects = (0..PREFIXES)
        .map(|i| (prefix(i), "new.csv".to_owned(), format!("new {i}")))
        .collect();
    let start = Instant::now();
    runtime.block_on(landing.put_all(objects));
    let put = start.elapsed();
    let last_put = Utc::now();
    loop {
        if metric(&daemon.addr, counter) - before >= PREFIXES as f64 {
            break;
        }
        daemon.alive("the burst");
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "not every event created its execution within 5 minutes; see {}",
            daemon.log.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let created = start.elapsed();
    let all_at = Utc::now();
    let cpu = (cpu_ticks(daemon.pid) - ticks) as f64 / hz;
    let list = get_json(
        &daemon.addr,
        "/api/v1/executions?trigger=artifact&limit=5000",
    );
    let list = list.as_array().cloned().unwrap_or_default();
    // createdAt is the instant of the listing pass that created it.
    let mut passes = BTreeMap::<DateTime<Utc>, usize>::new();
    for e in &list {
        if let Some(at) = instant(&e["createdAt"]) {
            *passes.entry(at).or_default() += 1;
        }
    }
    let shown: Vec<String> = passes
        .iter()
        .map(|(at, n)| {
            format!(
                "{n} by the pass that began {:+.2} s after the last put",
                ms(*at - last_put) / 1000.0
            )
        })
        .collect();
    let round = passes
        .keys()
        .next_back()
        .map_or(0.0, |last| ms(all_at - *last) / 1000.0);
    println!(
        "triggers: {PREFIXES} events from {PREFIXES} prefixes created in {:.1} s ({}: the {PREFIXES} puts took {:.1} s; {}; the last of those passes' executions all existed {round:.1} s after it began, at most 50 ms late; {cpu:.1} s of the daemon's CPU; {} executions listed)",
        created.as_secs_f64(),
        landing.scheme(),
        put.as_secs_f64(),
        shown.join(", "),
        list.len(),
    );
    let start = Instant::now();
    let mut done = 0;
    while start.elapsed() < ENGINE_WAIT {
        let ended = get_json(
            &daemon.addr,
            "/api/v1/executions?trigger=artifact&status=succeeded&limit=5000",
        );
        done = ended.as_array().map_or(0, Vec::len);
        if done >= PREFIXES {
            break;
        }
        daemon.alive("the engine's runs");
        std::thread::sleep(Duration::from_millis(500));
    }
    let ran = start.elapsed() + created;
    if done >= PREFIXES {
        println!(
            "triggers:   the engine ran all {PREFIXES} (a task running `true`) {:.1} s after the puts began",
            ran.as_secs_f64()
        );
    } else {
        println!(
            "triggers:   the engine had run {done} of {PREFIXES} (a task running `true`) {:.1} s after the puts began; stopped waiting",
            ran.as_secs_f64()
        );
    }
}

fn main() {
    let wanted = select::wanted();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let logs = tempfile::tempdir().expect("logs");
    let endpoint = std::env::var("WEIR_TEST_S3_ENDPOINT").ok();
    if endpoint.is_none() {
        println!(
            "triggers: WEIR_TEST_S3_ENDPOINT is not set (`. scripts/test-env`): the S3 parts are skipped"
        );
    }
    let s3 = endpoint.as_deref().map(s3_env).unwrap_or_default();
    if wanted("latency") {
        latency(&runtime, &Landing::folder(), &[], logs.path());
        if let Some(endpoint) = &endpoint {
            latency(&runtime, &Landing::bucket(endpoint), &s3, logs.path());
        }
    }
    if wanted("prefixes") || wanted("default") {
        let mut landings = vec![(Landing::folder(), Vec::new())];
        if let Some(endpoint) = &endpoint {
            landings.push((Landing::bucket(endpoint), s3.clone()));
        }
        for (landing, env) in &landings {
            let took = fill(&runtime, landing);
            println!(
                "triggers: {} baseline: {} objects put in {PREFIXES} prefixes in {:.1} s",
                landing.scheme(),
                PREFIXES * BASELINE,
                took.as_secs_f64()
            );
            if wanted("default") {
                many(&runtime, landing, "30s", env, logs.path(), false);
            }
            if wanted("prefixes") {
                many(&runtime, landing, "5s", env, logs.path(), true);
            }
        }
    }
}

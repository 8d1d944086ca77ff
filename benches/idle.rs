//! Benchmark: what an idle `weir serve` costs, as a process.
//!
//! `cargo bench --bench idle` generates a repository of 10,000 definitions
//! in 2,000 files (`support/generate.rs`: 2,000 pipelines, each with a
//! scheduled launch plan, daily at 02:MM Europe/Berlin), starts the `weir`
//! binary's `serve` on it (SQLite, local executor, default tick), waits
//! for its first reconcile (`/readyz`), lets it settle for 5 s, then reads
//! its CPU time (`/proc/<pid>/stat`, utime + stime) at the start and the
//! end of 60 s, and its resident memory (`VmRSS`, and the peak `VmHWM`)
//! at the end. Prints the share of one core and the memory. Targets
//! (issue 20): under 0.5 % of a core, under 120 MB.
//!
//! `cargo bench --bench idle -- 20` measures over 20 s instead.

#[path = "support/generate.rs"]
mod generate;
#[path = "support/repo.rs"]
mod repo;

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use git2::Repository;

const PIPELINES: usize = 2_000;

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // The command may hold spaces: fields count from after its `)`.
    let rest = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15, that is 11 and 12 after `)`.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// A line of `/proc/<pid>/status` in MB (`VmRSS`, `VmHWM`).
fn memory_mb(pid: u32, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("a memory line");
    kb / 1024.0
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

fn ready(addr: &str) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let request = format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200")
}

fn main() {
    let seconds: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(60);
    let dir = tempfile::tempdir().expect("repo");
    let mut opts = git2::RepositoryInitOptions::new();
    opts.initial_head("main");
    let git = Repository::init_opts(dir.path(), &opts).expect("init");
    let files: Vec<(String, String)> = (0..PIPELINES)
        .map(|i| (generate::path(i), generate::group(i)))
        .collect();
    repo::commit(&git, &files, "10,000 definitions");
    let state = tempfile::tempdir().expect("state");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let mut daemon = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--repo"])
        .arg(dir.path())
        .args(["--path", "defs", "--listen", &addr, "--state-dir"])
        .arg(state.path())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("weir serve starts");
    let pid = daemon.id();
    let start = Instant::now();
    while !ready(&addr) {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "weir serve did not reconcile within 10 minutes"
        );
        assert!(
            daemon.try_wait().expect("the daemon").is_none(),
            "weir serve exited"
        );
        // The pace of polling another process (the daemon) for readiness.
        std::thread::sleep(Duration::from_millis(100));
    }
    let reconciled = start.elapsed();
    std::thread::sleep(Duration::from_secs(5));
    let before = cpu_ticks(pid);
    let measured = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let ticks = cpu_ticks(pid) - before;
    let window = measured.elapsed().as_secs_f64();
    let cpu = ticks as f64 / clock_ticks_per_second() / window * 100.0;
    let (rss, peak) = (memory_mb(pid, "VmRSS"), memory_mb(pid, "VmHWM"));
    // Of the resident memory, what the process allocated, and the pages
    // of mapped files (the binary's code and data, shared libraries).
    let (anon, file) = (memory_mb(pid, "RssAnon"), memory_mb(pid, "RssFile"));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = daemon.wait();
    println!(
        "idle: weir serve on {} definitions ({PIPELINES} scheduled launch plans): ready after {:.1} s; over {window:.0} s idle: {cpu:.2} % of a core, {rss:.0} MB resident (peak {peak:.0} MB; {anon:.0} MB allocated, {file:.0} MB of mapped files)",
        PIPELINES * 5,
        reconciled.as_secs_f64(),
    );
}

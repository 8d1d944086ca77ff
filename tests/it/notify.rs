//! Notifications end to end: the real daemon, a real local HTTP receiver.
//! A failed execution delivers exactly one signed webhook; a receiver that
//! answers 500 twice gets the message on the third try; a receiver that
//! never answers delays no scheduled execution; a daemon killed before a
//! delivery was acknowledged delivers it after restart, and one killed
//! after does not deliver again.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::common::{Daemon, GitRepo, TestDb, eventually, http, weir_json, weir_with};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    path: String,
    headers: HashMap<String, String>,
    pub(crate) body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map_or("", String::as_str)
    }
}

/// What the receiver answers to the `n`-th request (0-based) to a path;
/// `None`: it never answers (the connection stays open).
pub(crate) type Behaviour = dyn Fn(&str, usize) -> Option<u16> + Send + Sync;

/// A local HTTP server recording every request.
pub(crate) struct Receiver {
    addr: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub(crate) fn start(behaviour: Arc<Behaviour>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        std::thread::spawn(move || {
            let mut hanging = Vec::new();
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let Some(request) = read_request(&stream) else {
                    continue;
                };
                let nth = {
                    let mut log = log.lock().expect("lock");
                    let nth = log
                        .iter()
                        .filter(|r: &&Received| r.path == request.path)
                        .count();
                    log.push(request.clone());
                    nth
                };
                match behaviour(&request.path, nth) {
                    Some(status) => respond(stream, status),
                    None => hanging.push(stream),
                }
            }
        });
        Receiver { addr, received }
    }

    pub(crate) fn requests(&self, path: &str) -> Vec<Received> {
        self.received
            .lock()
            .expect("lock")
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn read_request(stream: &TcpStream) -> Option<Received> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Received {
        path,
        headers,
        body,
    })
}

fn respond(mut stream: TcpStream, status: u16) {
    let _ = stream.write_all(
        format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
    );
}

const SECRET: &str = "It's a Secret to Everybody";

fn definitions(receiver: &Receiver) -> String {
    format!(
        r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: {{ name: boom }}
spec:
  script:
    interpreter: bash
    source: |
      echo "loading the table" >&2
      echo "disk full" >&2
      exit 1
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: {{ name: fine }}
spec:
  script: {{ interpreter: bash, source: "true" }}
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: {{ name: fail-flow }}
spec:
  nodes: [ {{ id: load, task: boom }} ]
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: {{ name: ok-flow }}
spec:
  nodes: [ {{ id: fine, task: fine }} ]
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: {{ name: alert-on-failure }}
spec:
  workflow: fail-flow
  notify:
    - on: [failed, timedOut]
      webhook: {{ url: "{fail}", secret: {{ env: WEIR_HOOK_SECRET }} }}
    - on: [succeeded]
      webhook: {{ url: "{never}" }}
    - on: [failed]
      slack: {{ webhookUrl: {{ env: WEIR_SLACK_URL }} }}
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: {{ name: flaky-receiver }}
spec:
  workflow: ok-flow
  notify:
    - on: [succeeded]
      webhook: {{ url: "{flaky}" }}
"#,
        fail = receiver.url("/fail"),
        never = receiver.url("/never"),
        flaky = receiver.url("/flaky"),
    )
}

const HANGING_PLAN: &str = r#"
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: every-2s }
spec:
  workflow: ok-flow
  schedule: { every: 2s }
  notify:
    - on: [succeeded]
      webhook: { url: "HANG" }
"#;

struct Setup {
    db: TestDb,
    _repo: GitRepo,
    repo_path: String,
    _token_dir: tempfile::TempDir,
    token_file: String,
    slack_url: String,
}

fn setup(defs: &str, receiver: &Receiver) -> Setup {
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    repo.write("defs/flows.yaml", defs);
    repo.commit("Flows that notify");
    let token_dir = tempfile::tempdir().expect("tempdir");
    let token_file = token_dir.path().join("api");
    std::fs::write(&token_file, "t0ken\n").expect("write");
    Setup {
        db,
        repo_path: repo.path().to_str().expect("utf-8").to_owned(),
        _repo: repo,
        token_file: token_file.to_str().expect("utf-8").to_owned(),
        _token_dir: token_dir,
        slack_url: receiver.url("/slack"),
    }
}

impl Setup {
    fn start(&self) -> Daemon {
        Daemon::start_with_env(
            &self.db,
            &[
                "--repo",
                &self.repo_path,
                "--path",
                "defs",
                "--api-token-file",
                &self.token_file,
            ],
            &[
                ("WEIR_HOOK_SECRET", SECRET),
                ("WEIR_SLACK_URL", &self.slack_url),
            ],
        )
    }
}

/// Starts a run of `name` through the API; its execution id.
fn run(daemon: &Daemon, name: &str) -> String {
    let body = serde_json::json!({ "name": name }).to_string();
    let (code, reply) = http(
        &daemon.addr,
        "POST",
        "/api/v1/runs",
        &[
            ("Authorization", "Bearer t0ken"),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    );
    assert_eq!(code, 201, "{reply}");
    let reply: Value = serde_json::from_str(&reply).expect("json");
    reply["id"].as_str().expect("id").to_owned()
}

fn deliveries(db: &TestDb, execution: &str) -> Vec<Value> {
    let (_, shown) = weir_json(&["executions", execution, "-o", "json"], db);
    shown["deliveries"].as_array().cloned().unwrap_or_default()
}

#[test]
fn webhooks_are_signed_retried_and_never_hold_up_the_schedule() {
    let behaviour: Arc<Behaviour> = Arc::new(|path: &str, nth: usize| match path {
        "/flaky" if nth < 2 => Some(500),
        "/hang" => None,
        _ => Some(200),
    });
    let receiver = Receiver::start(behaviour);
    let defs = definitions(&receiver) + &HANGING_PLAN.replace("HANG", &receiver.url("/hang"));
    let setup = setup(&defs, &receiver);
    let daemon = setup.start();

    // A failed execution: exactly one signed webhook with what went wrong,
    // and a Slack message.
    let failed = run(&daemon, "alert-on-failure");
    eventually("the failure is delivered to both", || {
        let all = deliveries(&setup.db, &failed);
        all.len() == 2 && all.iter().all(|d| d["status"] == "delivered")
    });
    let got = receiver.requests("/fail");
    assert_eq!(got.len(), 1, "{got:?}");
    let request = &got[0];
    assert_eq!(
        request.header("X-Weir-Signature-256"),
        weir::notify::sign(SECRET.as_bytes(), &request.body),
        "the receiver can check the HMAC"
    );
    let body = request.json();
    assert_eq!(
        request.header("X-Weir-Delivery"),
        body["delivery"],
        "{body:#}"
    );
    assert_eq!(body["event"], "failed");
    let execution = &body["execution"];
    assert_eq!(execution["id"], failed.as_str());
    assert_eq!(execution["launchPlan"], "alert-on-failure");
    assert_eq!(execution["workflow"], "fail-flow");
    assert_eq!(execution["status"], "failed");
    assert_eq!(
        execution["commit"].as_str().map(str::len),
        Some(40),
        "{body:#}"
    );
    assert!(execution["startedAt"].is_string() && execution["finishedAt"].is_string());
    assert!(
        execution["url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/api/v1/executions/{failed}"))),
        "{body:#}"
    );
    assert_eq!(body["failedNode"]["id"], "load");
    assert!(
        body["failedNode"]["logTail"]
            .to_string()
            .contains("disk full"),
        "{body:#}"
    );
    // A rule for another event sent nothing.
    assert!(receiver.requests("/never").is_empty());
    // Slack: a readable message; its URL (a credential) is never shown.
    let slack = receiver.requests("/slack");
    assert_eq!(slack.len(), 1);
    let text = slack[0].json()["text"].as_str().expect("text").to_owned();
    for part in ["alert-on-failure", "failed", "load", "disk full", &failed] {
        assert!(text.contains(part), "{part:?} in {text}");
    }
    let shown = serde_json::to_string(&deliveries(&setup.db, &failed)).expect("json");
    assert!(shown.contains("Slack (env WEIR_SLACK_URL)"), "{shown}");
    assert!(
        !shown.contains("/slack"),
        "the Slack URL is not shown: {shown}"
    );

    // 500, 500, then 200: delivered on the third attempt, all recorded.
    let flaky = run(&daemon, "flaky-receiver");
    eventually("the flaky receiver gets it", || {
        deliveries(&setup.db, &flaky)
            .first()
            .is_some_and(|d| d["status"] == "delivered")
    });
    let delivery = deliveries(&setup.db, &flaky)[0].clone();
    let statuses: Vec<&Value> = delivery["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| &a["httpStatus"])
        .collect();
    assert_eq!(statuses, [500, 500, 200], "{delivery:#}");
    let shown = weir_with(&["executions", &flaky], &setup.db);
    let text = String::from_utf8_lossy(&shown.stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with("webhook"))
        .unwrap_or_else(|| panic!("a delivery row in {text}"));
    for part in ["succeeded", "/flaky", "delivered", "3", "200"] {
        assert!(row.contains(part), "{part:?} in {row}");
    }
    let ids: Vec<String> = receiver
        .requests("/flaky")
        .iter()
        .map(|r| r.header("X-Weir-Delivery").to_owned())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(
        ids.iter().all(|id| id == &ids[0]),
        "one delivery id: {ids:?}"
    );

    // The receiver of the two-second schedule never answers, yet the
    // schedule goes on: its executions succeed one after another while
    // their notifications hang.
    eventually("three scheduled executions succeeded", || {
        let (_, list) = weir_json(
            &["executions", "--launch-plan", "every-2s", "-o", "json"],
            &setup.db,
        );
        list.as_array()
            .is_some_and(|l| l.iter().filter(|e| e["status"] == "succeeded").count() >= 3)
    });
    assert!(
        !receiver.requests("/hang").is_empty(),
        "the hanging receiver was called"
    );

    let (_, metrics) = http(&daemon.addr, "GET", "/metrics", &[], b"");
    let line = |outcome: &str| {
        metrics.lines().any(|l| {
            l.starts_with("weir_notifications_total")
                && l.contains(&format!("outcome=\"{outcome}\""))
        })
    };
    assert!(line("delivered") && line("retrying"), "{metrics}");
    daemon.stop();
}

#[test]
fn a_restart_delivers_what_was_not_acknowledged_and_nothing_twice() {
    // The first request to /fail gets no answer: the daemon is killed with
    // it in flight. Every later one is acknowledged.
    let behaviour: Arc<Behaviour> = Arc::new(|path: &str, nth: usize| match path {
        "/fail" if nth == 0 => None,
        _ => Some(200),
    });
    let receiver = Receiver::start(behaviour);
    let setup = setup(&definitions(&receiver), &receiver);
    let daemon = setup.start();
    let failed = run(&daemon, "alert-on-failure");
    eventually("the notification is in flight", || {
        !receiver.requests("/fail").is_empty()
    });
    daemon.kill9();
    assert_eq!(deliveries(&setup.db, &failed)[0]["status"], "pending");

    let daemon = setup.start();
    eventually("the notification is delivered after the restart", || {
        deliveries(&setup.db, &failed)
            .first()
            .is_some_and(|d| d["status"] == "delivered")
    });
    let got = receiver.requests("/fail");
    assert_eq!(got.len(), 2, "sent again once: {got:?}");
    assert_eq!(
        got[0].header("X-Weir-Delivery"),
        got[1].header("X-Weir-Delivery"),
        "the same delivery id, so the receiver can drop a duplicate"
    );

    // Acknowledged, then killed: a restart sends nothing more. Another
    // failure after the restart is the witness: once its notifications are
    // delivered, the notifier has scanned and sent since the restart, and
    // the acknowledged delivery, had it been due again, would have gone
    // out first (it ended before the restart, the witness after).
    daemon.kill9();
    let daemon = setup.start();
    let witness = run(&daemon, "alert-on-failure");
    eventually("the next failure's notifications are delivered", || {
        let sent = deliveries(&setup.db, &witness);
        !sent.is_empty() && sent.iter().all(|d| d["status"] == "delivered")
    });
    let ids: Vec<String> = receiver
        .requests("/fail")
        .iter()
        .map(|r| r.header("X-Weir-Delivery").to_owned())
        .collect();
    assert_eq!(ids.len(), 3, "the witness's, and nothing twice: {ids:?}");
    assert_eq!(
        ids.iter().filter(|id| **id == ids[0]).count(),
        2,
        "the acknowledged delivery was not sent again: {ids:?}"
    );
    daemon.stop();
}

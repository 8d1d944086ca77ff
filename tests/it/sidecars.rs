//! Sidecars on the local executor (issue 15, DESIGN.md section 6
//! "Sidecars"), through real commits run by an engine: a small TCP server
//! beside the task is ready before the task starts (the task connects
//! once, never retrying) and stopped after it ends; a sidecar that ends
//! early, never gets ready or ends while the task runs fails the attempt
//! with its own words; validation refuses what no executor could run.

use serde_json::json;

use crate::common::{run_committed, validate_files};

/// A TCP server that takes a second to listen, writes its pid, and
/// answers each connection with `pong` and its environment's `GREETING`.
const SERVER: &str = "import os, socket, time; time.sleep(1); \
     s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); \
     s.bind(('127.0.0.1', PORT)); s.listen(); \
     open('server.pid', 'w').write(str(os.getpid())); print('listening', flush=True)\n\
while True:\n    c, _ = s.accept(); c.sendall(('pong ' + os.environ['GREETING']).encode()); c.close()";

fn definitions(port: u16, sidecar: &str) -> String {
    format!(
        r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: {{ name: ask, project: p }}
spec:
  outputs: {{ reply: {{ type: string }} }}
  script:
    interpreter: python3
    source: |
      import json, os, socket
      c = socket.create_connection(("127.0.0.1", {port}))
      reply = c.recv(100).decode()
      json.dump({{"reply": reply}}, open(os.path.join(os.environ["WEIR_OUTPUTS"], "outputs.json"), "w"))
  sidecars:
{sidecar}
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: {{ name: ask, project: p }}
spec:
  nodes:
    - {{ id: ask, task: ask }}
"#
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn server_sidecar(port: u16) -> String {
    let command = json!(["python3", "-c", SERVER.replace("PORT", &port.to_string())]);
    format!(
        "    - name: server\n      image: python:3.12-slim\n      command: {command}\n      env: {{ GREETING: hello }}\n      readiness: {{ tcp: {port}, timeout: 30s }}\n"
    )
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_is_ready_before_the_task_starts_and_stopped_after_it_ends() {
    let port = free_port();
    let ran = run_committed(
        &[("ask.yaml", &definitions(port, &server_sidecar(port)))],
        "ask",
        json!({}),
    )
    .await;
    assert_eq!(ran.status, "succeeded", "{:#?}", ran.nodes);
    // The task connected once, without retrying: the server listened by then.
    assert_eq!(
        ran.nodes[0].outputs,
        Some(json!({ "reply": "pong hello" })),
        "the sidecar's own env reached it"
    );
    let dir = ran.attempt_dir("ask", 1);
    let pid: u32 = std::fs::read_to_string(dir.join("server.pid"))
        .expect("the sidecar ran in the attempt's folder")
        .parse()
        .expect("a pid");
    assert!(!alive(pid), "the sidecar is stopped once its task ended");
    let log = std::fs::read_to_string(dir.join("sidecars/server.stdout.log")).expect("its log");
    assert_eq!(log, "listening\n", "its output is kept beside the task's");
    // The engine was told its process group, to stop it after a restart.
    let handle = ran.nodes[0].handle.clone().expect("a handle");
    assert_eq!(handle["sidecars"], json!([pid]), "{handle}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_that_ends_before_it_is_ready_fails_the_attempt_and_the_task_never_runs() {
    let port = free_port();
    let sidecar = "    - name: db\n      image: postgres:16\n      command: [python3, -c, \"import sys; sys.exit('no configuration found')\"]\n      readiness: { tcp: PORT }\n"
        .replace("PORT", &port.to_string());
    let ran = run_committed(
        &[("ask.yaml", &definitions(port, &sidecar))],
        "ask",
        json!({}),
    )
    .await;
    assert_eq!(ran.status, "failed");
    assert_eq!(
        ran.error("ask"),
        "sidecar `db` exited with status 1 before it was ready; stderr ends with:\nno configuration found"
    );
    let dir = ran.attempt_dir("ask", 1);
    assert!(
        !dir.join("stdout.log").exists() && !dir.join("stderr.log").exists(),
        "the task never started"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_that_never_gets_ready_fails_the_attempt_after_its_timeout() {
    let port = free_port();
    let sidecar = "    - name: slow\n      image: busybox\n      command: [python3, -c, \"import os, time; open('slow.pid', 'w').write(str(os.getpid())); time.sleep(300)\"]\n      readiness: { exec: [\"false\"], timeout: 1s }\n";
    let ran = run_committed(
        &[("ask.yaml", &definitions(port, sidecar))],
        "ask",
        json!({}),
    )
    .await;
    assert_eq!(ran.status, "failed");
    assert_eq!(ran.error("ask"), "sidecar `slow` is not ready after 1s");
    let pid: u32 = std::fs::read_to_string(ran.attempt_dir("ask", 1).join("slow.pid"))
        .expect("it ran")
        .parse()
        .expect("a pid");
    assert!(!alive(pid), "a sidecar that was never ready is stopped too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_that_ends_while_the_task_runs_fails_the_attempt() {
    let definitions = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: wait, project: p }
spec:
  script:
    interpreter: python3
    source: |
      import time
      time.sleep(300)
  sidecars:
    - name: flaky
      image: busybox
      command: [python3, -c, "import sys, time; time.sleep(0.5); sys.exit('lost the connection')"]
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: wait, project: p }
spec:
  nodes:
    - { id: wait, task: wait }
"#;
    let ran = run_committed(&[("wait.yaml", definitions)], "wait", json!({})).await;
    assert_eq!(ran.status, "failed");
    assert_eq!(
        ran.error("wait"),
        "sidecar `flaky` exited with status 1 while the task ran; stderr ends with:\nlost the connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_without_a_command_cannot_run_locally() {
    let port = free_port();
    let sidecar = "    - name: db\n      image: postgres:16\n";
    let ran = run_committed(
        &[("ask.yaml", &definitions(port, sidecar))],
        "ask",
        json!({}),
    )
    .await;
    assert_eq!(ran.status, "failed");
    assert_eq!(
        ran.error("ask"),
        "sidecar `db` has no `command`: the local executor cannot run image `postgres:16`'s entrypoint"
    );
}

/// What no executor could run is refused at commit time, each at its
/// place: a sidecar without image, a readiness with no probe or an empty
/// one, a name taken twice or reserved, a template a sidecar would see as
/// text, a readiness timeout that is no duration.
#[test]
fn validation_refuses_sidecars_no_executor_could_run() {
    let with = |sidecars: &str| {
        let report = validate_files(&[("ask.yaml", &definitions(5432, sidecars))]);
        report
            .diagnostics
            .iter()
            // An invalid task is one the workflow cannot call (W012).
            .filter(|d| d.code.id() != "W012")
            .map(|d| {
                let pos = d.pos.expect("a position");
                format!("{} {}:{} {}", d.code.id(), pos.line, pos.column, d.message)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(with(&server_sidecar(5432)), Vec::<String>::new());
    let no_image = with("    - name: db\n      command: [postgres]\n");
    assert_eq!(no_image.len(), 1, "{no_image:?}");
    assert!(
        no_image[0].starts_with("W007 14:7") && no_image[0].contains("image"),
        "{no_image:?}"
    );
    for readiness in [
        "{ tcp: null }",
        "{}",
        "{ exec: [] }",
        "{ tcp: 1, exec: [a] }",
        "{ tcp: 0 }",
    ] {
        let found = with(&format!(
            "    - name: db\n      image: postgres\n      readiness: {readiness}\n"
        ));
        assert!(
            found.len() == 1 && found[0].starts_with("W007 16:"),
            "{readiness}: {found:?}"
        );
    }
    assert_eq!(
        with(
            "    - { name: db, image: a }\n    - { name: db, image: b }\n    - { name: task, image: c }\n"
        ),
        [
            "W042 15:15 sidecar `db` is declared twice",
            "W042 16:15 sidecar name `task` is reserved",
        ]
    );
    assert_eq!(
        with(
            "    - name: db\n      image: a\n      env: { MODE: \"{{ inputs.mode }}\" }\n      readiness: { tcp: 1, timeout: soon }\n"
        ),
        [
            "W042 16:20 sidecar `db` would see `{{ … }}` as literal text",
            "W024 17:37 `soon` is not a duration (expected e.g. `30m`, `1h30m`, `10s`)",
        ]
    );
}

//! The engine's [`Observer`] for OpenLineage, and the thread that delivers
//! its events.
//!
//! What it guarantees: the engine is never slowed (each observer call
//! builds the events and hands them over a channel; one background thread
//! writes and POSTs them, in order); [`Emitter::flush`], and dropping the
//! emitter, wait for the events handed over so far. An event's
//! `eventTime` is the instant the engine recorded for it: on the node (its
//! attempt's start, or its end), on the execution (its start, or its
//! end). The emitter reads no clock, so events agree with the store and
//! with a virtual clock.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use super::Error;
use super::events::{EventType, RunEvent, execution_event, run_event};
use super::sinks::{FileSink, HttpSink};
use crate::engine::{NodeEvent, Observer, PlanNode};
use crate::store::execution::{Execution, NodeState};

enum Message {
    Event(Box<RunEvent>),
    /// Answered once every event sent before it is delivered.
    Flush(mpsc::Sender<()>),
}

/// The [`Observer`] that turns node events into OpenLineage RunEvents and
/// delivers them from a background thread.
pub struct Emitter {
    sender: Option<mpsc::Sender<Message>>,
    worker: Option<JoinHandle<()>>,
}

impl Emitter {
    /// Starts the thread that delivers events to `file` and `http` (either
    /// may be absent).
    pub fn start(file: Option<FileSink>, http: Option<HttpSink>) -> Result<Emitter, Error> {
        let (sender, receiver) = mpsc::channel();
        let worker = std::thread::Builder::new()
            .name("openlineage".into())
            .spawn(move || deliver(&receiver, file, http))
            .map_err(Error::Spawn)?;
        Ok(Emitter {
            sender: Some(sender),
            worker: Some(worker),
        })
    }

    /// The emitter `weir run --wait` and `weir serve` are configured for:
    /// events appended to `file` and/or POSTed below `url` (a Marquez base
    /// URL), started; `None` when neither is given. A file that cannot be
    /// opened or a URL that is not http(s) is an error here, before any
    /// execution runs.
    pub fn open(
        file: Option<&Path>,
        url: Option<&str>,
        api_key: Option<&str>,
    ) -> Result<Option<Emitter>, Error> {
        if file.is_none() && url.is_none() {
            return Ok(None);
        }
        let file = file.map(FileSink::open).transpose()?;
        let http = url
            .map(HttpSink::new)
            .transpose()?
            .map(|sink| sink.with_api_key(api_key));
        Emitter::start(file, http).map(Some)
    }

    /// Hands `event` to the delivery thread; never waits.
    pub fn emit(&self, event: RunEvent) {
        let handed = self
            .sender
            .as_ref()
            .is_some_and(|s| s.send(Message::Event(Box::new(event))).is_ok());
        if !handed {
            tracing::warn!("the OpenLineage sender has stopped; event dropped");
        }
    }

    /// Waits until every event emitted so far is written or dropped.
    pub fn flush(&self) {
        let (ack, done) = mpsc::channel();
        if let Some(sender) = &self.sender {
            if sender.send(Message::Flush(ack)).is_ok() {
                // An error means the thread ended: nothing left to wait for.
                let _ = done.recv();
            }
        }
    }
}

impl Observer for Emitter {
    fn node_event(
        &self,
        event: NodeEvent,
        execution: &Execution,
        node: &PlanNode,
        state: &NodeState,
    ) {
        // The instant the engine recorded: a start when an attempt starts,
        // else the end; an execution's creation only if neither was set.
        let recorded = match event {
            NodeEvent::Started => state.started_at,
            _ => state.finished_at.or(state.started_at),
        };
        let at = recorded.unwrap_or(execution.created_at);
        for &event_type in EventType::of(event, state) {
            self.emit(run_event(event_type, execution, node, state, at));
        }
    }

    /// The execution's run starts, at the instant the engine recorded it
    /// running.
    fn execution_started(&self, execution: &Execution) {
        let at = execution.started_at.unwrap_or(execution.created_at);
        self.emit(execution_event(EventType::Start, execution, at));
    }

    /// The execution's run ends (COMPLETE, FAIL or ABORT), at the instant
    /// the engine recorded its end.
    fn execution_finished(&self, execution: &Execution) {
        let Some(event_type) = EventType::of_execution(execution.status) else {
            return;
        };
        let at = execution
            .finished_at
            .or(execution.started_at)
            .unwrap_or(execution.created_at);
        self.emit(execution_event(event_type, execution, at));
    }
}

impl Drop for Emitter {
    /// Delivers what is pending, then ends the thread.
    fn drop(&mut self) {
        drop(self.sender.take());
        if let Some(worker) = self.worker.take() {
            if worker.join().is_err() {
                tracing::warn!("the OpenLineage sender thread panicked");
            }
        }
    }
}

/// The delivery thread: each event, in order, to each sink, until every
/// sender is gone.
fn deliver(
    messages: &mpsc::Receiver<Message>,
    mut file: Option<FileSink>,
    mut http: Option<HttpSink>,
) {
    for message in messages {
        match message {
            Message::Event(event) => {
                let body = match serde_json::to_string(&event) {
                    Ok(body) => body,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot serialise an OpenLineage event");
                        continue;
                    }
                };
                if let Some(file) = &mut file {
                    file.append(&body);
                }
                if let Some(http) = &mut http {
                    http.post(&body);
                }
            }
            Message::Flush(ack) => {
                let _ = ack.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    use std::net::TcpListener;
    use std::time::Duration;

    use serde_json::{Value, json};

    use super::super::fixtures::*;
    use super::super::sinks::LINEAGE_PATH;
    use super::*;
    use crate::store::execution::NodeStatus;

    fn emit_node_story(emitter: &Emitter) {
        let execution = execution(LOCAL);
        let node = plan_node("train");
        let running = node_state(NodeStatus::Running, 1, None);
        let succeeded = node_state(NodeStatus::Succeeded, 1, Some(json!({ "model": MODEL })));
        emitter.node_event(NodeEvent::Started, &execution, &node, &running);
        emitter.node_event(NodeEvent::Succeeded, &execution, &node, &succeeded);
    }

    #[test]
    fn file_sink_appends_one_event_a_line_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lineage/nested/events.jsonl");
        for _ in 0..2 {
            let emitter = Emitter::start(Some(FileSink::open(&path).unwrap()), None).unwrap();
            emit_node_story(&emitter);
            // Dropping delivers what is pending.
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let events: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let types: Vec<&str> = events
            .iter()
            .map(|e| e["eventType"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            ["START", "COMPLETE", "START", "COMPLETE"],
            "appended, in order"
        );
        assert_eq!(events[0]["run"]["runId"], events[1]["run"]["runId"]);
    }

    /// `eventTime` is the instant recorded on the node (an attempt's start,
    /// then its end), never the time the emitter happens to run.
    #[test]
    fn events_are_stamped_with_the_instants_the_engine_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let instant = |text| {
            chrono::DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&chrono::Utc)
        };
        let (started, finished) = (
            instant("2031-03-29T00:30:00Z"),
            instant("2031-03-29T00:42:00Z"),
        );
        let emitter = Emitter::start(Some(FileSink::open(&path).unwrap()), None).unwrap();
        let (execution, node) = (execution(LOCAL), plan_node("train"));
        let mut state = node_state(NodeStatus::Running, 1, None);
        state.started_at = Some(started);
        emitter.node_event(NodeEvent::Started, &execution, &node, &state);
        state.status = NodeStatus::Succeeded;
        state.outputs = Some(json!({ "model": MODEL }));
        state.finished_at = Some(finished);
        emitter.node_event(NodeEvent::Succeeded, &execution, &node, &state);
        drop(emitter);
        let stamps: Vec<_> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|line| {
                let event: Value = serde_json::from_str(line).unwrap();
                chrono::DateTime::parse_from_rfc3339(event["eventTime"].as_str().unwrap()).unwrap()
            })
            .collect();
        assert_eq!(stamps, [started, finished]);
    }

    /// An execution's START and end are stamped with its recorded start
    /// and end, and an execution that has not ended sends no end.
    #[test]
    fn execution_events_are_stamped_with_its_recorded_start_and_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let instant = |text: &str| text.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        let emitter = Emitter::open(Some(&path), None, None).unwrap().unwrap();
        let mut execution = execution(LOCAL);
        execution.started_at = Some(instant("2031-03-29T00:30:00Z"));
        emitter.execution_started(&execution);
        emitter.execution_finished(&execution); // still running: nothing
        execution.status = crate::store::execution::Status::Failed;
        execution.error = Some("node `train` failed: exit status 1".into());
        execution.finished_at = Some(instant("2031-03-29T00:42:00Z"));
        emitter.execution_finished(&execution);
        drop(emitter);
        let events: Vec<Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let seen: Vec<(&str, &str)> = events
            .iter()
            .map(|e| {
                (
                    e["eventType"].as_str().unwrap(),
                    e["eventTime"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("START", "2031-03-29T00:30:00.000Z"),
                ("FAIL", "2031-03-29T00:42:00.000Z")
            ]
        );
        assert_eq!(events[0]["run"]["runId"], events[1]["run"]["runId"]);
        assert_eq!(
            events[1]["run"]["facets"]["errorMessage"]["message"],
            "node `train` failed: exit status 1"
        );
    }

    #[test]
    fn open_starts_an_emitter_only_when_asked_and_names_what_it_cannot_open() {
        assert!(Emitter::open(None, None, None).unwrap().is_none());
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("a-file");
        std::fs::write(&blocker, "").unwrap();
        let under_a_file = blocker.join("events.jsonl");
        let Err(error) = Emitter::open(Some(&under_a_file), None, None) else {
            panic!("a path under a file: opened")
        };
        assert!(matches!(error, Error::File { .. }), "{error}");
        assert!(error.to_string().contains("a-file/events.jsonl"), "{error}");
        let Err(error) = Emitter::open(None, Some("marquez:5000"), None) else {
            panic!("not a URL: accepted")
        };
        assert!(matches!(error, Error::Url { .. }), "{error}");
    }

    struct Request {
        line: String,
        content_type: String,
        authorization: String,
        body: String,
    }

    /// A tiny HTTP server on a free local port: answers its connections, one
    /// request each, with `statuses` in turn, and reports each request.
    fn serve(statuses: Vec<u16>) -> (String, mpsc::Receiver<Request>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for status in statuses {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let (mut length, mut content_type) = (0, String::new());
                let mut authorization = String::new();
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).unwrap();
                    let Some((name, value)) = header.trim_end().split_once(':') else {
                        break;
                    };
                    match name.to_ascii_lowercase().as_str() {
                        "content-length" => length = value.trim().parse().unwrap(),
                        "content-type" => content_type = value.trim().to_owned(),
                        "authorization" => authorization = value.trim().to_owned(),
                        _ => {}
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let reply = format!(
                    "HTTP/1.1 {status} Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                reader.get_mut().write_all(reply.as_bytes()).unwrap();
                let line = line.trim_end().to_owned();
                let body = String::from_utf8(body).unwrap();
                tx.send(Request {
                    line,
                    content_type,
                    authorization,
                    body,
                })
                .unwrap();
            }
        });
        (base, rx)
    }

    fn received(requests: &mpsc::Receiver<Request>) -> Request {
        requests.recv_timeout(Duration::from_secs(10)).unwrap()
    }

    #[test]
    fn http_sink_posts_each_event_to_the_lineage_endpoint() {
        let (base, requests) = serve(vec![200, 201]);
        let http = HttpSink::new(&format!("{base}/")).unwrap();
        let emitter = Emitter::start(None, Some(http)).unwrap();
        emit_node_story(&emitter);
        emitter.flush();
        for expected in ["START", "COMPLETE"] {
            let request = received(&requests);
            assert_eq!(request.line, "POST /api/v1/lineage HTTP/1.1");
            assert_eq!(request.content_type, "application/json");
            let event: Value = serde_json::from_str(&request.body).unwrap();
            assert_eq!(event["eventType"], expected);
            assert_eq!(event["job"]["name"], "churn-training.train");
        }
    }

    /// With an API key, each request carries it as a bearer token; without
    /// one, no `Authorization` header is sent.
    #[test]
    fn http_sink_sends_its_api_key_as_a_bearer_token() {
        let (base, requests) = serve(vec![200, 200, 200, 200]);
        let keyed = HttpSink::new(&base)
            .unwrap()
            .with_api_key(Some("s3cret-key"));
        let emitter = Emitter::start(None, Some(keyed)).unwrap();
        emit_node_story(&emitter);
        emitter.flush();
        for _ in 0..2 {
            assert_eq!(received(&requests).authorization, "Bearer s3cret-key");
        }
        let open = Emitter::start(None, Some(HttpSink::new(&base).unwrap())).unwrap();
        emit_node_story(&open);
        open.flush();
        for _ in 0..2 {
            assert_eq!(received(&requests).authorization, "");
        }
    }

    #[test]
    fn http_sink_retries_after_a_server_error() {
        let (base, requests) = serve(vec![503, 200]);
        let http = HttpSink::new(&format!("{base}{LINEAGE_PATH}"))
            .unwrap()
            .with_retries(3, Duration::from_millis(1));
        let emitter = Emitter::start(None, Some(http)).unwrap();
        emitter.emit(run_event(
            EventType::Start,
            &execution(LOCAL),
            &plan_node("train"),
            &node_state(NodeStatus::Running, 1, None),
            at(),
        ));
        emitter.flush();
        let (first, second) = (received(&requests), received(&requests));
        assert_eq!(first.line, "POST /api/v1/lineage HTTP/1.1");
        assert_eq!(first.body, second.body, "the same event, sent again");
    }
}

//! What a notification says and how it is sent: a JSON `POST` to a webhook
//! (signed with `X-Weir-Signature-256` when the rule names a secret) or a
//! message to a Slack incoming webhook.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::executor::local::attempt_dir;
use crate::outbound::sign;
use crate::source::git::redact_url;
use crate::spec::{NotifyRule, short_sha};
use crate::store::Delivery;
use crate::store::execution::{Execution, NodeState, NodeStatus};

/// The header carrying `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Weir-Signature-256";
/// The header carrying the delivery's id (the same on every retry).
pub const DELIVERY_HEADER: &str = "X-Weir-Delivery";
/// The last lines of the failed node's log that are sent.
const LOG_LINES: usize = 20;
/// Of its log, only this many last bytes are read.
const LOG_BYTES: u64 = 16 * 1024;

/// `webhook` or `slack`, and where it goes as it may be shown.
pub(super) fn describe(rule: &NotifyRule) -> (&'static str, String) {
    match (&rule.webhook, &rule.slack) {
        (Some(webhook), _) => ("webhook", redact_url(&webhook.url)),
        (None, Some(slack)) => ("slack", format!("Slack ({})", slack.webhook_url)),
        (None, None) => ("none", String::new()),
    }
}

/// The body of a notification.
#[derive(Debug, Clone)]
pub struct Message {
    pub delivery: String,
    pub json: Value,
    pub text: String,
}

impl Message {
    pub fn new(
        delivery: &Delivery,
        execution: &Execution,
        nodes: &[NodeState],
        state_dir: &Path,
        public_url: &str,
    ) -> Message {
        let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
            t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        };
        let link = format!("{public_url}/api/v1/executions/{}", execution.id);
        let failed = nodes
            .iter()
            .find(|n| matches!(n.status, NodeStatus::Failed | NodeStatus::TimedOut));
        let failed_json = failed.map(|n| {
            json!({
                "id": n.node,
                "task": n.task,
                "status": n.status.as_str(),
                "attempts": n.attempts,
                "error": n.error,
                "logTail": log_tail(state_dir, execution, n),
            })
        });
        let json = json!({
            "delivery": delivery.id,
            "event": delivery.event.as_str(),
            "execution": {
                "id": execution.id,
                "project": execution.project,
                "launchPlan": execution.launch_plan,
                "workflow": execution.workflow,
                "status": execution.status.as_str(),
                "trigger": execution.trigger,
                "scheduledAt": time(execution.scheduled_at),
                "commit": execution.commit.0,
                "source": execution.source.0,
                "startedAt": time(execution.started_at),
                "finishedAt": time(execution.finished_at),
                "error": execution.error,
                "url": link,
            },
            "failedNode": failed_json,
        });
        let icon = match delivery.event {
            crate::store::Status::Succeeded => ":white_check_mark:",
            crate::store::Status::Cancelled => ":no_entry_sign:",
            _ => ":x:",
        };
        let name = execution
            .launch_plan
            .as_deref()
            .unwrap_or(&execution.workflow);
        let mut text = format!(
            "{icon} *{name}* {} — execution `{}` of commit `{}`",
            execution.status,
            execution.id,
            short_sha(&execution.commit.0)
        );
        if let Some(node) = failed {
            text.push_str(&format!("\nnode `{}` {}", node.node, node.status));
            if let Some(error) = &node.error {
                text.push_str(&format!(": {error}"));
            }
            let tail = log_tail(state_dir, execution, node);
            if !tail.is_empty() {
                text.push_str(&format!("\n```\n{}\n```", tail.join("\n")));
            }
        }
        text.push_str(&format!("\n<{link}|details>"));
        Message {
            delivery: delivery.id.clone(),
            json,
            text,
        }
    }
}

/// The last lines of a node's latest attempt: stderr, or stdout when
/// stderr is empty.
fn log_tail(state_dir: &Path, execution: &Execution, node: &NodeState) -> Vec<String> {
    if node.attempts == 0 {
        return Vec::new();
    }
    let dir = attempt_dir(state_dir, &execution.id, &node.node, node.attempts);
    for stream in ["stderr.log", "stdout.log"] {
        let lines = last_lines(&dir.join(stream));
        if !lines.is_empty() {
            return lines;
        }
    }
    Vec::new()
}

fn last_lines(path: &Path) -> Vec<String> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(LOG_BYTES);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // cut in the middle
    }
    let skip = lines.len().saturating_sub(LOG_LINES);
    lines[skip..]
        .iter()
        .map(|l| l.chars().take(500).collect())
        .collect()
}

/// Why an attempt did not get through.
#[derive(Debug)]
pub(super) struct Failure {
    pub message: String,
    pub http_status: Option<u16>,
    /// Retrying cannot help (a missing secret).
    pub permanent: bool,
}

impl Failure {
    pub fn permanent(message: String) -> Failure {
        Failure {
            message,
            http_status: None,
            permanent: true,
        }
    }

    fn transient(message: String, http_status: Option<u16>) -> Failure {
        Failure {
            message,
            http_status,
            permanent: false,
        }
    }
}

/// An agent for notifications: weir's client settings, `timeout` per
/// request, and every answer read (a 500 is an answer, not an error).
pub(super) fn agent(timeout: Duration) -> ureq::Agent {
    crate::outbound::agent_config(timeout)
        .http_status_as_error(false)
        .build()
        .into()
}

/// Sends `message` as `rule` says, with `agent`; the receiver's 2xx status.
pub(super) fn send(
    rule: &NotifyRule,
    message: &Message,
    agent: &ureq::Agent,
) -> Result<u16, Failure> {
    let (url, body, signature) = match (&rule.webhook, &rule.slack) {
        (Some(webhook), _) => {
            let body = serde_json::to_vec(&message.json).expect("JSON values serialize");
            let signature = match &webhook.secret {
                Some(secret) => {
                    let key = secret.read().map_err(|e| {
                        Failure::permanent(format!("the webhook's secret ({secret}): {e}"))
                    })?;
                    Some(sign(key.as_bytes(), &body))
                }
                None => None,
            };
            (webhook.url.clone(), body, signature)
        }
        (None, Some(slack)) => {
            let url = slack.webhook_url.read().map_err(|e| {
                Failure::permanent(format!(
                    "the Slack webhook URL ({}): {e}",
                    slack.webhook_url
                ))
            })?;
            let body = serde_json::to_vec(&json!({ "text": message.text }))
                .expect("JSON values serialize");
            (url, body, None)
        }
        (None, None) => return Err(Failure::permanent("the rule has no target".into())),
    };
    let mut request = agent
        .post(&url)
        .header("Content-Type", "application/json")
        .header("User-Agent", concat!("weir/", env!("CARGO_PKG_VERSION")))
        .header(DELIVERY_HEADER, &message.delivery);
    if let Some(signature) = &signature {
        request = request.header(SIGNATURE_HEADER, signature);
    }
    // Never show the URL of a Slack webhook: it is the credential.
    let shown = if rule.webhook.is_some() {
        redact_url(&url)
    } else {
        "the Slack webhook".to_owned()
    };
    match request.send(&body[..]) {
        Ok(response) => {
            let status = response.status().as_u16();
            if (200..300).contains(&status) {
                Ok(status)
            } else {
                Err(Failure::transient(
                    format!("{shown} answered {status}"),
                    Some(status),
                ))
            }
        }
        Err(e) => Err(Failure::transient(
            format!("cannot reach {shown}: {}", scrub(&e.to_string(), &url)),
            None,
        )),
    }
}

/// An error message without the URL (a Slack URL is a secret).
fn scrub(message: &str, url: &str) -> String {
    message.replace(url, "…")
}

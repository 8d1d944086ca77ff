//! A client of the JSON API ([`super::api`]): what the CLI reads and asks
//! with `--server URL` instead of opening the store: `status`,
//! `versions`, `executions`, `lineage`, `audit`, `diff` and `logs` read,
//! `run`, `backfill` and `cancel` write.
//!
//! It sends the same queries and bodies and reads back the same views
//! ([`crate::views`]) the API writes, so a command prints the same
//! whichever it read. A 404 with the API's own message is
//! [`Error::NotFound`] (the CLI's not-found exit code), a 400
//! [`Error::Rejected`], a 409 [`Error::Conflict`]; everything else that
//! goes wrong is an [`Error`] that names the server.
//!
//! Blocking (ureq): a command makes a request at a time and has nothing
//! else to do meanwhile. The token is sent as `Authorization: Bearer` and
//! never shown.

use std::io::Write;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::artifact;
use crate::outbound::agent_config;
use crate::source::git::redact_url;
use crate::spec::{Digest, ExecutionId};
use crate::views::{
    ApprovalBody, AuditQuery, AuditView, BackfillBody, BackfillView, CancelView, DecisionView,
    DiffView, ExecutionQuery, ExecutionView, LaunchPlanQuery, LaunchPlanView, LineageQuery,
    LineageView, LogQuery, NodePage, PauseBody, PausedView, RunBody, SourceView, StatusView,
    VersionQuery, VersionView,
};

/// How long one request may take, connecting included (not a followed
/// log, which lasts as long as its node).
const TIMEOUT: Duration = Duration::from_secs(30);

/// Largest answer read: lineage and execution lists can be long, but not
/// this long.
const MAX_ANSWER: u64 = 256 * 1024 * 1024;

/// Why a request got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{url}` is not a weir server URL (http://host:port or https://host)")]
    Url { url: String },
    #[error("cannot reach the weir server at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the weir server at {url} refused the request: the API token is missing or wrong")]
    Unauthorized { url: String },
    /// 404 with the API's message: what was asked about does not exist.
    #[error("{message}")]
    NotFound { message: String },
    /// 400: the server's own words about the request.
    #[error("{message}")]
    Rejected { message: String },
    /// 409: the request cannot be done in the state things are in.
    #[error("{message}")]
    Conflict { message: String },
    #[error("the weir server at {url} answered {status}: {message}")]
    Failed {
        url: String,
        status: u16,
        message: String,
    },
    #[error("the weir server at {url} sent an answer weir cannot read: {reason}")]
    Unreadable { url: String, reason: String },
}

/// A weir server's API.
#[derive(Clone)]
pub struct Client {
    /// As given, without a trailing `/`.
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// A client of the server at `base` (`http://host:port`, or `https://`),
    /// sending `token` if there is one. Nothing is sent yet.
    pub fn new(base: &str, token: Option<String>) -> Result<Client, Error> {
        let invalid = || Error::Url {
            url: redact_url(base),
        };
        let uri: ureq::http::Uri = base.parse().map_err(|_| invalid())?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(invalid());
        }
        // Error statuses are answers to read, not errors.
        let agent = agent_config(TIMEOUT)
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Client {
            base: base.trim_end_matches('/').to_owned(),
            token,
            agent,
        })
    }

    /// `GET /api/v1/sources`.
    pub fn sources(&self) -> Result<Vec<SourceView>, Error> {
        self.get("/api/v1/sources", &())
    }

    /// `GET /api/v1/status`.
    pub fn status(&self) -> Result<StatusView, Error> {
        self.get("/api/v1/status", &())
    }

    /// `GET /api/v1/versions?…`.
    pub fn versions(&self, query: &VersionQuery) -> Result<Vec<VersionView>, Error> {
        self.get("/api/v1/versions", query)
    }

    /// `GET /api/v1/launchplans?…`.
    pub fn launch_plans(&self, query: &LaunchPlanQuery) -> Result<Vec<LaunchPlanView>, Error> {
        self.get("/api/v1/launchplans", query)
    }

    /// `POST /api/v1/launchplans/{project}/{name}/pause` (`paused`) or
    /// `…/resume`.
    pub fn set_paused(
        &self,
        project: &str,
        name: &str,
        paused: bool,
        body: &PauseBody,
    ) -> Result<PausedView, Error> {
        let what = if paused { "pause" } else { "resume" };
        let path = format!(
            "/api/v1/launchplans/{}/{}/{what}",
            path_segment(project),
            path_segment(name)
        );
        self.post(&path, body)
    }

    /// `GET /api/v1/executions?…`.
    pub fn executions(&self, query: &ExecutionQuery) -> Result<Vec<ExecutionView>, Error> {
        self.get("/api/v1/executions", query)
    }

    /// `GET /api/v1/executions/{id}`; `None` when the server has no such
    /// execution.
    pub fn execution(
        &self,
        id: &ExecutionId,
        page: &NodePage,
    ) -> Result<Option<ExecutionView>, Error> {
        found(self.get(&execution_path(id, ""), page))
    }

    /// [`Client::execution`] with all its nodes, a page at a time.
    pub fn execution_all(&self, id: &ExecutionId) -> Result<Option<ExecutionView>, Error> {
        let mut page = NodePage {
            nodes: Some(crate::views::MAX_NODES_PER_PAGE),
            after: None,
        };
        let Some(mut whole) = self.execution(id, &page)? else {
            return Ok(None);
        };
        while let Some(next) = whole.nodes_next.take() {
            page.after = Some(next);
            let Some(more) = self.execution(id, &page)? else {
                return Ok(None);
            };
            whole.nodes.extend(more.nodes);
            whole.nodes_next = more.nodes_next;
        }
        whole.nodes_total = None;
        Ok(Some(whole))
    }

    /// `GET /api/v1/lineage/{target}?…`; `None` when the target is neither
    /// an execution nor an artifact.
    pub fn lineage(
        &self,
        target: &str,
        query: &LineageQuery,
    ) -> Result<Option<LineageView>, Error> {
        found(self.get(&format!("/api/v1/lineage/{}", path_segment(target)), query))
    }

    /// `GET /api/v1/audit?…`.
    pub fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditView>, Error> {
        self.get("/api/v1/audit", query)
    }

    /// `GET /api/v1/executions/{id}/diff[/{base}]`.
    pub fn diff(&self, id: &ExecutionId, base: Option<&ExecutionId>) -> Result<DiffView, Error> {
        let base = base.map_or(String::new(), |b| format!("/{}", path_segment(b.as_str())));
        self.get(&execution_path(id, &format!("/diff{base}")), &())
    }

    /// `GET /api/v1/executions/{id}/logs?…`, copied to `out` as it comes:
    /// with `follow`, until the server ends it (the node or execution
    /// ended), however long that takes.
    pub fn logs(
        &self,
        id: &ExecutionId,
        query: &LogQuery,
        out: &mut impl Write,
    ) -> Result<(), Error> {
        let mut request = self.request_get(&execution_path(id, "/logs"), query);
        if query.follow {
            request = request.config().timeout_global(None).build();
        }
        let response = request.call().map_err(|e| self.unreachable(&e))?;
        if response.status().as_u16() != 200 {
            return self.answer::<()>(response);
        }
        let mut body = response.into_body().into_reader();
        match std::io::copy(&mut body, out) {
            Ok(_) => Ok(()),
            // stdout gone (`| head`): nothing more to show, nothing wrong.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            Err(e) => Err(Error::Unreachable {
                url: self.url(),
                reason: io_reason(&e),
            }),
        }
    }

    /// `GET /api/v1/artifacts/{digest}`: the artifact's bytes, to read as
    /// they come, for as long as it takes (an artifact may be large).
    pub fn artifact(&self, digest: &Digest) -> Result<impl std::io::Read + use<>, Error> {
        let path = format!(
            "/api/v1/artifacts/{}",
            path_segment(&artifact::reference(digest))
        );
        let request = self
            .request_get(&path, &())
            .config()
            .timeout_global(None)
            .build();
        let response = request.call().map_err(|e| self.unreachable(&e))?;
        if response.status().as_u16() != 200 {
            return Err(self
                .answer::<()>(response)
                .err()
                .unwrap_or_else(|| Error::Unreadable {
                    url: self.url(),
                    reason: "an artifact answered without 200".into(),
                }));
        }
        Ok(response.into_body().into_reader())
    }

    /// `POST /api/v1/executions/{id}/nodes/{node}/approval`.
    pub fn approve(
        &self,
        id: &ExecutionId,
        node: &str,
        body: &ApprovalBody,
    ) -> Result<DecisionView, Error> {
        let path = execution_path(id, &format!("/nodes/{}/approval", path_segment(node)));
        self.post(&path, body)
    }

    /// `POST /api/v1/runs`.
    pub fn run(&self, body: &RunBody) -> Result<ExecutionView, Error> {
        self.post("/api/v1/runs", body)
    }

    /// `POST /api/v1/backfills`.
    pub fn backfill(&self, body: &BackfillBody) -> Result<BackfillView, Error> {
        self.post("/api/v1/backfills", body)
    }

    /// `POST /api/v1/executions/{id}/cancel`.
    pub fn cancel(&self, id: &ExecutionId) -> Result<CancelView, Error> {
        self.post(&execution_path(id, "/cancel"), &())
    }

    /// `POST /api/v1/executions/{id}/relaunch` or `…/recover` (`what`):
    /// the new execution, with its nodes.
    pub fn again(&self, id: &ExecutionId, what: &str) -> Result<ExecutionView, Error> {
        self.post(&execution_path(id, &format!("/{what}")), &())
    }

    /// `GET path?query`, with the token.
    fn request_get(
        &self,
        path: &str,
        query: &impl Serialize,
    ) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        for (name, value) in query_pairs(query) {
            request = request.query(name, value);
        }
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        request
    }

    /// `GET path?query`, the JSON answer read as `T`.
    fn get<T: DeserializeOwned>(&self, path: &str, query: &impl Serialize) -> Result<T, Error> {
        let request = self
            .request_get(path, query)
            .header("Accept", "application/json");
        let response = request.call().map_err(|e| self.unreachable(&e))?;
        self.answer(response)
    }

    /// `POST path` with `body` as JSON, the JSON answer read as `T`.
    fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, Error> {
        let body = serde_json::to_vec(body).expect("request bodies always serialize");
        let mut request = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Accept", "application/json")
            .header("Content-Type", "application/json");
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let response = request.send(&body[..]).map_err(|e| self.unreachable(&e))?;
        self.answer(response)
    }

    /// A 2xx answer read as `T`; an error status as its [`Error`].
    fn answer<T: DeserializeOwned>(
        &self,
        mut response: ureq::http::Response<ureq::Body>,
    ) -> Result<T, Error> {
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .map_err(|e| self.unreachable(&e))?;
        // Every error the API sends is `{"error": "…"}`; a 404 without it
        // is not the API's (a wrong URL, another server).
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned));
        match (status, message) {
            (200..=299, _) => serde_json::from_slice(&body).map_err(|e| Error::Unreadable {
                url: self.url(),
                reason: e.to_string(),
            }),
            (401, _) => Err(Error::Unauthorized { url: self.url() }),
            (404, Some(message)) => Err(Error::NotFound { message }),
            (400, Some(message)) => Err(Error::Rejected { message }),
            (409, Some(message)) => Err(Error::Conflict { message }),
            (404, None) => Err(Error::Failed {
                url: self.url(),
                status,
                message: "no such route: is this a weir server?".into(),
            }),
            (_, message) => Err(Error::Failed {
                url: self.url(),
                status,
                message: message
                    .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned()),
            }),
        }
    }

    /// The server's URL as it may be shown (no credentials).
    fn url(&self) -> String {
        redact_url(&self.base)
    }

    fn unreachable(&self, e: &ureq::Error) -> Error {
        Error::Unreachable {
            url: self.url(),
            reason: reason(e),
        }
    }
}

/// `Ok(None)` for what the server does not have.
fn found<T>(answer: Result<T, Error>) -> Result<Option<T>, Error> {
    match answer {
        Ok(view) => Ok(Some(view)),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `/api/v1/executions/{id}` and what follows it.
fn execution_path(id: &ExecutionId, rest: &str) -> String {
    format!("/api/v1/executions/{}{rest}", path_segment(id.as_str()))
}

/// What went wrong on the way, in a few words: `connection refused`, not
/// `io: Connection refused (os error 111)`.
fn reason(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => io_reason(io),
        ureq::Error::Timeout(_) => format!("no answer within {}s", TIMEOUT.as_secs()),
        ureq::Error::HostNotFound => "host not found".into(),
        other => other.to_string(),
    }
}

fn io_reason(io: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match io.kind() {
        ErrorKind::ConnectionRefused => "connection refused".into(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::UnexpectedEof => {
            "the connection was closed".into()
        }
        ErrorKind::TimedOut => "timed out".into(),
        _ => io.to_string(),
    }
}

/// A query's fields as URL parameters, named as the API reads them (the
/// same serde names), absent ones left out.
fn query_pairs(query: &impl Serialize) -> Vec<(String, String)> {
    let serde_json::Value::Object(fields) = crate::views::to_json(query) else {
        return Vec::new();
    };
    fields
        .into_iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(name, value)| match value {
            serde_json::Value::String(text) => (name, text),
            other => (name, other.to_string()),
        })
        .collect()
}

/// `text` as one path segment: unreserved characters (and `:` and `@`)
/// as they are, everything else percent-encoded, so an id with `/` or
/// spaces stays one segment.
fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~:@".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_become_the_parameters_the_api_reads() {
        let query = ExecutionQuery {
            launch_plan: Some("nightly run".into()),
            status: Some("timedOut".into()),
            limit: Some(5),
            ..ExecutionQuery::default()
        };
        assert_eq!(
            query_pairs(&query),
            [
                ("launchPlan".to_owned(), "nightly run".to_owned()),
                ("limit".to_owned(), "5".to_owned()),
                ("status".to_owned(), "timedOut".to_owned()),
            ]
        );
        let upstream = LineageQuery {
            upstream: true,
            downstream: false,
        };
        assert_eq!(
            query_pairs(&upstream),
            [("upstream".to_owned(), "true".to_owned())]
        );
        assert!(query_pairs(&()).is_empty());
    }

    #[test]
    fn a_path_segment_stays_one_segment() {
        let artifact = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(path_segment(&artifact), artifact);
        assert_eq!(path_segment("a/b c%"), "a%2Fb%20c%25");
    }

    #[test]
    fn only_http_urls_with_a_host_are_servers() {
        for url in ["127.0.0.1:7878", "ftp://host", "http://", "not a url"] {
            assert!(
                matches!(Client::new(url, None), Err(Error::Url { .. })),
                "{url}"
            );
        }
        assert!(Client::new("https://weir.example.com/", None).is_ok());
    }
}

//! A client of the JSON API ([`super::api`]): what `weir status`,
//! `versions`, `executions` and `lineage` read with `--server URL` instead
//! of opening the store.
//!
//! It sends the same queries and reads back the same views
//! ([`crate::views`]) the API writes, so a command prints the same
//! whichever it read. An unknown execution or lineage target is `None`, as
//! the store says it; everything else that goes wrong is an [`Error`] that
//! names the server.
//!
//! Blocking (ureq): a command makes one request and has nothing else to do
//! meanwhile. The token is sent as `Authorization: Bearer` and never shown.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::outbound::agent_config;
use crate::source::git::redact_url;
use crate::spec::ExecutionId;
use crate::views::{
    ExecutionQuery, ExecutionView, LineageQuery, LineageView, SourceView, StatusView, VersionQuery,
    VersionView,
};

/// How long one request may take, connecting included.
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
    /// 400: the server's own words about the query.
    #[error("{message}")]
    Rejected { message: String },
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
        self.list("/api/v1/sources", &())
    }

    /// `GET /api/v1/status`.
    pub fn status(&self) -> Result<StatusView, Error> {
        self.get("/api/v1/status", &())?
            .ok_or_else(|| Error::Failed {
                url: self.url(),
                status: 404,
                message: "no `/api/v1/status` here: is this a weir server?".into(),
            })
    }

    /// `GET /api/v1/versions?…`.
    pub fn versions(&self, query: &VersionQuery) -> Result<Vec<VersionView>, Error> {
        self.list("/api/v1/versions", query)
    }

    /// `GET /api/v1/executions?…`.
    pub fn executions(&self, query: &ExecutionQuery) -> Result<Vec<ExecutionView>, Error> {
        self.list("/api/v1/executions", query)
    }

    /// `GET /api/v1/executions/{id}`; `None` when the server has no such
    /// execution.
    pub fn execution(&self, id: &ExecutionId) -> Result<Option<ExecutionView>, Error> {
        self.get(
            &format!("/api/v1/executions/{}", path_segment(id.as_str())),
            &(),
        )
    }

    /// `GET /api/v1/lineage/{target}?…`; `None` when the target is neither
    /// an execution nor an artifact.
    pub fn lineage(
        &self,
        target: &str,
        query: &LineageQuery,
    ) -> Result<Option<LineageView>, Error> {
        self.get(&format!("/api/v1/lineage/{}", path_segment(target)), query)
    }

    /// A list, where a 404 means the URL is not a weir API.
    fn list<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &impl Serialize,
    ) -> Result<Vec<T>, Error> {
        self.get(path, query)?.ok_or_else(|| Error::Failed {
            url: self.url(),
            status: 404,
            message: format!("no `{path}` here: is this a weir server?"),
        })
    }

    /// `GET path?query`, the JSON answer read as `T`; `None` for a weir 404.
    fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &impl Serialize,
    ) -> Result<Option<T>, Error> {
        let mut request = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Accept", "application/json");
        for (name, value) in query_pairs(query) {
            request = request.query(name, value);
        }
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = request.call().map_err(|e| self.unreachable(&e))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .map_err(|e| self.unreachable(&e))?;
        // Every error the API sends is `{"error": "…"}`.
        let message = || {
            serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
        };
        match status {
            200 => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| Error::Unreadable {
                    url: self.url(),
                    reason: e.to_string(),
                }),
            401 => Err(Error::Unauthorized { url: self.url() }),
            404 if message().is_some() => Ok(None),
            400 if message().is_some() => Err(Error::Rejected {
                message: message().unwrap_or_default(),
            }),
            _ => Err(Error::Failed {
                url: self.url(),
                status,
                message: message()
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

/// What went wrong on the way, in a few words: `connection refused`, not
/// `io: Connection refused (os error 111)`.
fn reason(e: &ureq::Error) -> String {
    use std::io::ErrorKind;
    match e {
        ureq::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused => "connection refused".into(),
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
                "the connection was closed".into()
            }
            ErrorKind::TimedOut => "timed out".into(),
            _ => io.to_string(),
        },
        ureq::Error::Timeout(_) => format!("no answer within {}s", TIMEOUT.as_secs()),
        ureq::Error::HostNotFound => "host not found".into(),
        other => other.to_string(),
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

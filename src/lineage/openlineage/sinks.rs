//! Where OpenLineage events go: [`FileSink`] appends each as one line of
//! JSON, [`HttpSink`] POSTs each to an endpoint such as Marquez's.
//!
//! What it guarantees: a failure is logged with `tracing::warn!` and never
//! returned (the engine must not fail for lineage); a POST is retried with
//! doubling backoff, then the event is dropped, and while the endpoint
//! stays unreachable later events get one try each. URLs are logged
//! without their credentials.
//!
//! Sinks block (a POST waits for its answer): only the emitter's thread
//! drives them.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Error;
use crate::source::git::redact_url;

/// Where Marquez takes events, below its base URL.
pub const LINEAGE_PATH: &str = "/api/v1/lineage";

/// Tries of one POST, and the wait before the first retry (doubled each
/// time after).
const HTTP_ATTEMPTS: u32 = 4;
const HTTP_BACKOFF: Duration = Duration::from_millis(250);
/// Connect, send and read of one POST together.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// Appends each event as one line of JSON.
pub struct FileSink {
    path: PathBuf,
    file: File,
}

impl FileSink {
    /// Opens `path` for appending, creating it and its parent folders.
    pub fn open(path: &Path) -> Result<FileSink, Error> {
        let fail = |source| Error::File {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(fail)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(fail)?;
        Ok(FileSink {
            path: path.to_path_buf(),
            file,
        })
    }

    pub(super) fn append(&mut self, line: &str) {
        // One write of the whole line: appends from processes sharing the
        // file do not interleave within a line.
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        if let Err(e) = self.file.write_all(&bytes) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot append an OpenLineage event");
        }
    }
}

/// POSTs each event as JSON to `<base>/api/v1/lineage`.
pub struct HttpSink {
    endpoint: String,
    agent: ureq::Agent,
    attempts: u32,
    backoff: Duration,
    /// The last event got through (or none was sent yet).
    reachable: bool,
    /// Sent as `Authorization: Bearer <key>` (the OpenLineage clients'
    /// `api_key` auth); never logged.
    api_key: Option<String>,
}

impl HttpSink {
    /// A sink for the OpenLineage endpoint below `base` (e.g.
    /// `http://marquez:5000`); a `base` that already ends in
    /// `/api/v1/lineage` is taken as it is.
    pub fn new(base: &str) -> Result<HttpSink, Error> {
        let invalid = || Error::Url {
            url: redact_url(base),
        };
        let uri: ureq::http::Uri = base.parse().map_err(|_| invalid())?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(invalid());
        }
        let base = base.trim_end_matches('/');
        let endpoint = if base.ends_with(LINEAGE_PATH) {
            base.to_owned()
        } else {
            format!("{base}{LINEAGE_PATH}")
        };
        let agent = crate::outbound::agent_config(HTTP_TIMEOUT).build().into();
        Ok(HttpSink {
            endpoint,
            agent,
            attempts: HTTP_ATTEMPTS,
            backoff: HTTP_BACKOFF,
            reachable: true,
            api_key: None,
        })
    }

    /// Authenticates each request with `key` (`Authorization: Bearer`).
    pub fn with_api_key(mut self, key: Option<&str>) -> HttpSink {
        self.api_key = key.map(str::to_owned);
        self
    }

    /// Tries each event up to `attempts` times, waiting `backoff` before the
    /// first retry and twice as long before each next one.
    pub fn with_retries(mut self, attempts: u32, backoff: Duration) -> HttpSink {
        self.attempts = attempts.max(1);
        self.backoff = backoff;
        self
    }

    pub(super) fn post(&mut self, body: &str) {
        let endpoint = redact_url(&self.endpoint);
        let attempts = if self.reachable { self.attempts } else { 1 };
        for attempt in 1..=attempts {
            let mut request = self
                .agent
                .post(&self.endpoint)
                .header("Content-Type", "application/json");
            if let Some(key) = &self.api_key {
                request = request.header("Authorization", format!("Bearer {key}"));
            }
            let sent = request.send(body.as_bytes());
            match sent {
                Ok(_) => {
                    self.reachable = true;
                    return;
                }
                Err(e) => {
                    tracing::warn!(%endpoint, attempt, error = %e, "cannot send an OpenLineage event");
                    if attempt < attempts {
                        std::thread::sleep(self.backoff.saturating_mul(1 << (attempt - 1).min(16)));
                    }
                }
            }
        }
        self.reachable = false;
        tracing::warn!(%endpoint, attempts, "OpenLineage event dropped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_sink_wants_an_http_url() {
        for url in ["marquez:5000", "ftp://marquez/", "not a url"] {
            assert!(
                matches!(HttpSink::new(url), Err(Error::Url { .. })),
                "{url}"
            );
        }
        assert!(HttpSink::new("https://marquez.example.com").is_ok());
    }
}

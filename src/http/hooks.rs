//! Webhooks: `POST /hooks/github` and `POST /hooks/generic` wake the
//! reconcile loops of the sources they name, so a push is reconciled
//! without waiting for the poll.
//!
//! A webhook is a doorbell, not a delivery: it only calls
//! [`SourceHandle::trigger`], and the loop fetches the branch from Git
//! itself. Nothing in a payload (commits, file contents) is ever used.
//! A request that fails authentication triggers nothing.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{Shared, SourceHandle, auth, error};

/// `POST /hooks/github`, a GitHub webhook (content type
/// `application/json`).
///
/// - 404: no GitHub webhook secret is configured (the hook is off).
/// - 413: the body is larger than `max_payload`.
/// - 401: `X-Hub-Signature-256` is missing or is not the body's
///   HMAC-SHA256 under the secret; nothing is triggered.
/// - 200 `pong` for a `ping` event.
/// - 202 `triggered` with the sources woken, for a `push` to a branch a
///   source follows.
/// - 200 `ignored` for any other event, or a push to another branch or
///   repository (or a tag).
/// - 400: a `push` whose body is not a push event.
pub(super) async fn github(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(secret) = &state.secrets.github_webhook_secret else {
        return error(
            StatusCode::NOT_FOUND,
            "the GitHub webhook is off: configure a webhook secret to turn it on",
        );
    };
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    let Some(signature) = signature else {
        tracing::warn!("GitHub webhook without X-Hub-Signature-256 refused");
        return error(StatusCode::UNAUTHORIZED, "missing X-Hub-Signature-256");
    };
    if !auth::github_signature_valid(secret, &body, signature) {
        tracing::warn!("GitHub webhook with a bad signature refused");
        return error(StatusCode::UNAUTHORIZED, "bad X-Hub-Signature-256");
    }
    let event = headers
        .get("x-github-event")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match event {
        "ping" => (StatusCode::OK, Json(json!({ "status": "pong" }))).into_response(),
        "push" => match serde_json::from_slice::<PushEvent>(&body) {
            Ok(push) => {
                let woken = trigger(matching(&state.sources, &push));
                if woken.is_empty() {
                    ignored(format!(
                        "no source follows {} of this repository",
                        push.git_ref
                    ))
                } else {
                    triggered(woken)
                }
            }
            Err(e) => error(StatusCode::BAD_REQUEST, format!("not a push event: {e}")),
        },
        other => ignored(format!("event `{other}` is not handled")),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct GenericQuery {
    /// Wake only this source (its key); all of them when absent.
    source: Option<String>,
}

/// `POST /hooks/generic[?source=KEY]`, for any Git host or CI step: needs
/// `Authorization: Bearer <generic webhook token>`; the body is ignored.
///
/// - 404: no generic webhook token is configured, or no source has `KEY`.
/// - 401: the token is missing or wrong; nothing is triggered.
/// - 202 `triggered` with the sources woken.
pub(super) async fn generic(
    State(state): State<Shared>,
    Query(query): Query<GenericQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(token) = &state.secrets.generic_webhook_token else {
        return error(
            StatusCode::NOT_FOUND,
            "the generic webhook is off: configure a webhook token to turn it on",
        );
    };
    if !auth::bearer_matches(&headers, token) {
        tracing::warn!("generic webhook without the right bearer token refused");
        return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    let chosen: Vec<&SourceHandle> = match &query.source {
        Some(key) => state.sources.iter().filter(|s| &s.key.0 == key).collect(),
        None => state.sources.iter().collect(),
    };
    if let (Some(key), true) = (&query.source, chosen.is_empty()) {
        return error(StatusCode::NOT_FOUND, format!("no source `{key}`"));
    }
    triggered(trigger(chosen))
}

/// What a push event says that matters here.
#[derive(Debug, Deserialize)]
pub(super) struct PushEvent {
    /// `refs/heads/<branch>` (or `refs/tags/<tag>`).
    #[serde(rename = "ref")]
    git_ref: String,
    #[serde(default)]
    repository: Option<Repository>,
}

#[derive(Debug, Default, Deserialize)]
struct Repository {
    clone_url: Option<String>,
    ssh_url: Option<String>,
    html_url: Option<String>,
    git_url: Option<String>,
    svn_url: Option<String>,
    url: Option<String>,
}

impl PushEvent {
    /// Every URL the payload names the repository by, normalized.
    fn repo_urls(&self) -> Vec<String> {
        let Some(r) = &self.repository else {
            return Vec::new();
        };
        [
            &r.clone_url,
            &r.ssh_url,
            &r.html_url,
            &r.git_url,
            &r.svn_url,
            &r.url,
        ]
        .into_iter()
        .flatten()
        .map(|u| normalize_url(u))
        .collect()
    }
}

/// The sources a push wakes: those following the pushed branch whose
/// repository is one the payload names (a source without URLs, a local
/// path, matches by branch alone).
fn matching<'a>(sources: &'a [SourceHandle], push: &PushEvent) -> Vec<&'a SourceHandle> {
    let Some(branch) = push.git_ref.strip_prefix("refs/heads/") else {
        return Vec::new();
    };
    let pushed = push.repo_urls();
    sources
        .iter()
        .filter(|s| s.branch == branch)
        .filter(|s| {
            s.repo_urls.is_empty()
                || s.repo_urls
                    .iter()
                    .any(|u| pushed.contains(&normalize_url(u)))
        })
        .collect()
}

/// A repository URL reduced to `host/path` in lower case, so that the
/// HTTPS, SSH (`git@host:owner/repo.git`, `ssh://git@host:22/owner/repo`)
/// and `git://` spellings of one repository compare equal: scheme, user,
/// port, trailing slashes and `.git` are dropped. (GitHub's paths are
/// case-insensitive.)
pub(super) fn normalize_url(url: &str) -> String {
    let url = url.trim();
    let (rest, scheme_form) = match url.split_once("://") {
        Some((_, rest)) => (rest, true),
        None => (url, false),
    };
    let (authority, path) = if scheme_form {
        rest.split_once('/').unwrap_or((rest, ""))
    } else {
        // scp-like `user@host:path`, or a plain path.
        rest.split_once(':').unwrap_or(("", rest))
    };
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = if scheme_form {
        host.split_once(':').map_or(host, |(host, _port)| host)
    } else {
        host
    };
    let mut path = path.trim_end_matches('/');
    path = path.strip_suffix(".git").unwrap_or(path);
    let path = path.trim_matches('/');
    format!("{host}/{path}").to_lowercase()
}

/// Wakes `sources`; returns their keys.
fn trigger(sources: Vec<&SourceHandle>) -> Vec<&str> {
    sources
        .into_iter()
        .map(|s| {
            // A stored permit: the loop wakes even if it is busy right now.
            s.trigger.notify_one();
            tracing::info!(source = %s.key.0, "webhook: reconcile requested");
            s.key.0.as_str()
        })
        .collect()
}

fn triggered(sources: Vec<&str>) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({ "status": "triggered", "sources": sources })),
    )
        .into_response()
}

fn ignored(reason: String) -> Response {
    tracing::debug!(%reason, "webhook ignored");
    (
        StatusCode::OK,
        Json(json!({ "status": "ignored", "reason": reason })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::spec::SourceKey;

    #[test]
    fn the_spellings_of_one_repository_are_equal() {
        let want = "github.com/codertocat/hello-world";
        for url in [
            "https://github.com/Codertocat/Hello-World.git",
            "https://github.com/Codertocat/Hello-World",
            "https://github.com/Codertocat/Hello-World/",
            "git@github.com:Codertocat/Hello-World.git",
            "ssh://git@github.com:22/Codertocat/Hello-World.git",
            "git://github.com/Codertocat/Hello-World.git",
            "https://token@github.com/Codertocat/Hello-World.git",
        ] {
            assert_eq!(normalize_url(url), want, "{url}");
        }
        assert_ne!(normalize_url("https://github.com/Codertocat/Other"), want);
    }

    fn source(branch: &str, urls: &[&str]) -> SourceHandle {
        SourceHandle {
            key: SourceKey::new(&format!("{urls:?}"), branch, ""),
            branch: branch.to_owned(),
            repo_urls: urls.iter().map(|u| u.to_string()).collect(),
            trigger: Arc::new(tokio::sync::Notify::new()),
        }
    }

    #[test]
    fn a_push_wakes_the_sources_of_its_branch_and_repository() {
        let push: PushEvent = serde_json::from_value(json!({
            "ref": "refs/heads/main",
            "repository": {
                "clone_url": "https://github.com/o/r.git",
                "ssh_url": "git@github.com:o/r.git",
            }
        }))
        .expect("push");
        let sources = [
            source("main", &["git@github.com:o/r"]),
            source("main", &[]),
            source("dev", &["https://github.com/o/r"]),
            source("main", &["https://github.com/o/other"]),
        ];
        let woken: Vec<usize> = matching(&sources, &push)
            .into_iter()
            .map(|s| {
                sources
                    .iter()
                    .position(|x| std::ptr::eq(x, s))
                    .expect("one of them")
            })
            .collect();
        assert_eq!(woken, [0, 1]);
        let tag: PushEvent =
            serde_json::from_value(json!({ "ref": "refs/tags/main" })).expect("push");
        assert!(matching(&sources, &tag).is_empty());
    }
}

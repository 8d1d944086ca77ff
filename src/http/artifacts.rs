//! `GET /api/v1/artifacts/{digest}`: an artifact's bytes out of the
//! daemon's artifact store (`weir artifacts get --server`), so a user with
//! the API token gets a model or a report without the store's
//! credentials. The digest is `sha256:<hex>` or the 64 hex.
//!
//! What it guarantees: the body is the artifact's bytes exactly, streamed
//! in chunks (a model of gigabytes is never held in memory), with its
//! `Content-Length`; 404 for a digest the store does not hold, 409 for a
//! directory artifact (a tree has no one body: read it from the artifact
//! store with `--artifacts`), 400 for what is not a digest.
//!
//! How: the store copies the artifact to a file of this process's own
//! (the stores' one way out, `ArtifactStore::fetch`), which is opened and
//! unlinked at once, then read a chunk at a time off the async threads.

use std::io::Read as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{Shared, error};
use crate::artifact::{self, ArtifactStore};
use crate::spec::Digest;

/// How much of the artifact one read gives the response.
const CHUNK: usize = 256 * 1024;

/// Names the staging files of one process apart.
static STAGED: AtomicU64 = AtomicU64::new(0);

/// An artifact staged for its response.
enum Staged {
    File { file: std::fs::File, len: u64 },
    Directory,
    Missing,
}

pub(super) async fn get(State(state): State<Shared>, Path(named): Path<String>) -> Response {
    let Some(digest) = artifact::parse_named(&named) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("`{named}` is not an artifact digest (sha256:<64 hex>)"),
        );
    };
    let Some(store) = state.artifacts.clone() else {
        return error(StatusCode::NOT_FOUND, "this server has no artifact store");
    };
    let shown = artifact::reference(&digest);
    let staged = tokio::task::spawn_blocking(move || stage(store.as_ref(), &digest)).await;
    match staged {
        Ok(Ok(Staged::File { file, len })) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                (header::CONTENT_LENGTH, len.to_string()),
            ],
            Body::from_stream(chunks(file)),
        )
            .into_response(),
        Ok(Ok(Staged::Directory)) => error(
            StatusCode::CONFLICT,
            format!(
                "{shown} is a directory artifact: read it from the artifact store (weir artifacts get {shown} -o DIR --artifacts URL)"
            ),
        ),
        Ok(Ok(Staged::Missing)) => error(
            StatusCode::NOT_FOUND,
            format!("no artifact {shown} in this server's artifact store"),
        ),
        Ok(Err(e)) => {
            tracing::warn!(artifact = %shown, error = %e, "API: cannot read an artifact");
            error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Copies `digest` out of `store` into a file only this process reads:
/// opened, then unlinked (the open file keeps its bytes until dropped).
fn stage(store: &dyn ArtifactStore, digest: &Digest) -> Result<Staged, artifact::Error> {
    if !store.contains(digest) {
        return Ok(Staged::Missing);
    }
    let path = std::env::temp_dir().join(format!(
        "weir-served-{}-{}-{}",
        std::process::id(),
        STAGED.fetch_add(1, Ordering::Relaxed),
        digest.short()
    ));
    let io = |doing| {
        let path = path.clone();
        move |source| artifact::Error::Io {
            doing,
            path,
            source,
        }
    };
    match store.fetch(digest, &path) {
        Err(artifact::Error::Missing { .. }) => return Ok(Staged::Missing),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
            return Err(e);
        }
        Ok(()) => {}
    }
    if path.is_dir() {
        std::fs::remove_dir_all(&path).map_err(io("remove"))?;
        return Ok(Staged::Directory);
    }
    let opened = std::fs::File::open(&path).map_err(io("open"));
    std::fs::remove_file(&path).map_err(io("remove"))?;
    let file = opened?;
    let len = file.metadata().map_err(io("read"))?.len();
    Ok(Staged::File { file, len })
}

/// The file's bytes, a chunk a step, each read on the blocking threads.
fn chunks(
    file: std::fs::File,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let file = Arc::new(std::sync::Mutex::new(file));
    futures_util::stream::unfold(Some(file), |file| async move {
        let file = file?;
        let reader = file.clone();
        let read = tokio::task::spawn_blocking(move || {
            let mut buffer = vec![0; CHUNK];
            let mut file = reader
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = file.read(&mut buffer)?;
            buffer.truncate(n);
            Ok::<_, std::io::Error>(buffer)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match read {
            Ok(buffer) if buffer.is_empty() => None,
            Ok(buffer) => Some((Ok(Bytes::from(buffer)), Some(file))),
            // The error ends the body; nothing is read after it.
            Err(e) => Some((Err(e), None)),
        }
    })
}

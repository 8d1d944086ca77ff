//! The body of `GET /api/v1/executions/{id}/logs`: the text of a
//! [`LogTail`], one chunk a read, every [`FOLLOW_EVERY`] while it follows,
//! ending when the tail says it ended. A read with nothing new is an empty
//! chunk: nothing is sent, but the server sees the response is alive
//! (`server.rs` counts each chunk as activity), so a node that is quiet
//! for longer than the idle bound keeps its follower. A chunk is produced
//! only once hyper has written the previous one: a client that stops
//! reading while lines come stops the reads, and the idle bound closes
//! it; the whole stream ends with the node at the latest.

use std::sync::Arc;

use axum::body::Bytes;
use futures_util::Stream;

use crate::store::Store;
use crate::views::{Chunk, FOLLOW_EVERY, LogTail, LogsError};

/// What the stream does next.
enum Step {
    /// Send this chunk.
    Give(LogTail, Chunk),
    /// Wait, then read again.
    Read(LogTail),
    Done,
}

/// The chunks of `tail` after `first`, read from `store`. A store that
/// fails mid-stream ends it with an error (the connection is closed
/// without the last chunk, so the client sees it did not end cleanly).
pub(super) fn stream(
    store: Arc<dyn Store>,
    tail: LogTail,
    first: Chunk,
) -> impl Stream<Item = Result<Bytes, LogsError>> + Send + 'static {
    futures_util::stream::unfold(Step::Give(tail, first), move |step| {
        let store = store.clone();
        async move {
            let (tail, chunk) = match step {
                Step::Done => return None,
                Step::Give(tail, chunk) => (tail, chunk),
                Step::Read(mut tail) => {
                    tokio::time::sleep(FOLLOW_EVERY).await;
                    match tail.read(store.as_ref()).await {
                        Ok(chunk) => (tail, chunk),
                        Err(e) => return Some((Err(e), Step::Done)),
                    }
                }
            };
            let next = if chunk.ended {
                Step::Done
            } else {
                Step::Read(tail)
            };
            Some((Ok(Bytes::from(chunk.text)), next))
        }
    })
}

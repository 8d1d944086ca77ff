//! An execution's logs: what `weir logs` prints and `GET
//! /api/v1/executions/{id}/logs` streams. Each node's latest attempt's
//! stdout and stderr, as the local executor writes them under the state
//! directory ([`attempt_dir`]), one line of text a line of output:
//! `[node stdout] text`.
//!
//! Following (`--follow`, `?follow=true`) reads again every
//! [`FOLLOW_EVERY`] and gives what was written since, until the node asked
//! for (or, without one, the execution) has ended; then it gives the rest
//! and stops. While following, a last line without its newline is held
//! back until it is complete or its node has ended, so a line written in
//! two pieces is never shown as two.
//!
//! Why here: the CLI reading its own store and the daemon serving the API
//! give the same text by running this same code ([`LogTail`]).

use std::collections::HashMap;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::executor::local::attempt_dir;
use crate::spec::ExecutionId;
use crate::store::execution::NodeState;
use crate::store::{self, Store};

/// How often a followed log is read again.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// Which logs: `weir logs --node --follow`, or the same names as query
/// parameters of `GET /api/v1/executions/{id}/logs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogQuery {
    /// Only this node (its path, e.g. `fit/train`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Keep reading as the logs grow, until the node (or execution) ends.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub follow: bool,
}

/// Why there are no logs to show.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error("no execution `{0}`")]
    UnknownExecution(ExecutionId),
    #[error("execution `{execution}` has no node `{node}`")]
    UnknownNode {
        execution: ExecutionId,
        node: String,
    },
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// Lines read, and whether there will be no more.
#[derive(Debug, Default)]
pub struct Chunk {
    pub text: String,
    pub ended: bool,
}

/// The logs of one execution (or one of its nodes), read piece by piece:
/// each [`LogTail::read`] gives what was written since the last one.
pub struct LogTail {
    id: ExecutionId,
    query: LogQuery,
    state_dir: PathBuf,
    /// How much of each log file was given.
    given: HashMap<PathBuf, u64>,
}

impl LogTail {
    /// The tail of execution `id`'s logs in `state_dir`, and what is
    /// there now; an unknown execution or node is an error.
    pub async fn open(
        store: &dyn Store,
        state_dir: &Path,
        id: &ExecutionId,
        query: &LogQuery,
    ) -> Result<(LogTail, Chunk), LogsError> {
        let mut tail = LogTail {
            id: id.clone(),
            query: query.clone(),
            state_dir: state_dir.to_owned(),
            given: HashMap::new(),
        };
        let chunk = tail.read(store).await?;
        Ok((tail, chunk))
    }

    /// What was written since the last read. Without `follow`, the first
    /// read gives everything and says it ended.
    pub async fn read(&mut self, store: &dyn Store) -> Result<Chunk, LogsError> {
        // The status is read before the files: once it says ended, the
        // files hold everything.
        let execution = store
            .execution(&self.id)
            .await?
            .ok_or_else(|| LogsError::UnknownExecution(self.id.clone()))?;
        let nodes = store.nodes(&self.id).await?;
        let selected: Vec<&NodeState> = match &self.query.node {
            None => nodes.iter().collect(),
            Some(node) => {
                let found: Vec<&NodeState> = nodes.iter().filter(|n| &n.node == node).collect();
                if found.is_empty() {
                    return Err(LogsError::UnknownNode {
                        execution: self.id.clone(),
                        node: node.clone(),
                    });
                }
                found
            }
        };
        let ended = !self.query.follow
            || execution.status.is_terminal()
            || (self.query.node.is_some() && selected.iter().all(|n| n.status.is_terminal()));
        let mut text = String::new();
        for n in selected.iter().filter(|n| n.attempts > 0) {
            let whole = ended || n.status.is_terminal();
            let dir = attempt_dir(&self.state_dir, &self.id, &n.node, n.attempts);
            for stream in ["stdout", "stderr"] {
                let path = dir.join(format!("{stream}.log"));
                let given = self.given.entry(path.clone()).or_insert(0);
                let Some(new) = read_from(&path, *given) else {
                    continue;
                };
                let upto = shown(&new, whole);
                for line in String::from_utf8_lossy(&new[..upto]).lines() {
                    text.push_str(&format!("[{} {stream}] {line}\n", n.node));
                }
                *given += upto as u64;
            }
        }
        Ok(Chunk { text, ended })
    }
}

/// How much of `new` to show: up to its last newline, or everything once
/// the node has ended (`whole`), so a line is shown once complete.
fn shown(new: &[u8], whole: bool) -> usize {
    if whole {
        return new.len();
    }
    new.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
}

/// The bytes of the file at `path` from `offset` on; `None` when it cannot
/// be read (not written yet).
fn read_from(path: &Path, offset: u64) -> Option<Vec<u8>> {
    let mut file = std::fs::File::open(path).ok()?;
    file.seek(SeekFrom::Start(offset)).ok()?;
    let mut new = Vec::new();
    file.read_to_end(&mut new).ok()?;
    Some(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_shown_once_complete_or_once_its_node_has_ended() {
        assert_eq!(shown(b"one\ntw", false), 4, "`tw` waits for its end");
        assert_eq!(shown(b"tw", false), 0);
        assert_eq!(shown(b"two\n", false), 4);
        assert_eq!(shown(b"one\ntw", true), 6, "the node ended: all of it");
        assert_eq!(shown(b"", false), 0);
    }

    #[test]
    fn the_query_is_the_parameters_the_api_reads() {
        let query = LogQuery {
            node: Some("fit/train".into()),
            follow: true,
        };
        assert_eq!(
            crate::views::to_json(&query),
            serde_json::json!({ "node": "fit/train", "follow": true })
        );
        assert_eq!(
            crate::views::to_json(&LogQuery::default()),
            serde_json::json!({})
        );
    }
}

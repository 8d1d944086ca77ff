//! The identities of what weir keeps beyond the definitions themselves:
//! an execution ([`ExecutionId`]), a source ([`SourceKey`]) and a commit
//! ([`CommitId`]). Each is a newtype over the text it is stored, printed and
//! serialized as (`#[serde(transparent)]`), so the JSON and the stored bytes
//! are the text itself, and a signature says which of them it takes rather
//! than a bare `String` that could be any.
//!
//! They live here, below the store, because everything above it passes
//! them around (the store, the engine, the views, the CLI and the API):
//! text arriving from a person (a CLI argument, a URL path) becomes one at
//! the edge, and the store turns its columns into them when it reads a row.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The id of an execution. A scheduled or backfilled one is derived from
/// its launch plan, version and instant (`schedule::execution_id`:
/// `<launch plan name>-<12 hex>`, a DNS-1123 label), so a second create
/// finds the first (I4); a person's run gets a fresh one. Any text is an id
/// (an unknown one is simply not found), so parsing one cannot fail.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExecutionId(String);

impl ExecutionId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for ExecutionId {
    fn from(text: String) -> ExecutionId {
        ExecutionId(text)
    }
}

impl From<&str> for ExecutionId {
    fn from(text: &str) -> ExecutionId {
        ExecutionId(text.to_owned())
    }
}

impl AsRef<str> for ExecutionId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for ExecutionId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for ExecutionId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// The identity of a source: repository, branch and folder, as one string
/// `<repo>#<branch>:<path>` (e.g. `file:///srv/repo#main:pipelines`).
///
/// [`SourceKey::new`] writes it and [`SourceKey::parts`] reads it; nothing
/// else splits one. Git forbids `:` in a branch name, so the branch ends at
/// the first `:` after it. The `#` that ends the repository is the *first*
/// `#` followed by a branch and a `:` (`#<no # or :>:`): a `#` in the
/// repository (a local folder `C#/flows`, a URL's fragment) stays part of
/// it, and any `#` or `:` in the path stays part of the path. Two shapes
/// cannot be told apart and are read this way: a branch holding `#`
/// (`fix#12`: the text before its `#` is taken as repository) and a
/// repository holding `#` followed by `:` before the next `#`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SourceKey(pub String);

/// The three parts of a [`SourceKey`], borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceParts<'a> {
    /// `file://` and an absolute path for a local repository, else the URL
    /// (credentials redacted).
    pub repo: &'a str,
    pub branch: &'a str,
    /// The folder of the definitions inside the repository, without a
    /// leading or trailing `/` (empty: the root).
    pub path: &'a str,
}

impl SourceKey {
    /// The key of `path` (its leading and trailing `/` dropped) on `branch`
    /// of `repo`.
    pub fn new(repo: &str, branch: &str, path: &str) -> SourceKey {
        SourceKey(format!("{repo}#{branch}:{}", path.trim_matches('/')))
    }

    /// Repository, branch and path, split as the type's doc says; `None`
    /// for a string of another shape (no `#<branch>:`).
    pub fn parts(&self) -> Option<SourceParts<'_>> {
        let key = self.0.as_str();
        key.match_indices('#').find_map(|(at, _)| {
            let rest = &key[at + 1..];
            let end = rest.find(['#', ':'])?;
            rest[end..].starts_with(':').then(|| SourceParts {
                repo: &key[..at],
                branch: &rest[..end],
                path: &rest[end + 1..],
            })
        })
    }
}

impl fmt::Display for SourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A full 40-hex Git commit id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CommitId(pub String);

impl CommitId {
    /// The commit as shown to people: its first 12 hex characters.
    pub fn short(&self) -> &str {
        short_sha(&self.0)
    }
}

/// The first 12 characters of a commit id (all of it when shorter).
pub fn short_sha(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

impl fmt::Display for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::{ExecutionId, SourceKey, SourceParts};

    fn parts<'a>(repo: &'a str, branch: &'a str, path: &'a str) -> Option<SourceParts<'a>> {
        Some(SourceParts { repo, branch, path })
    }

    #[test]
    fn a_source_key_is_written_and_read_one_way() {
        let key = SourceKey::new("file:///srv/repo", "main", "/pipelines/ml/");
        assert_eq!(key.0, "file:///srv/repo#main:pipelines/ml");
        assert_eq!(key.to_string(), key.0);
        assert_eq!(
            key.parts(),
            parts("file:///srv/repo", "main", "pipelines/ml")
        );
        let remote = SourceKey::new("https://github.com/acme/flows.git", "release/1", "");
        assert_eq!(
            remote.parts(),
            parts("https://github.com/acme/flows.git", "release/1", "")
        );
        assert_eq!(SourceKey("nonsense".into()).parts(), None);
        assert_eq!(SourceKey("file:///srv/repo#main".into()).parts(), None);
    }

    /// The `#` that ends the repository is the first one followed by a
    /// branch and `:`: a `#` in the repository's URL or folder stays in it.
    #[test]
    fn a_hash_in_the_repository_stays_in_the_repository() {
        for repo in [
            "https://example.com/acme/flows.git#frag",
            "https://example.com/a#b/c#d.git",
            "file:///home/me/C#/flows",
        ] {
            let key = SourceKey::new(repo, "dev", "pipelines");
            assert_eq!(key.parts(), parts(repo, "dev", "pipelines"), "{key:?}");
        }
    }

    /// The path is the free tail: a `#` or `:` in it stays in it.
    #[test]
    fn a_hash_or_colon_in_the_path_stays_in_the_path() {
        let key = SourceKey::new("https://example.com/r#x.git", "main", "defs#2/a:b#c");
        assert_eq!(
            key.parts(),
            parts("https://example.com/r#x.git", "main", "defs#2/a:b#c")
        );
    }

    /// The one shape the format cannot tell apart, read as the doc says: a
    /// branch holding `#` gives its first half to the repository.
    #[test]
    fn a_hash_in_the_branch_is_read_as_the_repository_s() {
        let key = SourceKey::new("file:///srv/repo", "fix#12", "");
        assert_eq!(key.parts(), parts("file:///srv/repo#fix", "12", ""));
    }

    /// An execution id is its text: stored, printed and serialized as it.
    #[test]
    fn an_execution_id_is_its_text() {
        let id = ExecutionId::from("churn-nightly-0123456789ab");
        assert_eq!(id.as_str(), "churn-nightly-0123456789ab");
        assert_eq!(id.to_string(), "churn-nightly-0123456789ab");
        assert_eq!(
            serde_json::to_value(&id).expect("json"),
            serde_json::json!("churn-nightly-0123456789ab")
        );
        assert_eq!(
            ExecutionId::from(String::from("churn-nightly-0123456789ab")),
            id
        );
        assert_eq!(id, "churn-nightly-0123456789ab");
    }
}

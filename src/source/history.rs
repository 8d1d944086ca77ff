//! The commits between two commits of a source that touched its folder:
//! what `weir diff` lists as the changes between two executions (DESIGN.md
//! section 1, "what changed between the last good run and this one").
//!
//! The walk is `git log FROM..TO -- <folder>` done with git2: commits
//! reachable from `to` and not from `from`, kept when the source's folder
//! differs from every parent's (as `git log` simplifies merges), and the
//! same the other way round, for a `to` that runs an older version than
//! `from` (after a revert, say). The repository is opened as the source
//! reads it (a local one in place, a remote one's clone in the state
//! directory); nothing is fetched or cloned.
//!
//! What it must not do: write anything, or read more history than lies
//! between the two commits (at most [`MAX_COMMITS`] are listed each way).

use std::path::{Path, PathBuf};

use git2::{Oid, Repository, Sort};

use super::git::{FileError, SourceFiles, commit_info};
use crate::spec::{CommitId, SourceKey};
use crate::store::CommitInfo;

/// How many commits each side lists at most; [`Between::truncated`] says
/// when there were more.
pub const MAX_COMMITS: usize = 100;

/// Why the history between two commits cannot be read, for a person.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A remote source (its key) without a known state directory.
    #[error("the history of {0} is in its clone in the state directory, which is not known here")]
    NoStateDir(String),
    #[error(transparent)]
    Open(#[from] FileError),
    /// `commit` is the short id.
    #[error("commit {commit} is not in the repository at {}", location.display())]
    NoCommit { commit: String, location: PathBuf },
    #[error("cannot walk the history: {0}")]
    Walk(git2::Error),
}

/// The commits that touched a source's folder between two commits,
/// newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Between {
    /// In `to`'s history and not in `from`'s.
    pub added: Vec<CommitInfo>,
    /// In `from`'s history and not in `to`'s.
    pub removed: Vec<CommitInfo>,
    /// Either list stopped at [`MAX_COMMITS`].
    pub truncated: bool,
}

/// The commits between `from` and `to` that touched the folder of
/// `source`. `state_dir` is where remote sources' clones live; without it
/// only a local source's history can be read. The error says why the
/// history cannot be read, for a person.
pub fn between(
    state_dir: Option<&Path>,
    source: &SourceKey,
    from: &CommitId,
    to: &CommitId,
) -> Result<Between, Error> {
    if from == to {
        return Ok(Between::default());
    }
    let files = match state_dir {
        Some(dir) => SourceFiles::new(dir),
        // A local source is read in place: no state directory is needed.
        None if source.0.starts_with("file://") => SourceFiles::new(""),
        None => return Err(Error::NoStateDir(source.0.clone())),
    };
    let (repo, location, folder) = files.open(source)?;
    let oid = |commit: &CommitId| {
        Oid::from_str(&commit.0)
            .ok()
            .filter(|oid| repo.find_commit(*oid).is_ok())
            .ok_or_else(|| Error::NoCommit {
                commit: commit.short().to_owned(),
                location: location.clone(),
            })
    };
    let (from, to) = (oid(from)?, oid(to)?);
    let (added, more_added) = walk(&repo, &folder, to, from)?;
    let (removed, more_removed) = walk(&repo, &folder, from, to)?;
    Ok(Between {
        added,
        removed,
        truncated: more_added || more_removed,
    })
}

/// Commits reachable from `tip` and not from `hide` that touched `folder`,
/// newest first, at most [`MAX_COMMITS`]; `true` when there were more.
fn walk(
    repo: &Repository,
    folder: &str,
    tip: Oid,
    hide: Oid,
) -> Result<(Vec<CommitInfo>, bool), Error> {
    let failed = Error::Walk;
    let mut revwalk = repo.revwalk().map_err(failed)?;
    revwalk
        .set_sorting(Sort::TOPOLOGICAL | Sort::TIME)
        .map_err(failed)?;
    revwalk.push(tip).map_err(failed)?;
    revwalk.hide(hide).map_err(failed)?;
    let mut found = Vec::new();
    for oid in revwalk {
        let commit = repo.find_commit(oid.map_err(failed)?).map_err(failed)?;
        if !touched(&commit, folder) {
            continue;
        }
        if found.len() == MAX_COMMITS {
            return Ok((found, true));
        }
        found.push(commit_info(&commit));
    }
    Ok((found, false))
}

/// Whether `commit` changed `folder`: its folder differs from every
/// parent's (a merge that took one side unchanged did not), or it is a
/// root commit that has the folder.
fn touched(commit: &git2::Commit<'_>, folder: &str) -> bool {
    let mine = folder_id(commit, folder);
    if commit.parent_count() == 0 {
        return mine.is_some();
    }
    commit
        .parents()
        .all(|parent| folder_id(&parent, folder) != mine)
}

/// The tree id of `folder` (`""`: the root) at `commit`.
fn folder_id(commit: &git2::Commit<'_>, folder: &str) -> Option<Oid> {
    let tree = commit.tree().ok()?;
    if folder.is_empty() {
        return Some(tree.id());
    }
    tree.get_path(Path::new(folder))
        .ok()
        .map(|entry| entry.id())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repository with commits on `defs/` and elsewhere.
    struct Repo {
        dir: tempfile::TempDir,
        repo: Repository,
    }

    impl Repo {
        fn new() -> Repo {
            let dir = tempfile::tempdir().expect("tempdir");
            let repo = Repository::init(dir.path()).expect("git init");
            Repo { dir, repo }
        }

        fn commit(&self, path: &str, text: &str, message: &str) -> CommitId {
            let file = self.dir.path().join(path);
            std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
            std::fs::write(file, text).expect("write");
            let mut index = self.repo.index().expect("index");
            index.add_path(Path::new(path)).expect("add");
            let tree = self
                .repo
                .find_tree(index.write_tree().expect("tree"))
                .expect("tree");
            let who = git2::Signature::now("Ada Lovelace", "ada@example.com").expect("who");
            let parent = self.repo.head().ok().and_then(|h| h.peel_to_commit().ok());
            let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
            let id = self
                .repo
                .commit(Some("HEAD"), &who, &who, message, &tree, &parents)
                .expect("commit");
            CommitId(id.to_string())
        }

        fn key(&self, folder: &str) -> SourceKey {
            SourceKey::new(
                &format!("file://{}", self.dir.path().display()),
                "main",
                folder,
            )
        }
    }

    fn subjects(commits: &[CommitInfo]) -> Vec<&str> {
        commits.iter().map(|c| c.message.trim()).collect()
    }

    #[test]
    fn lists_the_commits_that_touched_the_folder_both_ways() {
        let repo = Repo::new();
        let first = repo.commit("defs/a.yaml", "a: 1\n", "first");
        repo.commit("README.md", "hello\n", "docs only");
        repo.commit("defs/a.yaml", "a: 2\n", "second");
        let third = repo.commit("defs/b.yaml", "b: 1\n", "third");

        let forward = between(None, &repo.key("defs"), &first, &third).expect("history");
        assert_eq!(subjects(&forward.added), ["third", "second"]);
        assert!(forward.removed.is_empty());
        assert!(!forward.truncated);

        let backward = between(None, &repo.key("defs"), &third, &first).expect("history");
        assert!(backward.added.is_empty());
        assert_eq!(subjects(&backward.removed), ["third", "second"]);

        let whole = between(None, &repo.key(""), &first, &third).expect("history");
        assert_eq!(subjects(&whole.added), ["third", "second", "docs only"]);
    }

    #[test]
    fn says_why_the_history_cannot_be_read() {
        let repo = Repo::new();
        let first = repo.commit("defs/a.yaml", "a: 1\n", "first");
        let unknown = CommitId("0".repeat(40));
        let error = between(None, &repo.key("defs"), &first, &unknown)
            .expect_err("unknown")
            .to_string();
        assert!(
            error.starts_with("commit 000000000000 is not in the repository"),
            "{error}"
        );

        let gone = SourceKey("file:///nonexistent/weir-repo#main:defs".into());
        let error = between(None, &gone, &first, &unknown)
            .expect_err("no repository")
            .to_string();
        assert!(
            error.starts_with("cannot open the repository of file:///nonexistent"),
            "{error}"
        );

        let remote = SourceKey("https://example.com/pipelines.git#main:".into());
        let error = between(None, &remote, &first, &unknown)
            .expect_err("no state directory")
            .to_string();
        assert!(error.contains("state directory"), "{error}");

        let same = between(None, &remote, &first, &first).expect("nothing to walk");
        assert_eq!(same, Between::default());
    }
}

//! Writing to a local repository: the commits `weir rollback` makes. Git
//! stays the only source of truth — weir never changes the store directly;
//! it writes a commit and the next reconcile picks it up.

use std::path::Path;

use git2::{Oid, Repository, Status};

use super::credentials::Credentials;
use super::git::{Error, commit_info, git};
use crate::spec::CommitId;

/// Files (repository paths) among `paths` with uncommitted changes.
pub fn dirty_files(repo: &Repository, paths: &[String]) -> Result<Vec<String>, Error> {
    let mut dirty = Vec::new();
    for path in paths {
        match repo.status_file(Path::new(path)) {
            Ok(status) if status != Status::CURRENT && status != Status::IGNORED => {
                dirty.push(path.clone())
            }
            Ok(_) => {}
            Err(e) if e.code() == git2::ErrorCode::NotFound => {}
            Err(e) => {
                return Err(Error::Git {
                    doing: "checking the working tree",
                    source: e,
                });
            }
        }
    }
    Ok(dirty)
}

/// The checked-out branch's name, when HEAD is a branch.
pub fn checked_out_branch(repo: &Repository) -> Option<String> {
    let head = repo.head().ok()?;
    if !head.is_branch() {
        return None;
    }
    head.shorthand().ok().map(str::to_owned)
}

/// The tree of HEAD with `files` (repository path → content) replaced, not
/// yet written anywhere but the object database: check it before committing.
pub fn tree_with<'r>(
    repo: &'r Repository,
    files: &[(String, Vec<u8>)],
) -> Result<git2::Tree<'r>, Error> {
    let head_tree = repo
        .head()
        .and_then(|h| h.peel_to_tree())
        .map_err(git("reading HEAD's tree"))?;
    let mut index = git2::Index::new().map_err(git("creating an index"))?;
    index
        .read_tree(&head_tree)
        .map_err(git("reading HEAD into an index"))?;
    for (path, content) in files {
        let blob = repo.blob(content).map_err(git("writing a blob"))?;
        let mut entry = index_entry(path, blob, content.len());
        entry.mode = 0o100644;
        index.add(&entry).map_err(git("staging a file"))?;
    }
    let oid = index.write_tree_to(repo).map_err(git("writing a tree"))?;
    repo.find_tree(oid).map_err(git("reading the new tree"))
}

fn index_entry(path: &str, id: Oid, size: usize) -> git2::IndexEntry {
    git2::IndexEntry {
        ctime: git2::IndexTime::new(0, 0),
        mtime: git2::IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode: 0o100644,
        uid: 0,
        gid: 0,
        file_size: u32::try_from(size).unwrap_or(u32::MAX),
        id,
        flags: 0,
        flags_extended: 0,
        path: path.as_bytes().to_vec(),
    }
}

/// Working-tree paths among `paths` that are, or pass through, a symbolic
/// link: writing there could land outside the repository.
pub fn linked_paths(repo: &Repository, paths: &[String]) -> Vec<String> {
    let Some(workdir) = repo.workdir() else {
        return Vec::new();
    };
    paths
        .iter()
        .filter(|path| {
            let mut prefix = workdir.to_path_buf();
            Path::new(path.as_str()).components().any(|c| {
                prefix.push(c);
                std::fs::symlink_metadata(&prefix).is_ok_and(|m| m.file_type().is_symlink())
            })
        })
        .cloned()
        .collect()
}

/// Commits exactly `tree` (as checked by the caller) on the checked-out
/// branch, then brings `files` in the index and the working tree to their
/// new content. Whatever else is staged stays staged, not committed (as
/// `git commit --only PATHS` does). The caller has refused symbolic links
/// on those paths ([`linked_paths`]).
pub fn commit_tree(
    repo: &Repository,
    tree: &git2::Tree<'_>,
    files: &[(String, Vec<u8>)],
    message: &str,
) -> Result<CommitId, Error> {
    let workdir = repo.workdir().ok_or_else(|| Error::Git {
        doing: "finding the working tree",
        source: git2::Error::from_str("the repository is bare; rollback needs a working tree"),
    })?;
    let signature = repo
        .signature()
        .map_err(git("reading user.name and user.email"))?;
    let parent = repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .map_err(git("reading HEAD"))?;
    let oid = repo
        .commit(
            Some("HEAD"),
            &signature,
            &signature,
            message,
            tree,
            &[&parent],
        )
        .map_err(git("committing"))?;
    let mut index = repo.index().map_err(git("opening the index"))?;
    for (path, content) in files {
        let full = workdir.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(|source| Error::StateDir {
                path: parent.to_owned(),
                source,
            })?;
        }
        std::fs::write(&full, content).map_err(|source| Error::StateDir {
            path: full.clone(),
            source,
        })?;
        index
            .add_path(Path::new(path))
            .map_err(git("staging a file"))?;
    }
    index.write().map_err(git("writing the index"))?;
    let commit = repo
        .find_commit(oid)
        .map_err(git("reading the new commit"))?;
    Ok(commit_info(&commit).id)
}

/// Pushes `branch` to `origin`.
pub fn push(repo: &Repository, branch: &str, credentials: &Credentials) -> Result<(), Error> {
    let mut remote = repo
        .find_remote("origin")
        .map_err(git("finding the remote `origin`"))?;
    let url = remote.url().ok().unwrap_or_default().to_owned();
    let refspec = format!("refs/heads/{branch}:refs/heads/{branch}");
    let mut options = git2::PushOptions::new();
    options.remote_callbacks(credentials.callbacks()?);
    remote
        .push(&[refspec.as_str()], Some(&mut options))
        .map_err(|source| Error::Fetch { url, source })
}

//! Git sources (git2): open or clone a repository, resolve the branch, and
//! read definitions from a commit's tree — never from a working tree, so
//! uncommitted edits in a local repository are not seen, and no checkout is
//! needed.
//!
//! A local path is read in place. A URL (`file://`, later `https://` and
//! `ssh://`) is cloned bare into the state directory once and fetched on
//! every reconcile. The same size and safety rules as for a directory apply
//! to the tree: files over the limit are refused, symbolic links are
//! followed only when they stay inside the repository, hidden entries are
//! skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use git2::{ObjectType, Oid, Repository};

use super::credentials::{self, Credentials};
use super::{is_definition, symlink_escape, too_large, unreadable};
use crate::spec::{CommitId, SourceKey, SourceParts};
use crate::store::{CommitInfo, Person};
use crate::validate::{Diagnostic, SourceFile, Tree};

/// Where definitions come from: a repository, a branch, a folder inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    /// A local path or a URL.
    pub repo: String,
    /// `None`: the remote's default branch (a local repository's current
    /// branch), else `main`.
    pub branch: Option<String>,
    /// Folder inside the repository (`""` for its root).
    pub path: String,
    /// Secrets for remote repositories.
    pub credentials: Credentials,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open the Git repository at `{path}`: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("cannot clone `{url}`: {source}")]
    Clone {
        url: String,
        #[source]
        source: git2::Error,
    },
    #[error("cannot fetch `{url}`: {source}")]
    Fetch {
        url: String,
        #[source]
        source: git2::Error,
    },
    #[error("branch `{branch}` does not exist in `{repo}`")]
    MissingBranch { repo: String, branch: String },
    #[error("path `{path}` does not exist at commit {commit}")]
    MissingPath { path: String, commit: String },
    #[error("path `{path}` at commit {commit} is not a folder")]
    NotAFolder { path: String, commit: String },
    #[error("cannot create the state directory `{path}`: {source}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Credentials(#[from] credentials::Error),
    #[error("Git error while {doing}: {source}")]
    Git {
        doing: &'static str,
        #[source]
        source: git2::Error,
    },
}

impl Error {
    /// A stable label for status reasons and metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Open { .. } | Error::StateDir { .. } => "SourceUnavailable",
            Error::Clone { .. } | Error::Fetch { .. } => "FetchFailed",
            Error::MissingBranch { .. } => "MissingBranch",
            Error::MissingPath { .. } | Error::NotAFolder { .. } => "MissingPath",
            Error::Credentials(_) => "CredentialsUnavailable",
            Error::Git { .. } => "GitError",
        }
    }
}

pub(super) fn git(doing: &'static str) -> impl FnOnce(git2::Error) -> Error {
    move |source| Error::Git { doing, source }
}

/// `url` without credentials: secrets in URLs never reach errors, logs,
/// the source key or the store (one rule for every URL, `crate::redact`).
pub use crate::redact::redact_url;

/// `<repository>#<branch>:<path>`, with a remote's URL redacted and a
/// local path absolute.
fn key_of(spec: &SourceSpec, remote: bool, branch: &str) -> SourceKey {
    let repo = if remote {
        redact_url(&spec.repo)
    } else {
        let path = Path::new(&spec.repo);
        let abs = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        format!("file://{}", abs.display())
    };
    SourceKey::new(&repo, branch, &spec.path)
}

fn is_url(repo: &str) -> bool {
    repo.contains("://") || (repo.contains('@') && repo.contains(':') && !Path::new(repo).exists())
}

/// An opened source.
pub struct GitSource {
    spec: SourceSpec,
    repo: Repository,
    /// The branch actually read.
    branch: String,
    /// Whether `repo` is our own clone (fetched) or a local repository.
    remote: bool,
}

impl GitSource {
    /// Opens a local repository, or clones (first time) / opens (later) a
    /// remote one under `state_dir/sources/`.
    pub fn open(spec: &SourceSpec, state_dir: &Path) -> Result<GitSource, Error> {
        if is_url(&spec.repo) {
            let dir = state_dir.join("sources").join(clone_dir_name(&spec.repo));
            let repo = if dir.join("HEAD").exists() {
                Repository::open_bare(&dir).map_err(|source| Error::Open {
                    path: dir.clone(),
                    source,
                })?
            } else {
                // Clone next to the final place and rename when complete, so
                // an interrupted clone is never mistaken for a finished one.
                let partial = dir.with_extension(format!("partial-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&partial);
                std::fs::create_dir_all(&partial).map_err(|source| Error::StateDir {
                    path: partial.clone(),
                    source,
                })?;
                let mut fetch = git2::FetchOptions::new();
                fetch.remote_callbacks(spec.credentials.callbacks()?);
                let cloned = git2::build::RepoBuilder::new()
                    .bare(true)
                    .fetch_options(fetch)
                    .clone(&spec.repo, &partial);
                if let Err(source) = cloned {
                    let _ = std::fs::remove_dir_all(&partial);
                    return Err(Error::Clone {
                        url: redact_url(&spec.repo),
                        source,
                    });
                }
                // Another process may have finished the same clone first.
                if std::fs::rename(&partial, &dir).is_err() {
                    let _ = std::fs::remove_dir_all(&partial);
                }
                Repository::open_bare(&dir).map_err(|source| Error::Open {
                    path: dir.clone(),
                    source,
                })?
            };
            let branch = match &spec.branch {
                Some(b) => b.clone(),
                None => symbolic_branch(&repo, "HEAD", "refs/heads/")
                    .unwrap_or_else(|| "main".to_owned()),
            };
            Ok(GitSource {
                spec: spec.clone(),
                repo,
                branch,
                remote: true,
            })
        } else {
            let path = PathBuf::from(&spec.repo);
            let repo = Repository::open(&path).map_err(|source| Error::Open { path, source })?;
            // Not the checked-out branch: the source's identity must not
            // change when someone switches branches in the checkout.
            let branch = match &spec.branch {
                Some(b) => b.clone(),
                None => symbolic_branch(&repo, "refs/remotes/origin/HEAD", "refs/remotes/origin/")
                    .unwrap_or_else(|| "main".to_owned()),
            };
            Ok(GitSource {
                spec: spec.clone(),
                repo,
                branch,
                remote: false,
            })
        }
    }

    /// The source's identity: repository, branch and path.
    pub fn key(&self) -> SourceKey {
        key_of(&self.spec, self.remote, &self.branch)
    }

    /// The key of the source `spec` names, without the network: opens a
    /// local repository or a clone kept in `state_dir` when there is one.
    /// Otherwise (a remote not cloned yet, or a local path that does not
    /// open) the branch is the configured one, else `main`: the key
    /// [`GitSource::key`] gives once opened, unless the remote's default
    /// branch, which only a clone tells, is another.
    pub fn expected_key(spec: &SourceSpec, state_dir: &Path) -> SourceKey {
        let remote = is_url(&spec.repo);
        let cloned = state_dir
            .join("sources")
            .join(clone_dir_name(&spec.repo))
            .join("HEAD")
            .exists();
        if !remote || cloned {
            if let Ok(git) = GitSource::open(spec, state_dir) {
                return git.key();
            }
        }
        key_of(spec, remote, spec.branch.as_deref().unwrap_or("main"))
    }

    pub fn branch(&self) -> &str {
        &self.branch
    }

    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    pub fn spec(&self) -> &SourceSpec {
        &self.spec
    }

    /// Brings a cloned repository up to date with its remote (a no-op for
    /// a local repository, which is read in place).
    pub fn fetch(&self) -> Result<(), Error> {
        self.fetch_branch(&self.branch)
    }

    /// Brings one branch of a cloned repository up to date with its remote
    /// (a preview of another branch than the source's needs its commits).
    pub fn fetch_branch(&self, branch: &str) -> Result<(), Error> {
        if !self.remote {
            return Ok(());
        }
        let mut remote = self
            .repo
            .find_remote("origin")
            .map_err(|source| Error::Fetch {
                url: redact_url(&self.spec.repo),
                source,
            })?;
        let refspec = format!("+refs/heads/{branch}:refs/heads/{branch}");
        let mut options = git2::FetchOptions::new();
        options.remote_callbacks(self.spec.credentials.callbacks()?);
        remote
            .fetch(&[refspec.as_str()], Some(&mut options), None)
            .map_err(|source| Error::Fetch {
                url: redact_url(&self.spec.repo),
                source,
            })
    }

    /// The commit at the head of the branch.
    pub fn head(&self) -> Result<CommitInfo, Error> {
        let reference = self
            .repo
            .find_reference(&format!("refs/heads/{}", self.branch))
            .map_err(|_| Error::MissingBranch {
                repo: redact_url(&self.spec.repo),
                branch: self.branch.clone(),
            })?;
        let commit = reference
            .peel_to_commit()
            .map_err(git("reading the branch's commit"))?;
        Ok(commit_info(&commit))
    }

    /// Resolves a revision (`main`, `HEAD~1`, a sha) to a commit.
    pub fn resolve(&self, revision: &str) -> Result<CommitInfo, Error> {
        let object = self
            .repo
            .revparse_single(revision)
            .map_err(git("resolving a revision"))?;
        let commit = object
            .peel_to_commit()
            .map_err(git("resolving a revision to a commit"))?;
        Ok(commit_info(&commit))
    }

    /// Reads the definitions under the source's path at `commit`.
    pub fn read_tree(&self, commit: &CommitId, max_file_size: u64) -> Result<Tree, Error> {
        let root = self.root_tree(commit)?;
        self.read_root(&root, &commit.0, max_file_size)
    }

    fn root_tree(&self, commit: &CommitId) -> Result<git2::Tree<'_>, Error> {
        let oid = Oid::from_str(&commit.0).map_err(git("parsing a commit id"))?;
        self.repo
            .find_commit(oid)
            .and_then(|c| c.tree())
            .map_err(git("reading a commit's tree"))
    }

    /// Reads the definitions under the source's path in a root tree
    /// (`label` names it in errors).
    pub fn read_root(
        &self,
        root: &git2::Tree<'_>,
        label: &str,
        max_file_size: u64,
    ) -> Result<Tree, Error> {
        let base = self.spec.path.trim_matches('/');
        let folder = if base.is_empty() {
            root.clone()
        } else {
            let entry = root
                .get_path(Path::new(base))
                .map_err(|_| Error::MissingPath {
                    path: base.to_owned(),
                    commit: label.to_owned(),
                })?;
            if entry.kind() != Some(ObjectType::Tree) {
                return Err(Error::NotAFolder {
                    path: base.to_owned(),
                    commit: label.to_owned(),
                });
            }
            self.repo
                .find_tree(entry.id())
                .map_err(git("reading the source's folder"))?
        };
        let mut walk = TreeWalk {
            repo: &self.repo,
            root,
            base,
            max_file_size,
            tree: Tree::default(),
            ids: BTreeMap::new(),
            visited: std::collections::HashSet::from([base.to_owned()]),
        };
        walk.folder(&folder, "")?;
        walk.tree.files.sort_by(|a, b| a.path.cmp(&b.path));
        walk.tree.file_ids = Some(Arc::new(walk.ids));
        Ok(walk.tree)
    }

    /// Git's blob id of the file at `rel_path` (relative to the source's
    /// folder) at `commit`, looked up by path; `None` when there is no file
    /// there. (A symbolic link is not followed: a tree with one is read
    /// whole, where the walk follows it.)
    pub fn file_id(&self, commit: &CommitId, rel_path: &str) -> Result<Option<String>, Error> {
        let root = self.root_tree(commit)?;
        Ok(root
            .get_path(Path::new(&self.repo_path(rel_path)))
            .ok()
            .filter(|e| e.kind() == Some(ObjectType::Blob) && e.filemode() != 0o120000)
            .map(|e| e.id().to_string()))
    }

    /// The id of the source's folder at `commit`; `None` when the folder is
    /// missing or not a folder (reading the whole tree says which).
    pub fn folder_id(&self, commit: &CommitId) -> Result<Option<Oid>, Error> {
        let root = self.root_tree(commit)?;
        let base = self.spec.path.trim_matches('/');
        if base.is_empty() {
            return Ok(Some(root.id()));
        }
        Ok(root
            .get_path(Path::new(base))
            .ok()
            .filter(|e| e.kind() == Some(ObjectType::Tree))
            .map(|e| e.id()))
    }

    /// The files that differ between two versions of the source's folder
    /// (tree-to-tree: unchanged sub-folders are skipped by id, so the cost
    /// follows the change, not the repository).
    pub fn diff_folders(&self, old: Oid, new: Oid) -> Result<Vec<FileChange>, Error> {
        let old = self.repo.find_tree(old).map_err(git("reading a folder"))?;
        let new = self.repo.find_tree(new).map_err(git("reading a folder"))?;
        let diff = self
            .repo
            .diff_tree_to_tree(Some(&old), Some(&new), None)
            .map_err(git("comparing two commits"))?;
        let side = |f: git2::DiffFile<'_>| {
            (!f.id().is_zero()).then(|| Side {
                id: f.id(),
                mode: u32::from(f.mode()),
            })
        };
        Ok(diff
            .deltas()
            .filter_map(|d| {
                let path = d.new_file().path().or(d.old_file().path())?;
                Some(FileChange {
                    path: path.to_str()?.to_owned(),
                    old: side(d.old_file()),
                    new: side(d.new_file()),
                })
            })
            .collect())
    }

    /// A definition file of this repository by blob id, with the same size
    /// and encoding rules as a whole-tree read.
    pub fn read_file(
        &self,
        id: Oid,
        rel_path: &str,
        max_file_size: u64,
    ) -> Result<Result<SourceFile, Diagnostic>, Error> {
        read_definition(&self.repo, id, rel_path, max_file_size)
    }

    /// The repository path of a file given relative to the source's path.
    pub fn repo_path(&self, rel: &str) -> String {
        let base = self.spec.path.trim_matches('/');
        if base.is_empty() {
            rel.to_owned()
        } else {
            format!("{base}/{rel}")
        }
    }
}

/// Why [`SourceFiles`] cannot open a source's repository or read one of its
/// files at a commit.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("`{0}` is not a source key")]
    NotASourceKey(String),
    #[error("cannot open the repository of {key}: {reason}")]
    Open { key: String, reason: git2::Error },
    #[error("bad commit id: {0}")]
    BadCommitId(git2::Error),
    /// `commit` is the short id.
    #[error("commit {commit} is not in {}: {reason}", location.display())]
    NoCommit {
        commit: String,
        location: PathBuf,
        reason: git2::Error,
    },
    /// `path` is relative to the repository's root.
    #[error("`{path}` does not exist at commit {commit}")]
    NoFile { path: String, commit: String },
    #[error("`{path}` is a symbolic link to `{target}`, outside the repository")]
    LinkLeaves { path: String, target: String },
    #[error("`{path}` at commit {commit} is not a file: {reason}")]
    NotAFile {
        path: String,
        commit: String,
        reason: git2::Error,
    },
}

/// Reads files of the sources a store knows, at any commit, by source key
/// (`<repo>#<branch>:<path>`): a local repository in place, a remote one
/// from its clone in the state directory. The engine reads a notebook task's
/// notebook through this.
pub struct SourceFiles {
    state_dir: PathBuf,
}

impl SourceFiles {
    pub fn new(state_dir: impl Into<PathBuf>) -> SourceFiles {
        SourceFiles {
            state_dir: state_dir.into(),
        }
    }

    /// The repository of `source` (a local one in place, a remote one's
    /// clone; never cloned here), where it is, and the source's folder.
    pub fn open(&self, source: &SourceKey) -> Result<(Repository, PathBuf, String), FileError> {
        let SourceParts {
            repo, path: folder, ..
        } = source
            .parts()
            .ok_or_else(|| FileError::NotASourceKey(source.0.clone()))?;
        let location = match repo.strip_prefix("file://") {
            Some(local) => PathBuf::from(local),
            None => self.state_dir.join("sources").join(clone_dir_name(repo)),
        };
        let repository = Repository::open(&location).map_err(|reason| FileError::Open {
            key: source.0.clone(),
            reason,
        })?;
        Ok((repository, location, folder.to_owned()))
    }

    /// The bytes of `path` (relative to the source's folder) at `commit`.
    pub fn read(
        &self,
        source: &SourceKey,
        commit: &CommitId,
        path: &str,
    ) -> Result<Vec<u8>, FileError> {
        let (repository, location, folder) = self.open(source)?;
        let oid = Oid::from_str(&commit.0).map_err(FileError::BadCommitId)?;
        let tree = repository
            .find_commit(oid)
            .and_then(|c| c.tree())
            .map_err(|reason| FileError::NoCommit {
                commit: commit.short().to_owned(),
                location: location.clone(),
                reason,
            })?;
        let full = if folder.is_empty() {
            path.to_owned()
        } else {
            format!("{folder}/{path}")
        };
        let no_file = |path: &str| FileError::NoFile {
            path: path.to_owned(),
            commit: commit.short().to_owned(),
        };
        let blob_of = |entry: &git2::TreeEntry<'_>| {
            repository
                .find_blob(entry.id())
                .map_err(|reason| FileError::NotAFile {
                    path: full.clone(),
                    commit: commit.short().to_owned(),
                    reason,
                })
        };
        let mut entry = tree
            .get_path(Path::new(&full))
            .map_err(|_| no_file(&full))?;
        // A symbolic link is read as validation read it: its target inside
        // the repository (one link, not a chain), never its text.
        if entry.filemode() == 0o120000 {
            let target = String::from_utf8_lossy(blob_of(&entry)?.content()).into_owned();
            let resolved = resolve_link(&full, &target).ok_or_else(|| FileError::LinkLeaves {
                path: full.clone(),
                target: target.clone(),
            })?;
            entry = tree
                .get_path(Path::new(&resolved))
                .ok()
                .filter(|e| e.filemode() != 0o120000)
                .ok_or_else(|| no_file(&resolved))?;
        }
        let blob = blob_of(&entry)?;
        Ok(blob.content().to_vec())
    }
}

/// A stable folder name for a clone of `url`.
fn clone_dir_name(url: &str) -> String {
    let digest = crate::spec::Digest::of_json(&serde_json::Value::String(url.to_owned()));
    let tail: String = url
        .rsplit('/')
        .next()
        .unwrap_or("repo")
        .trim_end_matches(".git")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    format!("{tail}-{}", digest.short())
}

/// The branch a symbolic reference points at, without `prefix`: a bare
/// clone's `HEAD` (`refs/heads/`) or a checkout's `refs/remotes/origin/HEAD`
/// (`refs/remotes/origin/`) — either way the remote's default branch.
fn symbolic_branch(repo: &Repository, reference: &str, prefix: &str) -> Option<String> {
    let head = repo.find_reference(reference).ok()?;
    head.symbolic_target()
        .ok()??
        .strip_prefix(prefix)
        .map(str::to_owned)
}

fn person(sig: &git2::Signature<'_>) -> Person {
    Person {
        name: String::from_utf8_lossy(sig.name_bytes()).into_owned(),
        email: String::from_utf8_lossy(sig.email_bytes()).into_owned(),
    }
}

/// What weir records of a commit.
pub fn commit_info(commit: &git2::Commit<'_>) -> CommitInfo {
    let seconds = commit.committer().when().seconds();
    CommitInfo {
        id: CommitId(commit.id().to_string()),
        author: person(&commit.author()),
        committer: person(&commit.committer()),
        time: Utc.timestamp_opt(seconds, 0).single().unwrap_or_default(),
        message: String::from_utf8_lossy(commit.message_bytes()).into_owned(),
    }
}

/// One file that differs between two versions of a folder.
#[derive(Debug, Clone)]
pub struct FileChange {
    /// Relative to the folder.
    pub path: String,
    /// Before (`None`: added).
    pub old: Option<Side>,
    /// After (`None`: deleted).
    pub new: Option<Side>,
}

#[derive(Debug, Clone, Copy)]
pub struct Side {
    pub id: Oid,
    pub mode: u32,
}

impl Side {
    pub fn is_link(&self) -> bool {
        self.mode == 0o120000
    }

    pub fn is_file(&self) -> bool {
        self.mode == 0o100644 || self.mode == 0o100755
    }
}

struct TreeWalk<'r> {
    repo: &'r Repository,
    /// The commit's root tree, to resolve symbolic links.
    root: &'r git2::Tree<'r>,
    /// The source's folder inside the repository.
    base: &'r str,
    max_file_size: u64,
    tree: Tree,
    /// The blob id of every file that is not a definition, which the walk
    /// has without reading it: a task's version covers the content of the
    /// files it runs ([`Tree::file_ids`]).
    ids: BTreeMap<String, String>,
    /// Repository paths of the folders walked, so a link to a folder is
    /// walked at most once and links cannot loop.
    visited: std::collections::HashSet<String>,
}

impl TreeWalk<'_> {
    /// The repository path of a path relative to the source's folder.
    fn in_repo(&self, rel_path: &str) -> String {
        if self.base.is_empty() {
            rel_path.to_owned()
        } else {
            format!("{}/{rel_path}", self.base)
        }
    }

    fn folder(&mut self, folder: &git2::Tree<'_>, rel: &str) -> Result<(), Error> {
        for entry in folder.iter() {
            let Ok(name) = entry.name().map(str::to_owned) else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let rel_path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            match entry.kind() {
                Some(ObjectType::Tree) => {
                    let sub = self
                        .repo
                        .find_tree(entry.id())
                        .map_err(git("reading a folder"))?;
                    self.visited.insert(self.in_repo(&rel_path));
                    self.folder(&sub, &rel_path)?;
                }
                Some(ObjectType::Blob) if entry.filemode() == 0o120000 => {
                    self.link(entry.id(), &rel_path)?
                }
                Some(ObjectType::Blob) => {
                    if is_definition(&name) {
                        self.file(entry.id(), &rel_path)?;
                    } else {
                        self.other(entry.id(), rel_path);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A file that is not a definition: remembered with its blob id (not
    /// read).
    fn other(&mut self, id: Oid, rel_path: String) {
        self.ids.insert(rel_path.clone(), id.to_string());
        self.tree.other_paths.insert(rel_path);
    }

    fn file(&mut self, id: Oid, rel_path: &str) -> Result<(), Error> {
        match read_definition(self.repo, id, rel_path, self.max_file_size)? {
            Ok(file) => self.tree.files.push(file),
            Err(refused) => self.tree.read_errors.push(refused),
        }
        Ok(())
    }

    /// A symbolic link: followed when its target is a file inside the
    /// repository, refused when it leaves it.
    fn link(&mut self, id: Oid, rel_path: &str) -> Result<(), Error> {
        self.tree.followed_links = true;
        let blob = self
            .repo
            .find_blob(id)
            .map_err(git("reading a symbolic link"))?;
        let target = String::from_utf8_lossy(blob.content()).into_owned();
        let in_repo = self.in_repo(rel_path);
        let Some(resolved) = resolve_link(&in_repo, &target) else {
            // Only a link that could carry definitions is an error; a link
            // to, say, a shared README outside the repository is ignored.
            if is_definition(rel_path) {
                self.tree
                    .read_errors
                    .push(symlink_escape(rel_path, &target));
            }
            return Ok(());
        };
        let entry = self.root.get_path(Path::new(&resolved)).ok();
        match entry {
            Some(e) if e.kind() == Some(ObjectType::Blob) && e.filemode() != 0o120000 => {
                if is_definition(rel_path) {
                    self.file(e.id(), rel_path)?;
                } else {
                    self.other(e.id(), rel_path.to_owned());
                }
            }
            // A link to a folder inside the repository is walked like the
            // folder itself (as `weir validate` does on disk), once.
            Some(e) if e.kind() == Some(ObjectType::Tree) => {
                let inside_walked = self.visited.iter().any(|v| {
                    v.is_empty() || resolved == *v || resolved.starts_with(&format!("{v}/"))
                });
                if !inside_walked && self.visited.insert(resolved.clone()) {
                    let sub = self
                        .repo
                        .find_tree(e.id())
                        .map_err(git("reading a linked folder"))?;
                    self.folder(&sub, rel_path)?;
                }
            }
            _ if is_definition(rel_path) => self.tree.read_errors.push(unreadable(
                rel_path,
                &format!("symbolic link to `{target}`, which is not a file in this commit"),
            )),
            _ => {}
        }
        Ok(())
    }
}

/// A definition file's blob, under the size limit and UTF-8, or why not.
fn read_definition(
    repo: &Repository,
    id: Oid,
    rel_path: &str,
    max_file_size: u64,
) -> Result<Result<SourceFile, Diagnostic>, Error> {
    let blob = repo.find_blob(id).map_err(git("reading a file"))?;
    let size = blob.size() as u64;
    if size > max_file_size {
        return Ok(Err(too_large(rel_path, size, max_file_size)));
    }
    Ok(match std::str::from_utf8(blob.content()) {
        Ok(text) => Ok(SourceFile {
            path: rel_path.to_owned(),
            text: text.to_owned(),
        }),
        Err(e) => Err(unreadable(rel_path, &format!("not UTF-8 text ({e})"))),
    })
}

/// Resolves `target` relative to the folder of `link` (both repository
/// paths); `None` when it is absolute or climbs out of the repository.
fn resolve_link(link: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for segment in target.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::resolve_link;

    #[test]
    fn links_resolve_inside_the_repository_only() {
        assert_eq!(
            resolve_link("defs/a.yaml", "b.yaml").as_deref(),
            Some("defs/b.yaml")
        );
        assert_eq!(
            resolve_link("defs/a.yaml", "../shared/b.yaml").as_deref(),
            Some("shared/b.yaml")
        );
        assert_eq!(resolve_link("defs/a.yaml", "../../etc/passwd"), None);
        assert_eq!(resolve_link("a.yaml", "/etc/passwd"), None);
    }
}

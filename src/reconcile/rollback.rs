//! A rollback: the commit that restores an entity's earlier version, what
//! `weir rollback` and the console's rollback write (DESIGN.md section 5).
//! Git stays the only source of truth: this only commits (and pushes when
//! asked); reconciling that commit reactivates the old version, and the
//! audit log shows who rolled back what.
//!
//! The files restored are those that define the entity and everything it
//! calls, as they were at the commit where the target version first
//! appeared. Before committing, the resulting tree is validated and the
//! entity's version in it must be exactly the target; other definitions the
//! restored files change are listed.
//!
//! What it must not do: change the store. It reads the versions there
//! ([`choose`]) and writes to the repository only ([`write`]).

use std::collections::BTreeSet;

use crate::registry::compare::compare;
use crate::source::credentials::Credentials;
use crate::source::dir::DEFAULT_MAX_FILE_SIZE;
use crate::source::git::GitSource;
use crate::source::write;
use crate::spec::{CommitId, Definition, Digest, EntityRef, Kind};
use crate::store::{self, Store, VersionFilter, VersionRecord};
use crate::validate::{self, Entity, Options};

/// What to roll back: an entity by name (its kind and project when the
/// name is ambiguous) and the version to restore (a prefix of its digest;
/// by default the one active before the current one).
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub name: String,
    pub kind: Option<Kind>,
    pub project: Option<String>,
    pub to: Option<String>,
}

/// Why a rollback was not committed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// It cannot be done as asked (nothing to roll back, a dirty working
    /// tree, a restored tree that would be invalid).
    #[error("{0}")]
    Refused(String),
    /// No such entity or version.
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] store::Error),
    /// Git could not be read or written.
    #[error("{0}")]
    Git(Box<dyn std::error::Error + Send + Sync>),
}

fn git(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::Git(e.into())
}

/// The version active now and the one to restore.
#[derive(Debug, Clone)]
pub struct Choice {
    pub current: VersionRecord,
    pub target: VersionRecord,
}

/// Reads `target`'s versions from the store and chooses the two.
pub async fn choose(store: &dyn Store, target: &Target) -> Result<Choice, Error> {
    let filter = VersionFilter {
        kind: target.kind,
        name: Some(target.name.clone()),
        project: target.project.clone(),
    };
    let versions = store.versions(&filter).await?;
    let (current, restored) = pick(&versions, target)?;
    Ok(Choice {
        current: current.clone(),
        target: restored.clone(),
    })
}

/// The commit written.
#[derive(Debug, Clone)]
pub struct Done {
    pub entity: EntityRef,
    pub from: Digest,
    pub to: Digest,
    pub commit: CommitId,
    pub branch: String,
    /// The repository paths restored.
    pub files: Vec<String>,
    /// Other entities the restored files change.
    pub also: Vec<EntityRef>,
    /// Whether the branch was pushed to `origin`.
    pub pushed: bool,
}

/// Writes the commit of `choice` on the checked-out branch of `source`'s
/// working tree (which must be `branch` when given: the one a daemon
/// follows), and pushes it to `origin` with `push`'s credentials when
/// given. Blocking (Git).
pub fn write(
    source: &GitSource,
    choice: &Choice,
    branch: Option<&str>,
    push: Option<&Credentials>,
) -> Result<Done, Error> {
    let Choice { current, target } = choice;
    let entity = current.key.entity.clone();
    let repo = source.repository();
    if repo.is_bare() {
        return Err(Error::Refused(format!(
            "{} has no working tree; a rollback commits to a checkout",
            source.key().0
        )));
    }
    let checked_out = write::checked_out_branch(repo).ok_or_else(|| {
        Error::Refused("HEAD is detached; check out the branch to roll back on".to_owned())
    })?;
    if let Some(followed) = branch
        && followed != checked_out
    {
        return Err(Error::Refused(format!(
            "the working tree has `{checked_out}` checked out, not `{followed}`, the branch followed"
        )));
    }
    let branch = checked_out;
    let options = Options {
        default_project: entity.project.clone(),
        ..Options::default()
    };
    let at_target = validate::validate(
        source
            .read_tree(&target.commit, DEFAULT_MAX_FILE_SIZE)
            .map_err(git)?,
        &options,
    );
    let files = closure_files(&at_target.entities, &entity);
    if files.is_empty() {
        return Err(Error::Refused(format!(
            "{entity} is not defined at commit {} of {} (was that version registered from another source?)",
            target.commit,
            source.key().0
        )));
    }
    let repo_paths: Vec<String> = files.iter().map(|f| source.repo_path(f)).collect();
    let linked = write::linked_paths(repo, &repo_paths);
    if !linked.is_empty() {
        return Err(Error::Refused(format!(
            "{} is a symbolic link (or inside one) in the working tree; rollback does not write through links",
            linked.join(", ")
        )));
    }
    let dirty = write::dirty_files(repo, &repo_paths).map_err(git)?;
    if !dirty.is_empty() {
        return Err(Error::Refused(format!(
            "uncommitted changes to {}; commit or stash them first",
            dirty.join(", ")
        )));
    }
    let contents: Vec<(String, Vec<u8>)> = files
        .iter()
        .zip(&repo_paths)
        .map(|(rel, path)| {
            let text = at_target
                .sources
                .iter()
                .find(|f| &f.path == rel)
                .map(|f| f.text.clone().into_bytes())
                .unwrap_or_default();
            (path.clone(), text)
        })
        .collect();

    // Check the result before writing anything.
    let head = source.resolve("HEAD").map_err(git)?;
    let before = validate::validate(
        source
            .read_tree(&head.id, DEFAULT_MAX_FILE_SIZE)
            .map_err(git)?,
        &options,
    );
    let new_tree = write::tree_with(repo, &contents).map_err(git)?;
    let after = validate::validate(
        source
            .read_root(&new_tree, "the rolled-back tree", DEFAULT_MAX_FILE_SIZE)
            .map_err(git)?,
        &options,
    );
    if !after.is_valid() {
        let first = after
            .diagnostics
            .iter()
            .find(|d| d.is_error())
            .map(|d| format!("{}: {}", d.location(), d.message));
        return Err(Error::Refused(format!(
            "restoring {} as of {} gives an invalid tree ({}); roll back by hand with git revert",
            repo_paths.join(", "),
            target.commit.short(),
            first.unwrap_or_default()
        )));
    }
    let restored = after
        .entities
        .iter()
        .find(|e| e.id == entity)
        .and_then(|e| e.digest.clone());
    if restored.as_ref() != Some(&target.key.digest) {
        return Err(Error::Refused(format!(
            "restoring {} as of {} gives {entity} version {}, not {}; roll back by hand with git revert",
            repo_paths.join(", "),
            target.commit.short(),
            restored.as_ref().map_or("(none)", |d| d.short()),
            target.key.digest.short()
        )));
    }
    let message = format!(
        "Roll back {}/{} to {}\n\nRestores {} as of {}.\n\nWeir-Rollback-Of: {}\nWeir-Rollback-To: {}\n",
        entity.kind,
        entity.name,
        target.key.digest.short(),
        repo_paths.join(", "),
        target.commit.short(),
        current.commit.0,
        target.commit.0,
    );
    let commit = write::commit_tree(repo, &new_tree, &contents, &message).map_err(git)?;
    let changes = compare(&before.entities, &after.entities);
    let also = changes
        .changed
        .iter()
        .chain(&changes.added)
        .chain(&changes.removed)
        .map(|change| change.entity.clone())
        .filter(|other| *other != entity)
        .collect();
    let pushed = match push {
        Some(credentials) => {
            write::push(repo, &branch, credentials).map_err(git)?;
            true
        }
        None => false,
    };
    Ok(Done {
        entity,
        from: current.key.digest.clone(),
        to: target.key.digest.clone(),
        commit,
        branch,
        files: repo_paths,
        also,
        pushed,
    })
}

/// The active version and the one to restore.
fn pick<'a>(
    versions: &'a [VersionRecord],
    target: &Target,
) -> Result<(&'a VersionRecord, &'a VersionRecord), Error> {
    let name = &target.name;
    let entities: BTreeSet<&EntityRef> = versions.iter().map(|v| &v.key.entity).collect();
    if entities.is_empty() {
        return Err(Error::NotFound(format!(
            "no registered version of `{name}`"
        )));
    }
    if entities.len() > 1 {
        let list: Vec<String> = entities.iter().map(ToString::to_string).collect();
        return Err(Error::Refused(format!(
            "`{name}` names several entities ({}); pass --kind and --project",
            list.join(", ")
        )));
    }
    let current = versions.iter().find(|v| v.active).ok_or_else(|| {
        Error::Refused(format!(
            "`{name}` is not active; there is nothing to roll back"
        ))
    })?;
    let restored = match &target.to {
        Some(prefix) => {
            let matching: Vec<&VersionRecord> = versions
                .iter()
                .filter(|v| v.key.digest.as_str().starts_with(prefix.as_str()))
                .collect();
            match matching.as_slice() {
                [one] => *one,
                [] => {
                    return Err(Error::NotFound(format!("`{name}` has no version {prefix}")));
                }
                _ => {
                    return Err(Error::Refused(format!(
                        "`{prefix}` matches {} versions of `{name}`; give more characters",
                        matching.len(),
                    )));
                }
            }
        }
        None => versions
            .iter()
            .filter(|v| !v.active && v.last_activation > 0)
            .max_by_key(|v| v.last_activation)
            .ok_or_else(|| Error::Refused(format!("`{name}` has no earlier active version")))?,
    };
    if restored.key == current.key {
        return Err(Error::Refused(format!(
            "version {} is already active",
            restored.key.digest.short()
        )));
    }
    Ok((current, restored))
}

/// Files that define `entity` and everything it calls, in `entities`.
fn closure_files(entities: &[Entity], entity: &EntityRef) -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    let mut stack = vec![entity.clone()];
    let mut seen = BTreeSet::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        let Some(e) = entities.iter().find(|e| e.id == id) else {
            continue;
        };
        files.insert(e.file.clone());
        let project = id.project.clone();
        match &e.definition {
            Definition::Workflow(w) => {
                for node in &w.spec.nodes {
                    if let Some(t) = &node.task {
                        stack.push(EntityRef::new(project.clone(), Kind::Task, t.clone()));
                    }
                    if let Some(w) = &node.workflow {
                        stack.push(EntityRef::new(project.clone(), Kind::Workflow, w.clone()));
                    }
                }
            }
            Definition::LaunchPlan(lp) => stack.push(EntityRef::new(
                project,
                Kind::Workflow,
                lp.spec.workflow.clone(),
            )),
            Definition::Task(_) => {}
        }
    }
    files
}

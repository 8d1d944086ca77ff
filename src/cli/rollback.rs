//! `weir rollback NAME`: write the commit that restores an entity's previous
//! active version (or `--to VERSION`). Git stays the only source of truth:
//! this only commits (and with `--push`, pushes); the next sync reactivates
//! the old version, and the audit log shows who rolled back what.
//!
//! The files restored are those that define the entity and everything it
//! calls, as they were at the commit where the target version first
//! appeared. Before committing, the resulting tree is validated and the
//! entity's version in it must be exactly the target; other definitions the
//! restored files change are listed.

use std::collections::BTreeSet;

use super::exit::{self, Error, ExitStatus};
use super::source_args::CredentialArgs;
use super::store_args::{OpenError, StoreArgs, block_on};
use super::versions::KindArg;
use crate::registry::compare::compare;
use crate::source::dir::DEFAULT_MAX_FILE_SIZE;
use crate::source::git::{GitSource, SourceSpec};
use crate::source::write;
use crate::spec::{Definition, EntityRef, Kind};
use crate::store::{VersionFilter, VersionRecord};
use crate::validate::{self, Entity, Options};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name of the task, workflow or launch plan.
    pub name: String,
    /// The definition's kind, when the name is used by several kinds.
    #[arg(long, value_enum, ignore_case = true)]
    pub kind: Option<KindArg>,
    /// The definition's project, when the name is used in several.
    #[arg(long)]
    pub project: Option<String>,
    /// The version to restore (12 hex or the full digest); default: the one
    /// active before the current one.
    #[arg(long)]
    pub to: Option<String>,
    /// Local path of the repository (with a working tree).
    #[arg(long, default_value = ".")]
    pub repo: String,
    /// Folder of definitions inside the repository.
    #[arg(long, default_value = "")]
    pub path: String,
    /// Push the branch to `origin` after committing.
    #[arg(long)]
    pub push: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub credentials: CredentialArgs,
}

pub fn run(args: &Args) -> exit::Result {
    let message = rollback(args)?;
    print!("{message}");
    Ok(ExitStatus::Success)
}

/// Why a rollback was not committed: `Refused`, the request cannot be
/// done as asked (exit 1); `NotFound`, no such entity or version (exit
/// 3); `Broken`, weir could not run (exit 2), `NoStore` among them.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    NoStore(OpenError),
    #[error("{0}")]
    Broken(Box<dyn std::error::Error + Send + Sync>),
}

impl From<Failure> for Error {
    fn from(failure: Failure) -> Error {
        match failure {
            Failure::Refused(_) => Error::invalid(failure),
            Failure::NotFound(_) => Error::not_found(failure),
            Failure::NoStore(e) => e.into(),
            Failure::Broken(e) => Error::failed(e),
        }
    }
}

fn broken(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Failure {
    Failure::Broken(e.into())
}

fn rollback(args: &Args) -> Result<String, Failure> {
    let filter = VersionFilter {
        kind: args.kind.map(Kind::from),
        name: Some(args.name.clone()),
        project: args.project.clone(),
    };
    let versions = block_on(async {
        let store = args.store.open_existing().await.map_err(Failure::NoStore)?;
        store.versions(&filter).await.map_err(broken)
    })?;
    let (current, target) = choose(&versions, args)?;
    let entity = current.key.entity.clone();

    let spec = SourceSpec {
        repo: args.repo.clone(),
        branch: None,
        path: args.path.clone(),
        credentials: args.credentials.credentials(),
    };
    let source = GitSource::open(&spec, &args.store.state_dir).map_err(broken)?;
    let repo = source.repository();
    if repo.is_bare() {
        return Err(Failure::Refused(format!(
            "`{}` has no working tree; rollback commits to a checkout",
            args.repo
        )));
    }
    let branch = write::checked_out_branch(repo).ok_or_else(|| {
        Failure::Refused("HEAD is detached; check out the branch to roll back on".to_owned())
    })?;

    let options = Options {
        default_project: entity.project.clone(),
        ..Options::default()
    };
    let at_target = validate::validate(
        source
            .read_tree(&target.commit, DEFAULT_MAX_FILE_SIZE)
            .map_err(broken)?,
        &options,
    );
    let files = closure_files(&at_target.entities, &entity);
    if files.is_empty() {
        return Err(Failure::Refused(format!(
            "{entity} is not defined at commit {} of `{}` (was that version registered from another source?)",
            target.commit, args.repo
        )));
    }
    let repo_paths: Vec<String> = files.iter().map(|f| source.repo_path(f)).collect();
    let linked = write::linked_paths(repo, &repo_paths);
    if !linked.is_empty() {
        return Err(Failure::Refused(format!(
            "{} is a symbolic link (or inside one) in the working tree; rollback does not write through links",
            linked.join(", ")
        )));
    }
    let dirty = write::dirty_files(repo, &repo_paths).map_err(broken)?;
    if !dirty.is_empty() {
        return Err(Failure::Refused(format!(
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
    let head = source.resolve("HEAD").map_err(broken)?;
    let before = validate::validate(
        source
            .read_tree(&head.id, DEFAULT_MAX_FILE_SIZE)
            .map_err(broken)?,
        &options,
    );
    let new_tree = write::tree_with(repo, &contents).map_err(broken)?;
    let after = validate::validate(
        source
            .read_root(&new_tree, "the rolled-back tree", DEFAULT_MAX_FILE_SIZE)
            .map_err(broken)?,
        &options,
    );
    if !after.is_valid() {
        let first = after
            .diagnostics
            .iter()
            .find(|d| d.is_error())
            .map(|d| format!("{}: {}", d.location(), d.message));
        return Err(Failure::Refused(format!(
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
        return Err(Failure::Refused(format!(
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
    let commit = write::commit_tree(repo, &new_tree, &contents, &message).map_err(broken)?;
    let mut out = format!(
        "committed {} on {branch}: Roll back {}/{} from {} to {}\n",
        commit.short(),
        entity.kind,
        entity.name,
        current.key.digest.short(),
        target.key.digest.short()
    );
    let also = compare(&before.entities, &after.entities);
    for change in also.changed.iter().chain(&also.added).chain(&also.removed) {
        if change.entity != entity {
            out.push_str(&format!(
                "  also changes {}/{}\n",
                change.entity.kind, change.entity.name
            ));
        }
    }
    if args.push {
        write::push(repo, &branch, &args.credentials.credentials()).map_err(broken)?;
        out.push_str(&format!("pushed {branch} to origin\n"));
    } else {
        out.push_str(
            "run `weir sync` (or push, for a daemon watching the remote) to activate it\n",
        );
    }
    Ok(out)
}

/// The active version and the one to restore.
fn choose<'a>(
    versions: &'a [VersionRecord],
    args: &Args,
) -> Result<(&'a VersionRecord, &'a VersionRecord), Failure> {
    let kinds: BTreeSet<&EntityRef> = versions.iter().map(|v| &v.key.entity).collect();
    if kinds.is_empty() {
        return Err(Failure::NotFound(format!(
            "no registered version of `{}`",
            args.name
        )));
    }
    if kinds.len() > 1 {
        let list: Vec<String> = kinds.iter().map(ToString::to_string).collect();
        return Err(Failure::Refused(format!(
            "`{}` names several entities ({}); pass --kind and --project",
            args.name,
            list.join(", ")
        )));
    }
    let current = versions.iter().find(|v| v.active).ok_or_else(|| {
        Failure::Refused(format!(
            "`{}` is not active; there is nothing to roll back",
            args.name
        ))
    })?;
    let target = match &args.to {
        Some(prefix) => {
            let matching: Vec<&VersionRecord> = versions
                .iter()
                .filter(|v| v.key.digest.as_str().starts_with(prefix.as_str()))
                .collect();
            match matching.as_slice() {
                [one] => *one,
                [] => {
                    return Err(Failure::NotFound(format!(
                        "`{}` has no version {prefix}",
                        args.name
                    )));
                }
                _ => {
                    return Err(Failure::Refused(format!(
                        "`{prefix}` matches {} versions of `{}`; give more characters",
                        matching.len(),
                        args.name
                    )));
                }
            }
        }
        None => versions
            .iter()
            .filter(|v| !v.active && v.last_activation > 0)
            .max_by_key(|v| v.last_activation)
            .ok_or_else(|| {
                Failure::Refused(format!("`{}` has no earlier active version", args.name))
            })?,
    };
    if target.key == current.key {
        return Err(Failure::Refused(format!(
            "version {} is already active",
            target.key.digest.short()
        )));
    }
    Ok((current, target))
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

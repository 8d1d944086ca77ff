//! Layer 4: checks across documents, the way Flyte's compiler checks a
//! workflow: identities are unique, references resolve (in the same
//! project), DAGs are acyclic, every binding's type matches what it feeds,
//! schedules parse, launch plans fill every required input.
//!
//! Every check reports at the line of the value it is about and keeps going,
//! so one run lists every problem. Once the tree is valid,
//! [`assign_digests`] computes versions: a workflow's covers the versions of
//! everything it calls, a launch plan's covers its workflow's (DESIGN.md
//! section 2).

mod launch_plan;
mod ports;
mod task;
mod workflow;

use std::collections::{BTreeMap, BTreeSet};

use foldhash::{HashMap, HashMapExt as _};
use serde::Serialize;

use serde_json::{Value, json};

use super::Entity;
use super::diagnostic::{Code, Diagnostic};
use crate::spec::yaml::{PathStep, to_pointer};
use crate::spec::{Definition, Digest, EntityRef, Kind};
use crate::task::TaskTypes;

pub use ports::{Interface, Param};

/// An identity as borrowed strings: looking one up builds no `EntityRef`.
type IdKey<'a> = (&'a str, Kind, &'a str);

fn id_key(id: &EntityRef) -> IdKey<'_> {
    (&id.project, id.kind, &id.name)
}

/// Lookup of entities by identity; the first of duplicates wins.
pub(crate) struct Index<'a> {
    pub entities: &'a [Entity],
    by_id: HashMap<IdKey<'a>, usize>,
}

impl<'a> Index<'a> {
    pub fn new(entities: &'a [Entity]) -> Index<'a> {
        let mut by_id = HashMap::with_capacity(entities.len());
        for (i, e) in entities.iter().enumerate() {
            by_id.entry(id_key(&e.id)).or_insert(i);
        }
        Index { entities, by_id }
    }

    pub fn get(&self, project: &str, kind: Kind, name: &str) -> Option<(usize, &'a Entity)> {
        // A map keyed by longer-lived borrows reads as one keyed by shorter.
        let by_id: &HashMap<IdKey<'_>, usize> = &self.by_id;
        by_id
            .get(&(project, kind, name))
            .map(|&i| (i, &self.entities[i]))
    }

    /// Names of a kind in a project, for "did you mean" hints.
    pub fn names(&self, project: &str, kind: Kind) -> Vec<&'a str> {
        let mut names: Vec<&str> = self
            .by_id
            .keys()
            .filter(|(p, k, _)| *p == project && *k == kind)
            .map(|(_, _, name)| *name)
            .collect();
        names.sort_unstable();
        names
    }
}

/// Reports a finding about `entity` at `path` inside its document.
pub(crate) fn at(
    entity: &Entity,
    code: Code,
    path: &[PathStep<'_>],
    message: impl Into<String>,
) -> Diagnostic {
    Diagnostic::at_site(
        code,
        &entity.file,
        entity.doc,
        to_pointer(path),
        false,
        message,
    )
}

/// Like [`at`], pointing at the key of the last step rather than its value.
pub(crate) fn at_key(
    entity: &Entity,
    code: Code,
    path: &[PathStep<'_>],
    message: impl Into<String>,
) -> Diagnostic {
    Diagnostic::at_site(
        code,
        &entity.file,
        entity.doc,
        to_pointer(path),
        true,
        message,
    )
}

/// "did you mean `x`?" for the name closest to `name` among `known`.
pub(crate) fn suggestion(name: &str, known: &[&str], what: &str) -> String {
    match super::schema::closest(name, known) {
        Some(best) => format!("did you mean `{best}`?"),
        None if known.is_empty() => format!("no {what} is defined in this project"),
        None => {
            let shown: Vec<&str> = known.iter().take(8).copied().collect();
            let more = if known.len() > shown.len() {
                ", …"
            } else {
                ""
            };
            format!("known {what}s: {}{more}", shown.join(", "))
        }
    }
}

/// Runs every semantic check.
/// `other_paths`: the source's files that are not definitions (the files
/// tasks run must be among them).
pub fn check(
    entities: &mut [Entity],
    other_paths: &BTreeSet<String>,
    task_types: &TaskTypes,
) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    let index = Index::new(entities);
    for (i, e) in entities.iter().enumerate() {
        let (first, f) = index
            .get(&e.id.project, e.id.kind, &e.id.name)
            .expect("every entity is in the index");
        if first != i {
            found.push(
                at(
                    e,
                    Code::DuplicateDefinition,
                    &[PathStep::Key("metadata"), PathStep::Key("name")],
                    format!(
                        "{} `{}` is defined twice in project `{}`",
                        e.id.kind, e.id.name, e.id.project
                    ),
                )
                .with_help(format!("first defined at {}:{}", f.file, f.pos.line)),
            );
        }
    }

    // Tasks are checked each on its own, and launch plans each against the
    // interfaces found before them: both on all cores, their findings kept
    // in the order of the entities (the final sort is stable).
    let mut interfaces: Vec<Option<Interface>> = Vec::with_capacity(entities.len());
    for checked in super::par::map(entities, |e| match &e.definition {
        Definition::Task(t) => Some(task::check(e, &t.spec, other_paths, task_types)),
        _ => None,
    }) {
        let (iface, diags) = checked.unzip();
        interfaces.push(iface);
        found.extend(diags.into_iter().flatten());
    }
    found.extend(workflow::check_all(&index, &mut interfaces));
    let crons = launch_plan::parse_crons(entities);
    let plans = super::par::map(entities, |e| match &e.definition {
        Definition::LaunchPlan(lp) => launch_plan::check(e, &lp.spec, &index, &interfaces, &crons),
        _ => Vec::new(),
    });
    found.extend(plans.into_iter().flatten());
    found
}

/// Computes the version digest of every entity of a valid tree.
///
/// A task's version is the digest of its canonical spec. A workflow's is the
/// digest of (its spec's digest, the versions of every task and workflow it
/// calls); a launch plan's of (its spec's digest, its workflow's version).
/// Spec digests, then workflows that call only tasks, then launch plans
/// are computed on all cores; workflows that call workflows follow their
/// callees.
pub fn assign_digests(
    entities: &mut [Entity],
    files: &[super::RepositoryFiles],
    file_ids: &BTreeMap<String, String>,
) {
    let runs: Vec<(&Entity, &super::RepositoryFiles)> = entities.iter().zip(files).collect();
    let spec_digests = super::par::map(&runs, |(e, files)| {
        let spec = e.definition.spec_digest();
        // A task runs its repository files (a notebook, a program): the
        // version covers their content (Git's blob id), each under its key.
        if files.is_empty() {
            return spec;
        }
        let mut covered = serde_json::Map::new();
        covered.insert("spec".to_owned(), json!(spec.as_str()));
        for (key, path) in *files {
            let content = file_ids.get(path);
            covered.insert((*key).to_owned(), json!(content));
        }
        Digest::of_json(&Value::Object(covered))
    });
    let index = Index::new(entities);
    let mut digests: Vec<Option<Digest>> = entities
        .iter()
        .zip(&spec_digests)
        .map(|(e, spec)| (e.id.kind == Kind::Task).then(|| spec.clone()))
        .collect();
    // A workflow's version, once each callee's is known (`None` before).
    let workflow_version = |i: usize, digests: &[Option<Digest>]| {
        let e = &entities[i];
        let Definition::Workflow(w) = &e.definition else {
            unreachable!("only workflows have a closure");
        };
        let mut closure = BTreeMap::new();
        for node in &w.spec.nodes {
            let (kind, name) = match (&node.task, &node.workflow) {
                (Some(t), _) => (Kind::Task, t),
                (None, Some(w)) => (Kind::Workflow, w),
                (None, None) => continue,
            };
            let (callee, _) = index.get(&e.id.project, kind, name)?;
            closure.insert(format!("{kind}/{name}"), digests[callee].as_ref()?.as_str());
        }
        let spec = spec_digests[i].as_str();
        Some(Digest::of_serialize(&WorkflowVersion { spec, closure }).expect("plain data"))
    };
    // Workflows that call only tasks (most) on all cores; then the others,
    // callees first (the tree is valid, so the call graph is acyclic).
    let (leaves, mut pending): (Vec<usize>, Vec<usize>) = (0..entities.len())
        .filter(|&i| entities[i].id.kind == Kind::Workflow)
        .partition(|&i| match &entities[i].definition {
            Definition::Workflow(w) => w.spec.nodes.iter().all(|n| n.workflow.is_none()),
            _ => false,
        });
    for (i, digest) in leaves
        .iter()
        .zip(super::par::map(&leaves, |&i| workflow_version(i, &digests)))
    {
        digests[*i] = digest;
    }
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|&i| {
            digests[i] = workflow_version(i, &digests);
            digests[i].is_none()
        });
        if pending.len() == before {
            // Unreachable for a valid tree (its call graph is acyclic); leave
            // the rest without a digest rather than loop.
            debug_assert!(false, "cyclic workflow calls in a valid tree");
            break;
        }
    }
    let plans: Vec<usize> = (0..entities.len())
        .filter(|&i| entities[i].id.kind == Kind::LaunchPlan)
        .collect();
    let plan_versions = super::par::map(&plans, |&i| {
        let e = &entities[i];
        let Definition::LaunchPlan(lp) = &e.definition else {
            unreachable!("only launch plans are here");
        };
        let workflow = index
            .get(&e.id.project, Kind::Workflow, &lp.spec.workflow)
            .and_then(|(w, _)| digests[w].as_ref().map(Digest::as_str));
        let spec = spec_digests[i].as_str();
        Digest::of_serialize(&LaunchPlanVersion { spec, workflow }).expect("plain data")
    });
    for (i, digest) in plans.into_iter().zip(plan_versions) {
        digests[i] = Some(digest);
    }
    drop(index);
    for (e, digest) in entities.iter_mut().zip(digests) {
        e.digest = digest;
    }
}

/// What a workflow's version digests: its spec's digest and each callee's
/// version under `task/NAME` or `workflow/NAME`.
#[derive(Serialize)]
struct WorkflowVersion<'a> {
    spec: &'a str,
    closure: BTreeMap<String, &'a str>,
}

/// What a launch plan's version digests: its spec's digest and its
/// workflow's version.
#[derive(Serialize)]
struct LaunchPlanVersion<'a> {
    spec: &'a str,
    workflow: Option<&'a str>,
}

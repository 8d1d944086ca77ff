//! Creating an execution of the active version of a launch plan or a
//! workflow: resolve the versions, compile the plan, fill and check the
//! inputs, insert-or-get by id (I4).
//!
//! A preview run (`weir run NAME --ref REV`) is one mode of creation: an
//! execution of the definitions exactly as they are at one commit of a
//! source's repository (a pull request's head, say), not of the active set.
//! The commit's versions are registered, inactive, before the execution is
//! created (`Store::register_inactive`); with a [`Preview`] in the
//! [`Request`], every name resolves against that commit's versions instead
//! of the active ones, and the compile path is the one of every other
//! execution. Nothing here writes the active set or a schedule: a preview
//! is invisible to the scheduler. Its execution records the previewed
//! commit and exactly the versions it ran (I5), with trigger [`Trigger::Preview`].

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::plan::{self, Resolve, Resolved};
use crate::schedule;
use crate::spec::types::TypeExpr;
use crate::spec::{
    CommitId, Definition, Digest, EntityRef, ExecutionId, Kind, LaunchPlanSpec, Ports, SourceKey,
    Trigger,
};
use crate::store::execution::BackfillGroup;
use crate::store::execution::{Execution, NewExecution, NodeState, RunOptions, Status};
use crate::store::{
    self, ActiveSet, ActiveVersion, Store, VersionFilter, VersionKey, VersionRecord,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("no active launch plan or workflow is named `{0}`")]
    NotFound(String),
    #[error("`{name}` is active in several projects ({projects}); name one with --project")]
    Ambiguous { name: String, projects: String },
    #[error("the stored document of {0} cannot be read: {1}")]
    Document(String, String),
    #[error(transparent)]
    Plan(#[from] plan::Error),
    #[error("input `{name}`: {message}")]
    Input { name: String, message: String },
}

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// A launch plan's or a workflow's name (launch plans first).
    pub name: String,
    pub project: Option<String>,
    /// Given inputs, as typed by the user (`k=v`: parsed by the input's type)
    /// or as values.
    pub inputs: BTreeMap<String, Value>,
    /// `manual` unless said otherwise.
    pub trigger: Trigger,
    /// The scheduled instant: fills `kickoffTimeInput` and makes the id
    /// deterministic.
    pub scheduled_at: Option<DateTime<Utc>>,
    pub no_cache: bool,
    /// Run the versions of this commit instead of the active ones (`weir
    /// run --ref`, trigger `preview`); the execution records its commit.
    pub preview: Option<Preview>,
    /// The event a trigger runs it for, and the id recorded with the
    /// event (`crate::trigger`): the execution gets exactly that id.
    pub event: Option<(crate::store::trigger::EventRef, ExecutionId)>,
}

/// The commit a preview runs, and the version of every entity of its tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    /// The source whose repository holds the commit (the one `sync` or
    /// `serve` recorded).
    pub source: SourceKey,
    pub commit: CommitId,
    /// Every entity defined at the commit, with its version (each one
    /// registered already).
    pub versions: ActiveSet,
}

/// Every registered version of a kind and name, active or not.
pub(super) async fn registered(
    store: &dyn Store,
    kind: Kind,
    name: &str,
    project: Option<&str>,
) -> Result<Vec<VersionRecord>, Error> {
    let filter = VersionFilter {
        kind: Some(kind),
        name: Some(name.to_owned()),
        project: project.map(str::to_owned),
    };
    Ok(store.versions(&filter).await?)
}

pub(super) async fn document(store: &dyn Store, key: &VersionKey) -> Result<Definition, Error> {
    let value = store
        .version_document(key)
        .await?
        .ok_or_else(|| Error::Document(describe(key), "missing".into()))?;
    definition(key, value)
}

/// A stored document read as the definition of `key`'s kind.
fn definition(key: &VersionKey, value: Value) -> Result<Definition, Error> {
    Definition::from_json(key.entity.kind, value)
        .map_err(|e| Error::Document(describe(key), e.to_string()))
}

fn describe(key: &VersionKey) -> String {
    format!(
        "{}/{}@{}",
        key.entity.kind,
        key.entity.name,
        key.digest.short()
    )
}

/// A version an execution may run, with what creating it needs: the commit
/// where the version first appeared, the source that has it active (none
/// for a preview, whose source is the previewed one) and its definition.
struct Candidate {
    key: VersionKey,
    commit: CommitId,
    source: Option<SourceKey>,
    definition: Definition,
}

impl Candidate {
    /// An active version, its document read.
    fn active(v: ActiveVersion) -> Result<Candidate, Error> {
        Ok(Candidate {
            definition: definition(&v.key, v.document)?,
            key: v.key,
            commit: v.commit,
            source: Some(v.source),
        })
    }
}

/// The versions named `name` of `kind` that an execution may run, newest
/// registration first (one per project). Without a preview, one indexed
/// query returns them with their sources and documents, so the cost does
/// not grow with the registry; a preview reads its commit's versions.
async fn candidates(
    store: &dyn Store,
    preview: Option<&Preview>,
    kind: Kind,
    name: &str,
    project: Option<&str>,
) -> Result<Vec<Candidate>, Error> {
    let Some(preview) = preview else {
        return store
            .active_versions(kind, name, project)
            .await?
            .into_iter()
            .map(Candidate::active)
            .collect();
    };
    // The previewed commit's versions (one per project).
    let previewed = registered(store, kind, name, project)
        .await?
        .into_iter()
        .filter(|v| preview.versions.get(&v.key.entity) == Some(&v.key.digest));
    let mut found = Vec::new();
    for v in previewed {
        found.push(Candidate {
            definition: document(store, &v.key).await?,
            key: v.key,
            commit: v.commit,
            source: None,
        });
    }
    Ok(found)
}

/// A definition a workflow's closure calls, and the source that has it
/// active (none in a preview).
struct Callee {
    version: Digest,
    definition: Definition,
    commit: CommitId,
    source: Option<SourceKey>,
}

/// The active definitions a workflow's closure calls, loaded up front.
struct Closure(BTreeMap<(Kind, String), Callee>);

impl Resolve for Closure {
    fn resolve(&self, kind: Kind, name: &str) -> Option<Resolved> {
        self.0.get(&(kind, name.to_owned())).map(|r| Resolved {
            version: r.version.clone(),
            definition: r.definition.clone(),
            commit: r.commit.clone(),
        })
    }
}

/// Loads a workflow's closure one level of calls at a time: the callees
/// of the workflows found so far, in one store query per level (a
/// preview's, which are read by version, one by one).
async fn closure(
    store: &dyn Store,
    preview: Option<&Preview>,
    project: &str,
    root: &Definition,
) -> Result<Closure, Error> {
    let mut found = BTreeMap::new();
    let mut level = vec![root.clone()];
    while !level.is_empty() {
        let mut wanted: BTreeSet<(Kind, &str)> = BTreeSet::new();
        for def in &level {
            let Definition::Workflow(w) = def else {
                continue;
            };
            for node in &w.spec.nodes {
                let callee = match (&node.task, &node.workflow) {
                    (Some(t), _) => (Kind::Task, t.as_str()),
                    (None, Some(w)) => (Kind::Workflow, w.as_str()),
                    (None, None) => continue,
                };
                if !found.contains_key(&(callee.0, callee.1.to_owned())) {
                    wanted.insert(callee);
                }
            }
        }
        let wanted: Vec<(Kind, &str)> = wanted.into_iter().collect();
        let callees = match preview {
            None => store
                .active_versions_of(project, &wanted)
                .await?
                .into_iter()
                .map(Candidate::active)
                .collect::<Result<Vec<_>, Error>>()?,
            Some(_) => {
                let mut callees = Vec::new();
                for (kind, name) in &wanted {
                    callees.extend(candidates(store, preview, *kind, name, Some(project)).await?);
                }
                callees
            }
        };
        let mut next = Vec::new();
        for callee in callees {
            let entity = &callee.key.entity;
            // The first of a name is its newest; one missing is reported
            // by compile.
            let Entry::Vacant(slot) = found.entry((entity.kind, entity.name.clone())) else {
                continue;
            };
            next.push(callee.definition.clone());
            slot.insert(Callee {
                version: callee.key.digest,
                definition: callee.definition,
                commit: callee.commit,
                source: callee.source,
            });
        }
        level = next;
    }
    Ok(Closure(found))
}

/// Parses a `k=v` value typed by a user for an input of type `ty`.
pub fn parse_input(text: &str, ty: Option<&TypeExpr>) -> Value {
    match ty {
        Some(
            TypeExpr::String
            | TypeExpr::Enum(_)
            | TypeExpr::Datetime
            | TypeExpr::Duration
            | TypeExpr::File
            | TypeExpr::Directory,
        ) => Value::String(text.to_owned()),
        _ => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned())),
    }
}

/// Creates the execution (or finds the one with the same id), made now by
/// the wall clock: a run asked for by a person or a client.
pub async fn create(store: &dyn Store, request: &Request) -> Result<(Execution, bool), Error> {
    create_in(store, request, None, Utc::now()).await
}

/// [`create`] at `now` (the caller's clock: the scheduler's tick), recording
/// in the new execution's options the backfill it belongs to (whose bound
/// the engine's admission reads).
pub async fn create_in(
    store: &dyn Store,
    request: &Request,
    backfill: Option<&BackfillGroup>,
    now: DateTime<Utc>,
) -> Result<(Execution, bool), Error> {
    let project = request.project.as_deref();
    let prepared = prepare(store, &request.name, project, request.preview.as_ref()).await?;
    let new = prepared.execution(request, backfill, now)?;
    Ok(store.create_execution(&new.execution, &new.nodes).await?)
}

/// What creating an execution of one launch plan (or workflow) resolves
/// before it knows the instant and the given inputs: the versions of the
/// launch plan, the workflow and its closure, the compiled plan, the
/// source and commit. Resolving reads the store; [`Prepared::execution`]
/// then builds each execution in memory, so that the scheduler and a
/// backfill resolve a launch plan once for any number of instants.
#[derive(Debug, Clone)]
pub struct Prepared {
    launch_plan: Option<(VersionKey, LaunchPlanSpec)>,
    workflow: VersionKey,
    /// The workflow's input ports.
    ports: Ports,
    plan: PreparedPlan,
    source: SourceKey,
    commit: CommitId,
    /// Every version resolved by name (the launch plan's, the workflow's,
    /// each callee's), with the source that had it active (none in a
    /// preview): resolving again gives the same result while each is still
    /// the active version of its name ([`Prepared::resolves_alike`]).
    resolved: Vec<(EntityRef, Option<SourceKey>, Digest)>,
}

/// A compiled plan as a [`Prepared`] keeps it: its JSON text, which each
/// execution stores (read into a value per execution), and its nodes'
/// rows. Text, not the typed plan: a daemon keeps one prepared plan per
/// scheduled launch plan, and the typed plan holds each task's spec in
/// maps that take a whole B-tree node each; with 2,000 schedules of three
/// tasks the typed plans took 42 MB more than their text (`benches/idle`).
#[derive(Debug, Clone)]
struct PreparedPlan {
    json: Box<str>,
    /// Each node's path, task and task version.
    nodes: Vec<(String, String, Digest)>,
}

impl PreparedPlan {
    fn new(plan: &plan::Plan) -> PreparedPlan {
        PreparedPlan {
            json: serde_json::to_string(plan)
                .expect("plans serialize")
                .into_boxed_str(),
            nodes: plan
                .nodes
                .iter()
                .map(|n| (n.path.clone(), n.task.clone(), n.task_version.clone()))
                .collect(),
        }
    }
}

/// Resolves `name` (a launch plan's, else a workflow's) in `project` (any
/// when `None`) against the active versions, or a preview's commit, and
/// compiles its workflow.
pub async fn prepare(
    store: &dyn Store,
    name: &str,
    project: Option<&str>,
    preview: Option<&Preview>,
) -> Result<Prepared, Error> {
    let plans = candidates(store, preview, Kind::LaunchPlan, name, project).await?;
    if plans.is_empty() {
        let workflows = candidates(store, preview, Kind::Workflow, name, project).await?;
        let workflow = one_of(name, workflows, |c| &c.key)?;
        return compile(store, preview, name, None, workflow, Vec::new()).await;
    }
    let lp = one_of(name, plans, |c| &c.key)?;
    let Definition::LaunchPlan(doc) = lp.definition else {
        return Err(Error::NotFound(name.to_owned()));
    };
    LaunchPlanVersion {
        key: lp.key,
        spec: doc.spec,
        source: lp.source,
    }
    .prepare_in(store, preview)
    .await
}

/// The active version of a launch plan, its definition read: what a
/// backfill decides its instants from and then prepares
/// ([`LaunchPlanVersion::prepare`]), one version read once.
#[derive(Debug, Clone)]
pub struct LaunchPlanVersion {
    pub key: VersionKey,
    pub spec: LaunchPlanSpec,
    /// The source that has it active.
    source: Option<SourceKey>,
}

/// The active version of the launch plan `name` in `project` (any when
/// `None`), in one query.
pub async fn active_launch_plan(
    store: &dyn Store,
    name: &str,
    project: Option<&str>,
) -> Result<LaunchPlanVersion, Error> {
    let plans = candidates(store, None, Kind::LaunchPlan, name, project).await?;
    let lp = one_of(name, plans, |c| &c.key)?;
    match lp.definition {
        Definition::LaunchPlan(doc) => Ok(LaunchPlanVersion {
            key: lp.key,
            spec: doc.spec,
            source: lp.source,
        }),
        _ => Err(Error::Document(
            describe(&lp.key),
            "not a launch plan".into(),
        )),
    }
}

/// Version `key` of a launch plan, its definition read, whether or not it
/// is still active: what a scheduler's tick decided instants of, prepared
/// as such even when a reconcile replaced it meanwhile (an instant due
/// under it runs its launch plan, never the next version's). Its source is
/// the one that has a version of that launch plan active (a commit that
/// changes a launch plan keeps it in its source).
pub async fn launch_plan_version(
    store: &dyn Store,
    key: &VersionKey,
) -> Result<LaunchPlanVersion, Error> {
    let Definition::LaunchPlan(doc) = document(store, key).await? else {
        return Err(Error::Document(describe(key), "not a launch plan".into()));
    };
    let source = candidates(
        store,
        None,
        Kind::LaunchPlan,
        &key.entity.name,
        Some(&key.entity.project),
    )
    .await?
    .into_iter()
    .find(|c| c.key.entity == key.entity)
    .and_then(|c| c.source);
    Ok(LaunchPlanVersion {
        key: key.clone(),
        spec: doc.spec,
        source,
    })
}

impl LaunchPlanVersion {
    /// Resolves what this version runs against the active versions and
    /// compiles its workflow ([`prepare`] of its name, without resolving
    /// the launch plan again).
    pub async fn prepare(self, store: &dyn Store) -> Result<Prepared, Error> {
        self.prepare_in(store, None).await
    }

    async fn prepare_in(
        self,
        store: &dyn Store,
        preview: Option<&Preview>,
    ) -> Result<Prepared, Error> {
        let resolved = vec![(
            self.key.entity.clone(),
            self.source,
            self.key.digest.clone(),
        )];
        let workflow = candidates(
            store,
            preview,
            Kind::Workflow,
            &self.spec.workflow,
            Some(&self.key.entity.project),
        )
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Error::NotFound(self.spec.workflow.clone()))?;
        let name = self.key.entity.name.clone();
        compile(
            store,
            preview,
            &name,
            Some((self.key, self.spec)),
            workflow,
            resolved,
        )
        .await
    }
}

/// The rest of [`prepare`] once the workflow is found: its closure
/// resolved and compiled. `resolved`: what was resolved by name before.
async fn compile(
    store: &dyn Store,
    preview: Option<&Preview>,
    name: &str,
    launch_plan: Option<(VersionKey, LaunchPlanSpec)>,
    workflow_version: Candidate,
    mut resolved: Vec<(EntityRef, Option<SourceKey>, Digest)>,
) -> Result<Prepared, Error> {
    resolved.push((
        workflow_version.key.entity.clone(),
        workflow_version.source.clone(),
        workflow_version.key.digest.clone(),
    ));
    let project = workflow_version.key.entity.project.clone();
    let Definition::Workflow(workflow) = workflow_version.definition else {
        return Err(Error::NotFound(name.to_owned()));
    };
    let root = Definition::Workflow(workflow.clone());
    let closure = closure(store, preview, &project, &root).await?;
    let plan = plan::compile(&workflow.spec, &closure)?;
    for ((kind, callee), r) in &closure.0 {
        let entity = EntityRef::new(project.as_str(), *kind, callee.as_str());
        resolved.push((entity, r.source.clone(), r.version.clone()));
    }
    // A preview runs the previewed commit of its source; otherwise the
    // execution belongs to the source that has the workflow active.
    let (source, commit) = match (preview, workflow_version.source) {
        (Some(p), _) => (p.source.clone(), p.commit.clone()),
        (None, Some(source)) => (source, workflow_version.commit.clone()),
        (None, None) => return Err(Error::NotFound(workflow_version.key.entity.name.clone())),
    };
    Ok(Prepared {
        launch_plan,
        workflow: workflow_version.key,
        ports: workflow.spec.inputs,
        plan: PreparedPlan::new(&plan),
        source,
        commit,
        resolved,
    })
}

impl Prepared {
    /// The launch plan version it runs, if it runs one.
    pub fn launch_plan(&self) -> Option<&VersionKey> {
        self.launch_plan.as_ref().map(|(key, _)| key)
    }

    /// Whether resolving again would find the same versions, given every
    /// source's active set (entity -> the sources and versions that have
    /// it active): each version it resolved is still the one active
    /// version of its name, in the same source.
    pub fn resolves_alike(&self, active: &HashMap<EntityRef, Vec<(SourceKey, Digest)>>) -> bool {
        self.resolved.iter().all(|(entity, source, digest)| {
            match (active.get(entity).map(Vec::as_slice), source) {
                (Some([(s, d)]), Some(source)) => s == source && d == digest,
                _ => false,
            }
        })
    }

    /// The execution of `request` (its inputs, trigger, instant and
    /// options; its name, project and preview were resolved already) at
    /// `now`, with its nodes, ready to insert: the workflow's defaults, the
    /// launch plan's defaults, what was given, the launch plan's fixed
    /// inputs (which cannot be overridden) and the scheduled instant.
    pub fn execution(
        &self,
        request: &Request,
        backfill: Option<&BackfillGroup>,
        now: DateTime<Utc>,
    ) -> Result<NewExecution, Error> {
        let launch_plan = &self.launch_plan;
        let ports = &self.ports;
        let mut inputs: BTreeMap<String, Value> = ports
            .iter()
            .filter_map(|(k, p)| Some((k.clone(), p.default.clone()?)))
            .collect();
        if let Some((_, lp)) = launch_plan {
            inputs.extend(lp.defaults.clone());
        }
        for (name, value) in &request.inputs {
            let Some(port) = ports.get(name) else {
                return Err(Error::Input {
                    name: name.clone(),
                    message: format!(
                        "the workflow has no such input (it has: {})",
                        ports.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                });
            };
            if launch_plan
                .as_ref()
                .is_some_and(|(_, lp)| lp.inputs.contains_key(name))
            {
                return Err(Error::Input {
                    name: name.clone(),
                    message: "the launch plan fixes it".into(),
                });
            }
            let value = match value {
                Value::String(text) => parse_input(text, port.type_expr().as_ref()),
                other => other.clone(),
            };
            inputs.insert(name.clone(), value);
        }
        if let Some((_, lp)) = launch_plan {
            inputs.extend(lp.inputs.clone());
            // The kickoff input is the scheduled instant; a run asked for
            // by hand (a preview, the API) that does not give it runs as
            // if kicked off now, as Flyte's launch of a scheduled plan does.
            if let Some(input) = lp
                .schedule
                .as_ref()
                .and_then(|s| s.kickoff_time_input.clone())
            {
                let at = match request.scheduled_at {
                    Some(at) => Some(at),
                    None if !inputs.contains_key(&input) => Some(now),
                    None => None,
                };
                if let Some(at) = at {
                    inputs.insert(
                        input,
                        Value::String(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                    );
                }
            }
        }
        check_inputs(ports, &inputs)?;

        let (lp_name, lp_version, id) = match launch_plan {
            Some((lp, _)) => {
                let at = request.scheduled_at.unwrap_or(now);
                let id = if let Some((_, id)) = &request.event {
                    id.clone()
                } else if request.scheduled_at.is_some() {
                    schedule::execution_id(&lp.entity, &lp.digest, at)
                } else {
                    manual_id(&lp.entity, now)
                };
                (Some(lp.entity.name.clone()), Some(lp.digest.clone()), id)
            }
            None => (None, None, manual_id(&self.workflow.entity, now)),
        };
        let options = RunOptions {
            backfill: backfill.cloned(),
            no_cache: request.no_cache,
            event: request.event.as_ref().map(|(event, _)| event.clone()),
        };
        let execution = Execution {
            id,
            project: self.workflow.entity.project.clone(),
            workflow: self.workflow.entity.name.clone(),
            workflow_version: self.workflow.digest.clone(),
            launch_plan: lp_name,
            launch_plan_version: lp_version,
            source: self.source.clone(),
            commit: self.commit.clone(),
            trigger: request.trigger,
            scheduled_at: request.scheduled_at,
            inputs: Value::Object(inputs.into_iter().collect()),
            plan: serde_json::from_str::<Value>(&self.plan.json)
                .expect("a plan's own JSON reads back")
                .into(),
            options,
            status: Status::Queued,
            outputs: None,
            error: None,
            created_at: now,
            started_at: None,
            finished_at: None,
            cancel_requested: false,
        };
        let nodes = self
            .plan
            .nodes
            .iter()
            .map(|(path, task, version)| {
                NodeState::pending(
                    execution.id.clone(),
                    path.clone(),
                    task.clone(),
                    version.clone(),
                )
            })
            .collect();
        Ok(NewExecution { execution, nodes })
    }
}

/// The one version found, or why there is not exactly one.
fn one_of<T>(name: &str, mut found: Vec<T>, key: impl Fn(&T) -> &VersionKey) -> Result<T, Error> {
    match found.len() {
        0 => Err(Error::NotFound(name.to_owned())),
        1 => Ok(found.remove(0)),
        _ => Err(Error::Ambiguous {
            name: name.to_owned(),
            projects: found
                .iter()
                .map(|v| key(v).entity.project.clone())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn check_inputs(ports: &Ports, inputs: &BTreeMap<String, Value>) -> Result<(), Error> {
    for (name, port) in ports {
        let Some(value) = inputs.get(name) else {
            return Err(Error::Input {
                name: name.clone(),
                message: "required, and no value was given (use --input name=value)".into(),
            });
        };
        if let Some(ty) = port.type_expr() {
            ty.accepts_literal(value).map_err(|e| Error::Input {
                name: name.clone(),
                message: e.to_string(),
            })?;
        }
    }
    Ok(())
}

/// An id for an unscheduled run: the name and 12 hex of (entity, time,
/// process), a DNS-1123 label like scheduled ids.
pub(super) fn manual_id(entity: &EntityRef, now: DateTime<Utc>) -> ExecutionId {
    let key = format!(
        "{}/{}/{}@{}@{}",
        entity.project,
        entity.kind,
        entity.name,
        now.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        std::process::id()
    );
    let digest = Digest::of_json(&Value::String(key));
    let name: String = entity.name.chars().take(50).collect();
    ExecutionId::from(format!("{}-{}", name.trim_end_matches('-'), digest.short()))
}

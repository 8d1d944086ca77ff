//! Compiling a workflow version into the plan an execution follows, as
//! Flyte compiles a workflow closure: sub-workflows are inlined (node
//! `train` of sub-workflow node `fit` becomes `fit/train`), every binding is
//! rewritten to point at an execution input, an upstream node's output or a
//! literal, and each node lists the nodes it waits for. The plan is stored
//! with the execution, so later commits never change a running execution.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::spec::template::{self, Part, Reference};
use crate::spec::{
    CommitId, Definition, Digest, ExecutionId, Kind, Port, Ports, TaskSpec, WorkflowSpec,
};
use crate::store::execution::NodeState;

/// Where a node input's value comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "camelCase")]
pub enum Binding {
    Literal {
        value: Value,
    },
    /// An input of the execution.
    Input {
        name: String,
    },
    /// An output of an upstream node (by path).
    Output {
        node: String,
        output: String,
    },
    /// Text around references: a string.
    Concat {
        parts: Vec<Binding>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanNode {
    pub path: String,
    pub task: String,
    pub task_version: Digest,
    pub spec: TaskSpec,
    pub inputs: BTreeMap<String, Binding>,
    /// Paths of the nodes that must succeed first.
    pub deps: Vec<String>,
    /// The commit where the task's version first appeared: its repository
    /// files (a notebook, a program) are read there, as its version covers
    /// their content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<CommitId>,
    /// A notebook task's notebook, as plans recorded it before `commit`
    /// (read, never written: its commit stands for `commit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notebook: Option<NotebookRef>,
    /// `when:` conditions that must all hold for it to run: its own and
    /// those of the sub-workflow nodes it was inlined from, outermost
    /// first. One false skips it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<PlanCondition>,
    /// `map:`: the task runs once per item of a list, each item a node of
    /// its own at `{path}[{index}]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<PlanMap>,
}

/// A map node's list and how its items run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanMap {
    /// The list.
    pub over: Binding,
    /// The task input each item is bound to.
    #[serde(rename = "as")]
    pub item: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    /// The share of items that must succeed (1: all).
    pub min_success_ratio: f64,
    /// A map of a sub-workflow: its plan, compiled once, which each item
    /// runs under its own path (`fit[3]/train`), its `inputs.*` bound to
    /// the item's inputs. None for a map of a task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<Box<Plan>>,
}

impl PlanMap {
    /// How many of `total` items may fail with the node still succeeding.
    pub fn tolerated_failures(&self, total: usize) -> usize {
        // Rounded so that 0.999999 × 3 still needs all three.
        let needed = (self.min_success_ratio * total as f64 - 1e-9).ceil();
        total - (needed.max(0.0) as usize).min(total)
    }
}

/// The path of item `index` of map node `path`: `train[3]`.
pub fn item_path(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

/// The map node and index of an item's path (`train[3]`: `train`, 3);
/// `None` for a path of the plan itself (node ids have no brackets).
pub fn item_of(path: &str) -> Option<(&str, usize)> {
    let open = path.strip_suffix(']')?.rfind('[')?;
    let index = path[open + 1..path.len() - 1].parse().ok()?;
    Some((&path[..open], index))
}

/// The item of a map over a sub-workflow that the node at `path` runs in,
/// and its path within the item (`fit[3]/train`: `fit[3]`, `train`);
/// `None` for a node of the plan itself.
pub fn group_of(path: &str) -> Option<(&str, &str)> {
    let at = path.rfind("]/")?;
    Some((&path[..=at], &path[at + 2..]))
}

/// The path a node's OpenLineage job is named by: its path without item
/// indexes (`fit[3]/train`: `fit/train`), the same for every item.
pub fn job_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        rest = rest[open..]
            .find(']')
            .map_or("", |close| &rest[open + close + 1..]);
    }
    out.push_str(rest);
    out
}

impl Binding {
    /// The same binding with each node it reads under `prefix`.
    fn under(&self, prefix: &str) -> Binding {
        match self {
            Binding::Output { node, output } => Binding::Output {
                node: format!("{prefix}{node}"),
                output: output.clone(),
            },
            Binding::Concat { parts } => Binding::Concat {
                parts: parts.iter().map(|p| p.under(prefix)).collect(),
            },
            other => other.clone(),
        }
    }
}

impl PlanNode {
    /// This node of a mapped sub-workflow's plan, as item `prefix`
    /// (`fit[3]/`) runs it: its path, dependencies and the outputs it reads
    /// under the prefix; its `inputs.*` read the item's inputs.
    pub fn under(&self, prefix: &str) -> PlanNode {
        let mut node = self.clone();
        node.path = format!("{prefix}{}", self.path);
        node.deps = self.deps.iter().map(|d| format!("{prefix}{d}")).collect();
        for binding in node.inputs.values_mut() {
            *binding = binding.under(prefix);
        }
        for condition in &mut node.when {
            for binding in condition.refs.values_mut() {
                *binding = binding.under(prefix);
            }
        }
        node
    }
}

impl Plan {
    /// Its outputs as item `prefix` gives them.
    pub fn outputs_under(&self, prefix: &str) -> BTreeMap<String, Binding> {
        self.outputs
            .iter()
            .map(|(name, b)| (name.clone(), b.under(prefix)))
            .collect()
    }
}

/// A `when:` condition, and where each value it reads comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanCondition {
    /// The CEL expression as written.
    pub source: String,
    /// Each reference it reads (`inputs.deploy`,
    /// `nodes.evaluate.outputs.auc`), bound as a node input would be.
    pub refs: BTreeMap<String, Binding>,
}

/// The body type of an approval gate's plan node (`approve:`): it runs no
/// task, so no task type bears this name.
pub const APPROVE: &str = "approve";

/// The body type of a map node that maps a sub-workflow: it runs no task
/// itself, and no task type bears this name.
pub const WORKFLOW: &str = "workflow";

/// An approval gate as its plan node carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    pub prompt: String,
}

impl PlanNode {
    /// The gate's prompt, if this node is an approval gate; its `timeout`
    /// is the node's ([`TaskSpec::timeout`]).
    pub fn gate(&self) -> Option<Gate> {
        if !self.spec.body.is(APPROVE) {
            return None;
        }
        serde_json::from_value(self.spec.body.value.clone()).ok()
    }

    /// Every binding it reads: its inputs', its list's, then its
    /// conditions'.
    pub fn bindings(&self) -> impl Iterator<Item = &Binding> {
        self.inputs
            .values()
            .chain(self.map.iter().map(|m| &m.over))
            .chain(self.when.iter().flat_map(|c| c.refs.values()))
    }

    /// Whether the node at `path` (this node, or one of its items) is this
    /// map node itself, which runs nothing but its items.
    pub fn is_map_at(&self, path: &str) -> bool {
        self.map.is_some() && self.path == path
    }

    /// Whether the node at `path` (this node, or one of its items) runs no
    /// attempt of its own: a map node, or an item of a map over a
    /// sub-workflow (its nodes run).
    pub fn runs_no_attempt_at(&self, path: &str) -> bool {
        self.map
            .as_ref()
            .is_some_and(|m| self.path == path || m.workflow.is_some())
    }

    /// The mapped sub-workflow's plan, if this maps one.
    pub fn mapped_workflow(&self) -> Option<&Plan> {
        self.map.as_ref()?.workflow.as_deref()
    }
}

impl PlanNode {
    /// The commit the task's repository files are read at.
    pub fn files_commit(&self) -> Option<&CommitId> {
        self.commit
            .as_ref()
            .or(self.notebook.as_ref().map(|n| &n.commit))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotebookRef {
    pub commit: CommitId,
    /// Relative to the source's folder.
    pub path: String,
}

/// A callee as resolved: its version, definition, and the commit where the
/// version first appeared.
pub struct Resolved {
    pub version: Digest,
    pub definition: Definition,
    pub commit: CommitId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub nodes: Vec<PlanNode>,
    pub outputs: BTreeMap<String, Binding>,
    /// Outputs declared `optional`: null when their node was skipped.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub optional_outputs: BTreeSet<String>,
}

impl Plan {
    /// A row per node for a new execution `id`, each pending.
    pub fn pending_nodes(&self, id: &ExecutionId) -> Vec<NodeState> {
        self.nodes
            .iter()
            .map(|n| {
                NodeState::pending(
                    id.clone(),
                    n.path.clone(),
                    n.task.clone(),
                    n.task_version.clone(),
                )
            })
            .collect()
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("{kind} `{name}` is not active")]
    Missing { kind: Kind, name: String },
    #[error("node `{node}`: {source}")]
    Binding {
        node: String,
        #[source]
        source: BindError,
    },
    #[error("sub-workflows nest deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// Why a binding as written cannot be compiled.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BindError {
    /// The `{{ … }}` does not parse (the template's own words).
    #[error("{0}")]
    Template(#[from] crate::spec::template::Error),
    #[error("`inputs.{0}` is not an input here")]
    NotAnInput(String),
    #[error("sub-workflow node `{node}` has no output `{output}`")]
    NoSuchOutput { node: String, output: String },
    #[error("`nodes.{0}` is not an earlier node")]
    NotEarlier(String),
    #[error("`after: {0}` names no earlier node")]
    AfterNotEarlier(String),
    /// A `when:` that does not read as a condition (the condition's own
    /// words).
    #[error("{0}")]
    Condition(#[from] crate::spec::condition::Error),
}

const MAX_DEPTH: usize = 32;

/// Finds a callee's version and definition (the active version of the
/// workflow's source: the workflow's version covers exactly those).
pub trait Resolve {
    fn resolve(&self, kind: Kind, name: &str) -> Option<Resolved>;
}

/// Compiles `workflow`; its inputs are the execution's inputs.
pub fn compile(workflow: &WorkflowSpec, resolve: &dyn Resolve) -> Result<Plan, Error> {
    compile_at(workflow, resolve, 0)
}

/// [`compile`] at nesting `depth` (a mapped sub-workflow's plan is
/// compiled as a workflow of its own).
fn compile_at(workflow: &WorkflowSpec, resolve: &dyn Resolve, depth: usize) -> Result<Plan, Error> {
    let scope: BTreeMap<String, Binding> = workflow
        .inputs
        .keys()
        .map(|name| (name.clone(), Binding::Input { name: name.clone() }))
        .collect();
    let mut nodes = Vec::new();
    let outputs = expand(workflow, "", &scope, &[], &[], resolve, &mut nodes, depth)?;
    let optional_outputs = workflow
        .outputs
        .iter()
        .filter(|(_, output)| output.optional())
        .map(|(name, _)| name.clone())
        .collect();
    Ok(Plan {
        nodes,
        outputs,
        optional_outputs,
    })
}

/// What a node's outputs are bound to, per local node id: a task node's
/// path, or a sub-workflow's output bindings.
enum Produced {
    Task(String),
    Workflow {
        outputs: BTreeMap<String, Binding>,
        paths: Vec<String>,
    },
}

#[allow(clippy::too_many_arguments)]
fn expand(
    spec: &WorkflowSpec,
    prefix: &str,
    scope: &BTreeMap<String, Binding>,
    extra_deps: &[String],
    conditions: &[PlanCondition],
    resolve: &dyn Resolve,
    out: &mut Vec<PlanNode>,
    depth: usize,
) -> Result<BTreeMap<String, Binding>, Error> {
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep);
    }
    let mut produced: BTreeMap<&str, Produced> = BTreeMap::new();
    for index in local_order(spec) {
        let node = &spec.nodes[index];
        let path = format!("{prefix}{}", node.id);
        let fail = |source: BindError| Error::Binding {
            node: path.clone(),
            source,
        };
        let mut inputs = BTreeMap::new();
        for (name, value) in &node.inputs {
            let binding = bind(value, scope, &produced).map_err(&fail)?;
            inputs.insert(name.clone(), binding);
        }
        let mut deps: BTreeSet<String> = extra_deps.iter().cloned().collect();
        for binding in inputs.values() {
            upstream(binding, &mut deps);
        }
        let mut when = conditions.to_vec();
        if let Some(source) = &node.when {
            let condition =
                crate::spec::condition::parse(source).map_err(|e| fail(BindError::Condition(e)))?;
            let mut refs = BTreeMap::new();
            for r in condition.references() {
                let binding = bind(&Value::String(format!("{{{{ {r} }}}}")), scope, &produced)
                    .map_err(&fail)?;
                upstream(&binding, &mut deps);
                refs.insert(r.to_string(), binding);
            }
            when.push(PlanCondition {
                source: source.clone(),
                refs,
            });
        }
        for after in &node.after {
            match produced.get(after.as_str()) {
                Some(Produced::Task(p)) => {
                    deps.insert(p.clone());
                }
                Some(Produced::Workflow { paths, .. }) => deps.extend(paths.iter().cloned()),
                None => return Err(fail(BindError::AfterNotEarlier(after.clone()))),
            }
        }
        match (&node.task, &node.workflow) {
            (Some(task), _) => {
                let Some(Resolved {
                    version,
                    definition: Definition::Task(doc),
                    commit,
                }) = resolve.resolve(Kind::Task, task)
                else {
                    return Err(Error::Missing {
                        kind: Kind::Task,
                        name: task.clone(),
                    });
                };
                fill_defaults(&mut inputs, &doc.spec.inputs);
                let map = match &node.map {
                    Some(map) => Some(
                        plan_map(map, &mut inputs, scope, &produced, &mut deps, None)
                            .map_err(&fail)?,
                    ),
                    None => None,
                };
                out.push(PlanNode {
                    path: path.clone(),
                    task: task.clone(),
                    task_version: version,
                    spec: doc.spec.clone(),
                    inputs,
                    deps: deps.into_iter().collect(),
                    commit: Some(commit),
                    notebook: None,
                    when,
                    map,
                });
                produced.insert(&node.id, Produced::Task(path));
            }
            (None, Some(workflow)) => {
                let Some(Resolved {
                    version,
                    definition: Definition::Workflow(doc),
                    commit,
                }) = resolve.resolve(Kind::Workflow, workflow)
                else {
                    return Err(Error::Missing {
                        kind: Kind::Workflow,
                        name: workflow.clone(),
                    });
                };
                fill_defaults(&mut inputs, &doc.spec.inputs);
                if let Some(map) = &node.map {
                    // Compiled once, as if it were the execution's
                    // workflow: each item runs it with its own inputs.
                    let body = compile_at(&doc.spec, resolve, depth + 1)?;
                    let map = plan_map(map, &mut inputs, scope, &produced, &mut deps, Some(body))
                        .map_err(&fail)?;
                    out.push(PlanNode {
                        path: path.clone(),
                        task: workflow.clone(),
                        task_version: version,
                        spec: workflow_spec(&doc.spec),
                        inputs,
                        deps: deps.into_iter().collect(),
                        commit: Some(commit),
                        notebook: None,
                        when,
                        map: Some(map),
                    });
                    produced.insert(&node.id, Produced::Task(path));
                    continue;
                }
                let first = out.len();
                let deps: Vec<String> = deps.into_iter().collect();
                let outputs = expand(
                    &doc.spec,
                    &format!("{path}/"),
                    &inputs,
                    &deps,
                    &when,
                    resolve,
                    out,
                    depth + 1,
                )?;
                let paths = out[first..].iter().map(|n| n.path.clone()).collect();
                produced.insert(&node.id, Produced::Workflow { outputs, paths });
            }
            (None, None) => {
                if let Some(approve) = &node.approve {
                    out.push(gate_node(&path, approve, deps.into_iter().collect(), when));
                    produced.insert(&node.id, Produced::Task(path));
                }
            }
        }
    }
    let mut outputs = BTreeMap::new();
    for (name, value) in &spec.outputs {
        let reference = Value::String(value.reference().to_owned());
        let binding = bind(&reference, scope, &produced).map_err(|source| Error::Binding {
            node: format!("{prefix}outputs.{name}"),
            source,
        })?;
        outputs.insert(name.clone(), binding);
    }
    Ok(outputs)
}

/// A node's `map:` compiled: its list bound (a data dependency), and its
/// item input taken out of `inputs` (each item binds it, not a default).
fn plan_map(
    map: &crate::spec::MapOver,
    inputs: &mut BTreeMap<String, Binding>,
    scope: &BTreeMap<String, Binding>,
    produced: &BTreeMap<&str, Produced>,
    deps: &mut BTreeSet<String>,
    workflow: Option<Plan>,
) -> Result<PlanMap, BindError> {
    let over = bind(&map.over, scope, produced)?;
    upstream(&over, deps);
    inputs.remove(&map.item);
    Ok(PlanMap {
        over,
        item: map.item.clone(),
        max_parallel: map.max_parallel,
        min_success_ratio: map.ratio(),
        workflow: workflow.map(Box::new),
    })
}

/// The task-like spec of a map node over a sub-workflow: its ports are the
/// workflow's (its outputs untyped: each item's are what the workflow's
/// bindings give), its body the reserved type [`WORKFLOW`], no cache of
/// its own (its nodes have theirs).
fn workflow_spec(workflow: &WorkflowSpec) -> TaskSpec {
    TaskSpec {
        inputs: workflow.inputs.clone(),
        outputs: workflow
            .outputs
            .keys()
            .map(|name| {
                let port = Port {
                    type_name: None,
                    enum_values: None,
                    default: None,
                    description: None,
                };
                (name.clone(), port)
            })
            .collect(),
        body: crate::spec::TaskBody {
            type_name: WORKFLOW.to_owned(),
            value: Value::Object(serde_json::Map::new()),
        },
        retries: crate::spec::Retries::default(),
        timeout: None,
        cache: crate::spec::CacheSettings::default(),
        resources: crate::spec::Resources::default(),
        secrets: Vec::new(),
        service_account: None,
        sidecars: Vec::new(),
    }
}

/// The plan node of an approval gate: no task, no inputs or outputs, its
/// prompt in its body and its wait in its timeout; its version is its
/// definition's digest.
fn gate_node(
    path: &str,
    approve: &crate::spec::Approve,
    deps: Vec<String>,
    when: Vec<PlanCondition>,
) -> PlanNode {
    let body = serde_json::json!({ "prompt": approve.prompt });
    let spec = TaskSpec {
        inputs: Ports::new(),
        outputs: Ports::new(),
        body: crate::spec::TaskBody {
            type_name: APPROVE.to_owned(),
            value: body,
        },
        retries: crate::spec::Retries::default(),
        timeout: Some(approve.timeout.clone()),
        cache: crate::spec::CacheSettings::default(),
        resources: crate::spec::Resources::default(),
        secrets: Vec::new(),
        service_account: None,
        sidecars: Vec::new(),
    };
    PlanNode {
        path: path.to_owned(),
        task: APPROVE.to_owned(),
        task_version: Digest::of_json(&serde_json::json!({
            "prompt": approve.prompt,
            "timeout": approve.timeout.to_string(),
        })),
        spec,
        inputs: BTreeMap::new(),
        deps,
        commit: None,
        notebook: None,
        when,
        map: None,
    }
}

/// Inputs the node leaves unbound take the callee's default.
fn fill_defaults(inputs: &mut BTreeMap<String, Binding>, ports: &Ports) {
    for (name, port) in ports {
        if let (false, Some(value)) = (inputs.contains_key(name), &port.default) {
            inputs.insert(
                name.clone(),
                Binding::Literal {
                    value: value.clone(),
                },
            );
        }
    }
}

fn upstream(binding: &Binding, deps: &mut BTreeSet<String>) {
    match binding {
        Binding::Output { node, .. } => {
            deps.insert(node.clone());
        }
        Binding::Concat { parts } => parts.iter().for_each(|p| upstream(p, deps)),
        Binding::Literal { .. } | Binding::Input { .. } => {}
    }
}

/// A binding as written, in the scope of its workflow.
fn bind(
    value: &Value,
    scope: &BTreeMap<String, Binding>,
    produced: &BTreeMap<&str, Produced>,
) -> Result<Binding, BindError> {
    let Value::String(text) = value else {
        return Ok(Binding::Literal {
            value: value.clone(),
        });
    };
    let parsed = template::parse(text).map_err(BindError::Template)?;
    let reference = |r: &Reference| -> Result<Binding, BindError> {
        match r {
            Reference::Input(name) => scope
                .get(name)
                .cloned()
                .ok_or_else(|| BindError::NotAnInput(name.clone())),
            Reference::NodeOutput { node, output } => match produced.get(node.as_str()) {
                Some(Produced::Task(path)) => Ok(Binding::Output {
                    node: path.clone(),
                    output: output.clone(),
                }),
                Some(Produced::Workflow { outputs, .. }) => outputs
                    .get(output)
                    .cloned()
                    .ok_or_else(|| BindError::NoSuchOutput {
                        node: node.clone(),
                        output: output.clone(),
                    }),
                None => Err(BindError::NotEarlier(node.clone())),
            },
        }
    };
    if let Some(r) = parsed.single_reference() {
        return reference(r);
    }
    if parsed.references().next().is_none() {
        return Ok(Binding::Literal {
            value: value.clone(),
        });
    }
    let parts = parsed
        .parts
        .iter()
        .map(|p| match p {
            Part::Text(t) => Ok(Binding::Literal {
                value: Value::String(t.clone()),
            }),
            Part::Ref(r) => reference(r),
        })
        .collect::<Result<_, BindError>>()?;
    Ok(Binding::Concat { parts })
}

/// The workflow's nodes, each after the nodes it reads from or waits for
/// (validation guarantees there is no cycle; a cycle's nodes come last in
/// written order, and binding them then fails clearly).
fn local_order(spec: &WorkflowSpec) -> Vec<usize> {
    let ids: BTreeMap<&str, usize> = spec
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let deps: Vec<BTreeSet<usize>> = spec
        .nodes
        .iter()
        .map(|n| {
            let mut d: BTreeSet<usize> = n
                .after
                .iter()
                .filter_map(|a| ids.get(a.as_str()).copied())
                .collect();
            for value in n.inputs.values().chain(n.map.iter().map(|m| &m.over)) {
                if let Value::String(text) = value {
                    if let Ok(t) = template::parse(text) {
                        for r in t.references() {
                            if let Reference::NodeOutput { node, .. } = r {
                                d.extend(ids.get(node.as_str()).copied());
                            }
                        }
                    }
                }
            }
            // What its condition reads comes first too.
            let condition = n.when.as_deref().map(crate::spec::condition::parse);
            for r in condition.into_iter().flatten().flat_map(|c| c.references()) {
                if let crate::spec::condition::Ref::NodeOutput { node, .. } = r {
                    d.extend(ids.get(node.as_str()).copied());
                }
            }
            d
        })
        .collect();
    let mut done = vec![false; spec.nodes.len()];
    let mut order = Vec::with_capacity(spec.nodes.len());
    while order.len() < spec.nodes.len() {
        let before = order.len();
        for i in 0..spec.nodes.len() {
            if !done[i] && deps[i].iter().all(|&d| done[d]) {
                done[i] = true;
                order.push(i);
            }
        }
        if order.len() == before {
            order.extend((0..spec.nodes.len()).filter(|&i| !done[i]));
            break;
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paths inside an item of a map over a sub-workflow name their item,
    /// and their job is the same for every item.
    #[test]
    fn a_path_names_its_item_and_its_job_drops_the_indexes() {
        assert_eq!(group_of("fit[3]/train"), Some(("fit[3]", "train")));
        assert_eq!(
            group_of("outer/fit[12]/inner/x"),
            Some(("outer/fit[12]", "inner/x"))
        );
        assert_eq!(group_of("fit[3]"), None);
        assert_eq!(group_of("outer/train"), None);
        assert_eq!(job_path("outer/fit[12]/inner/x"), "outer/fit/inner/x");
        assert_eq!(job_path("train[3]"), "train");
        assert_eq!(job_path("train"), "train");
    }

    /// A node of a plan stored before `commit` (a notebook task's, with
    /// its notebook's commit) reads its repository files at that commit.
    #[test]
    fn an_old_plan_s_notebook_commit_stands_for_the_node_s() {
        let node = |extra: serde_json::Value| -> PlanNode {
            let mut node = serde_json::json!({
                "path": "report", "task": "report", "taskVersion": "b".repeat(64),
                "spec": { "notebook": { "path": "nb/r.ipynb" } },
                "inputs": {}, "deps": [],
            });
            node.as_object_mut()
                .expect("an object")
                .extend(extra.as_object().expect("an object").clone());
            serde_json::from_value(node).expect("a plan node")
        };
        let old = node(serde_json::json!({ "notebook": { "commit": "c1", "path": "nb/r.ipynb" } }));
        assert_eq!(old.files_commit(), Some(&CommitId("c1".into())));
        let new = node(serde_json::json!({ "commit": "c2" }));
        assert_eq!(new.files_commit(), Some(&CommitId("c2".into())));
        let written = serde_json::to_value(&new).expect("serializes");
        assert_eq!(written["commit"], "c2");
        assert!(written.get("notebook").is_none(), "{written}");
    }
}

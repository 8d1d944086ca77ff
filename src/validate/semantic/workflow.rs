//! Checks of workflows: node ids, callees, `after:`, bindings and their
//! types, required inputs, cycles (between nodes and between workflows that
//! call each other), and workflow outputs.

use std::collections::{BTreeMap, BTreeSet};

use foldhash::{HashMap, HashMapExt as _};
use serde_json::Value;

use super::ports::{Direction, Interface, Param, check_ports};
use super::{Code, Diagnostic, Index, at, at_key, suggestion};
use crate::spec::condition;
use crate::spec::duration::Field;
use crate::spec::template::{self, Reference};
use crate::spec::types::TypeExpr;
use crate::spec::yaml::PathStep;
use crate::spec::{Definition, Kind, SmallMap, WorkflowOutput, WorkflowSpec};
use crate::validate::Entity;

use PathStep::{Index as At, Key};

/// Checks every workflow, callees first, and records each one's interface.
pub fn check_all(index: &Index<'_>, interfaces: &mut [Option<Interface>]) -> Vec<Diagnostic> {
    let entities = index.entities;
    let mut found = Vec::new();
    let workflows: Vec<usize> = (0..entities.len())
        .filter(|&i| matches!(entities[i].definition, Definition::Workflow(_)))
        .collect();
    let mut calls: HashMap<usize, Vec<usize>> = HashMap::new();
    for &i in &workflows {
        let Definition::Workflow(w) = &entities[i].definition else {
            continue;
        };
        let callees = w
            .spec
            .nodes
            .iter()
            .filter_map(|n| n.workflow.as_deref())
            .filter_map(|name| {
                index
                    .get(&entities[i].id.project, Kind::Workflow, name)
                    .map(|(j, _)| j)
            })
            .collect();
        calls.insert(i, callees);
    }
    found.extend(report_call_cycles(entities, &workflows, &calls));

    let check = |i: usize, interfaces: &[Option<Interface>]| {
        let mut found = Vec::new();
        let Definition::Workflow(w) = &entities[i].definition else {
            unreachable!("only workflows are checked here");
        };
        let inputs = check_ports(&entities[i], &w.spec.inputs, Direction::Inputs, &mut found);
        let (iface, diags) = check_workflow(&entities[i], &w.spec, inputs, index, interfaces);
        found.extend(diags);
        (iface, found)
    };
    // Workflows that call no workflow (most) need only the tasks'
    // interfaces: they are checked on all cores.
    let (leaves, callers): (Vec<usize>, Vec<usize>) =
        workflows.iter().partition(|i| calls[*i].is_empty());
    let checked = crate::validate::par::map(&leaves, |&i| check(i, interfaces));
    let mut state: HashMap<usize, bool> = HashMap::new();
    for (&i, (iface, diags)) in leaves.iter().zip(checked) {
        interfaces[i] = Some(iface);
        found.extend(diags);
        state.insert(i, true);
    }
    // The others in post-order over the call graph: callees before callers.
    let mut order = Vec::new();
    for &i in &callers {
        post_order(i, &calls, &mut state, &mut order);
    }
    for i in order {
        let (iface, diags) = check(i, interfaces);
        interfaces[i] = Some(iface);
        found.extend(diags);
    }
    found
}

fn post_order(
    i: usize,
    calls: &HashMap<usize, Vec<usize>>,
    state: &mut HashMap<usize, bool>,
    order: &mut Vec<usize>,
) {
    if state.contains_key(&i) {
        return;
    }
    state.insert(i, false);
    for &j in calls.get(&i).map(Vec::as_slice).unwrap_or_default() {
        post_order(j, calls, state, order);
    }
    state.insert(i, true);
    order.push(i);
}

fn report_call_cycles(
    entities: &[Entity],
    workflows: &[usize],
    calls: &HashMap<usize, Vec<usize>>,
) -> Vec<Diagnostic> {
    let edges: HashMap<usize, Vec<usize>> = calls.clone();
    let names: HashMap<usize, &str> = workflows
        .iter()
        .map(|&i| (i, entities[i].id.name.as_str()))
        .collect();
    find_cycles(workflows, &edges)
        .into_iter()
        .map(|cycle| {
            let first = cycle[0];
            let path: Vec<&str> = cycle
                .iter()
                .chain(std::iter::once(&first))
                .map(|i| names[i])
                .collect();
            let e = &entities[first];
            let node_index =
                match &e.definition {
                    Definition::Workflow(w) => w.spec.nodes.iter().position(|n| {
                        n.workflow.as_deref() == Some(names[&cycle[1 % cycle.len()]])
                    }),
                    _ => None,
                };
            let path_steps: Vec<PathStep<'_>> = match node_index {
                Some(n) => vec![Key("spec"), Key("nodes"), At(n), Key("workflow")],
                None => vec![Key("metadata"), Key("name")],
            };
            at(
                e,
                Code::DependencyCycle,
                &path_steps,
                format!("workflows call each other in a cycle: {}", path.join(" → ")),
            )
            .with_help("a workflow cannot contain itself, directly or through sub-workflows")
        })
        .collect()
}

/// Elementary cycles found by depth-first search, each reported once
/// (starting at its smallest member).
pub(super) fn find_cycles(nodes: &[usize], edges: &HashMap<usize, Vec<usize>>) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Active,
        Done,
    }
    fn visit(
        n: usize,
        edges: &HashMap<usize, Vec<usize>>,
        marks: &mut HashMap<usize, Mark>,
        stack: &mut Vec<usize>,
        cycles: &mut BTreeSet<Vec<usize>>,
    ) {
        marks.insert(n, Mark::Active);
        stack.push(n);
        for &m in edges.get(&n).map(Vec::as_slice).unwrap_or_default() {
            match marks.get(&m) {
                Some(Mark::Active) => {
                    let start = stack
                        .iter()
                        .rposition(|&x| x == m)
                        .expect("active nodes are on the stack");
                    let mut cycle = stack[start..].to_vec();
                    let min_at = cycle
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, v)| **v)
                        .map_or(0, |(i, _)| i);
                    cycle.rotate_left(min_at);
                    cycles.insert(cycle);
                }
                Some(Mark::Done) => {}
                None => visit(m, edges, marks, stack, cycles),
            }
        }
        stack.pop();
        marks.insert(n, Mark::Done);
    }
    let mut marks = HashMap::new();
    let mut cycles = BTreeSet::new();
    for &n in nodes {
        if !marks.contains_key(&n) {
            visit(n, edges, &mut marks, &mut Vec::new(), &mut cycles);
        }
    }
    cycles.into_iter().collect()
}

/// What a binding carries, once read.
enum Bound {
    /// Exactly one reference: its type (`None` when unknown).
    Reference(Option<TypeExpr>, String),
    /// Text with references in it: a string.
    Text,
    Literal,
    /// Already reported.
    Invalid,
}

struct WorkflowScope<'a> {
    entity: &'a Entity,
    inputs: &'a SmallMap<Param>,
    node_ids: HashMap<&'a str, usize>,
    callees: Vec<Option<(&'a str, Kind, Option<&'a Interface>)>>,
    /// The approval gates (`approve:`), which have no outputs.
    gates: BTreeSet<usize>,
    /// The map nodes, whose outputs are lists: `true` where a failed item
    /// leaves a null (`list<U?>`).
    maps: HashMap<usize, bool>,
}

impl WorkflowScope<'_> {
    /// Resolves a reference; reports what does not exist. Returns the type
    /// and the upstream node, if any.
    fn resolve(
        &self,
        reference: &Reference,
        path: &[PathStep<'_>],
        found: &mut Vec<Diagnostic>,
    ) -> (Option<TypeExpr>, Option<usize>) {
        match reference {
            Reference::Input(name) => match self.inputs.get(name) {
                Some(p) => (p.ty.clone(), None),
                None => {
                    let names: Vec<&str> = self.inputs.keys().map(String::as_str).collect();
                    found.push(
                        at(
                            self.entity,
                            Code::UnknownInput,
                            path,
                            format!(
                                "`{{{{ inputs.{name} }}}}`: this workflow has no input `{name}`"
                            ),
                        )
                        .with_help(suggestion(name, &names, "input")),
                    );
                    (None, None)
                }
            },
            Reference::NodeOutput { node, output } => {
                let Some(&n) = self.node_ids.get(node.as_str()) else {
                    let ids: Vec<&str> = self.node_ids.keys().copied().collect();
                    found.push(
                        at(self.entity, Code::UnknownNode, path, format!("`{{{{ {reference} }}}}`: there is no node `{node}` in this workflow"))
                            .with_help(suggestion(node, &ids, "node")),
                    );
                    return (None, None);
                };
                if self.gates.contains(&n) {
                    found.push(
                        at(self.entity, Code::UnknownOutput, path,
                            format!("`{{{{ {reference} }}}}`: node `{node}` is an approval gate, which has no outputs"))
                        .with_help(format!("to wait for the decision, add `after: [{node}]`")),
                    );
                    return (None, Some(n));
                }
                let Some((callee, kind, Some(iface))) = &self.callees[n] else {
                    return (None, Some(n));
                };
                match iface.outputs.get(output) {
                    Some(t) => {
                        let t = match self.maps.get(&n) {
                            Some(&tolerant) => t.clone().map(|t| {
                                // A failed item, or one whose node a `when:`
                                // skipped, leaves a null.
                                let nullable = tolerant || iface.optional_outputs.contains(output);
                                let item = if nullable {
                                    TypeExpr::Optional(Box::new(t))
                                } else {
                                    t
                                };
                                TypeExpr::List(Box::new(item))
                            }),
                            None => t.clone(),
                        };
                        (t, Some(n))
                    }
                    None => {
                        found.push(
                            at(self.entity, Code::UnknownOutput, path,
                                format!("`{{{{ {reference} }}}}`: {} `{callee}` (node `{node}`) has no output `{output}`", kind_word(*kind)))
                            .with_help(suggestion(output, &iface.output_names(), "output")),
                        );
                        (None, Some(n))
                    }
                }
            }
        }
    }
}

fn kind_word(kind: Kind) -> &'static str {
    match kind {
        Kind::Task => "task",
        Kind::Workflow => "workflow",
        Kind::LaunchPlan => "launch plan",
    }
}

fn check_workflow(
    entity: &Entity,
    spec: &WorkflowSpec,
    inputs: SmallMap<Param>,
    index: &Index<'_>,
    interfaces: &[Option<Interface>],
) -> (Interface, Vec<Diagnostic>) {
    let mut found = Vec::new();
    let project = &entity.id.project;
    let mut node_ids = HashMap::new();
    for (n, node) in spec.nodes.iter().enumerate() {
        if let Some(&first) = node_ids.get(node.id.as_str()) {
            found.push(
                at(
                    entity,
                    Code::DuplicateNode,
                    &[Key("spec"), Key("nodes"), At(n), Key("id")],
                    format!("node id `{}` is used twice", node.id),
                )
                .with_help(format!(
                    "node ids are unique within a workflow; the first is node #{}",
                    first + 1
                )),
            );
        } else {
            node_ids.insert(node.id.as_str(), n);
        }
    }
    let mut callees = Vec::with_capacity(spec.nodes.len());
    for (n, node) in spec.nodes.iter().enumerate() {
        let (kind, name, field, code) = match (&node.task, &node.workflow) {
            (Some(t), _) => (Kind::Task, t, "task", Code::UnknownTask),
            (None, Some(w)) => (Kind::Workflow, w, "workflow", Code::UnknownWorkflow),
            (None, None) => {
                callees.push(None);
                continue;
            }
        };
        match index.get(project, kind, name) {
            Some((i, _)) => callees.push(Some((name.as_str(), kind, interfaces[i].as_ref()))),
            None => {
                found.push(
                    at(entity, code, &[Key("spec"), Key("nodes"), At(n), Key(field)],
                        format!("node `{}` calls {} `{name}`, which does not exist in project `{project}`", node.id, kind_word(kind)))
                    .with_help(suggestion(name, &index.names(project, kind), kind_word(kind))),
                );
                callees.push(None);
            }
        }
    }
    let mut gates = BTreeSet::new();
    for (n, node) in spec.nodes.iter().enumerate() {
        let Some(approve) = &node.approve else {
            continue;
        };
        gates.insert(n);
        let path = [
            Key("spec"),
            Key("nodes"),
            At(n),
            Key("approve"),
            Key("timeout"),
        ];
        super::task::check_duration(entity, Field::Approval, &approve.timeout, &path, &mut found);
        if let Some(name) = node.inputs.keys().next() {
            found.push(
                at_key(
                    entity,
                    Code::UnknownInput,
                    &[
                        Key("spec"),
                        Key("nodes"),
                        At(n),
                        Key("inputs"),
                        Key(name.as_str()),
                    ],
                    format!(
                        "node `{}` is an approval gate, which takes no inputs",
                        node.id
                    ),
                )
                .with_help("put what the approver should know in `approve.prompt`"),
            );
        }
    }
    let maps = spec
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(n, node)| Some((n, node.map.as_ref()?.tolerates_failures())))
        .collect();
    let scope = WorkflowScope {
        entity,
        inputs: &inputs,
        node_ids,
        callees,
        gates,
        maps,
    };

    let mut data_deps: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); spec.nodes.len()];
    let mut edges: HashMap<usize, Vec<usize>> = HashMap::new();
    for (n, node) in spec.nodes.iter().enumerate() {
        let callee = scope.callees[n].as_ref();
        for (name, value) in &node.inputs {
            let path = [
                Key("spec"),
                Key("nodes"),
                At(n),
                Key("inputs"),
                Key(name.as_str()),
            ];
            let param = match callee {
                Some((callee_name, kind, Some(iface))) => match iface.inputs.get(name) {
                    Some(p) => Some(p),
                    None => {
                        found.push(
                            at_key(
                                entity,
                                Code::UnknownInput,
                                &path,
                                format!(
                                    "{} `{callee_name}` has no input `{name}`",
                                    kind_word(*kind)
                                ),
                            )
                            .with_help(suggestion(
                                name,
                                &iface.input_names(),
                                "input",
                            )),
                        );
                        None
                    }
                },
                _ => None,
            };
            let bound = read_binding(&scope, value, &path, &mut data_deps[n], &mut found);
            if let (Some(param), Some((callee_name, kind, _))) = (param, callee) {
                check_binding_type(
                    entity,
                    &path,
                    name,
                    param,
                    callee_name,
                    *kind,
                    value,
                    &bound,
                    &mut found,
                );
            }
        }
        let item = node.map.as_ref().map(|m| m.item.as_str());
        if let Some(map) = &node.map {
            check_map(&scope, n, map, &mut data_deps[n], &mut found);
        }
        if let Some((callee_name, kind, Some(iface))) = callee {
            for (pname, p) in &iface.inputs {
                if p.required && !node.inputs.contains_key(pname) && item != Some(pname) {
                    found.push(
                        at(entity, Code::MissingInput, &[Key("spec"), Key("nodes"), At(n), Key("id")],
                            format!("node `{}` does not bind `{pname}`, a required input of {} `{callee_name}`", node.id, kind_word(*kind)))
                        .with_help(format!("add `{pname}:` under the node's `inputs:`, or give the input a default")),
                    );
                }
            }
        }
        if let Some(source) = &node.when {
            check_condition(&scope, n, source, &mut data_deps[n], &mut found);
        }
        let mut deps: Vec<usize> = data_deps[n].iter().copied().collect();
        for (j, after) in node.after.iter().enumerate() {
            let path = [Key("spec"), Key("nodes"), At(n), Key("after"), At(j)];
            match scope.node_ids.get(after.as_str()) {
                Some(&m) if data_deps[n].contains(&m) => found.push(
                    at(
                        entity,
                        Code::RedundantAfter,
                        &path,
                        format!(
                            "node `{}` already depends on `{after}` through its inputs",
                            node.id
                        ),
                    )
                    .with_help("remove it from `after:`"),
                ),
                Some(&m) => deps.push(m),
                None => {
                    let ids: Vec<&str> = scope.node_ids.keys().copied().collect();
                    found.push(
                        at(
                            entity,
                            Code::UnknownAfter,
                            &path,
                            format!(
                                "`after:` names `{after}`, which is not a node of this workflow"
                            ),
                        )
                        .with_help(suggestion(after, &ids, "node")),
                    );
                }
            }
        }
        edges.insert(n, deps);
    }
    let all: Vec<usize> = (0..spec.nodes.len()).collect();
    for cycle in find_cycles(&all, &edges) {
        let mut names: Vec<&str> = cycle
            .iter()
            .rev()
            .map(|&i| spec.nodes[i].id.as_str())
            .collect();
        // Edges point from a node to what it needs; show the flow of data,
        // starting at the node the error is reported on.
        names.rotate_right(1);
        names.push(names[0]);
        found.push(
            at(entity, Code::DependencyCycle, &[Key("spec"), Key("nodes"), At(cycle[0]), Key("id")],
                format!("nodes depend on each other in a cycle: {}", names.join(" → ")))
            .with_help("a workflow is a DAG; break the cycle by removing one of these bindings or `after:` entries"),
        );
    }

    let skippable = skippable_nodes(spec, &scope, &data_deps);
    let unmappable = unmappable(spec, &scope);
    let mut outputs = SmallMap::with_capacity(spec.outputs.len());
    let mut optional_outputs = BTreeSet::new();
    for (name, value) in &spec.outputs {
        let declared = matches!(value, WorkflowOutput::Declared(_));
        let mut path = vec![Key("spec"), Key("outputs"), Key(name.as_str())];
        if declared {
            path.push(Key("from"));
        }
        let reference = value.reference();
        let ty = match template::parse(reference) {
            Err(e) => {
                found.push(at(entity, Code::InvalidTemplate, &path, e.to_string()));
                None
            }
            Ok(t) => match t.single_reference() {
                Some(r) => {
                    let (ty, node) = scope.resolve(r, &path, &mut found);
                    if let Some(n) = node.filter(|&n| skippable[n] && !value.optional()) {
                        found.push(
                            at(
                                entity,
                                Code::SkippableOutput,
                                &path,
                                format!(
                                    "workflow output `{name}` is bound to node `{}`, which a `when:` may skip, but is not declared optional",
                                    spec.nodes[n].id
                                ),
                            )
                            .with_help(format!(
                                "write `{name}: {{ from: \"{reference}\", optional: true }}` (null when skipped)"
                            )),
                        );
                    }
                    ty
                }
                None => {
                    found.push(
                        at(
                            entity,
                            Code::InvalidTemplate,
                            &path,
                            format!("workflow output `{name}` must be exactly one reference"),
                        )
                        .with_help("write e.g. `\"{{ nodes.train.outputs.model }}\"`"),
                    );
                    None
                }
            },
        };
        if value.optional() {
            optional_outputs.insert(name.clone());
        }
        outputs.insert(name.clone(), ty);
    }
    (
        Interface {
            inputs,
            outputs,
            optional_outputs,
            unmappable,
        },
        found,
    )
}

/// Checks node `n`'s `when:`: a CEL condition reading what exists here,
/// of types that fit, that is a bool. What it reads is a data dependency.
fn check_condition(
    scope: &WorkflowScope<'_>,
    n: usize,
    source: &str,
    deps: &mut BTreeSet<usize>,
    found: &mut Vec<Diagnostic>,
) {
    let path = [Key("spec"), Key("nodes"), At(n), Key("when")];
    let condition = match condition::parse(source) {
        Ok(c) => c,
        Err(e) => {
            found.push(
                at(scope.entity, Code::InvalidCondition, &path, e.to_string())
                    .with_help("a condition is CEL reading `inputs.<name>` and `nodes.<id>.outputs.<name>`, e.g. `nodes.evaluate.outputs.auc > 0.8 && inputs.deploy`"),
            );
            return;
        }
    };
    let mut types = BTreeMap::new();
    let before = found.len();
    for r in condition.references() {
        let reference = match &r {
            condition::Ref::Input(name) => Reference::Input(name.clone()),
            condition::Ref::NodeOutput { node, output } => Reference::NodeOutput {
                node: node.clone(),
                output: output.clone(),
            },
        };
        let (ty, dep) = scope.resolve(&reference, &path, found);
        deps.extend(dep);
        types.insert(r, ty);
    }
    if found.len() > before {
        return;
    }
    if let Err(e) = condition.check(|r| types.get(r).cloned().flatten()) {
        found.push(
            at(scope.entity, Code::ConditionType, &path, e.to_string()).with_help(
                "values keep their declared types; convert with int(), double() or string()",
            ),
        );
    }
}

/// Checks node `n`'s `map:`: it runs a task or a workflow free of gates
/// and maps; `as` names an input of it
/// that `inputs:` does not also bind; `over` is a list whose items fit
/// that input. What `over` reads is a data dependency.
fn check_map(
    scope: &WorkflowScope<'_>,
    n: usize,
    map: &crate::spec::MapOver,
    deps: &mut BTreeSet<usize>,
    found: &mut Vec<Diagnostic>,
) {
    let entity = scope.entity;
    let node = match &entity.definition {
        Definition::Workflow(w) => &w.spec.nodes[n],
        _ => return,
    };
    let field = |key| [Key("spec"), Key("nodes"), At(n), Key("map"), Key(key)];
    let over_path = field("over");
    let bound = read_binding(scope, &map.over, &over_path, deps, found);
    let (callee, kind, iface) = match &scope.callees[n] {
        Some((name, kind, iface)) => (*name, *kind, *iface),
        None if node.approve.is_some() => {
            found.push(
                at(
                    entity,
                    Code::MapItem,
                    &[Key("spec"), Key("nodes"), At(n), Key("map")],
                    format!(
                        "node `{}` is an approval gate: `map:` runs a task or a workflow",
                        node.id
                    ),
                )
                .with_help(
                    "one gate decides for the whole list: put it before or after the map node",
                ),
            );
            return;
        }
        // The callee does not exist: reported already.
        None => return,
    };
    let callee_word = format!("{} `{callee}`", kind_word(kind));
    if let Some(why) = iface.and_then(|i| i.unmappable.as_deref()) {
        found.push(
            at(
                entity,
                Code::MapItem,
                &[Key("spec"), Key("nodes"), At(n), Key("map")],
                format!("node `{}` maps {callee_word}, but {why}", node.id),
            )
            .with_help("a mapped workflow runs tasks (and sub-workflows of tasks) once per item: move the gate or the inner map out of it"),
        );
        return;
    }
    if node.inputs.contains_key(&map.item) {
        found.push(
            at_key(
                entity,
                Code::MapItem,
                &[
                    Key("spec"),
                    Key("nodes"),
                    At(n),
                    Key("inputs"),
                    Key(map.item.as_str()),
                ],
                format!(
                    "input `{}` of {callee_word} is bound to each item by `map.as`; it cannot also be bound here",
                    map.item
                ),
            )
            .with_help(format!("remove `{}` from the node's `inputs:`", map.item)),
        );
    }
    let Some(iface) = iface else { return };
    let Some(param) = iface.inputs.get(&map.item) else {
        found.push(
            at(
                entity,
                Code::MapItem,
                &field("as"),
                format!(
                    "`map.as: {}`: {callee_word} has no input `{}`",
                    map.item, map.item
                ),
            )
            .with_help(suggestion(&map.item, &iface.input_names(), "input")),
        );
        return;
    };
    let Some(item_ty) = &param.ty else { return };
    let what = format!("input `{}` of {callee_word}", map.item);
    let help = format!("`map.over` is a `list<T>` whose items fit {what} ({item_ty})");
    let wrong = match &bound {
        Bound::Reference(Some(TypeExpr::List(inner)), text)
            if !item_ty.accepts_reference(inner) =>
        {
            Some(format!(
                "the items of `{text}` are {inner}, but {what} is {item_ty}"
            ))
        }
        Bound::Reference(Some(TypeExpr::List(_)), _) => None,
        Bound::Reference(Some(other), text) => Some(format!(
            "`map.over` must be a list, but `{text}` is {other}"
        )),
        Bound::Text => {
            Some("`map.over` must be a list, but text around a reference makes a string".to_owned())
        }
        Bound::Literal => match &map.over {
            Value::Array(_) => TypeExpr::List(Box::new(item_ty.clone()))
                .accepts_literal(&map.over)
                .err()
                .map(|e| format!("`map.over`: {e} ({what} is {item_ty})")),
            other => Some(format!(
                "`map.over` must be a list, not {}",
                crate::spec::types::describe(other)
            )),
        },
        Bound::Reference(None, _) | Bound::Invalid => None,
    };
    if let Some(message) = wrong {
        found.push(at(entity, Code::MapOver, &over_path, message).with_help(help));
    }
}

/// Why a `map:` cannot run workflow `spec` once per item, if it cannot:
/// it has an approval gate or a map node, or calls a workflow that does.
fn unmappable(spec: &WorkflowSpec, scope: &WorkflowScope<'_>) -> Option<String> {
    spec.nodes.iter().enumerate().find_map(|(n, node)| {
        if node.approve.is_some() {
            return Some(format!("its node `{}` is an approval gate", node.id));
        }
        if node.map.is_some() {
            return Some(format!("its node `{}` maps", node.id));
        }
        match &scope.callees[n] {
            Some((name, Kind::Workflow, Some(iface))) => iface
                .unmappable
                .as_ref()
                .map(|why| format!("its node `{}` calls workflow `{name}`, and {why}", node.id)),
            _ => None,
        }
    })
}

/// Which nodes a `when:` may skip: those with one, those that read an
/// output of a skippable node (they are skipped with it), and calls of
/// workflows with optional outputs. `deps` are each node's data
/// dependencies (its bindings' and its condition's).
fn skippable_nodes(
    spec: &WorkflowSpec,
    scope: &WorkflowScope<'_>,
    deps: &[BTreeSet<usize>],
) -> Vec<bool> {
    fn visit(
        n: usize,
        spec: &WorkflowSpec,
        scope: &WorkflowScope<'_>,
        deps: &[BTreeSet<usize>],
        memo: &mut Vec<Option<bool>>,
    ) -> bool {
        if let Some(known) = memo[n] {
            return known;
        }
        // A cycle (reported elsewhere) reads as not skippable.
        memo[n] = Some(false);
        let callee_optional = matches!(
            &scope.callees[n],
            Some((_, Kind::Workflow, Some(iface))) if !iface.optional_outputs.is_empty()
        );
        // A map over such a workflow is not skipped: its lists hold nulls.
        let skippable = spec.nodes[n].when.is_some()
            || (callee_optional && spec.nodes[n].map.is_none())
            || deps[n].iter().any(|&m| visit(m, spec, scope, deps, memo));
        memo[n] = Some(skippable);
        skippable
    }
    let mut memo = vec![None; spec.nodes.len()];
    (0..spec.nodes.len())
        .map(|n| visit(n, spec, scope, deps, &mut memo))
        .collect()
}

fn read_binding(
    scope: &WorkflowScope<'_>,
    value: &Value,
    path: &[PathStep<'_>],
    deps: &mut BTreeSet<usize>,
    found: &mut Vec<Diagnostic>,
) -> Bound {
    let text = match value {
        Value::String(s) => s,
        Value::Array(_) | Value::Object(_) => {
            if contains_reference(value) {
                found.push(
                    at(scope.entity, Code::InvalidTemplate, path, "references inside a list or map literal are not supported")
                        .with_help("bind a `list<T>` or `map<T>` output directly, or pass the values through a task"),
                );
                return Bound::Invalid;
            }
            return Bound::Literal;
        }
        _ => return Bound::Literal,
    };
    let parsed = match template::parse(text) {
        Ok(t) => t,
        Err(e) => {
            found.push(at(scope.entity, Code::InvalidTemplate, path, e.to_string()));
            return Bound::Invalid;
        }
    };
    if let Some(r) = parsed.single_reference() {
        let (ty, dep) = scope.resolve(r, path, found);
        deps.extend(dep);
        return Bound::Reference(ty, format!("{{{{ {r} }}}}"));
    }
    let mut any = false;
    for r in parsed.references() {
        any = true;
        let (_, dep) = scope.resolve(r, path, found);
        deps.extend(dep);
    }
    if any { Bound::Text } else { Bound::Literal }
}

fn contains_reference(value: &Value) -> bool {
    match value {
        Value::String(s) => template::parse(s).map_or(true, |t| t.references().next().is_some()),
        Value::Array(items) => items.iter().any(contains_reference),
        Value::Object(map) => map.values().any(contains_reference),
        _ => false,
    }
}

#[allow(clippy::too_many_arguments)]
fn check_binding_type(
    entity: &Entity,
    path: &[PathStep<'_>],
    name: &str,
    param: &Param,
    callee: &str,
    kind: Kind,
    value: &Value,
    bound: &Bound,
    found: &mut Vec<Diagnostic>,
) {
    let Some(expected) = &param.ty else { return };
    let what = format!("input `{name}` of {} `{callee}`", kind_word(kind));
    match bound {
        Bound::Reference(Some(actual), text) if !expected.accepts_reference(actual) => found.push(
            at(
                entity,
                Code::TypeMismatch,
                path,
                format!("{what} is {expected}, but `{text}` is {actual}"),
            )
            .with_help("references carry their declared type; there is no implicit conversion"),
        ),
        Bound::Text if !expected.accepts_reference(&TypeExpr::String) => found.push(
            at(
                entity,
                Code::TypeMismatch,
                path,
                format!("{what} is {expected}, but text around a reference makes a string"),
            )
            .with_help(
                "to pass the referenced value itself, make the binding exactly `\"{{ ... }}\"`",
            ),
        ),
        Bound::Literal => {
            if let Err(e) = expected.accepts_literal(value) {
                found.push(at(entity, Code::TypeMismatch, path, format!("{what}: {e}")));
            }
        }
        _ => {}
    }
}

//! The definition types: what a user writes in a `*.yaml` file.
//!
//! These structs *are* the product's file format (DESIGN.md section 3): their
//! serde names are the field names users type, and `weir schema` generates the
//! JSON Schema from them (schemars). They describe what was written, not what
//! was checked: `validate` turns them into a [`crate::validate::Snapshot`] and
//! nothing past validation sees an unchecked definition.
//!
//! Every struct denies unknown fields, so a typo is an error, never ignored.
//! Defaults are declared here (serde + schemars) so that the canonical form
//! used for version digests has them filled in.
//!
//! Beside them live the identities of what weir keeps, which every layer
//! above passes around: [`ExecutionId`], [`SourceKey`], [`CommitId`]
//! (`ids.rs`) and [`Trigger`] (`trigger.rs`).

pub mod code;
pub mod condition;
pub mod cron;
pub mod digest;
pub mod duration;
pub mod events;
pub mod ids;
pub mod quantity;
pub mod schema;
pub mod sidecar;
pub mod small_map;
pub mod template;
pub mod trigger;
pub mod types;
pub mod yaml;

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use digest::Digest;
pub use duration::DurationText;
pub use ids::{CommitId, ExecutionId, SourceKey, SourceParts, short_sha};
pub use sidecar::Sidecar;
pub use small_map::SmallMap;
pub use trigger::Trigger;

/// The only `apiVersion` this release reads.
pub const API_VERSION: &str = "weir.dev/v1alpha1";

/// The three kinds of definition, as in Flyte.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum Kind {
    Task,
    Workflow,
    LaunchPlan,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Task, Kind::Workflow, Kind::LaunchPlan];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Task => "Task",
            Kind::Workflow => "Workflow",
            Kind::LaunchPlan => "LaunchPlan",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The identity of a definition: `(project, kind, name)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EntityRef {
    pub project: String,
    pub kind: Kind,
    pub name: String,
}

impl EntityRef {
    pub fn new(project: impl Into<String>, kind: Kind, name: impl Into<String>) -> Self {
        EntityRef {
            project: project.into(),
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for EntityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.project, self.kind, self.name)
    }
}

/// `apiVersion: weir.dev/v1alpha1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApiVersion {
    #[serde(rename = "weir.dev/v1alpha1")]
    V1Alpha1,
}

/// Fields common to every document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// A DNS-1123 label: lower-case letters, digits and `-`, at most 63 characters.
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(max = 63))]
    pub name: String,
    /// The project this definition belongs to; the source's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(max = 63))]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

macro_rules! document {
    ($(#[$doc:meta])* $name:ident, $marker:ident, $spec:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct $name {
            pub api_version: ApiVersion,
            pub kind: $marker,
            pub metadata: Metadata,
            pub spec: $spec,
        }

        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
        pub enum $marker {
            $marker,
        }
    };
}

document!(
    /// `kind: Task`: one unit of work.
    TaskDocument,
    Task,
    TaskSpec
);
document!(
    /// `kind: Workflow`: a DAG of nodes calling tasks and sub-workflows.
    WorkflowDocument,
    Workflow,
    WorkflowSpec
);
document!(
    /// `kind: LaunchPlan`: a workflow with fixed and default inputs and a schedule.
    LaunchPlanDocument,
    LaunchPlan,
    LaunchPlanSpec
);

impl Port {
    /// The declared type (`None` when its text does not parse, which
    /// validation refuses).
    pub fn type_expr(&self) -> Option<types::TypeExpr> {
        match (&self.type_name, &self.enum_values) {
            (Some(text), _) => types::TypeExpr::parse(text).ok(),
            (None, Some(values)) => Some(types::TypeExpr::Enum(values.clone())),
            (None, None) => None,
        }
    }
}

/// One parsed document of any kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Definition {
    Task(Box<TaskDocument>),
    Workflow(WorkflowDocument),
    LaunchPlan(Box<LaunchPlanDocument>),
}

impl Definition {
    pub fn kind(&self) -> Kind {
        match self {
            Definition::Task(_) => Kind::Task,
            Definition::Workflow(_) => Kind::Workflow,
            Definition::LaunchPlan(_) => Kind::LaunchPlan,
        }
    }

    pub fn metadata(&self) -> &Metadata {
        match self {
            Definition::Task(d) => &d.metadata,
            Definition::Workflow(d) => &d.metadata,
            Definition::LaunchPlan(d) => &d.metadata,
        }
    }

    /// Reads a document that already passed the JSON Schema.
    pub fn from_json(kind: Kind, value: Value) -> Result<Definition, serde_json::Error> {
        Ok(match kind {
            Kind::Task => Definition::Task(Box::new(serde_json::from_value(value)?)),
            Kind::Workflow => Definition::Workflow(serde_json::from_value(value)?),
            Kind::LaunchPlan => Definition::LaunchPlan(serde_json::from_value(value)?),
        })
    }

    /// The spec with every default filled in, as JSON: the input of the digest.
    pub fn canonical_spec(&self) -> Value {
        let value = match self {
            Definition::Task(d) => serde_json::to_value(&d.spec),
            Definition::Workflow(d) => serde_json::to_value(&d.spec),
            Definition::LaunchPlan(d) => serde_json::to_value(&d.spec),
        };
        value.expect("specs are plain data and always serialize")
    }

    /// The digest of [`Definition::canonical_spec`], computed without it.
    pub fn spec_digest(&self) -> Digest {
        let digest = match self {
            Definition::Task(d) => Digest::of_serialize(&d.spec),
            Definition::Workflow(d) => Digest::of_serialize(&d.spec),
            Definition::LaunchPlan(d) => Digest::of_serialize(&d.spec),
        };
        digest.expect("specs are plain data and always serialize")
    }
}

/// A definition's input or output ports by name, in name order.
pub type Ports = SmallMap<Port>;

/// An input or output declaration: `{ type: int, default: 3 }` or
/// `{ enum: [a, b] }`. Exactly one of `type` and `enum`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend(
    "oneOf" = [{"required": ["type"]}, {"required": ["enum"]}],
    "errorMessage" = "declare exactly one of `type` or `enum`"
))]
pub struct Port {
    /// `string`, `int`, `float`, `bool`, `datetime`, `duration`, `file`,
    /// `directory`, `json`, `list<T>` or `map<T>`; `T?` may also be null.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^(string|int|float|bool|datetime|duration|file|directory|json|(list|map)<.+>)\??$"
    ))]
    pub type_name: Option<String>,
    /// The allowed values of an enum (a string).
    #[serde(rename = "enum", default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub enum_values: Option<Vec<String>>,
    /// The value used when nothing is bound; an input with a default is optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `kind: Task` spec: the fields every task has, and its one body.
///
/// The body is data here (`<type>: <body>`, see [`TaskBody`]): what it
/// means is its task type's business (`crate::task`), so a new type needs
/// no change in this module. It reads and writes as the fields it replaced
/// did (the body under its type's key, between `outputs` and `retries`),
/// so stored definitions and plans read as before; the JSON Schema of the
/// bodies is filled in by [`schema::generate`] from the task types.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSpec {
    pub inputs: Ports,
    pub outputs: Ports,
    pub body: TaskBody,
    pub retries: Retries,
    pub timeout: Option<DurationText>,
    pub cache: CacheSettings,
    pub resources: Resources,
    pub secrets: Vec<SecretRef>,
    pub service_account: Option<String>,
    /// Services beside the task's process (`sidecar.rs`).
    pub sidecars: Vec<Sidecar>,
}

/// A task's body: `script: { … }` is `type_name` `script` and the object as
/// `value`. Exactly one per task (the schema says so before anything reads
/// it); a task type decodes `value` into its own body type.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskBody {
    pub type_name: String,
    pub value: Value,
}

impl TaskBody {
    /// Whether this body is of the task type named `type_name`.
    pub fn is(&self, type_name: &str) -> bool {
        self.type_name == type_name
    }
}

// The schema of `TaskSpec`'s common fields (the bodies are added by
// `schema::generate`), with the attributes of the fields. Its one doc line is
// the schema's description.
/// `kind: Task` spec.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "TaskSpec")]
#[allow(dead_code)] // its fields are read by the derive only
struct TaskSpecSchema {
    #[serde(default)]
    inputs: BTreeMap<String, Port>,
    #[serde(default)]
    outputs: BTreeMap<String, Port>,
    #[serde(default)]
    retries: Retries,
    /// The longest one attempt may run, e.g. `30m` or `1h30m`; none when absent.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    timeout: Option<DurationText>,
    #[serde(default)]
    cache: CacheSettings,
    #[serde(default)]
    resources: Resources,
    /// Kubernetes Secrets exposed as environment variables; never values.
    #[serde(default)]
    secrets: Vec<SecretRef>,
    #[serde(default)]
    service_account: Option<String>,
    /// Services that run beside the task, ready before it starts and
    /// stopped after it ends.
    #[serde(default)]
    sidecars: Vec<Sidecar>,
}

impl JsonSchema for TaskSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TaskSpec".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        TaskSpecSchema::json_schema(generator)
    }
}

/// The keys of [`TaskSpec`]'s common fields; any other key is the body.
const TASK_FIELDS: [&str; 9] = [
    "inputs",
    "outputs",
    "retries",
    "timeout",
    "cache",
    "resources",
    "secrets",
    "serviceAccount",
    "sidecars",
];

impl Serialize for TaskSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(TASK_FIELDS.len() + 1))?;
        map.serialize_entry("inputs", &self.inputs)?;
        map.serialize_entry("outputs", &self.outputs)?;
        map.serialize_entry(&self.body.type_name, &self.body.value)?;
        map.serialize_entry("retries", &self.retries)?;
        map.serialize_entry("timeout", &self.timeout)?;
        map.serialize_entry("cache", &self.cache)?;
        map.serialize_entry("resources", &self.resources)?;
        map.serialize_entry("secrets", &self.secrets)?;
        map.serialize_entry("serviceAccount", &self.service_account)?;
        // Absent when empty: the specs (and versions) of tasks without
        // sidecars are what they were before the field.
        if !self.sidecars.is_empty() {
            map.serialize_entry("sidecars", &self.sidecars)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for TaskSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TaskSpecVisitor)
    }
}

/// Reads the common fields by name and takes the one other key as the body
/// (a hand-written map visitor: `serde(flatten)` would buffer every field).
struct TaskSpecVisitor;

impl<'de> serde::de::Visitor<'de> for TaskSpecVisitor {
    type Value = TaskSpec;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a task spec")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<TaskSpec, A::Error> {
        use serde::de::Error as _;
        /// Reads the next value into `$slot`, once.
        macro_rules! field {
            ($slot:ident, $key:literal) => {
                if $slot.replace(map.next_value()?).is_some() {
                    return Err(A::Error::duplicate_field($key));
                }
            };
        }
        let (mut inputs, mut outputs, mut body) = (None, None, None::<TaskBody>);
        let (mut retries, mut timeout, mut cache) = (None, None, None);
        let (mut resources, mut secrets, mut service_account) = (None, None, None);
        let mut sidecars = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "inputs" => field!(inputs, "inputs"),
                "outputs" => field!(outputs, "outputs"),
                "retries" => field!(retries, "retries"),
                "timeout" => field!(timeout, "timeout"),
                "cache" => field!(cache, "cache"),
                "resources" => field!(resources, "resources"),
                "secrets" => field!(secrets, "secrets"),
                "serviceAccount" => field!(service_account, "serviceAccount"),
                "sidecars" => field!(sidecars, "sidecars"),
                // A common field without its arm above is a mistake here,
                // never a body.
                field if TASK_FIELDS.contains(&field) => {
                    return Err(A::Error::custom(format_args!(
                        "`{field}` is a common task field this reader does not read"
                    )));
                }
                type_name => {
                    let value: Value = map.next_value()?;
                    // `script: null` is no body, as an absent optional field was.
                    if value.is_null() {
                        continue;
                    }
                    if let Some(first) = &body {
                        return Err(A::Error::custom(format_args!(
                            "a task needs exactly one body, not both `{}` and `{type_name}`",
                            first.type_name
                        )));
                    }
                    body = Some(TaskBody {
                        type_name: type_name.to_owned(),
                        value,
                    });
                }
            }
        }
        Ok(TaskSpec {
            inputs: inputs.unwrap_or_default(),
            outputs: outputs.unwrap_or_default(),
            body: body.ok_or_else(|| {
                A::Error::custom("a task needs a body (`script`, `container`, …)")
            })?,
            retries: retries.unwrap_or_default(),
            timeout: timeout.unwrap_or_default(),
            cache: cache.unwrap_or_default(),
            resources: resources.unwrap_or_default(),
            secrets: secrets.unwrap_or_default(),
            service_account: service_account.unwrap_or_default(),
            sidecars: sidecars.unwrap_or_default(),
        })
    }
}

/// How often a failed attempt is retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retries {
    /// Retries after the first failed attempt (0: never retry).
    #[serde(default)]
    #[schemars(range(max = 100))]
    pub attempts: u32,
    /// The wait before the first retry; it doubles with each further retry.
    #[serde(default = "default_backoff")]
    #[schemars(with = "String")]
    pub backoff: DurationText,
}

fn default_backoff() -> DurationText {
    DurationText::new("10s")
}

impl Default for Retries {
    fn default() -> Self {
        Retries {
            attempts: 0,
            backoff: default_backoff(),
        }
    }
}

/// Memoisation of task results (DESIGN.md section 6).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CacheSettings {
    #[serde(default)]
    pub enabled: bool,
    /// Bump to invalidate; the task's version is used when absent.
    #[serde(default)]
    pub version: Option<String>,
    /// Inputs left out of the cache key.
    #[serde(default)]
    pub ignore_inputs: Vec<String>,
}

/// Kubernetes resource requests and limits (`cpu: 500m`, `memory: 1Gi`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default)]
    pub requests: SmallMap<quantity::Quantity>,
    #[serde(default)]
    pub limits: SmallMap<quantity::Quantity>,
}

/// One key of a Kubernetes Secret, exposed as the environment variable `env`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// The Secret's name.
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub name: String,
    /// The key inside the Secret.
    pub key: String,
    /// The environment variable that receives the value.
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub env: String,
}

/// `kind: Workflow` spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    #[serde(default)]
    pub inputs: Ports,
    #[schemars(length(min = 1))]
    pub nodes: Vec<Node>,
    /// Each output is one `{{ nodes.N.outputs.y }}` reference, or `{ from:
    /// REFERENCE, optional: true }` for one bound to a node that a `when:`
    /// may skip (null then).
    #[serde(default)]
    pub outputs: BTreeMap<String, WorkflowOutput>,
}

/// A workflow output: where its value comes from, and whether it may be
/// missing (its node skipped by a `when:`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum WorkflowOutput {
    /// `"{{ nodes.N.outputs.y }}"`: always there.
    Reference(String),
    Declared(DeclaredOutput),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclaredOutput {
    /// One `{{ nodes.N.outputs.y }}` reference.
    pub from: String,
    /// Null when its node was skipped by a `when:` condition.
    #[serde(default)]
    pub optional: bool,
}

impl WorkflowOutput {
    /// The reference it is bound to.
    pub fn reference(&self) -> &str {
        match self {
            WorkflowOutput::Reference(r) => r,
            WorkflowOutput::Declared(d) => &d.from,
        }
    }

    pub fn optional(&self) -> bool {
        matches!(self, WorkflowOutput::Declared(d) if d.optional)
    }
}

/// One step of a workflow: a call of a task or of a sub-workflow, or an
/// approval gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend(
    "oneOf" = [{"required": ["task"]}, {"required": ["workflow"]}, {"required": ["approve"]}],
    "errorMessage" = "a node calls exactly one of `task` or `workflow`, or is an `approve` gate"
))]
pub struct Node {
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$"), length(max = 63))]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// Literals, or templates such as `{{ inputs.day }}` and
    /// `{{ nodes.extract.outputs.events }}`.
    #[serde(default)]
    pub inputs: BTreeMap<String, Value>,
    /// Nodes that must finish first, without a data dependency.
    #[serde(default)]
    pub after: Vec<String>,
    /// A CEL condition over `inputs.<name>` and `nodes.<id>.outputs.<name>`
    /// (`nodes.evaluate.outputs.auc > 0.8 && inputs.deploy`): when false
    /// the node is skipped, and so are the nodes that consume its outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// An approval gate: the node waits for `weir approve` (or the API)
    /// and fails when rejected or when nobody decides in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approve: Option<Approve>,
    /// Run the task once per item of a list (`train[0]`, `train[1]`, …),
    /// each item with its own attempts, cache entry and lineage; the
    /// node's outputs are lists in item order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<MapOver>,
}

/// `map:` of a workflow node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MapOver {
    /// The list: a reference such as `{{ nodes.split.outputs.folds }}`
    /// (of type `list<T>`) or a literal list.
    #[schemars(with = "MapList")]
    pub over: Value,
    /// The task input that receives each item (of type `T`); the node's
    /// `inputs:` bind the others, the same for every item.
    #[serde(rename = "as")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub item: String,
    /// At most this many items run at once (default: every item at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_parallel: Option<u32>,
    /// The node succeeds if at least this share of its items does
    /// (default 1: every item). Below 1, a failed item's outputs are null,
    /// so the node's outputs are `list<U?>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_success_ratio: Option<f64>,
}

impl MapOver {
    /// The share of items that must succeed.
    pub fn ratio(&self) -> f64 {
        self.min_success_ratio.unwrap_or(1.0)
    }

    /// Whether a failed item leaves a null in the outputs (`list<U?>`).
    pub fn tolerates_failures(&self) -> bool {
        self.ratio() < 1.0
    }
}

/// What `map.over` may be, for the schema: a reference or a list.
#[derive(JsonSchema)]
#[allow(dead_code)]
#[serde(untagged)]
enum MapList {
    Reference(String),
    Literal(Vec<Value>),
}

/// `approve:` of a workflow node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Approve {
    /// What the approver is asked, shown with the waiting node.
    #[schemars(length(min = 1, max = 2000))]
    pub prompt: String,
    /// How long to wait for a decision (at most 30 days); then the node
    /// times out.
    #[schemars(with = "String")]
    pub timeout: DurationText,
}

/// `kind: LaunchPlan` spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LaunchPlanSpec {
    pub workflow: String,
    /// Fixed inputs: cannot be overridden at run time.
    #[serde(default)]
    pub inputs: BTreeMap<String, Value>,
    /// Default inputs: `weir run` may override them.
    #[serde(default)]
    pub defaults: BTreeMap<String, Value>,
    #[serde(default)]
    pub schedule: Option<Schedule>,
    /// Events that start it (DESIGN.md section 13): an object landing
    /// under a prefix, another launch plan's execution ending, a call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<EventTrigger>,
    #[serde(default)]
    pub notify: Vec<NotifyRule>,
}

/// One entry of a launch plan's `triggers:`: exactly one kind of event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum EventTrigger {
    /// A new object (or a new content of one) under a prefix of an object
    /// store.
    Artifact(ArtifactTrigger),
    /// An execution of another launch plan of the project ended.
    Upstream(UpstreamTrigger),
    /// A call to `POST /api/v1/triggers/{project}/{launchPlan}`.
    Webhook(WebhookTrigger),
}

/// `artifact:` of a trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ArtifactTrigger {
    /// The prefix watched: `s3://bucket/prefix/` or `file:///folder/`.
    #[schemars(regex(pattern = r"^(s3|file)://"))]
    pub url: String,
    /// Which keys under the prefix count, relative to it: `*` stays in one
    /// folder, `**` crosses folders (the default: every object).
    #[serde(default = "default_pattern")]
    #[schemars(length(min = 1, max = 1000))]
    pub pattern: String,
    /// The launch plan input (of type `file`) that receives the object.
    pub input: String,
    /// How often the prefix is listed (at least `100ms`; default `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub interval: Option<DurationText>,
    /// The most executions of this trigger unfinished at once; later
    /// objects wait, recorded, until one ends.
    #[serde(default = "default_max_pending")]
    #[schemars(range(min = 1, max = 100000))]
    pub max_pending: u32,
}

/// `upstream:` of a trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpstreamTrigger {
    /// A launch plan of the same project.
    #[schemars(length(min = 1))]
    pub launch_plan: String,
    /// The phases of its executions that start this launch plan (default:
    /// `succeeded`).
    #[serde(default = "default_upstream_on")]
    #[schemars(length(min = 1))]
    pub on: Vec<Phase>,
    /// Inputs of this launch plan's workflow: a value, or exactly one
    /// `{{ upstream.inputs.NAME }}` or `{{ upstream.outputs.NAME }}`.
    #[serde(default)]
    pub inputs: BTreeMap<String, Value>,
    #[serde(default = "default_max_pending")]
    #[schemars(range(min = 1, max = 100000))]
    pub max_pending: u32,
}

/// `webhook:` of a trigger: its body is the run's inputs, its
/// `Idempotency-Key` header the event's identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebhookTrigger {
    #[serde(default = "default_max_pending")]
    #[schemars(range(min = 1, max = 100000))]
    pub max_pending: u32,
}

fn default_pattern() -> String {
    "**".to_owned()
}

fn default_max_pending() -> u32 {
    100
}

fn default_upstream_on() -> Vec<Phase> {
    vec![Phase::Succeeded]
}

impl EventTrigger {
    /// What names this trigger across its launch plan's versions: a new
    /// version with the same trigger goes on from where the last stopped
    /// (its events are not run again), one with another prefix, pattern or
    /// upstream starts afresh.
    pub fn key(&self) -> String {
        match self {
            EventTrigger::Artifact(a) => format!("artifact:{}{}", a.url, a.pattern),
            EventTrigger::Upstream(u) => format!("upstream:{}", u.launch_plan),
            EventTrigger::Webhook(_) => "webhook".to_owned(),
        }
    }

    /// The most of its executions unfinished at once.
    pub fn max_pending(&self) -> u32 {
        match self {
            EventTrigger::Artifact(a) => a.max_pending,
            EventTrigger::Upstream(u) => u.max_pending,
            EventTrigger::Webhook(w) => w.max_pending,
        }
    }
}

/// When a launch plan runs by itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(extend(
    "oneOf" = [{"required": ["cron"]}, {"required": ["every"]}],
    "errorMessage" = "a schedule needs exactly one of `cron` or `every`"
))]
pub struct Schedule {
    /// Five fields (`0 2 * * *`) or a macro (`@hourly`, `@daily`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// A fixed rate such as `15m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub every: Option<DurationText>,
    /// IANA time zone the cron expression is read in.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// A `datetime` workflow input that receives the scheduled instant.
    #[serde(default)]
    pub kickoff_time_input: Option<String>,
    #[serde(default)]
    pub concurrency: Concurrency,
    #[serde(default)]
    pub catch_up: CatchUp,
    /// The most missed runs `catchUp: all` starts after downtime.
    #[serde(default = "default_max_catch_up")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_catch_up: u32,
    /// A run not started within this long after its instant is skipped.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub starting_deadline: Option<DurationText>,
}

fn default_timezone() -> String {
    "UTC".to_owned()
}

fn default_max_catch_up() -> u32 {
    10
}

/// What happens when a run is due while the previous one still runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Concurrency {
    /// Start it anyway.
    #[default]
    Allow,
    /// Skip the new run.
    Forbid,
    /// Cancel the running one and start the new one.
    Replace,
}

/// Which missed instants run after downtime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum CatchUp {
    /// Only future instants.
    None,
    /// The most recent missed instant.
    #[default]
    Latest,
    /// Every missed instant, up to `maxCatchUp`.
    All,
}

/// Terminal phases a notification can be sent on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
}

/// Send a notification when an execution ends in one of `on`, to a
/// `webhook` or to `slack`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend(
    "oneOf" = [{"required": ["webhook"]}, {"required": ["slack"]}],
    "errorMessage" = "a notification needs exactly one of `webhook` or `slack`"
))]
pub struct NotifyRule {
    #[schemars(length(min = 1))]
    pub on: Vec<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackTarget>,
}

/// A JSON `POST` to `url`, signed with `X-Weir-Signature-256` when a
/// `secret` is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookTarget {
    #[schemars(regex(pattern = r"^https?://"))]
    pub url: String,
    /// Where the daemon reads the HMAC-SHA256 key; never the key itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<DaemonSecret>,
}

/// A Slack incoming webhook. Its URL is a credential: a reference only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SlackTarget {
    pub webhook_url: DaemonSecret,
}

/// A secret the daemon reads when it needs it: a file on its machine or
/// one of its environment variables. Definitions live in Git, so they name
/// where a secret is, never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend(
    "oneOf" = [{"required": ["env"]}, {"required": ["file"]}],
    "errorMessage" = "a secret is `{ env: NAME }` or `{ file: /path }`, never a value"
))]
pub struct DaemonSecret {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub file: Option<String>,
}

/// Why a [`DaemonSecret`] could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable `{0}` is not set")]
    Unset(String),
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("give exactly one of `env` and `file`")]
    Ambiguous,
    /// The secret (`env NAME` or `file PATH`, as [`DaemonSecret`] shows
    /// itself) holds nothing but line ends.
    #[error("{0} is empty")]
    Empty(String),
}

impl DaemonSecret {
    /// Reads the secret (without a trailing newline).
    pub fn read(&self) -> Result<String, SecretError> {
        let value = match (&self.env, &self.file) {
            (Some(var), None) => std::env::var(var).map_err(|_| SecretError::Unset(var.clone()))?,
            (None, Some(path)) => {
                std::fs::read_to_string(path).map_err(|source| SecretError::Read {
                    path: path.clone(),
                    source,
                })?
            }
            _ => return Err(SecretError::Ambiguous),
        };
        let value = value.trim_end_matches(['\n', '\r']).to_owned();
        if value.is_empty() {
            return Err(SecretError::Empty(self.to_string()));
        }
        Ok(value)
    }
}

impl std::fmt::Display for DaemonSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.env, &self.file) {
            (Some(var), _) => write!(f, "env {var}"),
            (None, Some(path)) => write!(f, "file {path}"),
            (None, None) => f.write_str("no secret"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The common fields are listed in the schema (`TaskSpecSchema`), in
    /// `TASK_FIELDS` (what the reader and the writer go by) and in the
    /// reader's arms: the schema's Task properties other than the bodies
    /// are exactly `TASK_FIELDS`, and a spec with every one of them reads
    /// each as a field, none as a body, and writes them back.
    #[test]
    fn the_common_task_fields_agree_everywhere() {
        // One body, named as no common field is.
        struct Script;
        impl schema::TaskBodies for Script {
            fn body_schemas(
                &self,
                _: &mut schemars::SchemaGenerator,
            ) -> Vec<(&'static str, schemars::Schema)> {
                vec![("script", schemars::json_schema!({ "type": "object" }))]
            }
        }
        let schema = schema::generate(&Script);
        let properties = schema["definitions"]["TaskSpec"]["properties"]
            .as_object()
            .expect("the Task spec's properties");
        let common: std::collections::BTreeSet<&str> = properties
            .keys()
            .map(String::as_str)
            .filter(|key| *key != "script")
            .collect();
        assert_eq!(common, TASK_FIELDS.into_iter().collect());

        // Every common field written (each at its default, and a sidecar:
        // an empty list is not written), read back.
        let body = serde_json::json!({
            "script": { "source": "true" },
            "sidecars": [{ "name": "db", "image": "postgres" }],
        });
        let spec: TaskSpec = serde_json::from_value(body).expect("reads");
        let every = serde_json::to_value(&spec).expect("writes");
        let read: TaskSpec = serde_json::from_value(every).expect("every common field reads");
        assert_eq!(read, spec, "no common field is taken as a body");
        let written = serde_json::to_value(&read).expect("writes");
        let keys: std::collections::BTreeSet<&str> = written
            .as_object()
            .expect("a map")
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected: std::collections::BTreeSet<&str> = TASK_FIELDS.into_iter().collect();
        expected.insert("script");
        assert_eq!(keys, expected);
    }
}

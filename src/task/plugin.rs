//! The task-type plugin: what an author implements ([`TaskType`]), the
//! object-safe form the rest of weir holds ([`ErasedTaskType`]), and the set
//! of types one run knows ([`TaskTypes`]).
//!
//! A type owns its body: the Rust type `script: { … }` decodes into, its
//! JSON Schema (placed at `spec.<NAME>` of the Task schema), its canonical
//! form (defaults filled, as a version's digest needs them) and what it
//! runs. Everything else reads a body through here, so adding a type is one
//! `impl TaskType` and one `.with(…)`.

use std::fmt;
use std::sync::{Arc, LazyLock};

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;
use serde::de::{Deserialize, DeserializeOwned};
use serde_json::Value;

use super::resource::{PodParts, Resource, ResourceKind, RunsIn};
use super::{
    ClientRun, Container, Context, Finding, Launch, LaunchError, Notebook, Script, Spark, Sql,
    TaskView,
};
use crate::spec::schema::TaskBodies;
use crate::spec::{Definition, TaskSpec};

/// One task type, as its author writes it.
pub trait TaskType: Send + Sync + 'static {
    /// The body's key in a task spec: `script`, `container`, …
    const NAME: &'static str;
    /// The body. Its serde form is what users write (deny unknown fields,
    /// declare defaults); its schemars schema is the schema of `spec.<NAME>`.
    type Body: Serialize + DeserializeOwned + JsonSchema + Send + Sync;

    /// What `weir validate` checks beyond the schema, each finding at a
    /// place inside the body.
    fn check(&self, _body: &Self::Body, _task: &TaskView<'_>) -> Vec<Finding> {
        Vec::new()
    }

    /// What to run for one attempt.
    fn launch(&self, body: &Self::Body, context: &Context<'_>) -> Result<Launch, LaunchError>;

    /// An attempt that runs in weir's own process, as a client of a remote
    /// engine (`None`: it runs [`TaskType::launch`]'s program). Asked
    /// first; see `client.rs`.
    fn client(
        &self,
        _body: &Self::Body,
        _context: &Context<'_>,
    ) -> Result<Option<Box<dyn ClientRun>>, LaunchError> {
        Ok(None)
    }

    /// The image the task runs in on Kubernetes (`None`: the daemon's
    /// default task image).
    fn kubernetes_image(&self, _body: &Self::Body) -> Option<String> {
        None
    }

    /// The custom resource an attempt runs as on Kubernetes, made of what
    /// every pod of the attempt carries: of the first of
    /// [`TaskType::resource_kinds`], for every attempt of a type that has
    /// one (`None`: a Job, whose pod runs [`TaskType::launch`]). See
    /// `resource.rs`.
    fn kubernetes_resource(
        &self,
        _body: &Self::Body,
        _pod: &PodParts<'_>,
    ) -> Option<Result<Resource, LaunchError>> {
        None
    }

    /// The kinds [`TaskType::kubernetes_resource`] makes: the executor
    /// lists them to find its objects again after a restart.
    fn resource_kinds(&self) -> &'static [&'static ResourceKind] {
        &[]
    }

    /// What runs inside the resource (in the pod that reports): by default
    /// what runs anywhere else.
    fn resource_launch(
        &self,
        body: &Self::Body,
        context: &Context<'_>,
    ) -> Result<Launch, LaunchError> {
        self.launch(body, context)
    }

    /// Repository files the task runs (a notebook, a program), as
    /// `(key, path)`, the path relative to the source's root: each must
    /// exist in the source (W039 otherwise, at the body's field holding the
    /// path; a notebook's own check says W031), its content (Git's blob id)
    /// is part of the task's version under `key`, and the engine reads it
    /// at the commit of that version for every attempt:
    /// [`Context::file`]`(key)` gives its text.
    fn repository_files(&self, _body: &Self::Body) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// Outputs the run leaves besides those it writes under `$WEIR_OUTPUTS`
    /// (a notebook's executed notebook), as `(output name, file path
    /// relative to the attempt's folder)`: the executor stores each file as
    /// that output unless the task wrote the output itself.
    fn implicit_outputs(&self, _body: &Self::Body) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }
}

/// A [`TaskType`] behind a trait object: the body as JSON in, decoded here.
pub trait ErasedTaskType: Send + Sync {
    fn name(&self) -> &'static str;
    /// The body's schema (its definitions added to `generator`), nullable as
    /// the optional fields of the spec it replaced were.
    fn body_schema(&self, generator: &mut SchemaGenerator) -> Schema;
    /// The body decoded and written back: defaults filled in, as serde
    /// fills them.
    fn canonical(&self, body: &Value) -> Result<Value, serde_json::Error>;
    /// The type's checks; a body that does not decode is one finding.
    fn check(&self, body: &Value, task: &TaskView<'_>) -> Vec<Finding>;
    fn launch(&self, body: &Value, context: &Context<'_>) -> Result<Launch, LaunchError>;
    fn resource_launch(&self, body: &Value, context: &Context<'_>) -> Result<Launch, LaunchError>;
    fn kubernetes_resource(
        &self,
        body: &Value,
        pod: &PodParts<'_>,
    ) -> Option<Result<Resource, LaunchError>>;
    fn resource_kinds(&self) -> &'static [&'static ResourceKind];
    fn client(
        &self,
        body: &Value,
        context: &Context<'_>,
    ) -> Result<Option<Box<dyn ClientRun>>, LaunchError>;
    fn kubernetes_image(&self, body: &Value) -> Option<String>;
    fn repository_files(&self, body: &Value) -> Vec<(&'static str, String)>;
    fn implicit_outputs(&self, body: &Value) -> Vec<(&'static str, &'static str)>;
}

/// A repository file's path as sources name it: relative to the source's
/// root, without a leading `./`.
pub fn repository_path(path: &str) -> &str {
    path.trim_start_matches("./")
}

/// The erased form of `T`.
struct Erased<T>(T);

impl<T: TaskType> Erased<T> {
    fn decode(body: &Value) -> Result<T::Body, serde_json::Error> {
        T::Body::deserialize(body)
    }

    fn decode_for_launch(body: &Value) -> Result<T::Body, LaunchError> {
        Self::decode(body).map_err(|e| LaunchError::Body {
            type_name: T::NAME,
            message: e.to_string(),
        })
    }
}

impl<T: TaskType> ErasedTaskType for Erased<T> {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn body_schema(&self, generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<Option<T::Body>>()
    }

    fn canonical(&self, body: &Value) -> Result<Value, serde_json::Error> {
        serde_json::to_value(Self::decode(body)?)
    }

    fn check(&self, body: &Value, task: &TaskView<'_>) -> Vec<Finding> {
        match Self::decode(body) {
            Ok(body) => self.0.check(&body, task),
            Err(e) => vec![Finding::invalid(
                "",
                format!("the `{}` body does not read: {e}", T::NAME),
            )],
        }
    }

    fn launch(&self, body: &Value, context: &Context<'_>) -> Result<Launch, LaunchError> {
        self.0.launch(&Self::decode_for_launch(body)?, context)
    }

    fn resource_launch(&self, body: &Value, context: &Context<'_>) -> Result<Launch, LaunchError> {
        self.0
            .resource_launch(&Self::decode_for_launch(body)?, context)
    }

    fn kubernetes_resource(
        &self,
        body: &Value,
        pod: &PodParts<'_>,
    ) -> Option<Result<Resource, LaunchError>> {
        match Self::decode_for_launch(body) {
            Ok(body) => self.0.kubernetes_resource(&body, pod),
            Err(e) => Some(Err(e)),
        }
    }

    fn resource_kinds(&self) -> &'static [&'static ResourceKind] {
        self.0.resource_kinds()
    }

    fn client(
        &self,
        body: &Value,
        context: &Context<'_>,
    ) -> Result<Option<Box<dyn ClientRun>>, LaunchError> {
        self.0.client(&Self::decode_for_launch(body)?, context)
    }

    fn kubernetes_image(&self, body: &Value) -> Option<String> {
        self.0.kubernetes_image(&Self::decode(body).ok()?)
    }

    fn repository_files(&self, body: &Value) -> Vec<(&'static str, String)> {
        Self::decode(body)
            .map(|b| self.0.repository_files(&b))
            .unwrap_or_default()
    }

    fn implicit_outputs(&self, body: &Value) -> Vec<(&'static str, &'static str)> {
        Self::decode(body)
            .map(|b| self.0.implicit_outputs(&b))
            .unwrap_or_default()
    }
}

/// The body of `spec` when it is a `T` task and decodes.
pub fn body_of<T: TaskType>(spec: &TaskSpec) -> Option<T::Body> {
    if !spec.body.is(T::NAME) {
        return None;
    }
    Erased::<T>::decode(&spec.body.value).ok()
}

/// The task types one run knows, in the order the schema lists them.
#[derive(Clone)]
pub struct TaskTypes {
    types: Vec<Arc<dyn ErasedTaskType>>,
    /// Exactly [`TaskTypes::builtin`]: its schema is the committed one.
    builtin: bool,
}

/// The built-in types, for readers not handed a registry (`weir
/// exec-task` in a pod: the binary knows its own types).
pub static BUILTIN: LazyLock<TaskTypes> = LazyLock::new(TaskTypes::builtin);

impl TaskTypes {
    /// No type at all.
    pub fn new() -> TaskTypes {
        TaskTypes {
            types: Vec::new(),
            builtin: false,
        }
    }

    /// Every type weir ships.
    pub fn builtin() -> TaskTypes {
        let mut types = TaskTypes::new()
            .with(Container)
            .with(Script)
            .with(Notebook)
            .with(Sql)
            .with(Spark);
        types.builtin = true;
        types
    }

    /// These and `task_type` (replacing a type of the same name).
    pub fn with<T: TaskType>(mut self, task_type: T) -> TaskTypes {
        self.types.retain(|t| t.name() != T::NAME);
        self.types.push(Arc::new(Erased(task_type)));
        self.builtin = false;
        self
    }

    /// Whether this is exactly the built-in set, whose schema is the
    /// committed `schema/weir.schema.json`.
    pub fn is_builtin(&self) -> bool {
        self.builtin
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.types.iter().map(|t| t.name())
    }

    pub fn get(&self, name: &str) -> Option<&dyn ErasedTaskType> {
        self.types
            .iter()
            .find(|t| t.name() == name)
            .map(|t| t.as_ref())
    }

    /// The type of `spec`'s body.
    pub fn of(&self, spec: &TaskSpec) -> Result<&dyn ErasedTaskType, LaunchError> {
        self.get(&spec.body.type_name)
            .ok_or_else(|| LaunchError::UnknownType(spec.body.type_name.clone()))
    }

    /// What to run for one attempt of `context.spec`.
    pub fn launch(&self, context: &Context<'_>) -> Result<Launch, LaunchError> {
        self.of(context.spec)?
            .launch(&context.spec.body.value, context)
    }

    /// The in-process run of `context.spec`, when its type runs one (see
    /// [`TaskType::client`]).
    /// What runs for an attempt that runs `in` a process or a resource.
    pub fn launch_in(&self, context: &Context<'_>, runs_in: RunsIn) -> Result<Launch, LaunchError> {
        let task_type = self.of(context.spec)?;
        match runs_in {
            RunsIn::Process => task_type.launch(&context.spec.body.value, context),
            RunsIn::Resource => task_type.resource_launch(&context.spec.body.value, context),
        }
    }

    /// The custom resource `spec`'s attempt runs as on Kubernetes, if its
    /// type makes one.
    pub fn kubernetes_resource(
        &self,
        spec: &TaskSpec,
        pod: &PodParts<'_>,
    ) -> Option<Result<Resource, LaunchError>> {
        match self.of(spec) {
            Ok(task_type) => task_type.kubernetes_resource(&spec.body.value, pod),
            Err(e) => Some(Err(e)),
        }
    }

    /// The kind `spec`'s attempts run as on Kubernetes (`None`: a Job).
    pub fn resource_kind_of(&self, spec: &TaskSpec) -> Option<&'static ResourceKind> {
        self.of(spec).ok()?.resource_kinds().first().copied()
    }

    /// The resource kind a handle names (`plural.group`).
    pub fn resource_kind(&self, name: &str) -> Option<&'static ResourceKind> {
        self.resource_kinds().find(|k| k.name() == name)
    }

    /// Every resource kind of these types.
    pub fn resource_kinds(&self) -> impl Iterator<Item = &'static ResourceKind> + '_ {
        self.types
            .iter()
            .flat_map(|t| t.resource_kinds().iter().copied())
    }

    pub fn client(&self, context: &Context<'_>) -> Result<Option<Box<dyn ClientRun>>, LaunchError> {
        self.of(context.spec)?
            .client(&context.spec.body.value, context)
    }

    /// Fills the defaults of a task's body, in place, so that its canonical
    /// spec (and so its version) is what it was when bodies were typed
    /// fields of the spec. A body of an unknown type, or one that does not
    /// decode, is left as written (validation reports it).
    pub fn canonicalize(&self, definition: &mut Definition) {
        let Definition::Task(task) = definition else {
            return;
        };
        let body = &mut task.spec.body;
        if let Some(Ok(value)) = self.get(&body.type_name).map(|t| t.canonical(&body.value)) {
            body.value = value;
        }
    }

    /// The image `spec` runs in on Kubernetes, if its body names one.
    pub fn kubernetes_image(&self, spec: &TaskSpec) -> Option<String> {
        self.of(spec).ok()?.kubernetes_image(&spec.body.value)
    }

    /// The repository files `spec` runs (see [`TaskType::repository_files`]).
    /// The repository files `spec` runs, each path as sources name files
    /// ([`repository_path`]).
    pub fn repository_files(&self, spec: &TaskSpec) -> Vec<(&'static str, String)> {
        self.of(spec)
            .map(|t| t.repository_files(&spec.body.value))
            .unwrap_or_default()
            .into_iter()
            .map(|(key, path)| (key, repository_path(&path).to_owned()))
            .collect()
    }

    /// The outputs a run of `spec` leaves besides `$WEIR_OUTPUTS` (see
    /// [`TaskType::implicit_outputs`]).
    pub fn implicit_outputs(&self, spec: &TaskSpec) -> Vec<(&'static str, &'static str)> {
        self.of(spec)
            .map(|t| t.implicit_outputs(&spec.body.value))
            .unwrap_or_default()
    }

    /// The JSON Schema of definition files, with these types' bodies.
    pub fn schema(&self) -> Value {
        crate::spec::schema::generate(self)
    }

    /// [`TaskTypes::schema`] as committed: pretty, with a trailing newline.
    pub fn schema_text(&self) -> String {
        crate::spec::schema::generate_text(self)
    }
}

impl Default for TaskTypes {
    fn default() -> Self {
        TaskTypes::builtin()
    }
}

impl fmt::Debug for TaskTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl TaskBodies for TaskTypes {
    fn body_schemas(&self, generator: &mut SchemaGenerator) -> Vec<(&'static str, Schema)> {
        self.types
            .iter()
            .map(|t| (t.name(), t.body_schema(generator)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::spec::{Definition, Kind};

    fn canonical(spec: Value) -> Value {
        let mut definition = Definition::from_json(
            Kind::Task,
            json!({
                "apiVersion": "weir.dev/v1alpha1",
                "kind": "Task",
                "metadata": { "name": "t" },
                "spec": spec,
            }),
        )
        .expect("a task");
        TaskTypes::builtin().canonicalize(&mut definition);
        definition.canonical_spec()
    }

    /// The canonical spec is what it was when bodies were typed fields of
    /// the spec: every default of the body filled in, as serde fills it.
    #[test]
    fn a_body_s_defaults_are_filled_in_as_before() {
        let common = json!({
            "inputs": {},
            "outputs": {},
            "retries": { "attempts": 0, "backoff": "10s" },
            "timeout": null,
            "cache": { "enabled": false, "version": null, "ignoreInputs": [] },
            "resources": { "requests": {}, "limits": {} },
            "secrets": [],
            "serviceAccount": null,
        });
        for (written, filled) in [
            (
                json!({ "script": { "interpreter": "bash", "source": "true" } }),
                json!({ "script": { "interpreter": "bash", "source": "true", "image": null } }),
            ),
            (
                json!({ "container": { "image": "alpine" } }),
                json!({ "container": {
                    "image": "alpine", "command": [], "args": [], "env": {}, "workingDir": null,
                } }),
            ),
            (
                json!({ "notebook": { "path": "a.ipynb" } }),
                json!({ "notebook": { "path": "a.ipynb", "image": null } }),
            ),
        ] {
            let mut expected = common.clone();
            expected
                .as_object_mut()
                .expect("an object")
                .extend(filled.as_object().expect("an object").clone());
            assert_eq!(canonical(written), expected);
        }
    }

    /// A stored spec (a plan's, a version's) reads back into the same spec
    /// and writes the same JSON.
    #[test]
    fn a_stored_spec_reads_and_writes_the_same() {
        let stored = canonical(json!({
            "inputs": { "n": { "type": "int" } },
            "container": { "image": "alpine", "command": ["true"] },
            "timeout": "5m",
            "serviceAccount": "runner",
        }));
        let spec: TaskSpec = serde_json::from_value(stored.clone()).expect("reads");
        assert_eq!(spec.body.type_name, "container");
        assert_eq!(serde_json::to_value(&spec).expect("writes"), stored);
    }

    #[test]
    fn a_task_has_exactly_one_body() {
        let two = json!({ "script": { "interpreter": "sh", "source": "true" }, "container": { "image": "a" } });
        let error = serde_json::from_value::<TaskSpec>(two).expect_err("two bodies");
        assert!(error.to_string().contains("exactly one body"), "{error}");
        let none = json!({ "inputs": {} });
        assert!(serde_json::from_value::<TaskSpec>(none).is_err());
        // `script: null` is no body, as an absent optional field was.
        let null = json!({ "script": null, "container": { "image": "a" } });
        let spec: TaskSpec = serde_json::from_value(null).expect("one body");
        assert!(spec.body.is("container"));
    }

    #[test]
    fn each_reader_goes_through_the_body_s_type() {
        let spec: TaskSpec = serde_json::from_value(json!({
            "notebook": { "path": "./report.ipynb", "image": "jupyter" },
        }))
        .expect("a spec");
        let types = TaskTypes::builtin();
        assert_eq!(types.kubernetes_image(&spec).as_deref(), Some("jupyter"));
        // As sources name files: no leading `./`.
        assert_eq!(
            types.repository_files(&spec),
            [("notebook", "report.ipynb".to_owned())]
        );
        assert_eq!(
            types.implicit_outputs(&spec),
            [("notebook", super::super::EXECUTED_NOTEBOOK)]
        );
        assert_eq!(
            body_of::<Notebook>(&spec).map(|b| b.path).as_deref(),
            Some("./report.ipynb")
        );
        assert!(body_of::<Script>(&spec).is_none());
        let unknown: TaskSpec =
            serde_json::from_value(json!({ "echo": { "text": "hi" } })).expect("a spec");
        assert_eq!(
            TaskTypes::new().kubernetes_image(&unknown),
            None,
            "an unknown type names no image"
        );
        let error = types
            .launch(&Context {
                spec: &unknown,
                inputs: &Default::default(),
                files: &Default::default(),
            })
            .expect_err("no such type");
        assert_eq!(error.to_string(), "no task type `echo` is known here");
    }

    /// A type reads its repository files by key, and is told which one
    /// could not be read, and why.
    #[test]
    fn a_context_gives_each_repository_file_by_key() {
        let spec: TaskSpec = serde_json::from_value(json!({
            "script": { "interpreter": "sh", "source": "true" },
        }))
        .expect("a spec");
        let files = super::super::RepositoryFiles::from([
            ("program".to_owned(), Ok("print(1)".to_owned())),
            (
                "data".to_owned(),
                Err("`d.csv` does not exist at commit abc".to_owned()),
            ),
        ]);
        let context = Context {
            spec: &spec,
            inputs: &Default::default(),
            files: &files,
        };
        assert_eq!(context.file("program"), Ok("print(1)"));
        assert_eq!(
            context.file("data").map_err(|e| e.to_string()),
            Err(
                "cannot read the task's `data` file: `d.csv` does not exist at commit abc"
                    .to_owned()
            )
        );
        assert_eq!(
            context.file("other").map_err(|e| e.to_string()),
            Err("the task's `other` file was not read".to_owned())
        );
    }
}

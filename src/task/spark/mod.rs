//! `spark` tasks (Flyte's Spark plugin is the model): a PySpark program,
//! inline (`source`) or a file of the repository (`mainApplicationFile`,
//! then part of the task's version like a notebook), run with a ready
//! `spark` session by weir's driver program (`spark_main.py`), with the
//! task's `sparkConf` and its driver's and executors' resources.
//!
//! Locally it is real Spark in local mode: `spark-submit --master
//! local[N]` from the `pyspark` package (Java 17 beside it), N being the
//! executors' cores in all; the JVM and its Python workers are the
//! attempt's process group, so a timeout or a cancel stops all of them.
//! Inputs and outputs follow the data contract: the program reads
//! `inputs` (files and directories as local paths), writes a `file` or
//! `directory` output at `output_path(name)` (a Parquet dataset, typically)
//! and puts scalar outputs in `outputs`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use serde_json::{Value, json};

use super::resource::{PodParts, Resource, ResourceKind, ResourceState};
use super::{Context, Finding, Launch, LaunchError, TaskType, TaskView};
use super::{Destination, check_inputs_in_code, check_template, interpolate};
use crate::spec::code::Language;

/// The driver program weir runs the task's program with.
const DRIVER: &str = include_str!("spark_main.py");
const DRIVER_FILE: &str = "task/spark_main.py";
/// Where the task's program is written in the attempt's folder.
const PROGRAM_FILE: &str = "task/program.py";
/// Spark's own log: warnings and errors only, on stderr.
const LOG_CONFIG: &str = "\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
";
const LOG_CONFIG_FILE: &str = "task/log4j2.properties";
/// The attempt's stderr, relative to its folder (the run's working
/// directory), where the driver program writes a failure.
const ERROR_LOG: &str = "stderr.log";
/// The driver pod's entry point on Kubernetes (written beside `weir` by
/// the init container): it hands the driver to `weir exec-task`.
const ENTRY: &str = include_str!("spark_entry.py");
const ENTRY_FILE: &str = "spark_entry.py";
/// The image of a SparkApplication whose task names none, and its Spark.
const DEFAULT_IMAGE: &str = "spark:4.0.1-python3";
const DEFAULT_SPARK_VERSION: &str = "4.0.1";
/// The driver's variables that its Python program needs to join the
/// driver's JVM (set by Spark's PythonRunner), passed on by `weir
/// exec-task` to the program it runs.
const DRIVER_VARIABLES: [&str; 7] = [
    "PYSPARK_GATEWAY_PORT",
    "PYSPARK_GATEWAY_SECRET",
    "PYTHONPATH",
    "PYTHONHASHSEED",
    "PYSPARK_PYTHON",
    "SPARK_HOME",
    "SPARK_CONF_DIR",
];

/// The Spark operator's application (`sparkoperator.k8s.io/v1beta2`,
/// the one Flyte's Spark plugin makes).
pub static SPARK_APPLICATION: ResourceKind = ResourceKind {
    group: "sparkoperator.k8s.io",
    version: "v1beta2",
    kind: "SparkApplication",
    plural: "sparkapplications",
    report_container: "spark-kubernetes-driver",
    state: application_state,
    inherit: &DRIVER_VARIABLES,
    entry_files: &[(ENTRY_FILE, ENTRY)],
};

/// The kinds a spark task runs as.
static KINDS: &[&ResourceKind] = &[&SPARK_APPLICATION];

/// How a SparkApplication stands, from `status.applicationState.state`
/// (the operator's states; those not named are on their way).
fn application_state(status: &Value) -> ResourceState {
    let state = status
        .pointer("/applicationState/state")
        .and_then(Value::as_str)
        .unwrap_or("");
    let driver = status
        .pointer("/driverInfo/podName")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let message = status
        .pointer("/applicationState/errorMessage")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty());
    match state {
        "COMPLETED" => ResourceState::Ended {
            pod: driver,
            error: None,
        },
        "FAILED" | "SUBMISSION_FAILED" => ResourceState::Ended {
            pod: driver,
            error: Some(match message {
                Some(m) => format!("the Spark application {}: {m}", state_words(state)),
                None => format!("the Spark application {}", state_words(state)),
            }),
        },
        _ => ResourceState::Running,
    }
}

fn state_words(state: &str) -> &'static str {
    if state == "SUBMISSION_FAILED" {
        "could not be submitted"
    } else {
        "failed"
    }
}

/// The key of `mainApplicationFile` among the task's repository files.
pub const MAIN_APPLICATION_FILE: &str = "mainApplicationFile";

/// A PySpark program and the Spark it runs on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(extend("oneOf" = [
    { "required": ["source"] },
    { "required": ["mainApplicationFile"] },
]))]
pub struct SparkBody {
    /// The program, run with `spark` (a SparkSession), `inputs`, `outputs`
    /// and `output_path(name)`; may interpolate `{{ inputs.x }}` of int,
    /// float, bool and enum inputs only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub source: Option<String>,
    /// A PySpark program of the repository (relative to the source's
    /// root), run like `source`; its content is part of the task's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", regex(pattern = r"\.py$"))]
    pub main_application_file: Option<String>,
    /// Spark properties, e.g. `spark.sql.shuffle.partitions: "8"`.
    #[serde(default)]
    pub spark_conf: BTreeMap<String, String>,
    #[serde(default)]
    pub driver: Driver,
    #[serde(default)]
    pub executor: Executors,
    /// The image on Kubernetes (Spark and Python in it).
    #[serde(default)]
    pub image: Option<String>,
}

/// The driver's resources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Driver {
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 256))]
    pub cores: u32,
    /// Spark's size format: `512m`, `2g`.
    #[serde(default = "default_memory")]
    #[schemars(regex(pattern = r"^[0-9]+([kKmMgGtT][bB]?|[bB])?$"))]
    pub memory: String,
}

/// The executors' number and resources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Executors {
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 10000))]
    pub instances: u32,
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 256))]
    pub cores: u32,
    /// Spark's size format: `512m`, `2g`.
    #[serde(default = "default_memory")]
    #[schemars(regex(pattern = r"^[0-9]+([kKmMgGtT][bB]?|[bB])?$"))]
    pub memory: String,
}

fn one() -> u32 {
    1
}

fn default_memory() -> String {
    "1g".to_owned()
}

impl Default for Driver {
    fn default() -> Self {
        Driver {
            cores: 1,
            memory: default_memory(),
        }
    }
}

impl Default for Executors {
    fn default() -> Self {
        Executors {
            instances: 1,
            cores: 1,
            memory: default_memory(),
        }
    }
}

/// The most local threads a task asks for: local mode runs every executor
/// core as a thread of one JVM.
const MAX_LOCAL_THREADS: u32 = 64;

impl SparkBody {
    /// The cores of every executor, as local mode's threads.
    pub fn local_threads(&self) -> u32 {
        self.executor
            .instances
            .saturating_mul(self.executor.cores)
            .clamp(1, MAX_LOCAL_THREADS)
    }

    /// The properties a run gets: weir's defaults for a quiet, fast local
    /// run, then the task's own, which win.
    pub fn properties(&self) -> BTreeMap<String, String> {
        let mut conf = BTreeMap::from([
            ("spark.ui.enabled".to_owned(), "false".to_owned()),
            // Small data by default: as many shuffle partitions as threads,
            // not Spark's 200.
            (
                "spark.sql.shuffle.partitions".to_owned(),
                self.local_threads().to_string(),
            ),
            (
                "spark.driver.cores".to_owned(),
                self.driver.cores.to_string(),
            ),
            (
                "spark.executor.memory".to_owned(),
                self.executor.memory.clone(),
            ),
        ]);
        conf.extend(self.spark_conf.clone());
        // Spark's log quiet (the driver's program's failure must end the
        // attempt's stderr), whatever other Java options the task sets.
        let quiet = format!("-Dlog4j2.configurationFile={LOG_CONFIG_FILE}");
        conf.entry("spark.driver.extraJavaOptions".to_owned())
            .and_modify(|options| *options = format!("{options} {quiet}"))
            .or_insert(quiet);
        conf
    }
}

impl SparkBody {
    /// The properties of a SparkApplication: the task's own; the driver's
    /// and executors' sizes are the application's fields.
    fn cluster_properties(&self) -> BTreeMap<String, String> {
        let mut conf = BTreeMap::from([(
            "spark.sql.shuffle.partitions".to_owned(),
            self.executor
                .instances
                .saturating_mul(self.executor.cores)
                .to_string(),
        )]);
        conf.extend(self.spark_conf.clone());
        conf
    }

    /// The program and how its tracebacks name it.
    fn program(&self, context: &Context<'_>) -> Result<(String, String), LaunchError> {
        match (&self.source, &self.main_application_file) {
            (Some(source), _) => Ok((
                interpolate(source, context, Destination::ScriptSource)?,
                "<source>".to_owned(),
            )),
            (None, Some(path)) => Ok((
                context.file(MAIN_APPLICATION_FILE)?.to_owned(),
                path.clone(),
            )),
            (None, None) => Err(LaunchError::Body {
                type_name: Spark::NAME,
                message: "no `source` or `mainApplicationFile`".into(),
            }),
        }
    }
}

/// `spark`: a PySpark program on Spark, local mode on the local executor.
pub struct Spark;

impl TaskType for Spark {
    const NAME: &'static str = "spark";
    type Body = SparkBody;

    fn check(&self, body: &SparkBody, task: &TaskView<'_>) -> Vec<Finding> {
        let mut found = Vec::new();
        match (&body.source, &body.main_application_file) {
            (Some(source), None) => {
                found.extend(check_template(source, "/source", task));
                found.extend(check_inputs_in_code(
                    source,
                    "/source",
                    Language::Python,
                    task,
                ));
            }
            (None, Some(_)) => {}
            _ => found.push(
                Finding::invalid(
                    "",
                    "a spark task runs exactly one program: `source` or `mainApplicationFile`",
                )
                .with_help(
                    "write the program inline as `source`, or name a `.py` file of the repository",
                ),
            ),
        }
        for (key, value) in &body.spark_conf {
            if !key.starts_with("spark.") {
                found.push(
                    Finding::invalid(
                        format!("/sparkConf/{}", key.replace('~', "~0").replace('/', "~1")),
                        format!("`{key}` is not a Spark property (`{value}`)"),
                    )
                    .with_help(
                        "Spark properties start with `spark.`, e.g. `spark.sql.shuffle.partitions`",
                    ),
                );
            }
        }
        found
    }

    fn launch(&self, body: &SparkBody, context: &Context<'_>) -> Result<Launch, LaunchError> {
        let (program, shown_as) = body.program(context)?;
        let mut args = vec![
            "--master".to_owned(),
            format!("local[{}]", body.local_threads()),
            "--driver-memory".to_owned(),
            body.driver.memory.clone(),
        ];
        for (key, value) in body.properties() {
            args.push("--conf".to_owned());
            args.push(format!("{key}={value}"));
        }
        args.extend([
            DRIVER_FILE.to_owned(),
            PROGRAM_FILE.to_owned(),
            shown_as,
            ERROR_LOG.to_owned(),
        ]);
        Ok(Launch {
            program: "spark-submit".to_owned(),
            args,
            env: BTreeMap::new(),
            files: vec![
                (DRIVER_FILE.to_owned(), DRIVER.to_owned()),
                (PROGRAM_FILE.to_owned(), program),
                (LOG_CONFIG_FILE.to_owned(), LOG_CONFIG.to_owned()),
            ],
            notice: None,
            working_dir: None,
        })
    }

    /// In the driver of a SparkApplication: the driver program alone,
    /// joined to the driver's JVM, which Spark's PythonRunner started with
    /// the application's configuration.
    fn resource_launch(
        &self,
        body: &SparkBody,
        context: &Context<'_>,
    ) -> Result<Launch, LaunchError> {
        let (program, shown_as) = body.program(context)?;
        Ok(Launch {
            program: "python3".to_owned(),
            args: vec![
                DRIVER_FILE.to_owned(),
                PROGRAM_FILE.to_owned(),
                shown_as,
                ERROR_LOG.to_owned(),
            ],
            env: BTreeMap::new(),
            files: vec![
                (DRIVER_FILE.to_owned(), DRIVER.to_owned()),
                (PROGRAM_FILE.to_owned(), program),
            ],
            notice: None,
            working_dir: None,
        })
    }

    fn kubernetes_image(&self, body: &SparkBody) -> Option<String> {
        Some(
            body.image
                .clone()
                .unwrap_or_else(|| DEFAULT_IMAGE.to_owned()),
        )
    }

    fn resource_kinds(&self) -> &'static [&'static ResourceKind] {
        KINDS
    }

    /// A `SparkApplication` in cluster mode: its driver pod runs `weir
    /// exec-task` (through [`ENTRY`]) with the attempt, its executors the
    /// declared number and sizes. Files reach the executors only through
    /// a work folder they all mount: without one, a task with `file` or
    /// `directory` inputs or outputs is refused.
    fn kubernetes_resource(
        &self,
        body: &SparkBody,
        pod: &PodParts<'_>,
    ) -> Option<Result<Resource, LaunchError>> {
        let blobs = pod
            .spec
            .inputs
            .iter()
            .chain(&pod.spec.outputs)
            .filter(|(_, port)| port.type_expr().is_some_and(|t| t.is_blob()))
            .map(|(name, _)| format!("`{name}`"))
            .collect::<Vec<_>>();
        if !pod.shared_work && !blobs.is_empty() {
            return Some(Err(LaunchError::Body {
                type_name: Self::NAME,
                message: format!(
                    "{} {} a file or directory, which Spark's executors read or write in the attempt's work folder: \
                     on Kubernetes that folder must be one volume for the driver and the executors; set `[kubernetes] work_claim` \
                     to a ReadWriteMany PersistentVolumeClaim",
                    blobs.join(", "),
                    if blobs.len() == 1 { "is" } else { "are" },
                ),
            }));
        }
        let work_mounts = if pod.shared_work {
            vec![pod.work_mount.clone()]
        } else {
            Vec::new()
        };
        let mut spec = json!({
            "type": "Python",
            "pythonVersion": "3",
            "mode": "cluster",
            "image": pod.image,
            "sparkVersion": DEFAULT_SPARK_VERSION,
            "mainApplicationFile": format!("local://{}/{ENTRY_FILE}", pod.bin_dir),
            // The engine retries; an application runs once.
            "restartPolicy": { "type": "Never" },
            "timeToLiveSeconds": pod.ttl_seconds,
            "sparkConf": body.cluster_properties(),
            "volumes": pod.volumes,
            "driver": {
                "cores": body.driver.cores,
                "memory": body.driver.memory,
                "labels": pod.labels,
                "annotations": pod.annotations,
                "env": pod.env,
                "initContainers": [pod.init_container],
                "volumeMounts": [pod.bin_mount, pod.work_mount],
                "securityContext": pod.security_context,
            },
            "executor": {
                "instances": body.executor.instances,
                "cores": body.executor.cores,
                "memory": body.executor.memory,
                "labels": pod.labels,
                "annotations": pod.annotations,
                "volumeMounts": work_mounts,
                "securityContext": pod.security_context,
            },
        });
        if let Some(account) = &pod.service_account {
            spec["driver"]["serviceAccount"] = json!(account);
        }
        Some(Ok(Resource { spec }))
    }

    fn repository_files(&self, body: &SparkBody) -> Vec<(&'static str, String)> {
        body.main_application_file
            .iter()
            .map(|path| (MAIN_APPLICATION_FILE, path.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::task::{RepositoryFiles, TaskTypes};

    fn launch_of(spec: serde_json::Value, files: &RepositoryFiles) -> Result<Launch, LaunchError> {
        let spec = serde_json::from_value(spec).expect("a spec");
        TaskTypes::builtin().launch(&Context {
            spec: &spec,
            inputs: &BTreeMap::from([("n".to_owned(), json!(3))]),
            files,
        })
    }

    #[test]
    fn a_program_runs_under_spark_submit_in_local_mode_with_its_conf() {
        let launch = launch_of(
            json!({
                "inputs": { "n": { "type": "int" } },
                "spark": {
                    "source": "print({{ inputs.n }})",
                    "sparkConf": { "spark.sql.shuffle.partitions": "2" },
                    "driver": { "memory": "512m" },
                    "executor": { "instances": 2, "cores": 2 },
                },
            }),
            &RepositoryFiles::new(),
        )
        .expect("a launch");
        assert_eq!(launch.program, "spark-submit");
        assert_eq!(
            &launch.args[..4],
            ["--master", "local[4]", "--driver-memory", "512m"]
        );
        assert!(
            launch
                .args
                .contains(&"spark.sql.shuffle.partitions=2".to_owned()),
            "the task's conf wins over weir's: {:?}",
            launch.args
        );
        assert!(launch.args.contains(&"spark.ui.enabled=false".to_owned()));
        assert_eq!(
            launch.args[launch.args.len() - 4..],
            [DRIVER_FILE, PROGRAM_FILE, "<source>", ERROR_LOG]
        );
        assert_eq!(
            launch.files[1],
            (PROGRAM_FILE.to_owned(), "print(3)".to_owned())
        );
    }

    #[test]
    fn a_main_application_file_is_read_from_the_repository() {
        let spec = json!({ "spark": { "mainApplicationFile": "jobs/daily.py" } });
        let files = RepositoryFiles::from([(
            MAIN_APPLICATION_FILE.to_owned(),
            Ok("spark.range(3).count()".to_owned()),
        )]);
        let launch = launch_of(spec.clone(), &files).expect("a launch");
        assert_eq!(launch.files[1].1, "spark.range(3).count()");
        assert_eq!(launch.args[launch.args.len() - 2], "jobs/daily.py");
        let missing = RepositoryFiles::from([(
            MAIN_APPLICATION_FILE.to_owned(),
            Err("`jobs/daily.py` does not exist at commit abc".to_owned()),
        )]);
        assert_eq!(
            launch_of(spec, &missing).map_err(|e| e.to_string()),
            Err("cannot read the task's `mainApplicationFile` file: `jobs/daily.py` does not exist at commit abc".to_owned())
        );
    }

    #[test]
    fn an_application_s_states_are_read_as_the_operator_writes_them() {
        for state in [
            "",
            "NEW",
            "SUBMITTED",
            "RUNNING",
            "PENDING_RERUN",
            "SUCCEEDING",
            "FAILING",
            "UNKNOWN",
        ] {
            let status = json!({ "applicationState": { "state": state } });
            assert_eq!(
                application_state(&status),
                ResourceState::Running,
                "{state}"
            );
        }
        assert_eq!(application_state(&Value::Null), ResourceState::Running);
        assert_eq!(
            application_state(&json!({
                "applicationState": { "state": "COMPLETED" },
                "driverInfo": { "podName": "weir-x-driver" },
            })),
            ResourceState::Ended {
                pod: Some("weir-x-driver".into()),
                error: None
            }
        );
        assert_eq!(
            application_state(&json!({
                "applicationState": { "state": "SUBMISSION_FAILED", "errorMessage": "no such image" },
            })),
            ResourceState::Ended {
                pod: None,
                error: Some("the Spark application could not be submitted: no such image".into())
            }
        );
        assert_eq!(
            application_state(
                &json!({ "applicationState": { "state": "FAILED", "errorMessage": "" } })
            ),
            ResourceState::Ended {
                pod: None,
                error: Some("the Spark application failed".into())
            }
        );
    }

    fn parts<'a>(
        spec: &'a crate::spec::TaskSpec,
        labels: &'a BTreeMap<String, String>,
        shared_work: bool,
    ) -> PodParts<'a> {
        PodParts {
            spec,
            image: "spark:4".into(),
            labels,
            annotations: labels,
            env: vec![json!({ "name": "WEIR_ATTEMPT", "value": "{}" })],
            init_container: json!({ "name": "weir-init" }),
            volumes: vec![json!({ "name": "work" })],
            bin_mount: json!({ "name": "weir-bin", "mountPath": "/weir/bin" }),
            bin_dir: "/weir/bin",
            work_mount: json!({ "name": "work", "mountPath": "/weir/work" }),
            shared_work,
            service_account: Some("spark".into()),
            security_context: json!({ "runAsNonRoot": true }),
            ttl_seconds: 60,
        }
    }

    #[test]
    fn an_application_shares_the_work_folder_with_its_executors_or_refuses_files() {
        let spec: crate::spec::TaskSpec = serde_json::from_value(json!({
            "inputs": { "orders": { "type": "file" } },
            "outputs": { "daily": { "type": "directory" }, "rows": { "type": "int" } },
            "spark": { "source": "pass", "executor": { "instances": 2, "cores": 3 } },
        }))
        .expect("a spec");
        let body: SparkBody = serde_json::from_value(spec.body.value.clone()).expect("a body");
        let labels = BTreeMap::from([("l".to_owned(), "v".to_owned())]);
        let shared = Spark
            .kubernetes_resource(&body, &parts(&spec, &labels, true))
            .expect("a resource")
            .expect("made");
        let app = &shared.spec;
        assert_eq!(
            app["mainApplicationFile"],
            "local:///weir/bin/spark_entry.py"
        );
        assert_eq!(app["driver"]["serviceAccount"], "spark");
        assert_eq!(
            app["executor"]["volumeMounts"],
            json!([{ "name": "work", "mountPath": "/weir/work" }])
        );
        assert_eq!(app["sparkConf"]["spark.sql.shuffle.partitions"], "6");
        assert_eq!(app["timeToLiveSeconds"], 60);
        let refused = Spark
            .kubernetes_resource(&body, &parts(&spec, &labels, false))
            .expect("an answer")
            .expect_err("refused");
        assert!(
            refused
                .to_string()
                .contains("`orders`, `daily` are a file or directory"),
            "{refused}"
        );
    }

    #[test]
    fn in_the_driver_the_program_joins_the_driver_s_jvm() {
        let launch = {
            let spec = serde_json::from_value(json!({ "spark": { "source": "print(1)" } }))
                .expect("a spec");
            TaskTypes::builtin()
                .launch_in(
                    &Context {
                        spec: &spec,
                        inputs: &BTreeMap::new(),
                        files: &RepositoryFiles::new(),
                    },
                    crate::task::resource::RunsIn::Resource,
                )
                .expect("a launch")
        };
        assert_eq!(launch.program, "python3");
        assert_eq!(
            launch.args,
            [DRIVER_FILE, PROGRAM_FILE, "<source>", ERROR_LOG]
        );
        assert!(
            SPARK_APPLICATION
                .inherit
                .contains(&"PYSPARK_GATEWAY_SECRET")
        );
    }
}

//! `sql` tasks: a query against PostgreSQL, DuckDB, Hive (Spark SQL),
//! Trino or Presto, its result set becoming the task's outputs.
//!
//! What it guarantees: a `{{ inputs.x }}` in the query is a bind
//! parameter, never text (`params.rs`): a value like `'; DROP TABLE t; --`
//! is data. The connection is a reference (`{env: NAME}` or
//! `{file: PATH}`), read at run time in the task's environment and kept
//! out of every error, log and file the attempt leaves (`connection.rs`).
//! Outputs follow the data contract (`results.rs`, and the Python runner),
//! so caching and lineage treat a query like any task.
//!
//! How each engine runs: PostgreSQL and Trino/Presto in weir's process as
//! clients ([`super::ClientRun`]: sqlx, and Trino's HTTP protocol over
//! ureq); DuckDB and Hive as a process, `sql_runner.py` with the `duckdb`
//! Python package or under `spark-submit` (no engine is linked into weir).

mod connection;
mod params;
mod postgres;
mod results;
mod trino;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ClientRun, Context, Finding, Launch, LaunchError, Rule, TaskType, TaskView};
use crate::spec::DaemonSecret;
use crate::spec::template::Reference;
use crate::spec::types::TypeExpr;
use connection::Parameter;
use params::Marker;

/// The runner DuckDB and Hive queries run in, written into each attempt.
const RUNNER: &str = include_str!("sql_runner.py");

/// Where the runner and its settings are written, in the attempt's folder.
const RUNNER_FILE: &str = "task/sql_runner.py";
const SETTINGS_FILE: &str = "task/sql.json";

/// Which engine runs the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SqlEngine {
    /// A PostgreSQL server (`connection` required).
    Postgres,
    /// DuckDB, in a process (`connection`: a database file; none: in memory).
    Duckdb,
    /// HiveQL on Spark SQL with Hive support (a metastore in the attempt's
    /// folder unless `connection` names a warehouse folder).
    Hive,
    /// A Trino coordinator (`connection`: its URL).
    Trino,
    /// A Presto coordinator (`connection`: its URL).
    Presto,
}

impl SqlEngine {
    fn name(self) -> &'static str {
        match self {
            SqlEngine::Postgres => "postgres",
            SqlEngine::Duckdb => "duckdb",
            SqlEngine::Hive => "hive",
            SqlEngine::Trino => "trino",
            SqlEngine::Presto => "presto",
        }
    }

    /// Whether the engine is a server weir connects to (which must be named).
    fn is_remote(self) -> bool {
        matches!(
            self,
            SqlEngine::Postgres | SqlEngine::Trino | SqlEngine::Presto
        )
    }

    fn marker(self) -> Marker {
        match self {
            SqlEngine::Postgres => Marker::Numbered,
            _ => Marker::Question,
        }
    }
}

/// What a `file` output holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResultFormat {
    /// A header line, then one line per row.
    #[default]
    Csv,
    /// Parquet, its columns typed as the engine typed them.
    Parquet,
}

/// Run `query` on `engine`; `{{ inputs.x }}` in it are bind parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlBody {
    pub engine: SqlEngine,
    /// Where the connection string is (`{ env: NAME }` or `{ file: PATH }`),
    /// never its value.
    #[serde(default)]
    pub connection: Option<DaemonSecret>,
    /// The statement; `{{ inputs.x }}` become bind parameters.
    #[schemars(length(min = 1))]
    pub query: String,
    /// What a `file` output holds: `csv` (default) or `parquet`.
    #[serde(default)]
    pub format: ResultFormat,
    /// Trino/Presto: the catalog (else the connection URL's path).
    #[serde(default)]
    pub catalog: Option<String>,
    /// Trino/Presto: the schema (else the connection URL's path).
    #[serde(default)]
    pub schema: Option<String>,
    /// The image used on Kubernetes (DuckDB and Hive run a process there).
    #[serde(default)]
    pub image: Option<String>,
}

/// `sql`: a query whose result set becomes the task's outputs.
pub struct Sql;

impl TaskType for Sql {
    const NAME: &'static str = "sql";
    type Body = SqlBody;

    fn check(&self, body: &SqlBody, task: &TaskView<'_>) -> Vec<Finding> {
        let mut found = check_query(body, task);
        if body.engine.is_remote() && body.connection.is_none() {
            found.push(
                Finding::invalid("", format!("engine `{}` needs a `connection`", body.engine.name()))
                    .with_help("name where the connection string is: `connection: { env: NAME }` or `connection: { file: PATH }`"),
            );
        }
        if !matches!(body.engine, SqlEngine::Trino | SqlEngine::Presto) {
            for (field, value) in [("catalog", &body.catalog), ("schema", &body.schema)] {
                if value.is_some() {
                    found.push(
                        Finding::invalid(
                            format!("/{field}"),
                            format!("`{field}` is read by Trino and Presto only"),
                        )
                        .with_help(format!("remove `{field}`, or name it in the query")),
                    );
                }
            }
        }
        for (name, ty) in &task.outputs {
            if let Some(ty) = ty
                && let Err(message) = results::fillable(name, ty)
            {
                found.push(
                    Finding::new(Rule::UnfillableOutput, format!("/outputs/{}", pointer_token(name)), message)
                        .in_spec()
                        .with_help(
                        "a `sql` task fills `rows: int` (the row count), `file` outputs (the result set) and `json` outputs (the rows as objects)",
                    ),
                );
            }
        }
        found
    }

    fn launch(&self, body: &SqlBody, context: &Context<'_>) -> Result<Launch, LaunchError> {
        let (statement, parameters) = bind(body, context)?;
        let settings = json!({
            "engine": body.engine.name(),
            "query": statement,
            "params": parameters.iter().map(|p| &p.value).collect::<Vec<_>>(),
            "outputs": declared_outputs(context)
                .into_iter()
                .map(|(name, ty)| json!({ "name": name, "type": ty.to_string() }))
                .collect::<Vec<_>>(),
            "format": body.format,
            "connection": body.connection,
        });
        let (program, mut args) = match body.engine {
            SqlEngine::Duckdb => ("python3", Vec::new()),
            SqlEngine::Hive => (
                "spark-submit",
                ["--master", "local[2]", "--conf", "spark.ui.enabled=false"]
                    .map(str::to_owned)
                    .to_vec(),
            ),
            remote => {
                return Err(LaunchError::Sql(format!(
                    "engine `{}` runs in weir's process, not as a program",
                    remote.name()
                )));
            }
        };
        args.extend([RUNNER_FILE.to_owned(), SETTINGS_FILE.to_owned()]);
        Ok(Launch {
            program: program.to_owned(),
            args,
            env: BTreeMap::new(),
            files: vec![
                (RUNNER_FILE.to_owned(), RUNNER.to_owned()),
                (SETTINGS_FILE.to_owned(), settings.to_string()),
            ],
            notice: None,
            working_dir: None,
        })
    }

    fn client(
        &self,
        body: &SqlBody,
        context: &Context<'_>,
    ) -> Result<Option<Box<dyn ClientRun>>, LaunchError> {
        if !body.engine.is_remote() {
            return Ok(None);
        }
        let (statement, parameters) = bind(body, context)?;
        let connection = body.connection.clone().ok_or_else(|| {
            LaunchError::Sql(format!(
                "engine `{}` needs a `connection`",
                body.engine.name()
            ))
        })?;
        let outputs = declared_outputs(context);
        Ok(Some(match body.engine {
            SqlEngine::Postgres => Box::new(postgres::PostgresRun {
                statement,
                parameters,
                connection,
                outputs,
                format: body.format,
                timeout: context.spec.timeout.as_ref().and_then(|t| t.parsed().ok()),
            }),
            engine => Box::new(trino::TrinoRun {
                presto: engine == SqlEngine::Presto,
                statement,
                parameters,
                connection,
                catalog: body.catalog.clone(),
                schema: body.schema.clone(),
                outputs,
                format: body.format,
                timeout: context.spec.timeout.as_ref().and_then(|t| t.parsed().ok()),
            }),
        }))
    }

    fn kubernetes_image(&self, body: &SqlBody) -> Option<String> {
        body.image.clone()
    }
}

/// `name` as one token of a JSON pointer.
fn pointer_token(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// Whether an input of `ty` can be a parameter of `engine`: a single
/// value; a file or folder only where the engine reads the local path.
fn bindable(ty: &TypeExpr, engine: SqlEngine) -> bool {
    match ty {
        TypeExpr::List(_) | TypeExpr::Map(_) | TypeExpr::Json | TypeExpr::Optional(_) => false,
        TypeExpr::File | TypeExpr::Directory => !engine.is_remote(),
        _ => true,
    }
}

/// Each placeholder of the query: an input of the task, bindable, outside
/// quotes and comments.
fn check_query(body: &SqlBody, task: &TaskView<'_>) -> Vec<Finding> {
    let mut found = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for placeholder in params::placeholders(&body.query) {
        let written = placeholder.written;
        let nth = seen.iter().filter(|p| **p == written).count();
        seen.push(written);
        let at = |rule: Rule, message: String| {
            Finding::new(rule, "/query", message).within(written, nth)
        };
        let name = match placeholder.reference {
            Err(e) => {
                found.push(at(Rule::InvalidTemplate, e.to_string()));
                continue;
            }
            Ok(Reference::Input(name)) => name,
            Ok(other) => {
                found.push(
                    at(Rule::InvalidTemplate, format!("a task cannot reference `{other}`"))
                        .with_help("task bodies see only their own inputs; bind node outputs to task inputs in the workflow"),
                );
                continue;
            }
        };
        if let Some(inside) = placeholder.inside {
            found.push(
                at(
                    Rule::ParameterInQuotes,
                    format!("`{written}` sits inside {inside}, where its value would become text, not a parameter"),
                )
                .with_help(format!(
                    "write it outside quotes and comments, as a value of its own: `WHERE name = {written}` (the value is bound, quotes are not needed)"
                )),
            );
            continue;
        }
        let Some(declared) = task.inputs.get(name.as_str()) else {
            found.push(at(
                Rule::UnknownInput { name: name.clone() },
                format!("`{written}` references an input this task does not declare"),
            ));
            continue;
        };
        if let Some(ty) = declared
            && !bindable(ty, body.engine)
        {
            let help = if matches!(ty, TypeExpr::File | TypeExpr::Directory) {
                format!(
                    "a `{}` server cannot read a file of this attempt: load it with a DuckDB or Hive query",
                    body.engine.name()
                )
            } else {
                "a parameter is one value (string, int, float, bool, datetime, duration or enum); pass each value as an input of its own".to_owned()
            };
            found.push(
                at(
                    Rule::ParameterNotScalar,
                    format!("`{written}` binds the `{ty}` input `{name}`, which is not one value a query can bind"),
                )
                .with_help(help),
            );
        }
    }
    found
}

/// The query with its parameters, and each parameter's value, as the
/// engine binds them.
fn bind(body: &SqlBody, context: &Context<'_>) -> Result<(String, Vec<Parameter>), LaunchError> {
    let statement = params::statement(&body.query, body.engine.marker())
        .map_err(|e| LaunchError::Sql(e.to_string()))?;
    let mut parameters = Vec::new();
    for name in statement.inputs {
        let value = context
            .inputs
            .get(&name)
            .cloned()
            .ok_or_else(|| LaunchError::NoValue(name.clone()))?;
        let ty = context.spec.inputs.get(&name).and_then(|p| p.type_expr());
        if let Some(ty) = &ty
            && !bindable(ty, body.engine)
        {
            return Err(LaunchError::Sql(format!(
                "`{{{{ inputs.{name} }}}}` binds the `{ty}` input `{name}`, which is not one value a query can bind"
            )));
        }
        parameters.push(Parameter { name, value, ty });
    }
    Ok((statement.text, parameters))
}

/// The task's outputs and their types (undeclared types read as `json`).
fn declared_outputs(context: &Context<'_>) -> Vec<(String, TypeExpr)> {
    context
        .spec
        .outputs
        .iter()
        .map(|(name, port)| (name.clone(), port.type_expr().unwrap_or(TypeExpr::Json)))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::spec::TaskSpec;
    use crate::task::{RepositoryFiles, TaskTypes};

    fn spec(body: Value) -> TaskSpec {
        serde_json::from_value(json!({
            "inputs": { "who": { "type": "string" }, "n": { "type": "int" } },
            "outputs": { "rows": { "type": "int" } },
            "sql": body,
        }))
        .expect("a spec")
    }

    #[test]
    fn a_duckdb_query_runs_the_runner_with_its_values_as_data() {
        let spec = spec(json!({
            "engine": "duckdb",
            "query": "SELECT {{ inputs.who }} AS who, {{ inputs.n }} AS n",
        }));
        let inputs = BTreeMap::from([
            ("who".to_owned(), json!("'; DROP TABLE t; --")),
            ("n".to_owned(), json!(3)),
        ]);
        let context = Context {
            spec: &spec,
            inputs: &inputs,
            files: &RepositoryFiles::new(),
        };
        let types = TaskTypes::builtin();
        assert!(types.client(&context).expect("no error").is_none());
        let launch = types.launch(&context).expect("a launch");
        assert_eq!(launch.program, "python3");
        let settings: Value =
            serde_json::from_str(&launch.files[1].1).expect("the settings are JSON");
        assert_eq!(settings["query"], "SELECT ? AS who, ? AS n");
        assert_eq!(settings["params"], json!(["'; DROP TABLE t; --", 3]));
    }

    #[test]
    fn a_postgres_query_runs_in_process() {
        let spec = spec(json!({
            "engine": "postgres",
            "connection": { "env": "DB" },
            "query": "SELECT {{ inputs.n }}",
        }));
        let inputs = BTreeMap::from([("n".to_owned(), json!(3))]);
        let context = Context {
            spec: &spec,
            inputs: &inputs,
            files: &RepositoryFiles::new(),
        };
        let types = TaskTypes::builtin();
        assert!(types.client(&context).expect("no error").is_some());
        assert!(types.launch(&context).is_err());
    }
}

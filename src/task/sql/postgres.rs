//! A PostgreSQL query in weir's process, over sqlx: parameters bound typed
//! by their input's declared type, rows decoded to JSON by column type.
//! Stopping cancels the query on the server (`pg_cancel_backend` from a
//! second connection), so a cancelled attempt leaves no query running; a
//! task's timeout is the session's `statement_timeout` too, so a query
//! whose daemon died still ends.

use serde_json::Value;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{
    Column as _, Connection as _, Executor as _, PgConnection, Postgres, Row as _, TypeInfo as _,
};

use super::ResultFormat;
use super::connection::{Parameter, Secret};
use super::results::ResultSet;
use crate::spec::DaemonSecret;
use crate::spec::types::TypeExpr;
use crate::task::{BoxFuture, ClientIo, ClientRun};

/// One PostgreSQL attempt.
pub struct PostgresRun {
    /// The query, parameters written `$1`, `$2`, …
    pub statement: String,
    pub parameters: Vec<Parameter>,
    pub connection: DaemonSecret,
    pub outputs: Vec<(String, TypeExpr)>,
    pub format: ResultFormat,
    /// The task's timeout, which the server enforces too
    /// (`statement_timeout`): should weir die while the query runs, the
    /// server still stops it then.
    pub timeout: Option<std::time::Duration>,
}

impl ClientRun for PostgresRun {
    fn run(self: Box<Self>, io: ClientIo) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async move {
            let secret = Secret::read(&self.connection, &io.env)?;
            let mut conn = PgConnection::connect(secret.expose()).await.map_err(|e| {
                format!(
                    "cannot connect to PostgreSQL: {}",
                    secret.scrub(&e.to_string())
                )
            })?;
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut conn)
                .await
                .map_err(|e| secret.scrub(&e.to_string()))?;
            if let Some(timeout) = self.timeout {
                let millis = timeout.as_millis().clamp(1, i32::MAX as u128);
                sqlx::query(&format!("SET statement_timeout = {millis}"))
                    .execute(&mut conn)
                    .await
                    .map_err(|e| secret.scrub(&e.to_string()))?;
            }
            io.log(&format!(
                "weir: running the query on PostgreSQL (backend {pid}) with {} parameter(s)",
                self.parameters.len()
            ));
            let query = self
                .parameters
                .iter()
                .try_fold(sqlx::query(&self.statement), bind)?;
            let rows = tokio::select! {
                rows = query.fetch_all(&mut conn) => {
                    rows.map_err(|e| format!("the query failed: {}", secret.scrub(&e.to_string())))?
                }
                () = io.stop.cancelled() => {
                    cancel_backend(&secret, pid).await;
                    return Err("the query was stopped".to_owned());
                }
            };
            let mut result = decode(&rows)?;
            if rows.is_empty() {
                // No row to read the columns from: the server describes them.
                let described = (&mut conn)
                    .describe(&self.statement)
                    .await
                    .map_err(|e| format!("the query failed: {}", secret.scrub(&e.to_string())))?;
                for column in described.columns() {
                    result.columns.push(column.name().to_owned());
                    result.types.push(
                        duckdb_type(column.type_info().name())
                            .unwrap_or("VARCHAR")
                            .to_owned(),
                    );
                }
            }
            io.log(&format!(
                "weir: the query returned {} row(s)",
                result.rows.len()
            ));
            let _ = conn.close().await;
            result
                .write_outputs(&self.outputs, &io.outputs, self.format, &io.env)
                .await
        })
    }
}

/// Binds one parameter typed by its input's declared type: `int` as
/// `int8`, `float` as `float8`, `bool`, anything else as text.
fn bind<'q>(
    query: Query<'q, Postgres, PgArguments>,
    parameter: &Parameter,
) -> Result<Query<'q, Postgres, PgArguments>, String> {
    let wrong = || {
        format!(
            "input `{}` is not a {}",
            parameter.name,
            parameter
                .ty
                .as_ref()
                .map_or_else(|| "value".to_owned(), |t| format!("`{t}`"))
        )
    };
    Ok(match (&parameter.ty, &parameter.value) {
        (_, Value::Null) => query.bind(None::<String>),
        (Some(TypeExpr::Int), v) => query.bind(v.as_i64().ok_or_else(wrong)?),
        (Some(TypeExpr::Float), v) => query.bind(v.as_f64().ok_or_else(wrong)?),
        (Some(TypeExpr::Bool), v) => query.bind(v.as_bool().ok_or_else(wrong)?),
        (Some(TypeExpr::Json), v) => query.bind(sqlx::types::Json(v.clone())),
        (_, Value::String(s)) => query.bind(s.clone()),
        (_, Value::Bool(b)) => query.bind(*b),
        (_, Value::Number(n)) => match n.as_i64() {
            Some(i) => query.bind(i),
            None => query.bind(n.as_f64().ok_or_else(wrong)?),
        },
        (_, other) => query.bind(sqlx::types::Json(other.clone())),
    })
}

/// Asks the server to stop the query of backend `pid` (best effort).
async fn cancel_backend(secret: &Secret, pid: i32) {
    let cancelled = async {
        let mut conn = PgConnection::connect(secret.expose()).await?;
        sqlx::query("SELECT pg_cancel_backend($1)")
            .bind(pid)
            .execute(&mut conn)
            .await?;
        conn.close().await
    };
    if let Err(e) = cancelled.await {
        tracing::warn!(pid, error = %secret.scrub(&e.to_string()), "cannot cancel a stopped query");
    }
}

/// The DuckDB type (a Parquet file's column) of a PostgreSQL type weir
/// reads ([`decode`]).
fn duckdb_type(postgres: &str) -> Option<&'static str> {
    Some(match postgres {
        "INT2" => "SMALLINT",
        "INT4" => "INTEGER",
        "INT8" => "BIGINT",
        "FLOAT4" => "FLOAT",
        "FLOAT8" => "DOUBLE",
        "BOOL" => "BOOLEAN",
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" => "VARCHAR",
        "JSON" | "JSONB" => "JSON",
        "TIMESTAMPTZ" => "TIMESTAMPTZ",
        "TIMESTAMP" => "TIMESTAMP",
        "DATE" => "DATE",
        _ => return None,
    })
}

/// The rows as JSON values, by column type; a type without a JSON form
/// fails naming the column.
fn decode(rows: &[PgRow]) -> Result<ResultSet, String> {
    let Some(first) = rows.first() else {
        return Ok(ResultSet::default());
    };
    let columns: Vec<String> = first
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    let types = first
        .columns()
        .iter()
        .map(|c| {
            duckdb_type(c.type_info().name())
                .unwrap_or("VARCHAR")
                .to_owned()
        })
        .collect();
    let mut out = ResultSet {
        columns,
        types,
        rows: Vec::with_capacity(rows.len()),
    };
    for row in rows {
        let mut values = Vec::with_capacity(row.columns().len());
        for (i, column) in row.columns().iter().enumerate() {
            let ty = column.type_info().name();
            let failed = |e: sqlx::Error| format!("column `{}` ({ty}): {e}", column.name());
            let value = match ty {
                "INT2" => row
                    .try_get::<Option<i16>, _>(i)
                    .map_err(failed)?
                    .map(Value::from),
                "INT4" => row
                    .try_get::<Option<i32>, _>(i)
                    .map_err(failed)?
                    .map(Value::from),
                "INT8" => row
                    .try_get::<Option<i64>, _>(i)
                    .map_err(failed)?
                    .map(Value::from),
                "FLOAT4" => row
                    .try_get::<Option<f32>, _>(i)
                    .map_err(failed)?
                    .map(Value::from),
                "FLOAT8" => row
                    .try_get::<Option<f64>, _>(i)
                    .map_err(failed)?
                    .map(Value::from),
                "BOOL" => row
                    .try_get::<Option<bool>, _>(i)
                    .map_err(failed)?
                    .map(Value::from),
                "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" => row
                    .try_get::<Option<String>, _>(i)
                    .map_err(failed)?
                    .map(Value::from),
                "JSON" | "JSONB" => row
                    .try_get::<Option<sqlx::types::Json<Value>>, _>(i)
                    .map_err(failed)?
                    .map(|j| j.0),
                "TIMESTAMPTZ" => row
                    .try_get::<Option<chrono::DateTime<chrono::Utc>>, _>(i)
                    .map_err(failed)?
                    .map(|t| Value::from(t.to_rfc3339())),
                "TIMESTAMP" => row
                    .try_get::<Option<chrono::NaiveDateTime>, _>(i)
                    .map_err(failed)?
                    .map(|t| Value::from(t.format("%Y-%m-%dT%H:%M:%S%.f").to_string())),
                "DATE" => row
                    .try_get::<Option<chrono::NaiveDate>, _>(i)
                    .map_err(failed)?
                    .map(|d| Value::from(d.to_string())),
                other => {
                    return Err(format!(
                        "column `{}` is of type `{other}`, which weir does not read: cast it (`::text`, `::float8`)",
                        column.name()
                    ));
                }
            };
            values.push(value.unwrap_or(Value::Null));
        }
        out.rows.push(values);
    }
    Ok(out)
}

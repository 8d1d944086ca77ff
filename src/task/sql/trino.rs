//! A Trino (or Presto) query in weir's process, over the coordinator's
//! HTTP client protocol: `POST {server}/v1/statement` with the SQL as the
//! body, then `GET` each `nextUri` until a document has none, gathering
//! `columns` and `data`; an `error` document fails the attempt with its
//! message. Stopping sends `DELETE` to the last `nextUri`, which cancels
//! the query on the coordinator.
//!
//! Parameters: the protocol has no bind parameters of its own; a prepared
//! statement is how its clients (the JDBC driver) send values. The query
//! goes unchanged (`?` for each parameter) in the
//! `X-Trino-Prepared-Statement: weir=<url-encoded query>` header, and the
//! body is `EXECUTE weir USING <literal>, …`, each literal written from its
//! typed value: a string quoted with `'` doubled (Trino's only escape in a
//! string literal), a number from its parsed value, a boolean as
//! `true`/`false`. A value is never written into the query's own text.
//!
//! ureq is blocking: the whole exchange runs on `spawn_blocking`.

use std::time::Duration;

use serde_json::Value;

use super::ResultFormat;
use super::connection::{Parameter, Secret};
use super::results::ResultSet;
use crate::spec::DaemonSecret;
use crate::spec::types::TypeExpr;
use crate::task::{BoxFuture, ClientIo, ClientRun};

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// How many times a busy coordinator (502, 503, 504) is asked again.
const RETRIES: u32 = 10;

/// One Trino or Presto attempt.
pub struct TrinoRun {
    /// Presto's headers (`X-Presto-*`) rather than Trino's.
    pub presto: bool,
    /// The query, each parameter written `?`.
    pub statement: String,
    pub parameters: Vec<Parameter>,
    pub connection: DaemonSecret,
    pub catalog: Option<String>,
    pub schema: Option<String>,
    pub outputs: Vec<(String, TypeExpr)>,
    pub format: ResultFormat,
    /// The task's timeout, which the coordinator enforces too
    /// (`query_max_run_time`): should weir die while the query runs, the
    /// coordinator still stops it then.
    pub timeout: Option<std::time::Duration>,
}

impl ClientRun for TrinoRun {
    fn run(self: Box<Self>, io: ClientIo) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async move {
            let secret = Secret::read(&self.connection, &io.env)?;
            let io = std::sync::Arc::new(io);
            let shared = io.clone();
            let result = tokio::task::spawn_blocking(move || {
                let result = self.query(&secret, &shared);
                (self, result.map_err(|e| secret.scrub(&e)))
            })
            .await
            .map_err(|e| format!("the Trino client stopped: {e}"))?;
            let (run, result) = result;
            let result = result?;
            io.log(&format!(
                "weir: the query returned {} row(s)",
                result.rows.len()
            ));
            result
                .write_outputs(&run.outputs, &io.outputs, run.format, &io.env)
                .await
        })
    }
}

/// The DuckDB type (a Parquet file's column) of a Trino type as the
/// protocol names it (`bigint`, `varchar(10)`, `decimal(10,2)`,
/// `timestamp(3) with time zone`, `array(varchar)`): nested types as JSON,
/// what DuckDB has no name for as text.
fn duckdb_type(trino: &str) -> String {
    let trino = trino.trim().to_ascii_lowercase();
    let base = trino.split('(').next().unwrap_or_default().trim();
    match base {
        "bigint" => "BIGINT".into(),
        "integer" | "int" => "INTEGER".into(),
        "smallint" => "SMALLINT".into(),
        "tinyint" => "TINYINT".into(),
        "double" => "DOUBLE".into(),
        "real" => "FLOAT".into(),
        "boolean" => "BOOLEAN".into(),
        "date" => "DATE".into(),
        "uuid" => "UUID".into(),
        "json" | "array" | "map" | "row" => "JSON".into(),
        "decimal" => trino.to_ascii_uppercase(),
        "timestamp" if trino.ends_with("with time zone") => "TIMESTAMPTZ".into(),
        "timestamp" => "TIMESTAMP".into(),
        _ => "VARCHAR".into(),
    }
}

/// Where the coordinator is and who asks, from a connection URL
/// `http[s]://[user[:password]@]host[:port][/catalog[/schema]]`.
#[derive(Debug, PartialEq)]
struct Coordinator {
    server: String,
    user: Option<String>,
    password: Option<String>,
    catalog: Option<String>,
    schema: Option<String>,
}

fn coordinator(url: &str) -> Result<Coordinator, String> {
    let (scheme, rest) = url
        .split_once("://")
        .filter(|(s, _)| matches!(*s, "http" | "https"))
        .ok_or("the connection is not an http:// or https:// URL")?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, authority),
    };
    let (user, password) = match user.map(|u| u.split_once(':').unwrap_or((u, ""))) {
        Some((u, p)) => (
            Some(percent_decode(u)),
            (!p.is_empty()).then(|| percent_decode(p)),
        ),
        None => (None, None),
    };
    if password.is_some() && scheme != "https" {
        return Err("the connection has a password, which is sent over https only".to_owned());
    }
    let mut segments = path.split('/').filter(|s| !s.is_empty()).map(str::to_owned);
    Ok(Coordinator {
        server: format!("{scheme}://{host}"),
        user,
        password,
        catalog: segments.next(),
        schema: segments.next(),
    })
}

impl TrinoRun {
    fn header(&self, name: &str) -> String {
        format!(
            "{}-{name}",
            if self.presto { "X-Presto" } else { "X-Trino" }
        )
    }

    /// The whole exchange, blocking.
    fn query(&self, secret: &Secret, io: &ClientIo) -> Result<ResultSet, String> {
        let target = coordinator(secret.expose())?;
        let agent: ureq::Agent = crate::outbound::agent_config(REQUEST_TIMEOUT)
            .http_status_as_error(false)
            .build()
            .into();
        let mut headers = vec![
            (
                self.header("User"),
                target.user.clone().unwrap_or_else(|| "weir".to_owned()),
            ),
            (self.header("Source"), "weir".to_owned()),
        ];
        if let Some(catalog) = self.catalog.as_ref().or(target.catalog.as_ref()) {
            headers.push((self.header("Catalog"), catalog.clone()));
        }
        if let Some(schema) = self.schema.as_ref().or(target.schema.as_ref()) {
            headers.push((self.header("Schema"), schema.clone()));
        }
        if let Some(timeout) = self.timeout {
            headers.push((
                self.header("Session"),
                format!("query_max_run_time={}s", timeout.as_secs().max(1)),
            ));
        }
        if let (Some(user), Some(password)) = (&target.user, &target.password) {
            headers.push((
                "Authorization".to_owned(),
                format!("Basic {}", base64(format!("{user}:{password}").as_bytes())),
            ));
        }
        let body = if self.parameters.is_empty() {
            self.statement.clone()
        } else {
            headers.push((
                self.header("Prepared-Statement"),
                format!("weir={}", percent_encode(&self.statement)),
            ));
            let literals: Vec<String> = self
                .parameters
                .iter()
                .map(literal)
                .collect::<Result<_, _>>()?;
            format!("EXECUTE weir USING {}", literals.join(", "))
        };
        io.log(&format!(
            "weir: running the query on {} ({}) with {} parameter(s)",
            if self.presto { "Presto" } else { "Trino" },
            target.server,
            self.parameters.len()
        ));
        let url = format!("{}/v1/statement", target.server);
        let mut document = answer(|| {
            headers
                .iter()
                .fold(agent.post(&url), |request, (name, value)| {
                    request.header(name, value)
                })
                .send(body.as_bytes())
        })?;
        let mut result = ResultSet::default();
        loop {
            if let Some(error) = document.get("error").filter(|e| !e.is_null()) {
                let name = error
                    .get("errorName")
                    .and_then(Value::as_str)
                    .unwrap_or("ERROR");
                let message = error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("no message");
                return Err(format!("the query failed: {name}: {message}"));
            }
            if result.columns.is_empty()
                && let Some(columns) = document.get("columns").and_then(Value::as_array)
            {
                let field = |c: &Value, key: &str| {
                    c.get(key).and_then(Value::as_str).unwrap_or("?").to_owned()
                };
                result.columns = columns.iter().map(|c| field(c, "name")).collect();
                result.types = columns
                    .iter()
                    .map(|c| duckdb_type(&field(c, "type")))
                    .collect();
            }
            if let Some(rows) = document.get("data").and_then(Value::as_array) {
                for row in rows {
                    result
                        .rows
                        .push(row.as_array().cloned().unwrap_or_default());
                }
            }
            let Some(next) = document
                .get("nextUri")
                .and_then(Value::as_str)
                .map(str::to_owned)
            else {
                return Ok(result);
            };
            if io.stop.is_cancelled() {
                io.log("weir: stopping: cancelling the query on the coordinator");
                if let Err(e) = agent.delete(&next).call() {
                    tracing::warn!(error = %e, "cannot cancel a stopped Trino query");
                }
                return Err("the query was stopped".to_owned());
            }
            document = answer(|| agent.get(&next).call())?;
        }
    }
}

/// The JSON document of a response, asking again while the coordinator is
/// busy (502, 503, 504), as its clients do.
fn answer(
    send: impl Fn() -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Value, String> {
    let mut tries = 0;
    loop {
        let mut response = send().map_err(|e| format!("the coordinator did not answer: {e}"))?;
        let status = response.status().as_u16();
        if matches!(status, 502..=504) && tries < RETRIES {
            tries += 1;
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("cannot read the coordinator's answer: {e}"))?;
        if status != 200 {
            let first: String = text
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect();
            return Err(format!("the coordinator answered {status}: {first}"));
        }
        return serde_json::from_str(&text)
            .map_err(|e| format!("the coordinator's answer is not JSON: {e}"));
    }
}

/// A parameter as a SQL literal of its type.
fn literal(parameter: &Parameter) -> Result<String, String> {
    let quoted = |s: &str| format!("'{}'", s.replace('\'', "''"));
    Ok(match (&parameter.ty, &parameter.value) {
        (_, Value::Null) => "NULL".to_owned(),
        (Some(TypeExpr::Datetime), Value::String(s)) => {
            format!("from_iso8601_timestamp({})", quoted(s))
        }
        (_, Value::String(s)) => quoted(s),
        (_, Value::Bool(b)) => b.to_string(),
        (_, Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) if f.is_finite() => format!("DOUBLE '{f:e}'"),
            _ => {
                return Err(format!(
                    "input `{}` is not a number Trino reads",
                    parameter.name
                ));
            }
        },
        (_, _) => {
            return Err(format!(
                "input `{}` is not one value a query can bind",
                parameter.name
            ));
        }
    })
}

/// `text` with everything but unreserved characters percent-encoded.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard Base64 with padding (HTTP Basic authentication).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parameter(ty: Option<TypeExpr>, value: Value) -> Parameter {
        Parameter {
            name: "x".into(),
            value,
            ty,
        }
    }

    #[test]
    fn literals_are_written_from_typed_values() {
        assert_eq!(
            literal(&parameter(
                Some(TypeExpr::String),
                json!("'; DROP TABLE t; --")
            )),
            Ok("'''; DROP TABLE t; --'".to_owned())
        );
        assert_eq!(
            literal(&parameter(Some(TypeExpr::Int), json!(42))),
            Ok("42".to_owned())
        );
        assert_eq!(
            literal(&parameter(Some(TypeExpr::Bool), json!(true))),
            Ok("true".to_owned())
        );
        assert_eq!(
            literal(&parameter(Some(TypeExpr::Float), json!(1.5))),
            Ok("DOUBLE '1.5e0'".to_owned())
        );
        assert!(literal(&parameter(None, json!([1]))).is_err());
    }

    #[test]
    fn a_connection_url_names_the_server_user_catalog_and_schema() {
        assert_eq!(
            coordinator("https://ana:p%40ss@trino:8443/hive/sales"),
            Ok(Coordinator {
                server: "https://trino:8443".into(),
                user: Some("ana".into()),
                password: Some("p@ss".into()),
                catalog: Some("hive".into()),
                schema: Some("sales".into()),
            })
        );
        assert!(coordinator("http://ana:pw@trino:8080").is_err());
        assert!(coordinator("trino:8080").is_err());
        assert_eq!(base64(b"ana:p@ss"), "YW5hOnBAc3M=");
        let presto = TrinoRun {
            presto: true,
            statement: String::new(),
            parameters: Vec::new(),
            connection: DaemonSecret {
                env: Some("P".into()),
                file: None,
            },
            catalog: None,
            schema: None,
            outputs: Vec::new(),
            format: ResultFormat::Csv,
            timeout: None,
        };
        assert_eq!(
            presto.header("Prepared-Statement"),
            "X-Presto-Prepared-Statement"
        );
        assert_eq!(percent_encode("a ?'"), "a%20%3F%27");
    }

    #[test]
    fn trino_types_become_duckdb_types() {
        for (trino, duckdb) in [
            ("bigint", "BIGINT"),
            ("varchar(10)", "VARCHAR"),
            ("decimal(10,2)", "DECIMAL(10,2)"),
            ("timestamp(3) with time zone", "TIMESTAMPTZ"),
            ("timestamp(6)", "TIMESTAMP"),
            ("array(varchar)", "JSON"),
            ("row(a bigint)", "JSON"),
            ("ipaddress", "VARCHAR"),
        ] {
            assert_eq!(duckdb_type(trino), duckdb, "{trino}");
        }
    }
}

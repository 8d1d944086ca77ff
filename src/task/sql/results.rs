//! A result set turned into a task's outputs, under the data contract
//! (DESIGN.md section 6): what an in-process client (PostgreSQL, Trino)
//! writes into `$WEIR_OUTPUTS`, so the executor reads it back as it reads
//! any task's. The Python runner (`sql_runner.py`) does the same for DuckDB
//! and Hive.
//!
//! By the output's declared type: `int` named `rows` ← the number of rows;
//! `file` ← the result set as CSV with a header line (RFC 4180 quoting),
//! or with `format: parquet` as Parquet, its columns typed as the engine
//! typed them (weir links no Arrow: DuckDB, as a process, writes it from
//! the rows as JSON lines); `json` ← the rows as an array of objects.
//! Nothing else is filled (validation says so, W041).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use super::ResultFormat;
use crate::spec::types::TypeExpr;

/// Writes a Parquet file from the rows (JSON lines of objects) with the
/// columns' DuckDB types: `rows out '[[name, type], …]'`.
const TO_PARQUET: &str = r#"
import json, sys
import duckdb
rows, out, columns = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
q = lambda text: "'" + text.replace("'", "''") + "'"
struct = "{" + ", ".join(q(name) + ": " + q(ty) for name, ty in columns) + "}"
duckdb.sql(
    "COPY (SELECT * FROM read_json(" + q(rows) + ", format = 'newline_delimited', columns = " + struct + "))"
    + " TO " + q(out) + " (FORMAT parquet)"
)
"#;

/// The columns and rows a query returned, values as JSON.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultSet {
    pub columns: Vec<String>,
    /// Each column's type as DuckDB names it (`BIGINT`, `VARCHAR`,
    /// `DECIMAL(10,2)`…): the Parquet file's schema.
    pub types: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// What an output of `ty` named `name` receives from a result set, or why
/// nothing can fill it (a finding's message).
pub fn fillable(name: &str, ty: &TypeExpr) -> Result<(), String> {
    match ty {
        TypeExpr::Int if name == "rows" => Ok(()),
        TypeExpr::File | TypeExpr::Json => Ok(()),
        TypeExpr::Int => Err(format!(
            "a `sql` task fills an `int` output only when it is named `rows` (the row count), not `{name}`"
        )),
        other => Err(format!(
            "a `sql` task cannot fill the `{other}` output `{name}`"
        )),
    }
}

impl ResultSet {
    /// The rows as objects, column name to value.
    pub fn objects(&self) -> Vec<Value> {
        self.rows
            .iter()
            .map(|row| {
                Value::Object(
                    self.columns
                        .iter()
                        .cloned()
                        .zip(row.iter().cloned())
                        .collect::<Map<_, _>>(),
                )
            })
            .collect()
    }

    /// The result set as CSV: a header line, then one line per row; nulls
    /// empty, strings as they are, anything else as its JSON.
    pub fn csv(&self) -> String {
        let mut out = String::new();
        let line = |out: &mut String, cells: &mut dyn Iterator<Item = String>| {
            let cells: Vec<String> = cells.map(|c| csv_cell(&c)).collect();
            out.push_str(&cells.join(","));
            out.push_str("\r\n");
        };
        line(&mut out, &mut self.columns.iter().cloned());
        for row in &self.rows {
            line(
                &mut out,
                &mut row.iter().map(|v| match v {
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                }),
            );
        }
        out
    }

    /// Writes every output `outputs` declares into `dir` (`$WEIR_OUTPUTS`):
    /// scalars into `outputs.json`, files by name in `format`. Parquet is
    /// written by `python3` with `duckdb`, run in the task's environment
    /// `env` (as a DuckDB task's runner is).
    pub async fn write_outputs(
        &self,
        outputs: &[(String, TypeExpr)],
        dir: &Path,
        format: ResultFormat,
        env: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        let cannot = |e: std::io::Error| format!("cannot write the outputs: {e}");
        let mut scalars = Map::new();
        for (name, ty) in outputs {
            let name = name.as_str();
            match ty {
                TypeExpr::Int if name == "rows" => {
                    scalars.insert(name.to_owned(), Value::from(self.rows.len()));
                }
                TypeExpr::File => match format {
                    ResultFormat::Csv => {
                        std::fs::write(dir.join(name), self.csv()).map_err(cannot)?
                    }
                    ResultFormat::Parquet => self.write_parquet(dir, name, env).await?,
                },
                TypeExpr::Json => {
                    scalars.insert(name.to_owned(), Value::Array(self.objects()));
                }
                // Refused by validation; the executor reports it missing.
                _ => {}
            }
        }
        std::fs::write(dir.join("outputs.json"), Value::Object(scalars).to_string()).map_err(cannot)
    }

    /// The result set as the Parquet file `dir/name`, through JSON lines
    /// beside it (removed once read).
    async fn write_parquet(
        &self,
        dir: &Path,
        name: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        if self.types.len() != self.columns.len() {
            return Err("the query's column types are not known: Parquet needs them".into());
        }
        let lines = dir.join(format!(".{name}.rows.jsonl"));
        let mut text = String::new();
        for object in self.objects() {
            text.push_str(&object.to_string());
            text.push('\n');
        }
        std::fs::write(&lines, text)
            .map_err(|e| format!("cannot write `{}`: {e}", lines.display()))?;
        let columns: Vec<(&String, &String)> = self.columns.iter().zip(&self.types).collect();
        let output = tokio::process::Command::new("python3")
            .arg("-c")
            .arg(TO_PARQUET)
            .arg(&lines)
            .arg(dir.join(name))
            .arg(serde_json::to_string(&columns).expect("names serialize"))
            .env_clear()
            .envs(env)
            .kill_on_drop(true)
            .output()
            .await;
        let _ = std::fs::remove_file(&lines);
        let output = output.map_err(|e| {
            format!("cannot run python3 to write Parquet (it needs the `duckdb` package): {e}")
        })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
            return Err(format!(
                "DuckDB could not write the result set as Parquet ({}): {}",
                output.status,
                tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
            ));
        }
        Ok(())
    }
}

/// One CSV cell, quoted when it holds a comma, a quote or a line end.
fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn set() -> ResultSet {
        ResultSet {
            columns: vec!["id".into(), "name".into(), "meta".into()],
            types: vec!["BIGINT".into(), "VARCHAR".into(), "JSON".into()],
            rows: vec![
                vec![json!(1), json!("a, \"b\""), json!({"k": 1})],
                vec![json!(2), Value::Null, json!(null)],
            ],
        }
    }

    #[test]
    fn csv_has_a_header_and_quotes_what_needs_it() {
        assert_eq!(
            set().csv(),
            "id,name,meta\r\n1,\"a, \"\"b\"\"\",\"{\"\"k\"\":1}\"\r\n2,,\r\n"
        );
    }

    #[tokio::test]
    async fn each_output_gets_what_its_type_says() {
        let dir = tempfile::tempdir().expect("a folder");
        set()
            .write_outputs(
                &[
                    ("rows".into(), TypeExpr::Int),
                    ("table".into(), TypeExpr::File),
                    ("all".into(), TypeExpr::Json),
                ],
                dir.path(),
                ResultFormat::Csv,
                &BTreeMap::new(),
            )
            .await
            .expect("written");
        let scalars: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("outputs.json")).expect("read"),
        )
        .expect("json");
        assert_eq!(scalars["rows"], json!(2));
        assert_eq!(
            scalars["all"][0],
            json!({"id": 1, "name": "a, \"b\"", "meta": {"k": 1}})
        );
        assert!(dir.path().join("table").is_file());
        assert!(fillable("rows", &TypeExpr::Int).is_ok());
        assert!(fillable("count", &TypeExpr::Int).is_err());
        assert!(fillable("x", &TypeExpr::String).is_err());
    }
}

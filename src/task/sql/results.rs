//! A result set turned into a task's outputs, under the data contract
//! (DESIGN.md section 6): what an in-process client (PostgreSQL, Trino)
//! writes into `$WEIR_OUTPUTS`, so the executor reads it back as it reads
//! any task's. The Python runner (`sql_runner.py`) does the same for DuckDB
//! and Hive.
//!
//! By the output's declared type: `int` named `rows` ← the number of rows;
//! `file` ← the result set as CSV with a header line (RFC 4180 quoting);
//! `json` ← the rows as an array of objects. Nothing else is filled
//! (validation says so, W041).

use std::path::Path;

use serde_json::{Map, Value};

use crate::spec::types::TypeExpr;

/// The columns and rows a query returned, values as JSON.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultSet {
    pub columns: Vec<String>,
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
    /// scalars into `outputs.json`, files by name.
    pub fn write_outputs<'a>(
        &self,
        outputs: impl IntoIterator<Item = (&'a str, TypeExpr)>,
        dir: &Path,
    ) -> std::io::Result<()> {
        let mut scalars = Map::new();
        for (name, ty) in outputs {
            match ty {
                TypeExpr::Int if name == "rows" => {
                    scalars.insert(name.to_owned(), Value::from(self.rows.len()));
                }
                TypeExpr::File => std::fs::write(dir.join(name), self.csv())?,
                TypeExpr::Json => {
                    scalars.insert(name.to_owned(), Value::Array(self.objects()));
                }
                // Refused by validation; the executor reports it missing.
                _ => {}
            }
        }
        std::fs::write(dir.join("outputs.json"), Value::Object(scalars).to_string())
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

    #[test]
    fn each_output_gets_what_its_type_says() {
        let dir = tempfile::tempdir().expect("a folder");
        set()
            .write_outputs(
                [
                    ("rows", TypeExpr::Int),
                    ("table", TypeExpr::File),
                    ("all", TypeExpr::Json),
                ],
                dir.path(),
            )
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

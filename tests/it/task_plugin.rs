//! A task type written only here, in the tests (issue 15): registered with
//! one `.with(Echo)`, its body is validated through the schema generated
//! for it and through its own checks, with positions, and tasks of it get
//! versions; nothing under src/ names it. (Running it needs the executor
//! boundary; its launch is built, not run.)

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use weir::task::{
    Context, Destination, Finding, Launch, LaunchError, TaskType, TaskTypes, TaskView,
    check_template, interpolate,
};
use weir::validate::{Options, Report};

use crate::common::validate_files_with;

/// What to echo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct EchoBody {
    /// May interpolate `{{ inputs.x }}`.
    text: String,
}

/// `echo` tasks: the output `text` is `text`, inputs interpolated as data.
struct Echo;

impl TaskType for Echo {
    const NAME: &'static str = "echo";
    type Body = EchoBody;

    fn check(&self, body: &EchoBody, task: &TaskView<'_>) -> Vec<Finding> {
        let mut found = check_template(&body.text, "/text", task);
        if task
            .output_type("text")
            .is_none_or(|t| t.to_string() != "string")
        {
            found.push(Finding::invalid(
                "",
                "an echo task declares `outputs: { text: { type: string } }`",
            ));
        }
        found
    }

    fn launch(&self, body: &EchoBody, context: &Context<'_>) -> Result<Launch, LaunchError> {
        let text = interpolate(&body.text, context, Destination::Data)?;
        Ok(Launch {
            program: "python3".into(),
            args: vec![
                "-c".into(),
                "import json, os; json.dump({'text': os.environ['ECHO']}, \
                 open(os.path.join(os.environ['WEIR_OUTPUTS'], 'outputs.json'), 'w'))"
                    .into(),
            ],
            env: BTreeMap::from([("ECHO".into(), text)]),
            files: Vec::new(),
            notice: None,
            working_dir: None,
        })
    }
}

const GREET: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: greet, project: p }
spec:
  inputs: { who: { type: string } }
  outputs: { text: { type: string } }
  echo: { text: "hello {{ inputs.who }}" }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: hello, project: p }
spec:
  inputs: { who: { type: string } }
  nodes:
    - { id: greet, task: greet, inputs: { who: "{{ inputs.who }}" } }
"#;

const BROKEN: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: mute, project: p }
spec:
  inputs: { who: { type: string } }
  echo:
    text: "hello {{ inputs.whom }}"
"#;

fn validate_with(types: TaskTypes, text: &str) -> Report {
    let options = Options {
        task_types: types,
        ..Options::default()
    };
    validate_files_with(&[("echo.yaml", text)], &options)
}

fn codes_at(report: &Report) -> Vec<(String, u32, u32)> {
    report
        .diagnostics
        .iter()
        .map(|d| {
            let pos = d.pos.expect("a position");
            (d.code.id().to_owned(), pos.line, pos.column)
        })
        .collect()
}

#[test]
fn a_type_registered_in_a_test_is_validated_and_versioned() {
    let report = validate_with(TaskTypes::builtin().with(Echo), GREET);
    assert!(report.is_valid(), "{:#?}", report.diagnostics);
    assert!(report.entities.iter().all(|e| e.digest.is_some()));

    // Its schema is generated beside the built-in bodies.
    let schema = TaskTypes::builtin().with(Echo).schema();
    assert_eq!(
        schema["definitions"]["TaskSpec"]["properties"]["echo"]["anyOf"][0]["$ref"],
        json!("#/definitions/EchoBody")
    );
    assert_eq!(
        schema["definitions"]["TaskSpec"]["errorMessage"],
        json!("a task needs exactly one body: `container`, `script`, `notebook` or `echo`")
    );
}

#[test]
fn its_checks_report_at_their_place_in_the_body() {
    let report = validate_with(TaskTypes::builtin().with(Echo), BROKEN);
    // The missing output at the body `spec.echo` (its block starts at line
    // 7, column 5), the unknown input at the value of `text`, with the
    // suggestion validation adds.
    assert_eq!(
        codes_at(&report),
        [("W040".to_owned(), 7, 5), ("W018".to_owned(), 7, 11)]
    );
    let unknown = &report.diagnostics[1];
    assert_eq!(unknown.help.as_deref(), Some("did you mean `who`?"));
}

#[test]
fn without_it_the_body_is_an_unknown_field() {
    let report = validate_with(TaskTypes::builtin(), GREET);
    let codes: Vec<&str> = report.diagnostics.iter().map(|d| d.code.id()).collect();
    assert!(codes.contains(&"W008"), "{:#?}", report.diagnostics);
}

#[test]
fn its_launch_writes_inputs_as_data() {
    let spec = serde_json::from_value(json!({
        "inputs": { "who": { "type": "string" } },
        "outputs": { "text": { "type": "string" } },
        "echo": { "text": "hello {{ inputs.who }}" },
    }))
    .expect("a spec");
    let inputs = BTreeMap::from([("who".to_owned(), json!("'; rm -rf / #"))]);
    let launch = TaskTypes::builtin()
        .with(Echo)
        .launch(&Context {
            spec: &spec,
            inputs: &inputs,
            notebook: None,
        })
        .expect("a launch");
    assert_eq!(launch.env["ECHO"], "hello '; rm -rf / #");
    assert!(!launch.args[1].contains("rm -rf"));
}

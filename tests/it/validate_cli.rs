//! `weir validate` as a pull-request check: the examples pass; each rule has
//! a fixture that fails at the right `file:line`, and what the user sees is
//! pinned with insta snapshots.

use crate::common::{fixture, stdout, validate_json, weir};

#[test]
fn examples_are_valid_and_every_entity_has_a_version() {
    let (code, json) = validate_json(&crate::common::root().join("examples/repo"));
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["valid"], true);
    let entities = json["entities"].as_array().expect("entities");
    assert!(
        entities.len() >= 14,
        "a realistic example set: {}",
        entities.len()
    );
    for e in entities {
        let version = e["version"].as_str().expect("valid trees have versions");
        assert_eq!(version.len(), 12);
        assert!(version.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(e["digest"].as_str().expect("digest").starts_with(version));
        assert!(e["line"].as_u64().expect("line") >= 1);
        for field in ["kind", "name", "project", "file"] {
            assert!(e[field].is_string(), "{field} in {e}");
        }
    }
    let kinds: std::collections::BTreeSet<&str> =
        entities.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(
        kinds.len(),
        3,
        "tasks, workflows and launch plans: {kinds:?}"
    );
}

#[test]
fn human_output_of_a_valid_tree_lists_versions() {
    let out = weir(&["validate", "tests/fixtures/valid"]);
    assert_eq!(out.status.code(), Some(0));
    insta::assert_snapshot!(stdout(&out));
}

/// Each fixture fails with `code` at `line`, and its human output is pinned.
macro_rules! invalid_fixture {
    ($test:ident, $file:literal, $code:literal, $line:literal) => {
        #[test]
        fn $test() {
            let rel = concat!("invalid/", $file, ".yaml");
            let (code, json) = validate_json(&fixture(rel));
            assert_eq!(code, 1, "{json:#}");
            let diagnostics = json["diagnostics"].as_array().expect("diagnostics");
            let hit = diagnostics.iter().find(|d| d["code"] == $code);
            let hit = hit.unwrap_or_else(|| panic!("no {} in {json:#}", $code));
            assert_eq!(hit["line"], $line, "{hit:#}");
            assert!(
                hit["file"]
                    .as_str()
                    .expect("file")
                    .ends_with(concat!($file, ".yaml"))
            );
            assert!(hit["column"].as_u64().expect("column") >= 1);
            let out = weir(&["validate", &format!("tests/fixtures/{rel}")]);
            assert_eq!(out.status.code(), Some(1));
            insta::assert_snapshot!(stdout(&out));
        }
    };
}

invalid_fixture!(yaml_syntax, "w004-yaml-syntax", "W004", 7);
invalid_fixture!(duplicate_key, "w005-duplicate-key", "W005", 8);
invalid_fixture!(schema_violation, "w007-schema-violation", "W007", 6);
invalid_fixture!(unknown_field, "w008-unknown-field", "W008", 7);
invalid_fixture!(
    duplicate_definition,
    "w010-duplicate-definition",
    "W010",
    15
);
invalid_fixture!(invalid_name, "w011-invalid-name", "W011", 4);
invalid_fixture!(unknown_task, "w012-unknown-task", "W012", 19);
invalid_fixture!(unknown_workflow, "w013-unknown-workflow", "W013", 17);
invalid_fixture!(node_cycle, "w014-dependency-cycle", "W014", 26);
invalid_fixture!(workflow_cycle, "w014-workflow-cycle", "W014", 19);
invalid_fixture!(type_mismatch, "w015-type-mismatch", "W015", 31);
invalid_fixture!(unknown_node, "w016-unknown-node", "W016", 20);
invalid_fixture!(unknown_output, "w017-unknown-output", "W017", 22);
invalid_fixture!(unknown_input, "w018-unknown-input", "W018", 9);
invalid_fixture!(missing_input, "w019-missing-input", "W019", 18);
invalid_fixture!(invalid_template, "w020-invalid-template", "W020", 22);
invalid_fixture!(unknown_after, "w021-unknown-after", "W021", 21);
invalid_fixture!(invalid_cron, "w022-invalid-cron", "W022", 26);
invalid_fixture!(invalid_timezone, "w023-invalid-timezone", "W023", 27);
invalid_fixture!(invalid_duration, "w024-invalid-duration", "W024", 6);
invalid_fixture!(invalid_quantity, "w025-invalid-quantity", "W025", 7);
invalid_fixture!(
    invalid_kickoff_input,
    "w026-invalid-kickoff-input",
    "W026",
    29
);
invalid_fixture!(unfilled_input, "w027-unfilled-input", "W027", 27);
invalid_fixture!(invalid_type, "w028-invalid-type", "W028", 6);
invalid_fixture!(duplicate_node, "w029-duplicate-node", "W029", 19);
invalid_fixture!(invalid_default, "w030-invalid-default", "W030", 6);
invalid_fixture!(missing_notebook, "w031-missing-notebook", "W031", 5);
invalid_fixture!(conflicting_input, "w034-conflicting-input", "W034", 28);
invalid_fixture!(
    duration_out_of_range,
    "w035-duration-out-of-range",
    "W035",
    6
);
invalid_fixture!(input_as_code, "w036-input-as-code", "W036", 14);
invalid_fixture!(unknown_engine, "w007-unknown-engine", "W007", 7);
invalid_fixture!(
    parameter_not_scalar,
    "w037-parameter-not-scalar",
    "W037",
    12
);
invalid_fixture!(parameter_in_quotes, "w038-parameter-in-quotes", "W038", 12);
invalid_fixture!(unfillable_output, "w041-unfillable-output", "W041", 7);

#[test]
fn every_error_of_a_run_is_reported_not_only_the_first() {
    let out = weir(&["validate", "tests/fixtures/invalid", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let codes: std::collections::BTreeSet<&str> = json["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .filter_map(|d| d["code"].as_str())
        .collect();
    // Whole-tree run: every fixture's code shows up in the same report.
    for code in [
        "W004", "W005", "W008", "W011", "W012", "W014", "W015", "W022", "W031",
    ] {
        assert!(codes.contains(code), "{code} missing from {codes:?}");
    }
}

#[test]
fn github_format_emits_workflow_commands() {
    let out = weir(&[
        "validate",
        "tests/fixtures/invalid/w012-unknown-task.yaml",
        "--format",
        "github",
    ]);
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(stdout(&out));
}

#[test]
fn exit_code_2_when_weir_cannot_run() {
    let missing = weir(&["validate", "tests/fixtures/does-not-exist"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does-not-exist"));
    let bad_flag = weir(&["validate", "--output", "xml"]);
    assert_eq!(bad_flag.status.code(), Some(2));
}

/// Issue 13, item 4: inputs are data. A string written into code is refused
/// at the placeholder itself; numbers, booleans and enum members may still
/// be written there; a container argument is data (one argv element) unless
/// a shell runs it as its script (`sh -c`).
#[test]
fn only_values_that_cannot_carry_code_are_written_into_code() {
    let (code, json) = validate_json(&fixture("invalid/w036-input-as-code.yaml"));
    assert_eq!(code, 1, "{json:#}");
    let hits: Vec<&serde_json::Value> = json["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .filter(|d| d["code"] == "W036")
        .collect();
    assert_eq!(hits.len(), 1, "only the string input: {json:#}");
    let hit = hits[0];
    assert_eq!(
        (hit["line"].as_u64(), hit["column"].as_u64()),
        (Some(14), Some(21))
    );
    assert!(
        hit["message"].as_str().expect("message").contains("`who`"),
        "{hit:#}"
    );
    assert!(
        hit["help"]
            .as_str()
            .expect("help")
            .contains(r#""$WEIR_INPUT_WHO""#),
        "{hit:#}"
    );

    let task = |body: &str| {
        format!(
            "apiVersion: weir.dev/v1alpha1\nkind: Task\nmetadata: {{ name: t }}\nspec:\n  inputs:\n    x: {{ type: string }}\n    n: {{ type: int }}\n{body}"
        )
    };
    let codes = |body: &str| -> Vec<&'static str> {
        let text = task(body);
        let report = crate::common::validate_files(&[("t.yaml", text.as_str())]);
        report.diagnostics.iter().map(|d| d.code.id()).collect()
    };
    let python =
        "  script:\n    interpreter: python3\n    source: |\n      print({{ inputs.n }} * 2)\n";
    assert_eq!(codes(python), Vec::<&str>::new());
    let argv = "  container:\n    image: alpine\n    command: [printf, '%s']\n    args: ['{{ inputs.x }}', 'n={{ inputs.n }}']\n";
    assert_eq!(codes(argv), Vec::<&str>::new());
    let shell = "  container:\n    image: alpine\n    command: [/bin/sh, -ec]\n    args: ['echo {{ inputs.x }}']\n";
    assert_eq!(codes(shell), ["W036"]);
}

//! Property tests: arbitrary bytes and arbitrary YAML never panic the loader
//! or the validator; whatever comes in, a report comes out.

use proptest::prelude::*;

use crate::common::validate_files;

/// YAML-ish text built from the tokens that matter to weir's parser.
fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("apiVersion: weir.dev/v1alpha1\n".to_owned()),
        Just("kind: Task\n".to_owned()),
        Just("kind: Workflow\n".to_owned()),
        Just("kind: LaunchPlan\n".to_owned()),
        Just("metadata: { name: a }\n".to_owned()),
        Just("spec:\n".to_owned()),
        Just(
            "  nodes:\n    - { id: a, task: a, inputs: { x: \"{{ nodes.a.outputs.x }}\" } }\n"
                .to_owned()
        ),
        Just("  script: { interpreter: bash, source: \"{{ inputs.x }}\" }\n".to_owned()),
        Just("  inputs: { x: { type: list<map<int>> , default: [] } }\n".to_owned()),
        Just("  schedule: { cron: \"* * * * *\", timezone: UTC }\n".to_owned()),
        Just("  workflow: a\n".to_owned()),
        Just("---\n".to_owned()),
        Just("&a [*a]\n".to_owned()),
        Just("- ".to_owned()),
        Just(": ".to_owned()),
        Just("{{".to_owned()),
        Just("\t".to_owned()),
        "[a-z{}\\[\\]:,&*!|>'\"# -]{0,12}\n",
    ];
    prop::collection::vec(token, 0..24).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = validate_files(&[("fuzz.yaml", &text)]);
    }

    #[test]
    fn arbitrary_yaml_never_panics(text in yamlish()) {
        let report = validate_files(&[("fuzz.yaml", &text)]);
        // Every diagnostic names its file; positions, when known, are 1-based.
        for d in &report.diagnostics {
            prop_assert_eq!(d.file.to_str(), Some("fuzz.yaml"));
            if let Some(p) = d.pos {
                prop_assert!(p.line >= 1 && p.column >= 1, "{:?}", d);
            }
        }
    }
}

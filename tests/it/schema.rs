//! The committed JSON Schema equals the generated one, and it is a schema
//! standard validators accept (draft-07 meta-schema).

use crate::common::{root, weir};

#[test]
fn committed_schema_equals_generated() {
    let committed = std::fs::read_to_string(root().join(weir::spec::schema::SCHEMA_PATH))
        .expect("schema/weir.schema.json");
    let generated = weir::task::TaskTypes::builtin().schema_text();
    assert!(
        committed == generated,
        "schema/weir.schema.json is stale: run `cargo run -- schema > schema/weir.schema.json`"
    );
    let out = weir(&["schema"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), generated);
}

#[test]
fn schema_is_valid_draft_07() {
    let schema = weir::task::TaskTypes::builtin().schema();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    assert!(jsonschema::draft7::meta::is_valid(&schema));
}

#[test]
fn example_files_point_editors_at_the_schema() {
    let mut checked = 0;
    let mut stack = vec![root().join("examples/repo")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("examples exist") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                let text = std::fs::read_to_string(&path).expect("readable");
                let first = text.lines().next().unwrap_or_default();
                let rel = first
                    .strip_prefix("# yaml-language-server: $schema=")
                    .unwrap_or_else(|| panic!("{} lacks the schema line", path.display()));
                let target = path.parent().expect("parent").join(rel);
                assert!(
                    target
                        .canonicalize()
                        .is_ok_and(|t| t.ends_with("schema/weir.schema.json")),
                    "{}",
                    path.display()
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 0);
}

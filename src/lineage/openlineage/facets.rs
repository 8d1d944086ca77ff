//! The facets weir puts on its RunEvents, built purely from what the
//! engine recorded: OpenLineage's standard ones (`parent`,
//! `sourceCodeLocation`, `nominalTime`, `errorMessage`) and weir's own
//! (`weir_execution`, `weir_cache`).
//!
//! What it guarantees: every facet carries `_producer` and `_schemaURL`
//! (the base shape the RunEvent schema checks). A standard facet follows
//! the OpenLineage schema its `_schemaURL` names. Weir's own are named with
//! the `weir_` prefix, as OpenLineage asks of custom facets (so they never
//! collide with a standard facet or another producer's), and described by
//! the JSON Schemas in `schema/openlineage/` at this version, which their
//! `_schemaURL` names.
//!
//! Facet fields are camelCase, as OpenLineage's own and weir's JSON API
//! are (`cachedFrom`, as `weir executions ID -o json` says it).
//!
//! It must not write, send or read anything.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::events::{PRODUCER, RunId};
use crate::engine::PlanNode;
use crate::spec::{ExecutionId, SourceParts};
use crate::store::execution::Execution;

pub(super) const SOURCE_CODE_LOCATION_SCHEMA: &str = "https://openlineage.io/spec/facets/1-1-0/SourceCodeLocationJobFacet.json#/$defs/SourceCodeLocationJobFacet";
pub(super) const PARENT_RUN_SCHEMA: &str =
    "https://openlineage.io/spec/facets/1-1-0/ParentRunFacet.json#/$defs/ParentRunFacet";
pub(super) const NOMINAL_TIME_SCHEMA: &str =
    "https://openlineage.io/spec/facets/1-0-1/NominalTimeRunFacet.json#/$defs/NominalTimeRunFacet";
pub(super) const ERROR_MESSAGE_SCHEMA: &str = "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet";

/// Where weir's own facet schemas are published: the files of
/// `schema/openlineage/` at the tag of this version (as [`PRODUCER`]
/// names the tree).
macro_rules! weir_facet_schema {
    ($name:literal) => {
        concat!(
            "https://raw.githubusercontent.com/weir-dev/weir/",
            env!("CARGO_PKG_VERSION"),
            "/schema/openlineage/",
            $name,
            ".json#/$defs/",
            $name
        )
    };
}
pub(super) const WEIR_EXECUTION_SCHEMA: &str = weir_facet_schema!("WeirExecutionRunFacet");
pub(super) const WEIR_CACHE_SCHEMA: &str = weir_facet_schema!("WeirCacheRunFacet");

/// The `programmingLanguage` of an execution's `errorMessage`: the
/// execution's job is a weir workflow, and its error is weir's account of
/// why it stopped (which node failed, and how).
pub(super) const WORKFLOW_LANGUAGE: &str = "weir";

/// The `parent` run facet of the run of node `node`: the run of its
/// execution (job `<workflow>` in the same namespace); for an item of a map
/// node (`train[3]`), the map node's run, and for a node of an item of a
/// map over a sub-workflow (`fit[3]/train`), the item's run (job
/// `<workflow>.fit`), each with the execution's as `root`.
pub(super) fn parent(execution: &Execution, namespace: &str, node: &str) -> Value {
    let of_execution = json!({
        "run": { "runId": RunId::of_execution(&execution.id) },
        "job": { "namespace": namespace, "name": execution.workflow },
    });
    let mut facet = json!({ "_producer": PRODUCER, "_schemaURL": PARENT_RUN_SCHEMA });
    // A node of an item of a map over a sub-workflow: the item's run; an
    // item of a map node: the map node's run; either under the execution's.
    let owner = match crate::engine::plan::group_of(node) {
        Some((item, _)) => Some(item),
        None => crate::engine::plan::item_of(node).map(|(map, _)| map),
    };
    match owner {
        Some(owner) => {
            facet["run"] = json!({ "runId": RunId::of_node(&execution.id, owner) });
            facet["job"] = json!({
                "namespace": namespace,
                "name": format!("{}.{}", execution.workflow, crate::engine::plan::job_path(owner)),
            });
            facet["root"] = of_execution;
        }
        None => {
            facet["run"] = of_execution["run"].clone();
            facet["job"] = of_execution["job"].clone();
        }
    }
    facet
}

/// The `nominalTime` run facet of an execution run at a scheduled (or
/// backfilled) instant: the instant it stands for, not when it ran.
pub(super) fn nominal_time(scheduled_at: DateTime<Utc>) -> Value {
    json!({
        "_producer": PRODUCER,
        "_schemaURL": NOMINAL_TIME_SCHEMA,
        "nominalStartTime": scheduled_at.to_rfc3339_opts(SecondsFormat::Millis, true),
    })
}

/// The `errorMessage` run facet of a FAIL: `message` as weir recorded it,
/// in `language` ([`task_language`], or [`WORKFLOW_LANGUAGE`]). No
/// `stackTrace`: weir records an attempt's error as one message (the
/// task's own output is in its logs).
pub(super) fn error_message(message: &str, language: &str) -> Value {
    json!({
        "_producer": PRODUCER,
        "_schemaURL": ERROR_MESSAGE_SCHEMA,
        "message": message,
        "programmingLanguage": language,
    })
}

/// The language of a node's code as weir knows it, for its
/// `errorMessage`: a `script` task's interpreter as a program name
/// (`python3` for `/usr/bin/python3` or `/usr/bin/env python3`, `bash`),
/// else its task type (`sql`, `notebook`, `spark`, `container`, a
/// plugin's name).
pub(super) fn task_language(node: &PlanNode) -> String {
    let body = &node.spec.body;
    let interpreter = body
        .is("script")
        .then(|| body.value.get("interpreter").and_then(Value::as_str))
        .flatten()
        .map(program_name)
        .filter(|name| !name.is_empty());
    interpreter.unwrap_or_else(|| body.type_name.clone())
}

/// The program an interpreter line runs: its first word's file name, or
/// the word after `env`.
fn program_name(line: &str) -> String {
    let base = |word: &str| word.rsplit('/').next().unwrap_or(word).to_owned();
    let mut words = line.split_whitespace();
    match words.next().map(base) {
        Some(env) if env == "env" => words.find(|w| !w.starts_with('-')).map(base).unwrap_or(env),
        first => first.unwrap_or_default(),
    }
}

/// `weir_execution`, on an execution's run: what the run is in weir's
/// terms, so a lineage tool can link back to it (`GET
/// /api/v1/executions/{execution}`): what started it and the versions it
/// runs.
pub(super) fn weir_execution(execution: &Execution) -> Value {
    let mut facet = json!({
        "_producer": PRODUCER,
        "_schemaURL": WEIR_EXECUTION_SCHEMA,
        "execution": execution.id,
        "trigger": execution.trigger,
        "workflowVersion": execution.workflow_version,
    });
    if let Some(name) = &execution.launch_plan {
        facet["launchPlan"] = json!(name);
    }
    if let Some(version) = &execution.launch_plan_version {
        facet["launchPlanVersion"] = json!(version);
    }
    if let Some(backfill) = &execution.options.backfill {
        facet["backfill"] = json!(backfill.id);
    }
    facet
}

/// `weir_cache`, on the run of a node served from the cache: no attempt
/// ran; its outputs are those execution `from` recorded (`cachedFrom`),
/// whose OpenLineage run is `cachedFromRunId`.
pub(super) fn weir_cache(from: &ExecutionId) -> Value {
    json!({
        "_producer": PRODUCER,
        "_schemaURL": WEIR_CACHE_SCHEMA,
        "cachedFrom": from,
        "cachedFromRunId": RunId::of_execution(from),
    })
}

/// The `sourceCodeLocation` facet of the execution's source, whose key is
/// `<repo>#<branch>:<path>` ([`SourceKey::parts`](crate::spec::SourceKey::parts)).
/// `None` for a key of another shape.
pub(super) fn source_code_location(execution: &Execution) -> Option<Value> {
    let SourceParts { repo, branch, path } = execution.source.parts()?;
    let mut facet = json!({
        "_producer": PRODUCER,
        "_schemaURL": SOURCE_CODE_LOCATION_SCHEMA,
        "type": "git",
        "url": repo_uri(repo),
        "repoUrl": repo,
        "version": execution.commit.0,
        "branch": branch,
    });
    if !path.is_empty() {
        facet["path"] = Value::String(path.to_owned());
    }
    Some(facet)
}

/// A repository as a URI (the facet's `url` must be one): a `file://` path
/// percent-encoded, an scp-like `user@host:path` as `ssh://user@host/path`,
/// any other URL as it is.
fn repo_uri(repo: &str) -> String {
    if let Some(path) = repo.strip_prefix("file://") {
        let mut out = String::from("file://");
        for byte in path.bytes() {
            if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
                out.push(char::from(byte));
            } else {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
        return out;
    }
    if repo.contains("://") {
        return repo.to_owned();
    }
    match repo.split_once(':') {
        Some((host, path)) => format!("ssh://{host}/{}", path.trim_start_matches('/')),
        None => repo.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::super::fixtures::*;
    use super::*;
    use crate::spec::SourceKey;
    use crate::store::execution::BackfillGroup;

    #[test]
    fn source_code_location_validates_against_its_facet_schema() {
        let validator = validator(&schema("SourceCodeLocationJobFacet.json"));
        let cases = [
            (
                LOCAL,
                "file:///srv/repos/churn%20model",
                Some("pipelines/churn"),
            ),
            (
                "https://github.com/acme/ml.git#release/1.x:",
                "https://github.com/acme/ml.git",
                None,
            ),
            (
                "git@github.com:acme/ml.git#main:flows",
                "ssh://git@github.com/acme/ml.git",
                Some("flows"),
            ),
        ];
        for (key, url, path) in cases {
            let facet = source_code_location(&execution(key)).unwrap();
            assert_valid(&validator, &json!({ "sourceCodeLocation": facet }));
            assert_eq!(facet["type"], "git");
            assert_eq!(facet["url"], url);
            assert_eq!(
                facet["repoUrl"],
                SourceKey(key.into()).parts().unwrap().repo
            );
            assert_eq!(facet["version"], COMMIT);
            assert_eq!(facet["path"].as_str(), path);
        }
        let facet = source_code_location(&execution(LOCAL)).unwrap();
        assert_eq!(facet["branch"], "main");
        assert_eq!(source_code_location(&execution("no-branch")), None);
    }

    /// The standard facets hold what their specs require (the RunEvent
    /// schema checks only a facet's base shape): `errorMessage` its
    /// `message` and `programmingLanguage` strings, `nominalTime` its
    /// `nominalStartTime` as a date-time.
    #[test]
    fn standard_run_facets_hold_what_their_specs_require() {
        let error = error_message("exit status 3", "python3");
        assert_eq!(error["message"], "exit status 3");
        assert_eq!(error["programmingLanguage"], "python3");
        assert_eq!(
            error["_schemaURL"],
            "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
        );
        assert!(error.get("stackTrace").is_none());

        let nominal = nominal_time(at());
        assert_eq!(nominal["nominalStartTime"], "2026-11-24T09:30:00.000Z");
        assert!(nominal.get("nominalEndTime").is_none());
        assert_eq!(
            nominal["_schemaURL"],
            "https://openlineage.io/spec/facets/1-0-1/NominalTimeRunFacet.json#/$defs/NominalTimeRunFacet"
        );
        let date_time = jsonschema::options()
            .should_validate_formats(true)
            .build(&json!({ "type": "string", "format": "date-time" }))
            .unwrap();
        assert!(date_time.is_valid(&nominal["nominalStartTime"]));
    }

    #[test]
    fn a_node_s_language_is_its_interpreter_or_its_task_type() {
        let with_body = |body: Value| {
            let mut node = plan_node("train");
            node.spec = serde_json::from_value(json!(body)).unwrap();
            task_language(&node)
        };
        let script = |interpreter: &str| {
            with_body(json!({ "script": { "interpreter": interpreter, "source": "true" } }))
        };
        assert_eq!(script("bash"), "bash");
        assert_eq!(script("/usr/bin/python3"), "python3");
        assert_eq!(script("/usr/bin/env -S python3 -u"), "python3");
        assert_eq!(script("env"), "env");
        assert_eq!(
            with_body(json!({ "sql": { "engine": "duckdb", "query": "select 1" } })),
            "sql"
        );
    }

    /// Weir's own facets validate against the schemas their `_schemaURL`
    /// names, which are files of `schema/openlineage/` (published with each
    /// version), and are named with weir's prefix.
    #[test]
    fn weir_facets_validate_against_their_published_schemas() {
        let mut scheduled = execution(LOCAL);
        scheduled.launch_plan = Some("nightly".into());
        scheduled.launch_plan_version = Some(crate::spec::Digest::from_hex("c".repeat(64)));
        scheduled.options.backfill = Some(BackfillGroup {
            id: "bf-1".into(),
            max_parallel: Some(2),
        });
        let facets = [
            ("weir_execution", weir_execution(&execution(LOCAL))),
            ("weir_execution", weir_execution(&scheduled)),
            ("weir_cache", weir_cache(&"churn-adhoc-0000".into())),
        ];
        for (key, facet) in &facets {
            let url = facet["_schemaURL"].as_str().unwrap();
            let file = url
                .split_once("/schema/openlineage/")
                .and_then(|(_, rest)| rest.split_once('#'))
                .map(|(file, _)| file)
                .unwrap();
            assert!(url.contains(env!("CARGO_PKG_VERSION")), "{url}");
            let validator = validator(&weir_schema(file));
            assert_valid(&validator, &json!({ *key: facet }));
            let mut broken = facet.clone();
            broken.as_object_mut().unwrap().remove("_producer");
            assert!(!validator.is_valid(&json!({ *key: broken })), "{key}");
        }
        let full = &facets[1].1;
        assert_eq!(full["execution"], "churn-adhoc-3f9a1c2b7d4e");
        assert_eq!(full["trigger"], "manual");
        assert_eq!(full["launchPlan"], "nightly");
        assert_eq!(full["backfill"], "bf-1");
        let cache = &facets[2].1;
        assert_eq!(cache["cachedFrom"], "churn-adhoc-0000");
        assert_eq!(
            cache["cachedFromRunId"],
            RunId::of_execution(&"churn-adhoc-0000".into()).as_str()
        );
    }
}

//! The definitions' side of a diff: two versions' canonical documents
//! (spec defaults filled in, unset fields left out) as YAML, and a unified
//! diff of the two, labelled `name@version`.

use std::collections::HashMap;

use serde_json::Value;

use crate::spec::{Definition, Digest, EntityRef, Kind};
use crate::store::{self, Store, VersionKey};

/// A unified diff of two renderings under `(old, new)` labels; `None`
/// when they read the same.
pub(super) fn unified(old: &str, new: &str, (from, to): (String, String)) -> Option<String> {
    if old == new {
        return None;
    }
    let text = similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&from, &to)
        .to_string();
    Some(text)
}

/// A version as people read it: `train@0123456789ab`.
pub(super) fn label(name: &str, digest: &Digest) -> String {
    format!("{name}@{}", digest.short())
}

/// Versions' canonical documents as YAML, each read once.
pub(super) struct Documents<'a> {
    store: &'a dyn Store,
    project: &'a str,
    read: HashMap<(Kind, String, Digest), String>,
}

impl<'a> Documents<'a> {
    pub(super) fn new(store: &'a dyn Store, project: &'a str) -> Documents<'a> {
        Documents {
            store,
            project,
            read: HashMap::new(),
        }
    }

    /// The canonical document (the spec with its defaults filled in) of a
    /// version as YAML; a line saying so when the store has no document.
    pub(super) async fn yaml(
        &mut self,
        kind: Kind,
        name: &str,
        digest: &Digest,
    ) -> Result<String, store::Error> {
        let slot = (kind, name.to_owned(), digest.clone());
        if let Some(text) = self.read.get(&slot) {
            return Ok(text.clone());
        }
        let key = VersionKey {
            entity: EntityRef::new(self.project, kind, name),
            digest: digest.clone(),
        };
        let text = match self.store.version_document(&key).await? {
            Some(document) => canonical_yaml(kind, document),
            None => format!(
                "# the store has no document of {}@{}\n",
                key.entity,
                digest.short()
            ),
        };
        self.read.insert(slot, text.clone());
        Ok(text)
    }
}

/// A document with its spec's defaults filled in, as YAML (keys sorted,
/// unset fields left out); as written when it no longer parses.
fn canonical_yaml(kind: Kind, mut document: Value) -> String {
    if let Ok(definition) = Definition::from_json(kind, document.clone()) {
        document["spec"] = definition.canonical_spec();
    }
    drop_nulls(&mut document);
    serde_saphyr::to_string(&document).unwrap_or_else(|_| format!("{document:#}\n"))
}

/// Removes `null` members of objects, at any depth.
fn drop_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_changed_script_reads_as_changed_lines_of_yaml() {
        let document = |line: &str| {
            json!({
                "apiVersion": "weir.dev/v1alpha1",
                "kind": "Task",
                "metadata": { "name": "train", "project": "lab" },
                "spec": { "script": { "interpreter": "bash", "source": format!("set -e\n{line}\necho done\n") } }
            })
        };
        let old = canonical_yaml(Kind::Task, document("echo depth 2"));
        let new = canonical_yaml(Kind::Task, document("echo depth 3"));
        assert!(old.contains("source: |"), "a literal block:\n{old}");
        assert!(old.contains("retries:"), "defaults filled in:\n{old}");
        let labels = || {
            (
                "train@aaaaaaaaaaaa".to_owned(),
                "train@bbbbbbbbbbbb".to_owned(),
            )
        };
        let diff = unified(&old, &new, labels()).expect("they differ");
        assert!(
            diff.starts_with("--- train@aaaaaaaaaaaa\n+++ train@bbbbbbbbbbbb\n@@"),
            "{diff}"
        );
        let changed: Vec<&str> = diff
            .lines()
            .filter(|l| l.starts_with(['-', '+']) && !l.starts_with("---") && !l.starts_with("+++"))
            .collect();
        assert_eq!(
            changed,
            ["-      echo depth 2", "+      echo depth 3"],
            "{diff}"
        );
        assert!(!old.contains("null"), "unset fields are left out:\n{old}");
        assert_eq!(unified(&old, &old, labels()), None);
    }
}

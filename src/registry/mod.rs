//! The registry's decisions, made purely: given the active set of a source,
//! the versions already registered, and a valid snapshot of a commit, what
//! changes ([`plan`]). No Git, no database: the store applies the result in
//! one transaction.
//!
//! Guarantees (DESIGN.md section 2):
//! - I1: a digest already registered is never registered again; content that
//!   comes back (a `git revert`) *reactivates* the old version.
//! - I2: the active set after the commit is exactly the snapshot's entities.
//! - Removal deactivates; versions are never deleted.

pub mod compare;

use std::collections::{HashMap, HashSet};

use crate::spec::{CommitId, Definition, EntityRef, SourceKey};
use crate::store::{ActiveSet, Changes, CommitInfo, JsonText, NewVersion, VersionKey};
use crate::validate::Entity;

/// The version keys of a valid snapshot's entities.
pub fn version_keys(entities: &[Entity]) -> Vec<VersionKey> {
    entities
        .iter()
        .filter_map(|e| {
            e.digest.clone().map(|digest| VersionKey {
                entity: e.id.clone(),
                digest,
            })
        })
        .collect()
}

/// Decides what a valid commit changes, given all of its entities.
///
/// `entities` must come from a valid report (every entity has a digest);
/// `known` holds which of their versions are registered already.
pub fn plan(
    source: &SourceKey,
    commit: &CommitInfo,
    previous: Option<&CommitId>,
    current: &ActiveSet,
    known: &HashSet<VersionKey>,
    entities: &[Entity],
) -> Changes {
    let next: ActiveSet = version_keys(entities)
        .into_iter()
        .map(|k| (k.entity, k.digest))
        .collect();
    plan_active(source, commit, previous, current, known, &next, entities)
        .expect("every entity of the snapshot is at hand")
}

/// Decides what a valid commit changes, given its whole active set `next`
/// and the entities that were parsed (an incremental load parses only what
/// changed). `None` when a version to register is not among `entities`:
/// the load was based on another active set than `current`.
pub fn plan_active(
    source: &SourceKey,
    commit: &CommitInfo,
    previous: Option<&CommitId>,
    current: &ActiveSet,
    known: &HashSet<VersionKey>,
    next: &ActiveSet,
    entities: &[Entity],
) -> Option<Changes> {
    let mut changes = Changes {
        source: source.clone(),
        commit: commit.clone(),
        previous: previous.cloned(),
        registered: Vec::new(),
        activated: Vec::new(),
        reactivated: Vec::new(),
        deactivated: Vec::new(),
        updated: Vec::new(),
        active: next.clone(),
    };
    let parsed: HashMap<&EntityRef, &Entity> = entities.iter().map(|e| (&e.id, e)).collect();
    for (id, digest) in next {
        if current.get(id) == Some(digest) {
            continue;
        }
        let key = VersionKey {
            entity: id.clone(),
            digest: digest.clone(),
        };
        if known.contains(&key) {
            changes.reactivated.push(key);
            continue;
        }
        let e = parsed.get(id)?;
        changes.registered.push(new_version(key.clone(), e));
        if current.contains_key(id) {
            changes.updated.push(key);
        } else {
            changes.activated.push(key);
        }
    }
    for (entity, digest) in current {
        if !next.contains_key(entity) {
            changes.deactivated.push(VersionKey {
                entity: entity.clone(),
                digest: digest.clone(),
            });
        }
    }
    Some(changes)
}

/// What the store keeps of `entity` at version `key`: its canonical spec,
/// its document as written and its file.
pub fn new_version(key: VersionKey, entity: &Entity) -> NewVersion {
    NewVersion {
        key,
        spec: JsonText::of(&entity.definition.canonical_spec()),
        document: JsonText::of(&document_json(&entity.definition)),
        path: entity.file.clone(),
    }
}

/// The whole document as written (metadata included), for rollback.
fn document_json(definition: &Definition) -> serde_json::Value {
    let value = match definition {
        Definition::Task(d) => serde_json::to_value(d),
        Definition::Workflow(d) => serde_json::to_value(d),
        Definition::LaunchPlan(d) => serde_json::to_value(d),
    };
    value.expect("documents are plain data and always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{CommitId, Digest, EntityRef, Kind};
    use crate::store::Person;
    use crate::validate::{Options, SourceFile, Tree, validate};

    fn commit() -> CommitInfo {
        let who = Person {
            name: "a".into(),
            email: "a@example.com".into(),
        };
        CommitInfo {
            id: CommitId("0".repeat(40)),
            author: who.clone(),
            committer: who,
            time: chrono::Utc::now(),
            message: "m".into(),
        }
    }

    fn entities(script: &str) -> Vec<Entity> {
        let text = format!(
            "apiVersion: weir.dev/v1alpha1\nkind: Task\nmetadata: {{ name: t }}\nspec:\n  script: {{ interpreter: bash, source: \"{script}\" }}\n"
        );
        let tree = Tree {
            files: vec![SourceFile {
                path: "t.yaml".into(),
                text,
            }],
            ..Tree::default()
        };
        let report = validate(tree, &Options::default());
        assert!(report.is_valid());
        report.entities
    }

    #[test]
    fn new_content_registers_old_content_reactivates_removal_deactivates() {
        let source = SourceKey("s".into());
        let v1 = entities("echo 1");
        let first = plan(
            &source,
            &commit(),
            None,
            &ActiveSet::new(),
            &HashSet::new(),
            &v1,
        );
        assert_eq!(first.registered.len(), 1);
        assert_eq!(first.activated.len(), 1);

        let v2 = entities("echo 2");
        let known: HashSet<VersionKey> = version_keys(&v1).into_iter().collect();
        let second = plan(&source, &commit(), None, &first.active, &known, &v2);
        assert_eq!(second.updated.len(), 1);
        assert_eq!(second.registered.len(), 1);

        let mut known2 = known.clone();
        known2.extend(version_keys(&v2));
        let back = plan(&source, &commit(), None, &second.active, &known2, &v1);
        assert!(back.registered.is_empty(), "I1: nothing re-registered");
        assert_eq!(back.reactivated, version_keys(&v1));
        assert_eq!(back.active, first.active);

        let same = plan(&source, &commit(), None, &back.active, &known2, &v1);
        assert!(same.is_empty());

        let gone = plan(&source, &commit(), None, &back.active, &known2, &[]);
        assert_eq!(gone.deactivated.len(), 1);
        assert!(
            gone.active.is_empty(),
            "I2: the active set is exactly the snapshot"
        );
        let id = EntityRef::new("default", Kind::Task, "t");
        assert_eq!(gone.deactivated[0].entity, id);
        assert_ne!(gone.deactivated[0].digest, Digest::from_hex("x"));
    }
}

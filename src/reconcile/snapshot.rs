//! What a pass keeps of the commit it registered, so that the next pass
//! reads, parses and checks only what changed (DESIGN.md section 12: cost
//! grows with what changed, not with the repository).
//!
//! A [`Snapshot`] lists every definition file of the reconciled commit with
//! its blob id and, per entity, its version, what it calls and the
//! repository files it runs (a notebook, a program), with their blob ids.
//! The next commit is compared with it tree to tree; then:
//! - only added and modified files are read and parsed;
//! - the semantic checks run on the entities of those files, everything that
//!   calls them (transitively: a changed interface can break any caller),
//!   and what those call (to type-check against);
//! - digests are recomputed for the same set; every other entity keeps its
//!   version (its closure did not change).
//!
//! Anything unusual takes the whole-tree path, which is always right:
//! a commit with any error (so its report is complete, with every
//! position), a followed symbolic link, another weir release or other
//! options, a snapshot of another commit than the store's.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use git2::Oid;
use serde::{Deserialize, Serialize};

use super::{Error, Options};
use crate::source::git::GitSource;
use crate::source::is_definition;
use crate::spec::{CommitId, Definition, Digest, EntityRef, Kind, SourceKey};
use crate::store::ActiveSet;
use crate::task::TaskTypes;
use crate::validate::{self, Entity, Report, SourceFile, semantic};

/// Bumped whenever what a snapshot records changes meaning.
const FORMAT: u32 = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    format: u32,
    /// weir's release and the options that decide what a file parses to.
    fingerprint: String,
    /// The reconciled commit this describes.
    pub commit: CommitId,
    /// The source folder's tree at `commit`.
    folder: String,
    /// A symbolic link was followed: a linked file can change without the
    /// folder changing, so the next pass reads the whole tree.
    followed_links: bool,
    files: BTreeMap<String, FileEntry>,
    other_paths: BTreeSet<String>,
    /// Blob ids of the repository files the entities run (among
    /// `other_paths`).
    #[serde(default)]
    file_ids: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileEntry {
    blob: String,
    entities: Vec<Indexed>,
}

/// What later passes need to know of an entity without parsing it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Indexed {
    id: EntityRef,
    digest: Digest,
    /// Tasks and workflows a workflow calls; a launch plan's workflow.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    calls: Vec<EntityRef>,
    /// The repository files a task runs, which must keep existing (and
    /// whose content is part of its version).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    files: Vec<String>,
}

/// The result of an incremental load.
pub(super) struct Next {
    /// No findings; the entities that were parsed, with their digests.
    pub report: Report,
    /// Every entity of the commit with its version.
    pub active: ActiveSet,
    pub snapshot: Snapshot,
}

impl Snapshot {
    /// The snapshot of a valid commit read whole; `report` must be valid.
    pub(super) fn of_report(
        commit: &CommitId,
        folder: Oid,
        followed_links: bool,
        other_paths: BTreeSet<String>,
        report: &Report,
        options: &Options,
    ) -> Snapshot {
        let mut files: BTreeMap<String, FileEntry> = report
            .sources
            .iter()
            .map(|f| {
                let entry = FileEntry {
                    blob: blob_id(&f.text),
                    entities: Vec::new(),
                };
                (f.path.clone(), entry)
            })
            .collect();
        for e in &report.entities {
            if let Some(entry) = files.get_mut(&e.file) {
                entry
                    .entities
                    .extend(indexed(e, &options.validate.task_types));
            }
        }
        Snapshot {
            format: FORMAT,
            fingerprint: fingerprint(options),
            commit: commit.clone(),
            folder: folder.to_string(),
            followed_links,
            files,
            other_paths,
            file_ids: report.file_ids.clone(),
        }
    }

    /// Every entity with its version.
    pub fn active(&self) -> ActiveSet {
        self.files
            .values()
            .flat_map(|f| &f.entities)
            .map(|e| (e.id.clone(), e.digest.clone()))
            .collect()
    }

    /// Where the snapshot of `source` is kept in a state directory.
    pub fn path(state_dir: &Path, source: &SourceKey) -> PathBuf {
        let key = Digest::of_json(&serde_json::Value::String(source.0.clone()));
        state_dir
            .join("snapshots")
            .join(format!("{}.json", key.short()))
    }

    /// Reads a kept snapshot; `None` (and the next pass reads everything)
    /// when there is none or it cannot be used.
    pub fn read(path: &Path) -> Option<Snapshot> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the source's snapshot; reading the whole tree");
                return None;
            }
        };
        match serde_json::from_slice::<Snapshot>(&bytes) {
            Ok(s) if s.format == FORMAT => Some(s),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "the source's snapshot is damaged; reading the whole tree");
                None
            }
        }
    }

    /// Keeps the snapshot (written aside, then renamed: a crash leaves the
    /// old one or the new one, never half of one).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let folder = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(folder)?;
        let temp = folder.join(format!(".snapshot-{}.tmp", std::process::id()));
        let mut out = std::io::BufWriter::new(std::fs::File::create(&temp)?);
        serde_json::to_writer(&mut out, self)?;
        std::io::Write::flush(&mut out)?;
        drop(out);
        std::fs::rename(&temp, path)
    }
}

/// Whether a snapshot taken with other settings or by another release
/// could differ from a fresh read.
/// The task types count by name: a snapshot taken without a type read
/// its tasks as unknown bodies.
fn fingerprint(options: &Options) -> String {
    format!(
        "{}/{}/{}/{:?}/{:?}",
        env!("CARGO_PKG_VERSION"),
        options.max_file_size,
        options.validate.default_project,
        options.validate.yaml_limits,
        options.validate.task_types,
    )
}

/// Git's id of a blob with this content.
fn blob_id(text: &str) -> String {
    Oid::hash_object(git2::ObjectType::Blob, text.as_bytes())
        .map(|id| id.to_string())
        .unwrap_or_default()
}

fn indexed(e: &Entity, task_types: &TaskTypes) -> Option<Indexed> {
    let (calls, files) = references(e, task_types);
    Some(Indexed {
        id: e.id.clone(),
        digest: e.digest.clone()?,
        calls,
        files,
    })
}

/// What an entity calls, and the repository files a task runs.
fn references(e: &Entity, task_types: &TaskTypes) -> (Vec<EntityRef>, Vec<String>) {
    let at = |kind, name: &String| EntityRef::new(e.id.project.clone(), kind, name.clone());
    match &e.definition {
        Definition::Task(t) => (
            Vec::new(),
            task_types
                .repository_files(&t.spec)
                .into_iter()
                .map(|(_, path)| path)
                .collect(),
        ),
        Definition::Workflow(w) => (
            w.spec
                .nodes
                .iter()
                .filter_map(|n| match (&n.task, &n.workflow) {
                    (Some(t), _) => Some(at(Kind::Task, t)),
                    (None, Some(w)) => Some(at(Kind::Workflow, w)),
                    (None, None) => None,
                })
                .collect(),
            Vec::new(),
        ),
        Definition::LaunchPlan(lp) => (vec![at(Kind::Workflow, &lp.spec.workflow)], Vec::new()),
    }
}

fn hidden(path: &str) -> bool {
    path.split('/').any(|part| part.starts_with('.'))
}

/// Loads `commit` against `base` reading only what changed. `Ok(None)`:
/// this commit needs the whole-tree path (see the module's documentation).
pub(super) fn load_changes(
    source: &GitSource,
    base: &Snapshot,
    commit: &CommitId,
    options: &Options,
) -> Result<Option<Next>, Error> {
    if base.format != FORMAT || base.fingerprint != fingerprint(options) || base.followed_links {
        return Ok(None);
    }
    let Some(folder) = source.folder_id(commit)? else {
        return Ok(None);
    };
    let mut next = base.clone();
    next.commit = commit.clone();
    next.folder = folder.to_string();
    let empty = Report::default();
    if base.folder == next.folder {
        return Ok(Some(Next {
            report: empty,
            active: next.active(),
            snapshot: next,
        }));
    }
    let Ok(old_folder) = Oid::from_str(&base.folder) else {
        return Ok(None);
    };

    // 1. What changed, read.
    let mut changed: Vec<SourceFile> = Vec::new();
    let mut blobs: HashMap<String, String> = HashMap::new();
    let mut seeds: Vec<EntityRef> = Vec::new();
    // Other files removed or changed: a task's version covers the files it
    // runs, and they must exist.
    let mut changed_others: Vec<String> = Vec::new();
    for change in source.diff_folders(old_folder, folder)? {
        if hidden(&change.path) {
            continue;
        }
        if [change.old, change.new]
            .iter()
            .flatten()
            .any(|s| s.is_link())
        {
            return Ok(None);
        }
        let definition = is_definition(&change.path);
        if change.old.is_some_and(|s| s.is_file()) {
            if definition {
                if let Some(entry) = next.files.remove(&change.path) {
                    seeds.extend(entry.entities.into_iter().map(|e| e.id));
                }
            } else if next.other_paths.remove(&change.path) {
                next.file_ids.remove(&change.path);
                changed_others.push(change.path.clone());
            }
        }
        if let Some(new) = change.new.filter(|s| s.is_file()) {
            if definition {
                match source.read_file(new.id, &change.path, options.max_file_size)? {
                    Ok(file) => {
                        blobs.insert(change.path.clone(), new.id.to_string());
                        changed.push(file);
                    }
                    Err(_) => return Ok(None),
                }
            } else {
                // Its id is looked up below if a task runs it.
                next.file_ids.remove(&change.path);
                next.other_paths.insert(change.path.clone());
            }
        }
    }
    let (found, parsed) = validate::parse_files(&changed, &options.validate);
    if found.iter().any(|d| d.is_error()) {
        return Ok(None);
    }

    // 2. Who is affected: the changed entities, what was removed, tasks
    // whose repository files changed, and everything calling any of those.
    let mut owner: HashMap<&EntityRef, &str> = HashMap::new();
    let mut callers: HashMap<&EntityRef, Vec<&EntityRef>> = HashMap::new();
    for (path, entry) in &next.files {
        for e in &entry.entities {
            owner.insert(&e.id, path);
            for callee in &e.calls {
                callers.entry(callee).or_default().push(&e.id);
            }
            if e.files.iter().any(|f| changed_others.contains(f)) {
                seeds.push(e.id.clone());
            }
        }
    }
    if parsed.iter().any(|e| owner.contains_key(&e.id)) {
        // Defined twice: the whole-tree path reports it at both places.
        return Ok(None);
    }
    seeds.extend(parsed.iter().map(|e| e.id.clone()));
    let mut affected: HashSet<&EntityRef> = HashSet::new();
    let mut stack: Vec<&EntityRef> = seeds.iter().collect();
    while let Some(id) = stack.pop() {
        if affected.insert(id) {
            stack.extend(callers.get(id).into_iter().flatten().copied());
        }
    }

    // 3. What must be parsed again to check them: the files of affected
    // entities, and of everything those call, transitively.
    let calls_of: HashMap<&EntityRef, &[EntityRef]> = next
        .files
        .values()
        .flat_map(|f| &f.entities)
        .map(|e| (&e.id, e.calls.as_slice()))
        .collect();
    let mut reread: BTreeSet<&str> = BTreeSet::new();
    let mut stack: Vec<&EntityRef> = affected.iter().copied().collect();
    let task_types = &options.validate.task_types;
    let parsed_calls: Vec<EntityRef> = parsed
        .iter()
        .flat_map(|e| references(e, task_types).0)
        .collect();
    stack.extend(parsed_calls.iter());
    let mut seen: HashSet<&EntityRef> = HashSet::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        if let Some(&path) = owner.get(id) {
            if reread.insert(path) {
                for e in &next.files[path].entities {
                    stack.extend(calls_of.get(&e.id).into_iter().flat_map(|c| c.iter()));
                    stack.push(&e.id);
                }
            }
        }
    }
    let mut again = Vec::with_capacity(reread.len());
    for path in &reread {
        let Ok(blob) = Oid::from_str(&next.files[*path].blob) else {
            return Ok(None);
        };
        match source.read_file(blob, path, options.max_file_size)? {
            Ok(file) => again.push(file),
            Err(_) => return Ok(None),
        }
    }
    let (found_again, parsed_again) = validate::parse_files(&again, &options.validate);
    if found_again.iter().any(|d| d.is_error()) {
        return Ok(None);
    }
    let reread: Vec<String> = reread.into_iter().map(str::to_owned).collect();

    // 4. Check and version them together.
    let mut entities = parsed;
    entities.extend(parsed_again);
    entities.sort_by(|a, b| (&a.file, a.doc).cmp(&(&b.file, b.doc)));
    let mut diagnostics = semantic::check(
        &mut entities,
        &next.other_paths,
        &options.validate.task_types,
    );
    if diagnostics.iter().any(|d| d.is_error()) {
        return Ok(None);
    }
    // The ids of the files they run: kept for unchanged ones, looked up by
    // path for the others.
    let files = validate::repository_files(&entities, task_types);
    for path in validate::repository_paths(&files) {
        if let std::collections::btree_map::Entry::Vacant(slot) = next.file_ids.entry(path) {
            if let Some(id) = source.file_id(commit, slot.key())? {
                slot.insert(id);
            }
        }
    }
    semantic::assign_digests(&mut entities, &files, &next.file_ids);

    // 5. The new snapshot: re-read files get their fresh entries.
    for path in &reread {
        if let Some(entry) = next.files.get_mut(path) {
            entry.entities.clear();
        }
    }
    for file in &changed {
        next.files.insert(
            file.path.clone(),
            FileEntry {
                blob: blobs.remove(&file.path).unwrap_or_default(),
                entities: Vec::new(),
            },
        );
    }
    for e in &entities {
        let Some(entry) = next.files.get_mut(&e.file) else {
            return Ok(None);
        };
        match indexed(e, task_types) {
            Some(i) => entry.entities.push(i),
            None => return Ok(None),
        }
    }
    // Only the ids of files some task still runs are kept.
    let named: HashSet<&String> = next
        .files
        .values()
        .flat_map(|f| &f.entities)
        .flat_map(|e| &e.files)
        .collect();
    next.file_ids.retain(|path, _| named.contains(path));
    changed.extend(again);
    // Only warnings are left: place them like a whole-tree run does.
    validate::resolve_sites(&mut diagnostics, &changed, options.validate.yaml_limits);
    diagnostics.sort_by(|a, b| (&a.file, a.pos, a.code).cmp(&(&b.file, b.pos, b.code)));
    Ok(Some(Next {
        report: Report {
            diagnostics,
            entities,
            sources: changed,
            file_ids: BTreeMap::new(),
        },
        active: next.active(),
        snapshot: next,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot taken with other task types is not reused: their bodies
    /// read differently (a type missing then was an unknown field).
    #[test]
    fn the_task_types_are_part_of_the_fingerprint() {
        let builtin = Options::default();
        let mut fewer = Options::default();
        fewer.validate.task_types = crate::task::TaskTypes::new();
        assert_ne!(fingerprint(&builtin), fingerprint(&fewer));
        assert_eq!(fingerprint(&builtin), fingerprint(&Options::default()));
    }
}

//! Validation of a whole tree of definition files (DESIGN.md section 4).
//!
//! Layers run in order and every error of every layer is collected, so one
//! run reports everything that is wrong, not only the first thing:
//!
//! 1. size and safety (done while reading the tree, see `source::dir`);
//! 2. YAML syntax, duplicate keys, alias and nesting budgets ([`crate::spec::yaml`]);
//! 3. the JSON Schema, with each error mapped back to its line ([`schema`]);
//! 4. semantics across documents ([`semantic`]): identities, references,
//!    cycles, binding types, cron, time zones, durations, quantities.
//!
//! The result is a [`Report`]: diagnostics plus every entity that parsed, with
//! its version digest when the tree is valid. Validation never touches Git,
//! the store or the network; it is a pure function of the files (I3 depends on
//! it: a commit is accepted only when this finds no error), and of the blob
//! ids of the files tasks run, which it asks of the source ([`FileIds`]).

pub mod diagnostic;
pub(crate) mod par;
pub mod schema;
pub mod semantic;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;

pub use diagnostic::{Code, Diagnostic, Severity};

use crate::spec::yaml::{self, Pos, SyntaxErrorKind};
use crate::spec::{Definition, Digest, EntityRef, Kind};
use crate::task::TaskTypes;

/// One definition file as read from a directory or a Git tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Relative to the source's root, `/`-separated.
    pub path: String,
    pub text: String,
}

/// Everything validation looks at: the definition files, the paths of every
/// other file (the files tasks run must exist), and what went wrong while
/// reading.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    pub files: Vec<SourceFile>,
    pub other_paths: BTreeSet<String>,
    pub read_errors: Vec<Diagnostic>,
    /// Whether a symbolic link was followed: the content of a linked file
    /// can change without the linking folder changing.
    pub followed_links: bool,
    /// Where the Git blob ids of the files tasks run come from: a task's
    /// version covers the content of its repository files
    /// ([`crate::task::TaskType::repository_files`]). Asked only for the
    /// paths tasks name, once the tree is otherwise valid (`None`: a tree
    /// built by hand; such files are versioned as having no content).
    pub file_ids: Option<Arc<dyn FileIds>>,
}

/// Git's blob ids of a source's files that are not definitions, looked up
/// by path: validation asks only for the repository files tasks name, so a
/// source reads (or hashes) no other file for them.
pub trait FileIds: Send + Sync + std::fmt::Debug {
    /// The blob id of `path` (relative to the source's root, `/`-separated,
    /// one of [`Tree::other_paths`]); `Ok(None)` when the source has no such
    /// file, `Err` (a diagnostic at the file) when it cannot be read.
    fn blob_id(&self, path: &str) -> Result<Option<String>, Box<Diagnostic>>;
}

/// Ids known in advance, by path.
impl FileIds for BTreeMap<String, String> {
    fn blob_id(&self, path: &str) -> Result<Option<String>, Box<Diagnostic>> {
        Ok(self.get(path).cloned())
    }
}

/// Whether a file name is a definition file (`*.yaml`, `*.yml`): every
/// one of a source is read as definitions.
pub fn is_definition(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml")
}

/// Whether a path is a notebook (its content is part of a task's version).
pub fn is_notebook(path: &str) -> bool {
    path.ends_with(".ipynb")
}

/// What one entity runs from its repository: `(key, path relative to the
/// source's root)` of each file ([`TaskTypes::repository_files`]); none but
/// for a task whose type runs one (a notebook).
pub type RepositoryFiles = Vec<(&'static str, String)>;

/// The repository files each of `entities` runs, in their order: each
/// task's body is decoded for it once, on all cores.
pub fn repository_files(entities: &[Entity], task_types: &TaskTypes) -> Vec<RepositoryFiles> {
    par::map(entities, |e| match &e.definition {
        Definition::Task(t) => task_types.repository_files(&t.spec),
        _ => Vec::new(),
    })
}

/// Every path among `files`.
pub fn repository_paths(files: &[RepositoryFiles]) -> BTreeSet<String> {
    files
        .iter()
        .flatten()
        .map(|(_, path)| path.clone())
        .collect()
}

/// The blob ids of `paths` looked up in `ids` (none without a source), or
/// why some cannot be read.
pub fn file_ids(
    paths: &BTreeSet<String>,
    ids: Option<&dyn FileIds>,
) -> Result<BTreeMap<String, String>, Vec<Diagnostic>> {
    let Some(ids) = ids else {
        return Ok(BTreeMap::new());
    };
    let mut known = BTreeMap::new();
    let mut unreadable = Vec::new();
    for path in paths {
        match ids.blob_id(path) {
            Ok(Some(id)) => {
                known.insert(path.clone(), id);
            }
            Ok(None) => {}
            Err(d) => unreadable.push(*d),
        }
    }
    if unreadable.is_empty() {
        Ok(known)
    } else {
        Err(unreadable)
    }
}

/// Settings of a validation run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The project of definitions without `metadata.project`.
    pub default_project: String,
    pub yaml_limits: yaml::Limits,
    /// The task types whose bodies a task may have (the built-in ones by
    /// default: documents are then checked against the committed schema).
    pub task_types: TaskTypes,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            default_project: "default".to_owned(),
            yaml_limits: yaml::Limits::default(),
            task_types: TaskTypes::builtin(),
        }
    }
}

/// A document that passed the schema, with where it came from.
#[derive(Debug, Clone)]
pub struct Entity {
    pub id: EntityRef,
    pub file: String,
    pub pos: Pos,
    pub definition: Definition,
    /// Filled in only when the whole tree is valid.
    pub digest: Option<Digest>,
    /// Index of the document in its file, to report findings at their line.
    pub doc: usize,
}

/// The outcome of validating a tree.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub diagnostics: Vec<Diagnostic>,
    pub entities: Vec<Entity>,
    /// The text of each file, for rendering snippets.
    pub sources: Vec<SourceFile>,
    /// The blob id of each repository file the entities' tasks run (filled
    /// in with the digests).
    pub file_ids: BTreeMap<String, String>,
}

impl Report {
    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    pub fn is_valid(&self) -> bool {
        self.error_count() == 0
    }

    pub fn source_text(&self, path: &str) -> Option<&str> {
        self.sources
            .iter()
            .find(|s| s.path == path)
            .map(|s| s.text.as_str())
    }

    /// What `weir validate -o json` lists per entity.
    pub fn summaries(&self) -> Vec<EntitySummary<'_>> {
        self.entities
            .iter()
            .map(|e| EntitySummary {
                kind: e.id.kind,
                name: &e.id.name,
                project: &e.id.project,
                file: &e.file,
                line: e.pos.line,
                version: e.digest.as_ref().map(Digest::short),
                digest: e.digest.as_ref().map(Digest::as_str),
            })
            .collect()
    }
}

#[derive(Debug, Serialize)]
pub struct EntitySummary<'a> {
    pub kind: Kind,
    pub name: &'a str,
    pub project: &'a str,
    pub file: &'a str,
    pub line: u32,
    pub version: Option<&'a str>,
    pub digest: Option<&'a str>,
}

/// Validates every file of `tree` together.
pub fn validate(tree: Tree, options: &Options) -> Report {
    let mut diagnostics = tree.read_errors;
    let (found, mut entities) = parse_files(&tree.files, options);
    diagnostics.extend(found);
    let semantic = semantic::check(&mut entities, &tree.other_paths, &options.task_types);
    diagnostics.extend(semantic);
    resolve_sites(&mut diagnostics, &tree.files, options.yaml_limits);
    diagnostics.sort_by(|a, b| (&a.file, a.pos, a.code).cmp(&(&b.file, b.pos, b.code)));
    let mut report = Report {
        diagnostics,
        entities,
        sources: tree.files,
        file_ids: BTreeMap::new(),
    };
    if report.is_valid() {
        // A task's version covers the content of the files it runs: their
        // ids are asked of the source only now, and only theirs.
        let files = repository_files(&report.entities, &options.task_types);
        match file_ids(&repository_paths(&files), tree.file_ids.as_deref()) {
            Ok(ids) => {
                semantic::assign_digests(&mut report.entities, &files, &ids);
                report.file_ids = ids;
            }
            Err(unreadable) => {
                report.diagnostics.extend(unreadable);
                report
                    .diagnostics
                    .sort_by(|a, b| (&a.file, a.pos, a.code).cmp(&(&b.file, b.pos, b.code)));
            }
        }
    }
    report
}

/// Layers 2 and 3 for each of `files`: parsed and checked against the schema,
/// independently of each other (so in parallel). Findings keep their sites
/// unresolved.
pub(crate) fn parse_files(
    files: &[SourceFile],
    options: &Options,
) -> (Vec<Diagnostic>, Vec<Entity>) {
    let mut diagnostics = Vec::new();
    let mut entities = Vec::new();
    let schema = schema::compiled(&options.task_types);
    for (found, parsed) in par::map(files, |f| load_file(f, options, &schema)) {
        diagnostics.extend(found);
        entities.extend(parsed);
    }
    (diagnostics, entities)
}

/// Parses one file and checks each of its documents against the schema.
fn load_file(
    file: &SourceFile,
    options: &Options,
    schema: &schema::CompiledSchema,
) -> (Vec<Diagnostic>, Vec<Entity>) {
    let docs = match yaml::parse_values(&file.text, options.yaml_limits) {
        Ok(docs) => docs,
        Err(e) => {
            let code = match e.kind {
                SyntaxErrorKind::Syntax => Code::YamlSyntax,
                SyntaxErrorKind::DuplicateKey => Code::DuplicateKey,
                SyntaxErrorKind::Limit => Code::YamlLimit,
            };
            let pos = (e.pos.line > 0).then_some(e.pos);
            let mut d = Diagnostic::new(code, &file.path, pos, e.message);
            if code == Code::YamlLimit {
                d = d.with_help(
                    "definitions are small; deep nesting or alias expansion this large is refused",
                );
            }
            return (vec![d], Vec::new());
        }
    };
    let mut diagnostics = Vec::new();
    let mut entities = Vec::with_capacity(docs.len());
    for (doc, (pos, json)) in docs.into_iter().enumerate() {
        match schema::check_document(&file.path, doc, json, options, schema) {
            Ok((id, definition)) => entities.push(Entity {
                id,
                file: file.path.clone(),
                pos,
                definition,
                digest: None,
                doc,
            }),
            Err(found) => diagnostics.extend(found),
        }
    }
    (diagnostics, entities)
}

/// Where the `nth` occurrence (0-based) of `needle` at or after `from` is
/// in `text`: a place inside a value (a block scalar's line).
fn find_after(text: &str, from: yaml::Pos, needle: &str, nth: usize) -> Option<yaml::Pos> {
    let lines_before = usize::try_from(from.line.saturating_sub(1)).ok()?;
    let columns_before = usize::try_from(from.column.saturating_sub(1)).ok()?;
    let line_start: usize = text
        .split_inclusive('\n')
        .take(lines_before)
        .map(str::len)
        .sum();
    let start = line_start
        + text
            .get(line_start..)?
            .chars()
            .take(columns_before)
            .map(char::len_utf8)
            .sum::<usize>();
    let (offset, _) = text.get(start..)?.match_indices(needle).nth(nth)?;
    let before = &text[..start + offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Some(yaml::Pos::new(
        u32::try_from(line).ok()?,
        u32::try_from(column).ok()?,
    ))
}

/// Turns each finding's site into a line and column, parsing with positions
/// only the files that have findings.
pub(crate) fn resolve_sites(
    diagnostics: &mut [Diagnostic],
    files: &[SourceFile],
    limits: yaml::Limits,
) {
    let mut by_file: std::collections::BTreeMap<&std::path::Path, Vec<usize>> = Default::default();
    for (i, d) in diagnostics.iter().enumerate() {
        if d.site.is_some() {
            by_file.entry(d.file.as_path()).or_default().push(i);
        }
    }
    let mut resolved = Vec::new();
    for (path, indexes) in by_file {
        let file = files.iter().find(|f| std::path::Path::new(&f.path) == path);
        let docs = file
            .and_then(|f| yaml::parse_documents(&f.text, limits).ok())
            .unwrap_or_default();
        for i in indexes {
            let site = diagnostics[i].site.as_ref().expect("collected above");
            if let Some(root) = docs.get(site.doc) {
                let mut pos = root.pos_of(&site.pointer, site.key);
                if let (Some((needle, nth)), Some(file)) = (&site.needle, file) {
                    pos = find_after(&file.text, pos, needle, *nth).unwrap_or(pos);
                }
                resolved.push((i, pos));
            }
        }
    }
    for (i, pos) in resolved {
        diagnostics[i].pos = Some(pos);
        diagnostics[i].site = None;
    }
}

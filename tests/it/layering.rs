//! Arrows point one way (STYLE.md, issue 14): the modules of `src/` form
//! no cycle. A top-level module (`engine`, `http`, …) may use another only
//! when that one does not use it back, directly or through others; inside
//! the modules named in [`PER_FILE`] the same holds for their files
//! (`engine/identity.rs` and `engine/owner.rs` may not use each other).
//! `src/lib.rs` states the layering this keeps.
//!
//! The graph is read from the source as a newcomer would grep it: every
//! path that starts with `crate::`, `super::` or `self::` (in `use` lines,
//! groups such as `crate::{a, b::c}` included, and in code), outside
//! comments and string literals, resolved to the module it names. Test code
//! counts too: a test that needs a module above its own is a sign the
//! arrow is wrong. A path to an item that a module re-exports counts where
//! the path points (`super::Engine` in `engine/garbage.rs` is `engine`'s
//! root, not one of its files), which is what a reader of the file sees.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// Modules whose files must not form a cycle among themselves either (the
/// root `mod.rs` declares them, so its arrows to them are not counted).
const PER_FILE: &[&str] = &["engine", "task"];

#[test]
fn top_level_modules_form_no_cycle() {
    let crate_ = Crate::read();
    let cycles = crate_.top_level().cycles();
    assert!(
        cycles.is_empty(),
        "the top-level modules of src/ form a cycle (a module must not use one that uses it):\n{}",
        cycles.join("\n")
    );
}

#[test]
fn files_of_a_module_form_no_cycle() {
    let crate_ = Crate::read();
    let mut cycles = Vec::new();
    for module in PER_FILE {
        cycles.extend(crate_.files_of(module).cycles());
    }
    assert!(
        cycles.is_empty(),
        "files of one module form a cycle (a file must not use one that uses it):\n{}",
        cycles.join("\n")
    );
}

/// The reader is not vacuous: it sees paths in code, groups and inline
/// modules, and nothing in comments or strings.
#[test]
fn the_reader_sees_paths_in_code_only() {
    let text = r##"
//! [`crate::a`] in a doc comment
use crate::{b::X, c::{self, Y as Z}};
use super::d;
fn f() -> &'static str { let _ = 'x'; crate::f::g(); r#"crate::r"# } // crate::h
/* crate::i /* nested */ crate::i2 */
macro_rules! m { () => { $crate::k::L } }
mod tests {
    use super::*;
    use super::super::j::K;
    const S: &str = "crate::e \" crate::e2";
}
"##;
    let module = vec!["m".to_owned(), "n".to_owned()];
    let seen: BTreeSet<String> = paths_in(text, &module)
        .into_iter()
        .map(|(path, _)| path.join("::"))
        .collect();
    let expected: BTreeSet<String> = ["b::X", "c", "c::Y", "m::d", "f::g", "m::n", "m::j::K"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(seen, expected);

    let crate_ = Crate::read();
    let top = crate_.top_level();
    assert!(
        top.edges
            .get("cli")
            .is_some_and(|to| to.contains_key("store")),
        "the CLI opens the store: the reader must see that arrow"
    );
}

/// The modules of the crate and, per file, the paths it writes.
struct Crate {
    /// `src/`.
    root: PathBuf,
    /// The top-level modules `src/lib.rs` declares.
    modules: BTreeSet<String>,
    /// Per file, by its path relative to `src/`.
    files: BTreeMap<String, SourceFile>,
}

/// A path a file names, from the crate's root (`["engine", "create"]`),
/// and its line.
type Named = (Vec<String>, usize);

/// One file of `src/`: its module path and the paths it names.
struct SourceFile {
    module: Vec<String>,
    paths: Vec<Named>,
}

impl Crate {
    fn read() -> Crate {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let lib = std::fs::read_to_string(root.join("lib.rs")).expect("src/lib.rs");
        let tokens = tokens(&code_only(&lib));
        let modules = tokens
            .windows(2)
            .filter_map(|pair| match pair {
                [(Tok::Ident(kw), _), (Tok::Ident(name), _)] if kw == "mod" => Some(name.clone()),
                _ => None,
            })
            .collect();
        let mut files = BTreeMap::new();
        for path in rust_files(&root) {
            let rel = path
                .strip_prefix(&root)
                .expect("under src/")
                .to_string_lossy()
                .replace('\\', "/");
            let Some(module) = module_of(&rel) else {
                continue;
            };
            let text = std::fs::read_to_string(&path).expect("a readable source file");
            let paths = paths_in(&text, &module);
            files.insert(rel, SourceFile { module, paths });
        }
        Crate {
            root,
            modules,
            files,
        }
    }

    /// Top-level module → top-level module.
    fn top_level(&self) -> Graph {
        let mut graph = Graph::default();
        for (file, SourceFile { module, paths }) in &self.files {
            for (path, line) in paths {
                let Some(to) = path.first() else { continue };
                if to != &module[0] && self.modules.contains(to) {
                    graph.add(&module[0], to, format!("{file}:{line}"));
                }
            }
        }
        graph
    }

    /// File → file among the direct children of `parent` (`engine/create`,
    /// `engine/tasks`: a folder is one child).
    fn files_of(&self, parent: &str) -> Graph {
        let children: BTreeSet<String> = std::fs::read_dir(self.root.join(parent))
            .expect("the module's folder")
            .map(|entry| entry.expect("a folder entry").path())
            .filter_map(|path| {
                let name = path.file_name()?.to_str()?;
                match name.strip_suffix(".rs") {
                    Some("mod") => None,
                    Some(stem) => Some(stem.to_owned()),
                    None if path.is_dir() => Some(name.to_owned()),
                    None => None,
                }
            })
            .collect();
        let child = |path: &[String]| match path {
            [first, second, ..] if first == parent && children.contains(second) => {
                Some(format!("{parent}/{second}"))
            }
            _ => None,
        };
        let mut graph = Graph::default();
        for (file, SourceFile { module, paths }) in &self.files {
            let Some(from) = child(module) else { continue };
            for (path, line) in paths {
                if let Some(to) = child(path) {
                    if to != from {
                        graph.add(&from, &to, format!("{file}:{line}"));
                    }
                }
            }
        }
        graph
    }
}

/// Arrows between modules, each with where it is written.
#[derive(Default)]
struct Graph {
    edges: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

impl Graph {
    fn add(&mut self, from: &str, to: &str, site: String) {
        self.edges
            .entry(from.to_owned())
            .or_default()
            .entry(to.to_owned())
            .or_default()
            .push(site);
    }

    fn reachable(&self, from: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([from.to_owned()]);
        while let Some(next) = queue.pop_front() {
            for to in self.edges.get(&next).into_iter().flat_map(BTreeMap::keys) {
                if seen.insert(to.clone()) {
                    queue.push_back(to.clone());
                }
            }
        }
        seen
    }

    /// One line per group of modules that reach each other: the shortest
    /// cycle through its first module, then every arrow inside the group
    /// with the first place it is written.
    fn cycles(&self) -> Vec<String> {
        let reach: BTreeMap<&String, BTreeSet<String>> = self
            .edges
            .keys()
            .map(|module| (module, self.reachable(module)))
            .collect();
        let mut done = BTreeSet::new();
        let mut out = Vec::new();
        for (module, reached) in &reach {
            if done.contains(*module) || !reached.contains(*module) {
                continue;
            }
            let group: BTreeSet<String> = reached
                .iter()
                .filter(|other| reach.get(other).is_some_and(|back| back.contains(*module)))
                .cloned()
                .collect();
            done.extend(group.iter().cloned());
            let mut arrows = Vec::new();
            for from in &group {
                for (to, sites) in &self.edges[from] {
                    if !group.contains(to) {
                        continue;
                    }
                    let more = match sites.len() {
                        1 => String::new(),
                        n => format!(" and {} more", n - 1),
                    };
                    arrows.push(format!("{from} → {to} ({}{more})", sites[0]));
                }
            }
            out.push(format!(
                "  {}\n    {}",
                self.shortest_cycle(module, &group).join(" → "),
                arrows.join("\n    ")
            ));
        }
        out
    }

    /// `start → … → start` within `group`, fewest arrows.
    fn shortest_cycle(&self, start: &str, group: &BTreeSet<String>) -> Vec<String> {
        let mut came_from: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = VecDeque::from([start.to_owned()]);
        while let Some(next) = queue.pop_front() {
            for to in self.edges.get(&next).into_iter().flat_map(BTreeMap::keys) {
                if !group.contains(to) || came_from.contains_key(to) {
                    continue;
                }
                came_from.insert(to.clone(), next.clone());
                if to == start {
                    let mut cycle = vec![start.to_owned()];
                    let mut at = came_from[start].clone();
                    while at != start {
                        cycle.push(at.clone());
                        at = came_from[&at].clone();
                    }
                    cycle.push(start.to_owned());
                    cycle.reverse();
                    return cycle;
                }
                queue.push_back(to.clone());
            }
        }
        vec![start.to_owned()]
    }
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("a source folder")
        .map(|entry| entry.expect("a folder entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
    out
}

/// The module path of a file (`engine/tasks/mod.rs` → `engine::tasks`);
/// `None` for the crate's roots (`lib.rs`, `main.rs`).
fn module_of(rel: &str) -> Option<Vec<String>> {
    let stem = rel.strip_suffix(".rs")?;
    let mut parts: Vec<String> = stem.split('/').map(str::to_owned).collect();
    if parts.len() > 1 && parts.last().is_some_and(|last| last == "mod") {
        parts.pop();
    }
    match parts.as_slice() {
        [only] if only == "lib" || only == "main" => None,
        _ => Some(parts),
    }
}

/// The absolute module paths (`engine::create::Request` as
/// `["engine", "create", "Request"]`) a file of module `module` names, each
/// with its line.
fn paths_in(text: &str, module: &[String]) -> Vec<Named> {
    let tokens = tokens(&code_only(text));
    let mut out = Vec::new();
    // Inline modules (`mod tests { … }`) open at a brace depth.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut k = 0;
    while k < tokens.len() {
        match &tokens[k].0 {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth -= 1;
                if inline.last().is_some_and(|(_, at)| *at == depth) {
                    inline.pop();
                }
            }
            Tok::Ident(kw) if kw == "mod" => {
                if let (Some((Tok::Ident(name), _)), Some((Tok::Punct('{'), _))) =
                    (tokens.get(k + 1), tokens.get(k + 2))
                {
                    inline.push((name.clone(), depth));
                    depth += 1;
                    k += 3;
                    continue;
                }
            }
            Tok::Ident(start) if matches!(start.as_str(), "crate" | "super" | "self") => {
                let starts_a_path = matches!(tokens.get(k + 1), Some((Tok::Sep, _)))
                    && !matches!(
                        k.checked_sub(1).map(|before| &tokens[before].0),
                        Some(Tok::Sep | Tok::Punct('$'))
                    );
                if starts_a_path {
                    let line = tokens[k].1;
                    let here: Vec<String> = module
                        .iter()
                        .cloned()
                        .chain(inline.iter().map(|(name, _)| name.clone()))
                        .collect();
                    let mut end = k;
                    for path in use_tree(&tokens, &mut end) {
                        if let Some(absolute) = resolve(&here, &path) {
                            out.push((absolute, line));
                        }
                    }
                    k = end;
                    continue;
                }
            }
            _ => {}
        }
        k += 1;
    }
    out
}

/// `path` written in module `here`, from the crate's root; `self` inside a
/// group (`c::{self, Y}`) names its prefix.
fn resolve(here: &[String], path: &[String]) -> Option<Vec<String>> {
    let (first, mut rest) = path.split_first()?;
    let mut absolute = match first.as_str() {
        "crate" => Vec::new(),
        "self" | "super" => {
            let mut at = here.to_vec();
            if first == "super" {
                at.pop()?;
            }
            while let Some((next, after)) = rest.split_first() {
                match next.as_str() {
                    "super" => {
                        at.pop()?;
                    }
                    "self" => {}
                    _ => break,
                }
                rest = after;
            }
            at
        }
        _ => return None,
    };
    absolute.extend(rest.iter().filter(|segment| *segment != "self").cloned());
    Some(absolute)
}

/// One path or group at `k`: `a::b`, `a::*`, `a::{b, c::{self, d as e}}`;
/// each leaf as its segments. `k` ends after it.
fn use_tree(tokens: &[(Tok, usize)], k: &mut usize) -> Vec<Vec<String>> {
    let mut prefix = Vec::new();
    loop {
        match tokens.get(*k).map(|(tok, _)| tok) {
            Some(Tok::Ident(segment)) => {
                prefix.push(segment.clone());
                *k += 1;
            }
            Some(Tok::Punct('*')) => {
                *k += 1;
                return vec![prefix];
            }
            Some(Tok::Punct('{')) => {
                *k += 1;
                let mut leaves = Vec::new();
                loop {
                    match tokens.get(*k).map(|(tok, _)| tok) {
                        None => return leaves,
                        Some(Tok::Punct('}')) => {
                            *k += 1;
                            return leaves;
                        }
                        Some(Tok::Punct(',')) => *k += 1,
                        // `as name` renames the leaf before it.
                        Some(Tok::Ident(kw)) if kw == "as" => *k += 2,
                        _ => {
                            let before = *k;
                            for leaf in use_tree(tokens, k) {
                                leaves.push(prefix.iter().cloned().chain(leaf).collect());
                            }
                            if *k == before {
                                *k += 1;
                            }
                        }
                    }
                }
            }
            _ => return vec![prefix],
        }
        if matches!(tokens.get(*k), Some((Tok::Sep, _))) {
            *k += 1;
        } else {
            return vec![prefix];
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Sep,
    Punct(char),
}

/// Identifiers, `::` and single punctuation, each with its line.
fn tokens(code: &str) -> Vec<(Tok, usize)> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((Tok::Ident(chars[start..i].iter().collect()), line));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push((Tok::Sep, line));
            i += 2;
        } else {
            out.push((Tok::Punct(c), line));
            i += 1;
        }
    }
    out
}

/// `text` with comments and string and character literals blanked (line
/// ends kept, so lines still count).
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    // Blanks `chars[from..to]`, keeping its line ends.
    let blank = |out: &mut String, from: usize, to: usize| {
        out.push(' ');
        out.extend(
            chars[from..to.min(chars.len())]
                .iter()
                .filter(|c| **c == '\n'),
        );
    };
    let ident_before = |i: usize| i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            let end = chars[i..]
                .iter()
                .position(|c| *c == '\n')
                .map_or(chars.len(), |n| i + n);
            blank(&mut out, i, end);
            i = end;
        } else if c == '/' && next == Some('*') {
            let (mut end, mut depth) = (i, 0);
            while end < chars.len() {
                if chars[end] == '/' && chars.get(end + 1) == Some(&'*') {
                    depth += 1;
                    end += 2;
                } else if chars[end] == '*' && chars.get(end + 1) == Some(&'/') {
                    depth -= 1;
                    end += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    end += 1;
                }
            }
            blank(&mut out, i, end);
            i = end;
        } else if c == '"' {
            let mut end = i + 1;
            while end < chars.len() && chars[end] != '"' {
                end += if chars[end] == '\\' { 2 } else { 1 };
            }
            blank(&mut out, i, end + 1);
            i = end + 1;
        } else if (c == 'r' || (c == 'b' && next == Some('r'))) && !ident_before(i) {
            // A raw string `r#"…"#` (or `br"…"`); else an identifier.
            let r = if c == 'b' { i + 1 } else { i };
            let hashes = chars[r + 1..].iter().take_while(|c| **c == '#').count();
            if chars.get(r + 1 + hashes) == Some(&'"') {
                let close: Vec<char> = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                let body = r + 2 + hashes;
                let end = (body..chars.len())
                    .find(|&at| chars[at..].starts_with(&close))
                    .map_or(chars.len(), |at| at + close.len());
                blank(&mut out, i, end);
                i = end;
            } else {
                out.push(c);
                i += 1;
            }
        } else if c == '\'' {
            // A character literal (`'x'`, `'\n'`, `'\u{..}'`), else a lifetime.
            let end = if next == Some('\\') {
                (i + 3..chars.len()).find(|&at| chars[at] == '\'')
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(end) => {
                    blank(&mut out, i, end + 1);
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

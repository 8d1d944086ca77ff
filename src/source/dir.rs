//! Reading a directory of definitions from the filesystem.
//!
//! Layer 1 of validation (size and safety) happens here, before any parser
//! sees a byte: files over the size limit are not read, symbolic links that
//! resolve outside the root are refused (and named), link loops are cut,
//! anything but a regular file (a FIFO, a socket, a device) named like a
//! definition or a notebook is refused without being opened for reading
//! (reading a FIFO would wait forever for a writer), and non-UTF-8 files are
//! reported. Hidden entries (`.git`, `.github`, `.weir`)
//! are skipped. Problems with single files become diagnostics in the
//! [`Tree`]; only an unusable root is an [`Error`].

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::{is_definition, not_regular, symlink_escape, too_large, unreadable};
use crate::validate::{SourceFile, Tree};

/// The default per-file limit: 1 MiB.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read `{path}`: {source}")]
    Root {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads every `*.yaml`/`*.yml` below `root` (or `root` itself if it is a file).
pub fn read_tree(root: &Path, max_file_size: u64) -> Result<Tree, Error> {
    let root_err = |source| Error::Root {
        path: root.to_owned(),
        source,
    };
    let canonical_root = root.canonicalize().map_err(root_err)?;
    let meta = fs::metadata(&canonical_root).map_err(root_err)?;
    let mut walk = Walk {
        root: canonical_root.clone(),
        max_file_size,
        tree: Tree::default(),
        visited_dirs: HashSet::new(),
    };
    if meta.is_file() {
        let name = canonical_root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        walk.root = canonical_root
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        walk.file(&canonical_root, &name);
    } else {
        walk.visited_dirs.insert(canonical_root.clone());
        walk.dir(&canonical_root, "").map_err(root_err)?;
    }
    walk.tree.files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(walk.tree)
}

struct Walk {
    root: PathBuf,
    max_file_size: u64,
    tree: Tree,
    visited_dirs: HashSet<PathBuf>,
}

impl Walk {
    fn dir(&mut self, dir: &Path, rel: &str) -> std::io::Result<()> {
        let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let rel_path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let path = entry.path();
            let file_type = entry.file_type()?;
            let target = if file_type.is_symlink() {
                self.tree.followed_links = true;
                match self.resolve_link(&path, &rel_path) {
                    Some(t) => t,
                    None => continue,
                }
            } else {
                path.clone()
            };
            if target.is_dir() {
                let canonical = target.canonicalize()?;
                if self.visited_dirs.insert(canonical) {
                    if let Err(e) = self.dir(&target, &rel_path) {
                        self.unreadable(&rel_path, &e.to_string());
                    }
                }
            } else if is_definition(&name) {
                self.file(&target, &rel_path);
            } else {
                if crate::validate::is_notebook(&rel_path) {
                    // Git's id of the content, as a Git source records it.
                    // A notebook is not parsed, so no size limit applies
                    // (outputs make them large); it is only hashed.
                    if let Some(bytes) = self.read_regular(&target, &rel_path, u64::MAX) {
                        match git2::Oid::hash_object(git2::ObjectType::Blob, &bytes) {
                            Ok(id) => {
                                self.tree.notebooks.insert(rel_path.clone(), id.to_string());
                            }
                            Err(e) => self.unreadable(&rel_path, &e.to_string()),
                        }
                    }
                }
                self.tree.other_paths.insert(rel_path);
            }
        }
        Ok(())
    }

    /// The link's target when it stays inside the root; reports it otherwise.
    fn resolve_link(&mut self, path: &Path, rel_path: &str) -> Option<PathBuf> {
        match path.canonicalize() {
            Ok(target) if target.starts_with(&self.root) => Some(target),
            // A link to a file outside that is not a definition (a shared
            // README, say) cannot carry definitions: ignore it.
            Ok(target) if target.is_file() && !is_definition(rel_path) => None,
            Ok(target) => {
                let target = target.display().to_string();
                self.tree
                    .read_errors
                    .push(symlink_escape(rel_path, &target));
                None
            }
            Err(_) if !is_definition(rel_path) => None,
            Err(e) => {
                self.unreadable(rel_path, &format!("broken symbolic link: {e}"));
                None
            }
        }
    }

    fn file(&mut self, path: &Path, rel_path: &str) {
        let Some(bytes) = self.read_regular(path, rel_path, self.max_file_size) else {
            return;
        };
        match String::from_utf8(bytes) {
            Ok(text) => self.tree.files.push(SourceFile {
                path: rel_path.to_owned(),
                text,
            }),
            Err(e) => self.unreadable(rel_path, &format!("not UTF-8 text ({})", e.utf8_error())),
        }
    }

    /// The bytes of `path` when it is a regular file of at most `limit`
    /// bytes; otherwise reports why not and returns `None`.
    ///
    /// Its type is checked before it is opened, then it is opened without
    /// blocking (a FIFO's open would wait for a writer) and checked again
    /// on the opened handle, so a file swapped for a FIFO between the check
    /// and the read is still refused.
    fn read_regular(&mut self, path: &Path, rel_path: &str, limit: u64) -> Option<Vec<u8>> {
        use std::io::Read as _;
        use std::os::unix::fs::OpenOptionsExt as _;

        // Checked before opening too: opening a device may act on it.
        match fs::metadata(path) {
            Ok(meta) if !meta.is_file() => {
                self.tree
                    .read_errors
                    .push(not_regular(rel_path, meta.file_type()));
                return None;
            }
            Ok(_) => {}
            Err(e) => {
                self.unreadable(rel_path, &e.to_string());
                return None;
            }
        }
        let opened = fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(path)
            .and_then(|file| Ok((file.metadata()?, file)));
        let (meta, mut file) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                self.unreadable(rel_path, &e.to_string());
                return None;
            }
        };
        if !meta.is_file() {
            self.tree
                .read_errors
                .push(not_regular(rel_path, meta.file_type()));
            return None;
        }
        if meta.len() > limit {
            self.tree
                .read_errors
                .push(too_large(rel_path, meta.len(), limit));
            return None;
        }
        let mut bytes = Vec::new();
        // The limit holds even if the file grows while it is read.
        match file
            .by_ref()
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
        {
            Ok(_) if bytes.len() as u64 > limit => {
                self.tree
                    .read_errors
                    .push(too_large(rel_path, bytes.len() as u64, limit));
                None
            }
            Ok(_) => Some(bytes),
            Err(e) => {
                self.unreadable(rel_path, &e.to_string());
                None
            }
        }
    }

    fn unreadable(&mut self, rel_path: &str, why: &str) {
        self.tree.read_errors.push(unreadable(rel_path, why));
    }
}

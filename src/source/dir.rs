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
use std::sync::Arc;

use super::{is_definition, not_regular, symlink_escape, too_large, unreadable};
use crate::validate::{Diagnostic, FileIds, SourceFile, Tree};

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
        definitions: Vec::new(),
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
        walk.file(canonical_root, &name, None);
    } else {
        walk.visited_dirs.insert(canonical_root.clone());
        walk.dir(&canonical_root, "").map_err(root_err)?;
    }
    walk.read_files();
    walk.tree.files.sort_by(|a, b| a.path.cmp(&b.path));
    walk.tree.file_ids = Some(Arc::new(DiskFileIds { root: walk.root }));
    Ok(walk.tree)
}

struct Walk {
    root: PathBuf,
    max_file_size: u64,
    tree: Tree,
    visited_dirs: HashSet<PathBuf>,
    /// Definition files found, to be read: (path, relative path, the type
    /// the listing gave, none for a link's target).
    definitions: Vec<(PathBuf, String, Option<fs::FileType>)>,
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
            // The entry's type comes with the listing (no `stat`); a link's
            // target's is asked for.
            let file_type = entry.file_type()?;
            let listed = (!file_type.is_symlink()).then_some(file_type);
            let target = if listed.is_none() {
                self.tree.followed_links = true;
                match self.resolve_link(&path, &rel_path) {
                    Some(t) => t,
                    None => continue,
                }
            } else {
                path
            };
            let is_dir = listed.map_or_else(|| target.is_dir(), |t| t.is_dir());
            if is_dir {
                let canonical = target.canonicalize()?;
                if self.visited_dirs.insert(canonical) {
                    if let Err(e) = self.dir(&target, &rel_path) {
                        self.unreadable(&rel_path, &e.to_string());
                    }
                }
            } else if is_definition(&name) {
                self.file(target, &rel_path, listed);
            } else {
                if crate::validate::is_notebook(&rel_path) {
                    // A notebook that is not a regular file (a FIFO) is
                    // refused at once, as a definition is; its content is
                    // hashed only if a task runs it (`DiskFileIds`).
                    let _ = self.open_regular(&target, &rel_path, listed);
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

    /// Queues a definition file: the files are read together once the
    /// walk is done ([`Walk::read_files`]).
    fn file(&mut self, path: PathBuf, rel_path: &str, listed: Option<fs::FileType>) {
        self.definitions.push((path, rel_path.to_owned(), listed));
    }

    /// Reads the queued definition files on all cores (2,000 files: 20 ms
    /// one after the other, each a handful of system calls), in the walk's
    /// order.
    fn read_files(&mut self) {
        let limit = self.max_file_size;
        let read = crate::validate::par::map(&self.definitions, |(path, rel_path, listed)| {
            read_definition(path, rel_path, *listed, limit)
        });
        for file in read {
            match file {
                Ok(file) => self.tree.files.push(file),
                Err(refused) => self.tree.read_errors.push(*refused),
            }
        }
    }

    /// `path` opened for reading, with its length, when it is a regular
    /// file; otherwise reports why not and returns `None`.
    fn open_regular(
        &mut self,
        path: &Path,
        rel_path: &str,
        listed: Option<fs::FileType>,
    ) -> Option<(u64, fs::File)> {
        match open_regular(path, rel_path, listed) {
            Ok(opened) => Some(opened),
            Err(refused) => {
                self.tree.read_errors.push(*refused);
                None
            }
        }
    }

    fn unreadable(&mut self, rel_path: &str, why: &str) {
        self.tree.read_errors.push(unreadable(rel_path, why));
    }
}

/// The text of the definition file `path` when it is a regular UTF-8
/// file of at most `limit` bytes; otherwise why not.
fn read_definition(
    path: &Path,
    rel_path: &str,
    listed: Option<fs::FileType>,
    limit: u64,
) -> Result<SourceFile, Box<Diagnostic>> {
    use std::io::Read as _;

    let (len, file) = open_regular(path, rel_path, listed)?;
    if len > limit {
        return Err(Box::new(too_large(rel_path, len, limit)));
    }
    // Room for the whole file and the read that finds its end.
    let mut bytes = Vec::with_capacity(usize::try_from(len).map_or(0, |n| n + 1));
    // The limit holds even if the file grows while it is read.
    match file.take(limit.saturating_add(1)).read_to_end(&mut bytes) {
        Ok(_) if bytes.len() as u64 > limit => {
            Err(Box::new(too_large(rel_path, bytes.len() as u64, limit)))
        }
        Ok(_) => match String::from_utf8(bytes) {
            Ok(text) => Ok(SourceFile {
                path: rel_path.to_owned(),
                text,
            }),
            Err(e) => Err(Box::new(unreadable(
                rel_path,
                &format!("not UTF-8 text ({})", e.utf8_error()),
            ))),
        },
        Err(e) => Err(Box::new(unreadable(rel_path, &e.to_string()))),
    }
}

/// `path` opened for reading, with its length, when it is a regular file;
/// otherwise why not.
///
/// Its type is checked before it is opened (the type its folder's listing
/// gave, `listed`, or else asked for), then it is opened without blocking
/// (a FIFO's open would wait for a writer) and checked again on the opened
/// handle, so a file swapped for a FIFO between the check and the read is
/// still refused.
fn open_regular(
    path: &Path,
    rel_path: &str,
    listed: Option<fs::FileType>,
) -> Result<(u64, fs::File), Box<Diagnostic>> {
    use std::os::unix::fs::OpenOptionsExt as _;

    // Checked before opening too: opening a device may act on it.
    let file_type = match listed {
        Some(file_type) => file_type,
        None => fs::metadata(path)
            .map_err(|e| Box::new(unreadable(rel_path, &e.to_string())))?
            .file_type(),
    };
    if !file_type.is_file() {
        return Err(Box::new(not_regular(rel_path, file_type)));
    }
    let (meta, file) = fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .and_then(|file| Ok((file.metadata()?, file)))
        .map_err(|e| Box::new(unreadable(rel_path, &e.to_string())))?;
    if !meta.is_file() {
        return Err(Box::new(not_regular(rel_path, meta.file_type())));
    }
    Ok((meta.len(), file))
}

/// The blob ids of a folder's files, hashed from disk when validation asks
/// for one (a file a task runs), never for the others.
#[derive(Debug)]
struct DiskFileIds {
    /// The folder read, canonical.
    root: PathBuf,
}

impl FileIds for DiskFileIds {
    /// Git's id of the content, as a Git source records it. Such a file is
    /// not parsed, so no size limit applies (a notebook's outputs make it
    /// large): it is hashed as it is read, never held in memory whole.
    fn blob_id(&self, rel_path: &str) -> Result<Option<String>, Box<Diagnostic>> {
        let path = match self.root.join(rel_path).canonicalize() {
            // The walk listed it, following links only inside the root.
            Ok(path) if path.starts_with(&self.root) => path,
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Box::new(unreadable(rel_path, &e.to_string()))),
        };
        let (len, file) = open_regular(&path, rel_path, None)?;
        blob_id(len, file)
            .map(Some)
            .map_err(|e| Box::new(unreadable(rel_path, &e.to_string())))
    }
}

/// Git's blob id of the `len` bytes read from `file`: the SHA-1 of
/// `blob <len>\0` followed by the bytes, read in chunks. A file whose length
/// changed while it was read is an error: its id would be of neither content.
fn blob_id(len: u64, file: fs::File) -> std::io::Result<String> {
    use sha1::Digest as _;
    use std::io::Read as _;

    let mut hasher = sha1::Sha1::new();
    hasher.update(format!("blob {len}\0").as_bytes());
    let mut reader = file.take(len.saturating_add(1));
    let mut buffer = vec![0; 64 * 1024];
    let mut read = 0u64;
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        read += n as u64;
        hasher.update(&buffer[..n]);
    }
    if read != len {
        return Err(std::io::Error::other(format!(
            "changed while it was read ({len} bytes, then {read})"
        )));
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod blob_id_tests {
    use super::blob_id;

    /// The id is Git's, streamed from the handle: the same as libgit2's
    /// over the whole content, for an empty file and one larger than a
    /// read's chunk.
    #[test]
    fn a_notebook_s_id_is_git_s_blob_id_read_in_chunks() {
        let dir = tempfile::tempdir().expect("tempdir");
        for size in [0usize, 10, 200 * 1024 + 7] {
            let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let path = dir.path().join("n.ipynb");
            std::fs::write(&path, &bytes).expect("write");
            let file = std::fs::File::open(&path).expect("open");
            let expected = git2::Oid::hash_object(git2::ObjectType::Blob, &bytes).expect("hash");
            assert_eq!(
                blob_id(size as u64, file).expect("hashed"),
                expected.to_string()
            );
            let file = std::fs::File::open(&path).expect("open");
            assert!(
                blob_id(size as u64 + 1, file).is_err(),
                "a changed length is named"
            );
        }
    }
}

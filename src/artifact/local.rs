//! The artifact store in a local directory: `<root>/sha256/<2 hex>/<62 hex>`
//! for files, `…/<hex>.dir.json` for directory manifests. Writes go to a
//! temporary name first and are renamed into place, so a reader never sees
//! half an artifact.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::{ArtifactStore, Error};
use crate::spec::Digest;

pub struct LocalArtifacts {
    root: PathBuf,
}

fn io<'a>(doing: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        doing,
        path: path.to_path_buf(),
        source,
    }
}

impl LocalArtifacts {
    pub fn new(root: impl Into<PathBuf>) -> LocalArtifacts {
        let root = root.into();
        LocalArtifacts {
            root: std::path::absolute(&root).unwrap_or(root),
        }
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.as_str();
        let (head, tail) = hex.split_at(2.min(hex.len()));
        self.root.join("sha256").join(head).join(tail)
    }

    fn manifest_path(&self, digest: &Digest) -> PathBuf {
        let mut path = self.blob_path(digest).into_os_string();
        path.push(".dir.json");
        PathBuf::from(path)
    }

    /// Writes `bytes` under `dest` unless it is there already.
    fn write_once(
        &self,
        dest: &Path,
        write: impl FnOnce(&Path) -> std::io::Result<()>,
    ) -> Result<(), Error> {
        if dest.exists() {
            return Ok(());
        }
        let folder = dest.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(folder).map_err(io("create", folder))?;
        let temp = folder.join(format!(
            ".tmp-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        write(&temp).map_err(io("write", &temp))?;
        std::fs::rename(&temp, dest).map_err(io("store", dest))
    }
}

/// sha256 of a file's bytes, streamed.
pub(super) fn file_digest(path: &Path) -> Result<Digest, Error> {
    let mut file = std::fs::File::open(path).map_err(io("read", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(io("read", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Digest::from_hex(hex(&hasher.finalize())))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        write!(out, "{b:02x}").expect("writing to a String cannot fail");
    }
    out
}

/// Every regular file under `dir`, as `/`-separated relative paths.
pub(super) fn files_under(dir: &Path) -> Result<Vec<String>, Error> {
    let mut found = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((folder, rel)) = stack.pop() {
        for entry in std::fs::read_dir(&folder).map_err(io("list", &folder))? {
            let entry = entry.map_err(io("list", &folder))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel_path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let kind = entry.file_type().map_err(io("inspect", &entry.path()))?;
            if kind.is_dir() {
                stack.push((entry.path(), rel_path));
            } else if kind.is_file() {
                found.push(rel_path);
            }
            // Links and special files are not outputs: skipped.
        }
    }
    found.sort();
    Ok(found)
}

impl ArtifactStore for LocalArtifacts {
    fn put_file(&self, path: &Path) -> Result<Digest, Error> {
        let digest = file_digest(path)?;
        self.write_once(&self.blob_path(&digest), |temp| {
            std::fs::copy(path, temp).map(|_| ())
        })?;
        Ok(digest)
    }

    fn put_dir(&self, path: &Path) -> Result<Digest, Error> {
        let mut manifest = serde_json::Map::new();
        for rel in files_under(path)? {
            let digest = self.put_file(&path.join(&rel))?;
            manifest.insert(rel, Value::String(digest.to_string()));
        }
        let manifest = Value::Object(manifest);
        let digest = Digest::of_json(&manifest);
        let text = manifest.to_string();
        self.write_once(&self.manifest_path(&digest), |temp| {
            std::fs::write(temp, &text)
        })?;
        Ok(digest)
    }

    fn fetch(&self, digest: &Digest, dest: &Path) -> Result<(), Error> {
        let blob = self.blob_path(digest);
        if let Some(folder) = dest.parent() {
            std::fs::create_dir_all(folder).map_err(io("create", folder))?;
        }
        if blob.exists() {
            std::fs::copy(&blob, dest).map_err(io("copy", dest))?;
            return Ok(());
        }
        let manifest_path = self.manifest_path(digest);
        let text = match std::fs::read_to_string(&manifest_path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Missing {
                    digest: digest.clone(),
                });
            }
            Err(e) => return Err(io("read", &manifest_path)(e)),
        };
        let manifest: BTreeMap<String, String> =
            serde_json::from_str(&text).map_err(|e| Error::Damaged {
                digest: digest.clone(),
                why: e.to_string(),
            })?;
        std::fs::create_dir_all(dest).map_err(io("create", dest))?;
        for (rel, file) in manifest {
            if rel.split('/').any(|p| p == ".." || p.is_empty()) {
                return Err(Error::Damaged {
                    digest: digest.clone(),
                    why: format!("manifest path `{rel}` leaves the directory"),
                });
            }
            self.fetch(&Digest::from_hex(file), &dest.join(&rel))?;
        }
        Ok(())
    }

    fn contains(&self, digest: &Digest) -> bool {
        self.blob_path(digest).exists() || self.manifest_path(digest).exists()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_directories_round_trip_by_content() {
        let root = tempfile::tempdir().expect("tempdir");
        let store = LocalArtifacts::new(root.path().join("artifacts"));
        let work = root.path().join("work");
        std::fs::create_dir_all(work.join("model/weights")).expect("mkdir");
        std::fs::write(work.join("a.txt"), "hello").expect("write");
        std::fs::write(work.join("b.txt"), "hello").expect("write");
        std::fs::write(work.join("model/config.json"), "{}").expect("write");
        std::fs::write(work.join("model/weights/w.bin"), [0u8, 1, 2]).expect("write");

        let a = store.put_file(&work.join("a.txt")).expect("put");
        let b = store.put_file(&work.join("b.txt")).expect("put");
        assert_eq!(a, b, "same content, same digest");
        assert_eq!(
            a.as_str(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        let dir = store.put_dir(&work.join("model")).expect("put dir");
        assert!(store.contains(&dir));

        let out = root.path().join("out");
        store.fetch(&a, &out.join("a.txt")).expect("fetch file");
        assert_eq!(
            std::fs::read_to_string(out.join("a.txt")).expect("read"),
            "hello"
        );
        store.fetch(&dir, &out.join("model")).expect("fetch dir");
        assert_eq!(
            std::fs::read(out.join("model/weights/w.bin")).expect("read"),
            [0u8, 1, 2]
        );
        let missing = Digest::from_hex("0".repeat(64));
        assert!(matches!(
            store.fetch(&missing, &out.join("x")),
            Err(Error::Missing { .. })
        ));
    }

    #[test]
    fn references_are_strict() {
        let d = Digest::from_hex("ab".repeat(32));
        assert_eq!(
            super::super::parse_reference(&super::super::reference(&d)),
            Some(d)
        );
        assert_eq!(super::super::parse_reference("sha256:xyz"), None);
        assert_eq!(super::super::parse_reference("hello"), None);
    }
}

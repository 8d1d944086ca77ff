//! Artifacts in object storage (the `object_store` crate): `s3://bucket/prefix`
//! for S3 and S3-compatible stores (MinIO, Ceph, R2: credentials, region and
//! endpoint from the usual `AWS_*` environment variables), and
//! `memory://` (one process; for tests). The layout is the local store's:
//! `<prefix>/sha256/<hex>` for a file, `<prefix>/sha256/<hex>.dir.json` for a
//! directory's manifest; keeping an object that exists is skipped.
//!
//! [`ArtifactStore`] is synchronous (attempts call it from blocking code),
//! and object stores are async: each call runs on this store's own small
//! runtime and waits for it, so it works from any thread, inside a tokio
//! runtime or not.

use std::future::Future;
use std::path::Path as FsPath;
use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde_json::Value;

use super::local::{file_digest, files_under};
use super::{ArtifactStore, Error};
use crate::spec::Digest;

pub struct ObjectArtifacts {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    /// Where the store's futures run (taken on drop: a runtime may not be
    /// dropped inside another one).
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for ObjectArtifacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectArtifacts({}/{})", self.store, self.prefix)
    }
}

impl Drop for ObjectArtifacts {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn failed(doing: &'static str, path: &str, e: impl std::fmt::Display) -> Error {
    Error::Io {
        doing,
        path: path.into(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Why an object store cannot be opened as an artifact store.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("not a URL")]
    NotAUrl,
    /// `url` is `s3://` with nothing before the prefix.
    #[error("`{0}` names no bucket (s3://bucket/prefix)")]
    NoBucket(String),
    #[error("unsupported object store `{0}://`")]
    Unsupported(String),
    /// The store's backend refused `url` (bad settings, missing region, …).
    #[error("`{url}`: {reason}")]
    Backend {
        url: String,
        reason: object_store::Error,
    },
    /// `file://`'s folder cannot be created.
    #[error("`{url}`: {reason}")]
    Folder { url: String, reason: std::io::Error },
    #[error("cannot start the artifact store's runtime: {0}")]
    Runtime(std::io::Error),
}

impl ObjectArtifacts {
    /// `store` under `prefix` (no leading or trailing `/`).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Result<ObjectArtifacts, OpenError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("artifacts")
            .enable_all()
            .build()
            .map_err(OpenError::Runtime)?;
        Ok(ObjectArtifacts {
            store,
            prefix: prefix.trim_matches('/').to_owned(),
            runtime: Some(runtime),
        })
    }

    /// Opens `s3://bucket[/prefix]`, `file:///path` (a shared volume,
    /// through object_store's local backend) or `memory://[prefix]`.
    pub fn open(url: &str) -> Result<ObjectArtifacts, OpenError> {
        let (scheme, rest) = url.split_once("://").ok_or(OpenError::NotAUrl)?;
        let backend = |reason| OpenError::Backend {
            url: url.to_owned(),
            reason,
        };
        match scheme {
            "s3" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(OpenError::NoBucket(url.to_owned()));
                }
                let store = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .map_err(backend)?;
                ObjectArtifacts::new(Arc::new(store), prefix)
            }
            "memory" => ObjectArtifacts::new(Arc::new(object_store::memory::InMemory::new()), rest),
            "file" => {
                std::fs::create_dir_all(rest).map_err(|reason| OpenError::Folder {
                    url: url.to_owned(),
                    reason,
                })?;
                let store =
                    object_store::local::LocalFileSystem::new_with_prefix(rest).map_err(backend)?;
                ObjectArtifacts::new(Arc::new(store), "")
            }
            other => Err(OpenError::Unsupported(other.to_owned())),
        }
    }

    fn run<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        self.runtime
            .as_ref()
            .expect("the runtime lives until drop")
            .spawn(async move {
                let _ = tx.send(future.await);
            });
        rx.recv().expect("the artifact store's runtime runs")
    }

    fn key(&self, digest: &Digest, suffix: &str) -> Path {
        let name = format!("sha256/{}{suffix}", digest.as_str());
        if self.prefix.is_empty() {
            Path::from(name)
        } else {
            Path::from(format!("{}/{name}", self.prefix))
        }
    }

    fn exists(&self, key: &Path) -> Result<bool, Error> {
        let store = self.store.clone();
        let key = key.clone();
        let shown = key.to_string();
        match self.run(async move { store.head(&key).await }) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(failed("look up", &shown, e)),
        }
    }

    fn put_bytes(&self, key: &Path, bytes: Vec<u8>) -> Result<(), Error> {
        if self.exists(key)? {
            return Ok(());
        }
        let store = self.store.clone();
        let owned = key.clone();
        self.run(async move { store.put(&owned, PutPayload::from(bytes)).await })
            .map(|_| ())
            .map_err(|e| failed("store", key.as_ref(), e))
    }

    fn get_bytes(&self, key: &Path) -> Result<Option<Vec<u8>>, Error> {
        let store = self.store.clone();
        let owned = key.clone();
        let got = self.run(async move {
            match store.get(&owned).await {
                Ok(result) => result.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        got.map(|b| b.map(|b| b.to_vec()))
            .map_err(|e| failed("read", key.as_ref(), e))
    }
}

impl ArtifactStore for ObjectArtifacts {
    fn put_file(&self, path: &FsPath) -> Result<Digest, Error> {
        let digest = file_digest(path)?;
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            doing: "read",
            path: path.to_path_buf(),
            source,
        })?;
        self.put_bytes(&self.key(&digest, ""), bytes)?;
        Ok(digest)
    }

    fn put_dir(&self, path: &FsPath) -> Result<Digest, Error> {
        let mut manifest = serde_json::Map::new();
        for rel in files_under(path)? {
            let digest = self.put_file(&path.join(&rel))?;
            manifest.insert(rel, Value::String(digest.to_string()));
        }
        let manifest = Value::Object(manifest);
        let digest = Digest::of_json(&manifest);
        self.put_bytes(
            &self.key(&digest, ".dir.json"),
            manifest.to_string().into_bytes(),
        )?;
        Ok(digest)
    }

    fn fetch(&self, digest: &Digest, dest: &FsPath) -> Result<(), Error> {
        let write = |to: &FsPath, bytes: &[u8]| {
            if let Some(folder) = to.parent() {
                std::fs::create_dir_all(folder).map_err(|source| Error::Io {
                    doing: "create",
                    path: folder.to_path_buf(),
                    source,
                })?;
            }
            std::fs::write(to, bytes).map_err(|source| Error::Io {
                doing: "write",
                path: to.to_path_buf(),
                source,
            })
        };
        if let Some(bytes) = self.get_bytes(&self.key(digest, ""))? {
            return write(dest, &bytes);
        }
        let Some(text) = self.get_bytes(&self.key(digest, ".dir.json"))? else {
            return Err(Error::Missing {
                digest: digest.clone(),
            });
        };
        let manifest: serde_json::Map<String, Value> =
            serde_json::from_slice(&text).map_err(|e| Error::Damaged {
                digest: digest.clone(),
                why: e.to_string(),
            })?;
        for (rel, file) in manifest {
            let file = file
                .as_str()
                .map(Digest::from_hex)
                .ok_or_else(|| Error::Damaged {
                    digest: digest.clone(),
                    why: format!("`{rel}` has no digest"),
                })?;
            if rel.split('/').any(|part| part == ".." || part.is_empty()) {
                return Err(Error::Damaged {
                    digest: digest.clone(),
                    why: format!("`{rel}` leaves the directory"),
                });
            }
            let bytes = self
                .get_bytes(&self.key(&file, ""))?
                .ok_or(Error::Missing { digest: file })?;
            write(&dest.join(&rel), &bytes)?;
        }
        Ok(())
    }

    fn contains(&self, digest: &Digest) -> bool {
        self.exists(&self.key(digest, "")).unwrap_or(false)
            || self.exists(&self.key(digest, ".dir.json")).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_directories_round_trip_through_an_object_store() {
        let store = ObjectArtifacts::open("memory://runs/weir").expect("store");
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("rows.csv");
        std::fs::write(&file, "a,b\n1,2\n").expect("write");
        let digest = store.put_file(&file).expect("put");
        assert_eq!(digest, store.put_file(&file).expect("again"), "kept once");
        assert!(store.contains(&digest));
        let back = dir.path().join("back.csv");
        store.fetch(&digest, &back).expect("fetch");
        assert_eq!(std::fs::read_to_string(&back).expect("read"), "a,b\n1,2\n");

        let model = dir.path().join("model");
        std::fs::create_dir_all(model.join("weights")).expect("mkdir");
        std::fs::write(model.join("config.json"), "{}").expect("write");
        std::fs::write(model.join("weights/layer0.bin"), [0u8, 1, 2]).expect("write");
        let tree = store.put_dir(&model).expect("put dir");
        let copy = dir.path().join("copy");
        store.fetch(&tree, &copy).expect("fetch dir");
        assert_eq!(
            std::fs::read(copy.join("weights/layer0.bin")).expect("read"),
            [0, 1, 2]
        );

        let missing = Digest::from_hex("0".repeat(64));
        assert!(!store.contains(&missing));
        let error = store
            .fetch(&missing, &dir.path().join("x"))
            .expect_err("missing");
        assert!(matches!(error, Error::Missing { .. }), "{error}");
    }

    #[tokio::test]
    async fn it_works_from_inside_a_runtime() {
        let store = ObjectArtifacts::open("memory://").expect("store");
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        std::fs::write(&file, "x").expect("write");
        let digest = store.put_file(&file).expect("put");
        assert!(store.contains(&digest));
        drop(store);
    }

    #[test]
    fn bad_urls_are_named() {
        assert!(
            ObjectArtifacts::open("s3://")
                .unwrap_err()
                .to_string()
                .contains("no bucket")
        );
        assert!(
            ObjectArtifacts::open("gs://b")
                .unwrap_err()
                .to_string()
                .contains("unsupported")
        );
    }
}

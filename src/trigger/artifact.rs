//! An `artifact` trigger's prefix: listed through `object_store` (S3 and
//! S3-compatible stores with the usual `AWS_*` environment, or a local
//! folder), each object matching the pattern compared with the version
//! of it seen last (its ETag, else its version, else its time and size),
//! and each new one copied into the artifact store, whose digest is what
//! the launch plan's `file` input receives.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use serde_json::{Value, json};

use crate::artifact::{self, ArtifactStore};

/// Why a prefix cannot be watched or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("`{0}` is not an s3:// or file:// URL")]
    Scheme(String),
    #[error("`{0}` names no bucket (s3://bucket/prefix/)")]
    NoBucket(String),
    #[error("{0}")]
    Pattern(String),
    /// The store refused or failed (the message of `object_store`).
    #[error("{0}")]
    Store(String),
}

/// `pattern` as a matcher of keys relative to the prefix
/// ([`crate::spec::events::pattern`]).
pub fn matcher(pattern: &str) -> Result<globset::GlobMatcher, Error> {
    crate::spec::events::pattern(pattern).map_err(Error::Pattern)
}

/// Where a URL's objects are: the store (one client per bucket or folder,
/// shared by the triggers that watch it) and the prefix within it.
#[derive(Default)]
pub struct Stores(HashMap<String, Arc<dyn ObjectStore>>);

impl Stores {
    pub fn open(&mut self, url: &str) -> Result<(Arc<dyn ObjectStore>, Path), Error> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| Error::Scheme(url.to_owned()))?;
        let (root, prefix) = match scheme {
            "s3" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(Error::NoBucket(url.to_owned()));
                }
                (format!("s3://{bucket}"), prefix)
            }
            "file" => (format!("file://{rest}"), ""),
            _ => return Err(Error::Scheme(url.to_owned())),
        };
        if let Some(store) = self.0.get(&root) {
            return Ok((store.clone(), Path::from(prefix.trim_matches('/'))));
        }
        let store: Arc<dyn ObjectStore> = match scheme {
            "s3" => Arc::new(
                object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(root.trim_start_matches("s3://"))
                    .build()
                    .map_err(|e| Error::Store(e.to_string()))?,
            ),
            _ => Arc::new(
                object_store::local::LocalFileSystem::new_with_prefix(rest)
                    .map_err(|e| Error::Store(e.to_string()))?,
            ),
        };
        self.0.insert(root, store.clone());
        Ok((store, Path::from(prefix.trim_matches('/'))))
    }
}

/// One object under a prefix, as listed.
#[derive(Debug, Clone)]
pub struct Object {
    pub meta: ObjectMeta,
    /// Which version of it this is.
    pub tag: String,
}

impl Object {
    /// The event's identity: the key and the version.
    pub fn event(&self) -> String {
        format!("{}@{}", self.meta.location, self.tag)
    }

    /// What is shown of it: its URL, key, tag, size and time.
    pub fn detail(&self, scheme_root: &str) -> Value {
        json!({
            "url": format!("{}/{}", scheme_root.trim_end_matches('/'), self.meta.location),
            "key": self.meta.location.as_ref(),
            "etag": self.tag,
            "size": self.meta.size,
            "lastModified": self.meta.last_modified,
        })
    }
}

/// The version of `meta`: its ETag, else its version id, else its time
/// and size.
fn tag(meta: &ObjectMeta) -> String {
    meta.e_tag
        .clone()
        .or_else(|| meta.version.clone())
        .unwrap_or_else(|| {
            format!(
                "{}-{}",
                meta.last_modified.timestamp_nanos_opt().unwrap_or_default(),
                meta.size
            )
        })
}

/// The objects under `prefix` whose key relative to it matches `pattern`.
pub async fn list(
    store: &dyn ObjectStore,
    prefix: &Path,
    pattern: &globset::GlobMatcher,
) -> Result<Vec<Object>, Error> {
    let prefix_text = prefix.as_ref();
    let listed: Vec<ObjectMeta> = store
        .list(if prefix_text.is_empty() {
            None
        } else {
            Some(prefix)
        })
        .try_collect()
        .await
        .map_err(|e| Error::Store(e.to_string()))?;
    Ok(listed
        .into_iter()
        .filter(|meta| {
            let key = meta.location.as_ref();
            let relative = key
                .strip_prefix(prefix_text)
                .map_or(key, |r| r.trim_start_matches('/'));
            pattern.is_match(relative)
        })
        .map(|meta| Object {
            tag: tag(&meta),
            meta,
        })
        .collect())
}

/// Copies `object` into `artifacts`: its `sha256:` reference.
pub async fn fetch(
    store: &dyn ObjectStore,
    object: &Object,
    artifacts: Arc<dyn ArtifactStore>,
) -> Result<String, Error> {
    let bytes = store
        .get(&object.meta.location)
        .await
        .map_err(|e| Error::Store(e.to_string()))?
        .bytes()
        .await
        .map_err(|e| Error::Store(e.to_string()))?;
    let digest = tokio::task::spawn_blocking(move || -> Result<_, Error> {
        let staged = stage_path();
        std::fs::write(&staged, &bytes).map_err(|e| Error::Store(e.to_string()))?;
        let put = artifacts.put_file(&staged);
        let _ = std::fs::remove_file(&staged);
        put.map_err(|e| Error::Store(e.to_string()))
    })
    .await
    .map_err(|e| Error::Store(e.to_string()))??;
    Ok(artifact::reference(&digest))
}

/// A fresh file name in the temporary folder for an object on its way
/// into the artifact store.
fn stage_path() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "weir-trigger-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// When `seen` (key → tag) was last the state of a prefix, the objects of
/// `listed` that are new or changed.
pub fn changed<'a>(seen: &HashMap<String, String>, listed: &'a [Object]) -> Vec<&'a Object> {
    listed
        .iter()
        .filter(|o| seen.get(o.meta.location.as_ref()) != Some(&o.tag))
        .collect()
}

/// The (key, tag) an event's `detail` recorded.
pub fn seen_of(detail: &Value) -> Option<(String, String)> {
    Some((
        detail.get("key")?.as_str()?.to_owned(),
        detail.get("etag")?.as_str()?.to_owned(),
    ))
}

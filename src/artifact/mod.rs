//! Artifacts: every output a node produces, kept by the sha256 of its
//! content (DESIGN.md section 6), behind one trait so the local directory
//! (the default) and object storage share the engine.
//!
//! A file's digest is the sha256 of its bytes. A directory's is the digest
//! of its manifest (`{"relative/path": "<file digest>", …}` as canonical
//! JSON); the manifest is kept too, so a directory can be fetched whole.
//! Values are written as `sha256:<hex>` wherever a file or directory is
//! passed (node outputs, workflow outputs, lineage).

pub mod local;
pub mod object;

use std::path::{Path, PathBuf};

use crate::spec::Digest;

pub use local::LocalArtifacts;

/// The prefix of an artifact reference in a value.
pub const PREFIX: &str = "sha256:";

/// `sha256:<hex>` for a digest.
pub fn reference(digest: &Digest) -> String {
    format!("{PREFIX}{digest}")
}

/// The digest in a `sha256:<hex>` reference.
pub fn parse_reference(text: &str) -> Option<Digest> {
    let hex = text.strip_prefix(PREFIX)?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then(|| Digest::from_hex(hex))
}

/// The digest a person names: `sha256:<hex>` or the 64 hex alone.
pub fn parse_named(text: &str) -> Option<Digest> {
    parse_reference(text).or_else(|| parse_reference(&format!("{PREFIX}{text}")))
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {doing} `{path}`: {source}")]
    Io {
        doing: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("artifact sha256:{digest} is not in the artifact store")]
    Missing { digest: Digest },
    #[error("artifact sha256:{digest} is damaged: {why}")]
    Damaged { digest: Digest, why: String },
}

/// Opens the artifact store at `url`: a local directory (a plain path),
/// S3 or an S3-compatible store (`s3://bucket/prefix`), a shared volume
/// through object storage's local backend (`file:///path`), or `memory://`
/// (one process, for tests). Both sides of a Kubernetes attempt (the
/// engine and `weir exec-task` in the pod) open the same URL.
pub fn open(url: &str) -> Result<Box<dyn ArtifactStore>, OpenError> {
    if url.contains("://") {
        return Ok(Box::new(object::ObjectArtifacts::open(url)?));
    }
    if url.is_empty() {
        return Err(OpenError::EmptyPath);
    }
    Ok(Box::new(LocalArtifacts::new(url)))
}

/// Why [`open`] cannot open an artifact store.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the artifact store's path is empty")]
    EmptyPath,
    /// An object store's URL it refused (see [`object::OpenError`]).
    #[error(transparent)]
    Object(#[from] object::OpenError),
}

/// Where artifacts' bytes live.
pub trait ArtifactStore: Send + Sync {
    /// Keeps a file; returns its digest. Keeping the same content twice
    /// stores it once.
    fn put_file(&self, path: &Path) -> Result<Digest, Error>;

    /// Keeps a directory (its files, recursively, and its manifest).
    fn put_dir(&self, path: &Path) -> Result<Digest, Error>;

    /// Writes the artifact to `dest`: a file, or a directory for a
    /// directory's digest.
    fn fetch(&self, digest: &Digest, dest: &Path) -> Result<(), Error>;

    fn contains(&self, digest: &Digest) -> bool;
}

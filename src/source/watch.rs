//! Watching a local repository's refs, so that a commit or a push to it
//! is seen at once rather than at the next poll (`weir serve`'s reconcile
//! loops, `crate::daemon`).
//!
//! What it guarantees: after any change under the repository's `refs/`,
//! to its `HEAD` or to its `packed-refs` (written by rename, so the Git
//! folder itself is watched too), `on_change` is called, at least once.
//! Reads are not changes (a reconcile pass opens the repository, and must
//! not wake itself). What it must not be relied on for: watching is a
//! shortcut, never the only way a change is seen. A remote repository
//! (a URL) is not watched, and a watch that cannot be set up is logged and
//! given up; the caller keeps polling either way.

use std::path::Path;

use ::notify::Watcher as _;

/// A live watch on a repository's refs; dropping it stops watching.
pub struct RefWatch {
    _watcher: ::notify::RecommendedWatcher,
}

impl std::fmt::Debug for RefWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefWatch")
    }
}

/// Watches the refs of the local repository at `repo` (a working tree or
/// a bare repository), calling `on_change` on each change; `None` for a
/// remote repository or when watching is not possible (see the module
/// doc: the caller polls).
pub fn watch_refs(repo: &str, on_change: impl Fn() + Send + 'static) -> Option<RefWatch> {
    if repo.contains("://") {
        return None;
    }
    let root = Path::new(repo);
    let git_dir = if root.join(".git").is_dir() {
        root.join(".git")
    } else {
        root.to_path_buf()
    };
    let mut watcher =
        ::notify::recommended_watcher(move |event: ::notify::Result<::notify::Event>| {
            // Reads (ours included: a pass opens the repository) are not changes.
            if event.is_ok_and(|e| !matches!(e.kind, ::notify::EventKind::Access(_))) {
                on_change();
            }
        })
        .map_err(|e| tracing::warn!(error = %e, "cannot watch the repository; polling only"))
        .ok()?;
    for path in [
        git_dir.join("refs"),
        git_dir.join("HEAD"),
        git_dir.join("packed-refs"),
    ] {
        if path.exists() {
            let mode = if path.is_dir() {
                ::notify::RecursiveMode::Recursive
            } else {
                ::notify::RecursiveMode::NonRecursive
            };
            if let Err(e) = watcher.watch(&path, mode) {
                tracing::warn!(path = %path.display(), error = %e, "cannot watch; polling only");
            }
        }
    }
    // Packed refs are rewritten by rename: watch the folder too.
    let _ = watcher.watch(&git_dir, ::notify::RecursiveMode::NonRecursive);
    Some(RefWatch { _watcher: watcher })
}

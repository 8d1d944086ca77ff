//! A generated repository's commits, for the benchmarks that register one
//! (`sync`, `create`): each commit writes files under `defs/` straight into
//! the index, with no working tree.

use git2::{Repository, Signature};

/// Commits `files` (path under `defs/`, text) on top of `HEAD`.
pub fn commit(repo: &Repository, files: &[(String, String)], message: &str) {
    let mut index = repo.index().expect("index");
    for (path, text) in files {
        let blob = repo.blob(text.as_bytes()).expect("blob");
        let entry = git2::IndexEntry {
            ctime: git2::IndexTime::new(0, 0),
            mtime: git2::IndexTime::new(0, 0),
            dev: 0,
            ino: 0,
            mode: 0o100644,
            uid: 0,
            gid: 0,
            file_size: text.len() as u32,
            id: blob,
            flags: 0,
            flags_extended: 0,
            path: format!("defs/{path}").into_bytes(),
        };
        index.add(&entry).expect("add");
    }
    let tree = repo
        .find_tree(index.write_tree().expect("tree"))
        .expect("tree");
    index.write().expect("index");
    let sig = Signature::now("Bench", "bench@example.com").expect("signature");
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
        .expect("commit");
}

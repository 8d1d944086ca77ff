//! Where definition files come from: a directory on disk (`dir`, for
//! `weir validate`) or a commit of a Git repository (`git`, for `sync` and
//! the daemon). Both produce the same [`crate::validate::Tree`], with the
//! same size and safety rules. `watch` tells the daemon when a local
//! repository's refs change.

pub mod credentials;
pub mod dir;
pub mod git;
pub mod history;
pub mod verify;
pub mod watch;
pub mod write;

use crate::validate::{Code, Diagnostic};

pub(crate) use crate::validate::is_definition;

/// W001: a file over the size limit (not read).
pub(crate) fn too_large(rel_path: &str, size: u64, limit: u64) -> Diagnostic {
    Diagnostic::new(
        Code::FileTooLarge,
        rel_path,
        None,
        format!("`{rel_path}` is {size} bytes, over the limit of {limit} bytes"),
    )
    .with_help("split it into several files, or raise the limit with --max-file-size")
}

/// W002: a symbolic link that leaves the repository (not followed).
pub(crate) fn symlink_escape(rel_path: &str, target: &str) -> Diagnostic {
    Diagnostic::new(
        Code::SymlinkEscape,
        rel_path,
        None,
        format!("symbolic link `{rel_path}` points outside the repository, to `{target}`"),
    )
    .with_help("definitions are read only from inside the repository; copy the file in instead of linking to it")
}

/// W003: a definition or notebook that is not a regular file (a FIFO, a
/// socket, a device): refused without being read, since reading a FIFO
/// waits for a writer and a device may never end.
pub(crate) fn not_regular(rel_path: &str, file_type: std::fs::FileType) -> Diagnostic {
    use std::os::unix::fs::FileTypeExt as _;
    let kind = if file_type.is_fifo() {
        "a named pipe (FIFO)"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else {
        "a special file"
    };
    Diagnostic::new(
        Code::UnreadableFile,
        rel_path,
        None,
        format!("`{rel_path}` is {kind}, not a regular file; it was not read"),
    )
    .with_help("definitions and notebooks are read only from regular files (or links to them inside the repository)")
}

/// W003: a file that cannot be read, and why.
pub(crate) fn unreadable(rel_path: &str, why: &str) -> Diagnostic {
    Diagnostic::new(
        Code::UnreadableFile,
        rel_path,
        None,
        format!("cannot read `{rel_path}`: {why}"),
    )
}

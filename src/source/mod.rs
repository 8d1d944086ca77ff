//! Where definition files come from: a directory on disk (`dir`, for
//! `weir validate`) or a commit of a Git repository (`git`, for `sync` and
//! the daemon). Both produce the same [`crate::validate::Tree`], with the
//! same size and safety rules.

pub mod credentials;
pub mod dir;
pub mod git;
pub mod write;

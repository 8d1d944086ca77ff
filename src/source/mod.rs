//! Where definition files come from. This release reads a directory
//! (`dir`); Git trees come next and produce the same [`crate::validate::Tree`].

pub mod dir;

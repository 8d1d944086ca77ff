//! How a command ends, and the one place that says so. A subcommand
//! returns a [`Result`]: an [`ExitStatus`] when it did its work and printed
//! its result (a failed execution or an invalid tree is a result too), or
//! an [`Error`] when it could not do what was asked. [`finish`], called
//! once by [`super::main`], turns either into the process's exit code and
//! renders an error on stderr (`error: <message>`, then `  = help: <help>`
//! when there is one). No subcommand prints an error itself.
//!
//! Not everything on stderr is an error: progress and notices a command
//! writes on purpose while it runs (`engine … drives this store: …`, an
//! interrupt's outcome, a refused tree's diagnostics) go through [`notice`]
//! and [`notice_text`], so stdout keeps only results.
//!
//! Exit codes, the same for the same situation in every command, whether
//! it reads the store or a daemon (`--server`):
//!
//! - 0: success.
//! - 1: the definitions are invalid, an execution waited for did not
//!   succeed, or the request cannot be done in the state things are in
//!   (cancelling an execution that has ended, rolling back to the active
//!   version).
//! - 2: weir could not run as asked: a bad argument (clap's own usage
//!   errors and the values weir checks itself: an unknown status, an
//!   input that is not `name=value`, a range that ends before it starts),
//!   an unreadable path, no store where one is read, a store or a server
//!   that does not answer or refuses the token.
//! - 3: not found: an execution, a node, a version (a launch plan,
//!   workflow or task of that name) or an artifact that does not exist.
//!   Over `--server` the API's 404 means it.
//! - 130 or 143: interrupted by SIGINT or SIGTERM.

use std::fmt;

use super::wait::Interrupt;

/// Exit code: everything is fine.
pub const EXIT_OK: u8 = 0;
/// Exit code: the definitions (or the request) are invalid.
pub const EXIT_INVALID: u8 = 1;
/// Exit code: weir could not run (bad arguments, unreadable path).
pub const EXIT_ERROR: u8 = 2;
/// Exit code: what the command was asked about does not exist.
pub const EXIT_NOT_FOUND: u8 = 3;

/// What a command that did its work ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Exit 0.
    Success,
    /// Exit 1 without an error line: what the command printed says why (the
    /// tree is invalid, an execution it waited for did not succeed).
    Failure,
    /// Exit 130 or 143: interrupted; the command said what it left.
    Interrupted(Interrupt),
}

impl ExitStatus {
    /// [`ExitStatus::Success`] or, when `ok` is false, [`ExitStatus::Failure`].
    pub fn success_if(ok: bool) -> ExitStatus {
        if ok {
            ExitStatus::Success
        } else {
            ExitStatus::Failure
        }
    }

    pub fn exit_code(self) -> u8 {
        match self {
            ExitStatus::Success => EXIT_OK,
            ExitStatus::Failure => EXIT_INVALID,
            ExitStatus::Interrupted(signal) => signal.exit_code(),
        }
    }
}

/// What a command returns.
pub type Result<T = ExitStatus, E = Error> = std::result::Result<T, E>;

/// Why a command could not do what was asked: the error it ended with
/// (whose text is what the user reads), a help line, and the exit code it
/// means. Built with [`Error::invalid`], [`Error::failed`] or
/// [`Error::not_found`] where the command knows which it is; [`finish`]
/// renders it.
#[derive(Debug)]
pub struct Error {
    error: Box<dyn std::error::Error + Send + Sync>,
    help: Option<&'static str>,
    code: u8,
}

impl Error {
    /// The definitions are invalid, or the request cannot be done in the
    /// state things are in: exit 1.
    pub fn invalid(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        Error {
            error: error.into(),
            help: None,
            code: EXIT_INVALID,
        }
    }

    /// weir could not run (a bad argument, a store, a path, a server): exit 2.
    pub fn failed(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        Error {
            error: error.into(),
            help: None,
            code: EXIT_ERROR,
        }
    }

    /// An execution, node, version or artifact that does not exist: exit 3.
    pub fn not_found(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        Error {
            error: error.into(),
            help: None,
            code: EXIT_NOT_FOUND,
        }
    }

    /// The same error, with a line saying what to do about it.
    pub fn with_help(self, help: &'static str) -> Error {
        Error {
            help: Some(help),
            ..self
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.code
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.error)?;
        if let Some(help) = self.help {
            write!(f, "\n  = help: {help}")?;
        }
        Ok(())
    }
}

/// The process's exit code for how a command ended; an error is rendered
/// on stderr here, the only place errors are.
pub fn finish(result: Result) -> u8 {
    match result {
        Ok(status) => status.exit_code(),
        Err(error) => {
            eprintln!("{error}");
            error.exit_code()
        }
    }
}

/// A line to stderr, for progress and notices (see the module doc).
pub fn notice(line: impl fmt::Display) {
    eprintln!("{line}");
}

/// Text to stderr as it is (it ends its own lines): diagnostics a command
/// shows before the error they lead to.
pub fn notice_text(text: &str) {
    eprint!("{text}");
}

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
//! Exit codes: 0 success; 1 the definitions or the request are invalid, or
//! an execution waited for did not succeed; 2 weir could not run (bad
//! arguments, an unreadable path, a store that does not answer); 130 or
//! 143 interrupted by SIGINT or SIGTERM.

use std::fmt;

use super::wait::Interrupt;

/// Exit code: everything is fine.
pub const EXIT_OK: u8 = 0;
/// Exit code: the definitions (or the request) are invalid.
pub const EXIT_INVALID: u8 = 1;
/// Exit code: weir could not run (bad arguments, unreadable path).
pub const EXIT_ERROR: u8 = 2;

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
/// means. Built with [`Error::invalid`] or [`Error::failed`] where the
/// command knows which of the two it is; [`finish`] renders it.
#[derive(Debug)]
pub struct Error {
    error: Box<dyn std::error::Error + Send + Sync>,
    help: Option<&'static str>,
    code: u8,
}

impl Error {
    /// The request or the definitions cannot be done as given: exit 1.
    pub fn invalid(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        Error {
            error: error.into(),
            help: None,
            code: EXIT_INVALID,
        }
    }

    /// weir could not run (a store, a path, the runtime): exit 2.
    pub fn failed(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        Error {
            error: error.into(),
            help: None,
            code: EXIT_ERROR,
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

//! Cron expressions as users write them: exactly five fields
//! (minute hour day-of-month month day-of-week) or an `@hourly`-style macro,
//! parsed by croner. croner also accepts six-field (seconds) patterns;
//! weir refuses them so that a schedule means the same everywhere.

use std::str::FromStr;

/// The macros weir accepts.
pub const MACROS: [&str; 7] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

/// Why a text is not a cron expression weir reads (the text trimmed).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown cron macro `{name}` (known: {})", MACROS.join(", "))]
    UnknownMacro { name: String },
    #[error("cron `{expr}` has {fields} fields; weir reads exactly 5")]
    Fields { expr: String, fields: usize },
    #[error("invalid cron `{expr}`: {reason}")]
    Invalid {
        expr: String,
        reason: croner::errors::CronError,
    },
}

/// Accepts five-field cron expressions and the `@hourly`-style macros.
pub fn parse(expr: &str) -> Result<croner::Cron, Error> {
    let trimmed = expr.trim();
    if trimmed.starts_with('@') {
        if !MACROS.contains(&trimmed) {
            return Err(Error::UnknownMacro {
                name: trimmed.to_owned(),
            });
        }
    } else {
        let fields = trimmed.split_whitespace().count();
        if fields != 5 {
            return Err(Error::Fields {
                expr: trimmed.to_owned(),
                fields,
            });
        }
    }
    croner::Cron::from_str(trimmed).map_err(|reason| Error::Invalid {
        expr: trimmed.to_owned(),
        reason,
    })
}

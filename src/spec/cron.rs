//! Cron expressions as users write them: exactly five fields
//! (minute hour day-of-month month day-of-week) or an `@hourly`-style macro,
//! parsed by croner. croner also accepts six-field (seconds) patterns;
//! weir refuses them so that a schedule means the same everywhere.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};

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

/// [`parse`], shared: every schedule written the same (`0 2 * * *` in 500
/// launch plans) holds one parsed expression. A parsed cron takes about
/// 5 KB, so a daemon with 2,000 schedules kept 10 MB of copies of a few
/// dozen expressions. Expressions no schedule holds any more are dropped
/// from the table as it grows.
pub fn shared(expr: &str) -> Result<Arc<croner::Cron>, Error> {
    static PARSED: LazyLock<Mutex<HashMap<String, Weak<croner::Cron>>>> =
        LazyLock::new(Default::default);
    let key = expr.trim();
    let mut parsed = PARSED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(cron) = parsed.get(key).and_then(Weak::upgrade) {
        return Ok(cron);
    }
    let cron = Arc::new(parse(key)?);
    if parsed.len() >= 256 && parsed.len().is_power_of_two() {
        parsed.retain(|_, cron| cron.strong_count() > 0);
    }
    parsed.insert(key.to_owned(), Arc::downgrade(&cron));
    Ok(cron)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_written_alike_share_one_parsed_expression() {
        let one = shared("17 2 * * *").expect("valid");
        let two = shared(" 17 2 * * * ").expect("valid");
        assert!(Arc::ptr_eq(&one, &two), "one parse for both");
        let other = shared("18 2 * * *").expect("valid");
        assert!(!Arc::ptr_eq(&one, &other));
        assert!(shared("17 2 * *").is_err(), "refused as parse refuses it");
        let weak = Arc::downgrade(&other);
        drop(other);
        assert!(
            weak.upgrade().is_none(),
            "the table keeps no schedule alive"
        );
    }
}

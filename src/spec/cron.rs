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

/// Accepts five-field cron expressions and the `@hourly`-style macros.
pub fn parse(expr: &str) -> Result<croner::Cron, String> {
    let trimmed = expr.trim();
    if trimmed.starts_with('@') {
        if !MACROS.contains(&trimmed) {
            return Err(format!(
                "unknown cron macro `{trimmed}` (known: {})",
                MACROS.join(", ")
            ));
        }
    } else {
        let fields = trimmed.split_whitespace().count();
        if fields != 5 {
            return Err(format!(
                "cron `{trimmed}` has {fields} fields; weir reads exactly 5"
            ));
        }
    }
    croner::Cron::from_str(trimmed).map_err(|e| format!("invalid cron `{trimmed}`: {e}"))
}

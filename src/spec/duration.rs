//! Durations as users write them: `30m`, `1h30m`, `10s`, `1d`, `500ms`.
//!
//! Go-style units (which Kubernetes and Argo users already know), plus `d`
//! for days. A bare number is refused: `30` could mean seconds or minutes.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("a duration cannot be empty")]
    Empty,
    #[error("`{0}` has no unit (use ms, s, m, h or d, e.g. `30m` or `1h30m`)")]
    MissingUnit(String),
    #[error("`{text}` has an unknown unit `{unit}` (use ms, s, m, h or d)")]
    UnknownUnit { text: String, unit: String },
    #[error("`{0}` is not a duration (expected e.g. `30m`, `1h30m`, `10s`)")]
    Malformed(String),
    #[error("`{0}` is too long")]
    Overflow(String),
}

/// Parses a duration such as `1h30m`.
pub fn parse(text: &str) -> Result<Duration, Error> {
    let s = text.trim();
    if s.is_empty() {
        return Err(Error::Empty);
    }
    let mut total_ms: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(Error::Malformed(text.to_owned()));
        }
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        if unit_len == 0 {
            return Err(if tail.is_empty() {
                Error::MissingUnit(text.to_owned())
            } else {
                Error::Malformed(text.to_owned())
            });
        }
        let (unit, tail) = tail.split_at(unit_len);
        let per_unit: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => {
                return Err(Error::UnknownUnit {
                    text: text.to_owned(),
                    unit: unit.to_owned(),
                });
            }
        };
        let n: u64 = number
            .parse()
            .map_err(|_| Error::Overflow(text.to_owned()))?;
        total_ms = n
            .checked_mul(per_unit)
            .and_then(|v| total_ms.checked_add(v))
            .ok_or_else(|| Error::Overflow(text.to_owned()))?;
        rest = tail;
    }
    Ok(Duration::from_millis(total_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compound_durations() {
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("1d").unwrap(), Duration::from_secs(86400));
    }

    #[test]
    fn refuses_ambiguous_or_broken_text() {
        assert_eq!(parse("30"), Err(Error::MissingUnit("30".into())));
        assert!(matches!(parse("5y"), Err(Error::UnknownUnit { .. })));
        assert!(matches!(parse("h"), Err(Error::Malformed(_))));
        assert!(matches!(parse("1h 30m"), Err(Error::Malformed(_))));
        assert!(matches!(
            parse("99999999999999999999d"),
            Err(Error::Overflow(_))
        ));
        assert_eq!(parse(""), Err(Error::Empty));
    }
}

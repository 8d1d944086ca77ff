//! Durations as users write them: `30m`, `1h30m`, `10s`, `1d`, `500ms`.
//!
//! Go-style units (which Kubernetes and Argo users already know), plus `d`
//! for days. A bare number is refused: `30` could mean seconds or minutes.
//!
//! Every duration field of a definition has a maximum ([`Field::max`]),
//! checked at validation (`W035 duration-out-of-range`), so that any instant
//! computed from a registered definition fits a calendar: code that adds a
//! duration to a time may rely on these bounds, and still uses checked
//! arithmetic for versions registered before the bounds existed.
//!
//! A definition's duration field is a [`DurationText`]: the text as written
//! (what is serialized, so digests, stored versions and `weir diff` show
//! exactly what the user typed) together with what it parses to, parsed
//! once when the definition is read. Reading never fails on a bad text:
//! validation reports it (W024) from the kept parse result, and code past
//! validation asks for the value with [`DurationText::value`], which names
//! the field and the text when a stored version's text does not parse
//! (one registered before a rule existed), never falling back silently.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

const DAY: Duration = Duration::from_secs(86_400);

/// The duration fields of a definition, each with its maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `retries.backoff`: the wait before the first retry (it doubles per
    /// retry, up to [`MAX_RETRY_WAIT`]).
    Backoff,
    /// `timeout`: how long one attempt may run.
    Timeout,
    /// `schedule.every`: the fixed rate of a schedule.
    Every,
    /// `schedule.startingDeadline`: how late a scheduled instant may start.
    StartingDeadline,
    /// `sidecars[].readiness.timeout`: how long a sidecar has to become
    /// ready.
    Readiness,
    /// `approve.timeout`: how long an approval gate waits for a decision.
    Approval,
    /// `triggers[].artifact.interval`: how often a prefix is listed.
    Interval,
}

impl Field {
    /// The field as written in a definition.
    pub fn name(self) -> &'static str {
        match self {
            Field::Backoff => "retries.backoff",
            Field::Timeout => "timeout",
            Field::Every => "schedule.every",
            Field::StartingDeadline => "schedule.startingDeadline",
            Field::Readiness => "readiness.timeout",
            Field::Approval => "approve.timeout",
            Field::Interval => "artifact.interval",
        }
    }

    /// The largest value accepted: 7 days for a backoff, 30 days for a
    /// timeout (an attempt's, a sidecar's readiness, an approval's), 366
    /// days for a schedule's rate and starting deadline, a day for a
    /// trigger's listing interval.
    pub fn max(self) -> Duration {
        match self {
            Field::Backoff => 7 * DAY,
            Field::Timeout | Field::Readiness | Field::Approval => 30 * DAY,
            Field::Every | Field::StartingDeadline => 366 * DAY,
            Field::Interval => DAY,
        }
    }

    /// `value` is within this field's maximum; else the error says which
    /// maximum it exceeds.
    pub fn check(self, text: &str, value: Duration) -> Result<(), OutOfRange> {
        if value <= self.max() {
            Ok(())
        } else {
            Err(OutOfRange {
                field: self,
                text: text.to_owned(),
            })
        }
    }
}

/// The longest wait between two attempts of a node: a backoff doubled per
/// retry saturates here.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(7 * 86_400);

/// A duration longer than its field allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} `{text}` exceeds the maximum of {}", field.name(), format(field.max()))]
pub struct OutOfRange {
    pub field: Field,
    pub text: String,
}

/// A duration field as written, with its parse result (module docs).
///
/// Equality, serialization and so digests follow the text alone:
/// `90m` and `1h30m` are different definitions, as written.
#[derive(Clone)]
pub struct DurationText {
    text: String,
    /// Boxed: the error is rare, and a definition holds several of these.
    parsed: Result<Duration, Box<Error>>,
}

impl DurationText {
    /// Reads `text` (parsing it once).
    pub fn new(text: impl Into<String>) -> DurationText {
        let text = text.into();
        let parsed = parse(&text).map_err(Box::new);
        DurationText { text, parsed }
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// What the text parses to, or why it does not (validation's W024).
    pub fn parsed(&self) -> Result<Duration, &Error> {
        self.parsed.as_ref().copied().map_err(|e| &**e)
    }

    /// The value of `field`, for code past validation: an error naming the
    /// field and the text when it does not parse (a version registered
    /// before validation refused its text).
    pub fn value(&self, field: Field) -> Result<Duration, Unreadable> {
        self.parsed.clone().map_err(|error| Unreadable {
            field,
            text: self.text.clone(),
            error: *error,
        })
    }
}

/// A stored definition's duration that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {error} (a version registered before validation refused it: fix the definition in Git)", field.name())]
pub struct Unreadable {
    pub field: Field,
    pub text: String,
    pub error: Error,
}

impl PartialEq for DurationText {
    fn eq(&self, other: &DurationText) -> bool {
        self.text == other.text
    }
}

impl Eq for DurationText {}

impl std::fmt::Debug for DurationText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DurationText").field(&self.text).finish()
    }
}

impl std::fmt::Display for DurationText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<&str> for DurationText {
    fn from(text: &str) -> DurationText {
        DurationText::new(text)
    }
}

impl Serialize for DurationText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for DurationText {
    /// Any string is read: a text that does not parse is validation's to
    /// report, with its position.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<DurationText, D::Error> {
        String::deserialize(deserializer).map(DurationText::new)
    }
}

/// `d` in the largest units that divide it exactly, e.g. `7d`, `1h30m`.
pub fn format(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut text = String::new();
    for (unit, per) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= per {
            text.push_str(&format!("{}{unit}", ms / per));
            ms %= per;
        }
    }
    text
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

    #[test]
    fn each_field_has_a_maximum() {
        let huge = parse("100000000d").unwrap();
        let refused = Field::Backoff.check("100000000d", huge).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "retries.backoff `100000000d` exceeds the maximum of 7d"
        );
        assert!(Field::Backoff.check("7d", parse("7d").unwrap()).is_ok());
        assert!(Field::Timeout.check("30d", parse("30d").unwrap()).is_ok());
        assert!(Field::Every.check("367d", parse("367d").unwrap()).is_err());
        assert_eq!(format(parse("1h30m500ms").unwrap()), "1h30m500ms");
    }

    #[test]
    fn a_written_duration_keeps_its_text_and_its_value() {
        let written: DurationText = serde_json::from_str(r#""1h30m""#).unwrap();
        assert_eq!(written.as_str(), "1h30m");
        assert_eq!(written.parsed(), Ok(Duration::from_secs(5400)));
        assert_eq!(serde_json::to_string(&written).unwrap(), r#""1h30m""#);
        // As written: another spelling of the same length is another text.
        assert_ne!(written, DurationText::new("90m"));
    }

    #[test]
    fn a_bad_text_is_read_and_named_when_its_value_is_asked_for() {
        let written: DurationText = serde_json::from_str(r#""soon""#).expect("never refused");
        assert_eq!(serde_json::to_string(&written).unwrap(), r#""soon""#);
        assert_eq!(written.parsed(), Err(&Error::Malformed("soon".into())));
        let refused = written.value(Field::Backoff).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "retries.backoff: `soon` is not a duration (expected e.g. `30m`, `1h30m`, `10s`) \
             (a version registered before validation refused it: fix the definition in Git)"
        );
    }
}

//! Kubernetes resource quantities (`500m`, `1Gi`, `2`, `1.5`, `1e3`).
//!
//! YAML lets users write `cpu: 1` as a number; [`Quantity`] accepts a number
//! or a string and keeps the text, so the digest sees what was written.
//! [`parse`] checks the grammar of Kubernetes' `resource.Quantity`.

use std::borrow::Cow;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

/// A quantity as written; checked by [`parse`] during validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Quantity(pub String);

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(serde_json::Number),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Text(s) => Quantity(s),
            Raw::Number(n) => Quantity(n.to_string()),
        })
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> Cow<'static, str> {
        "Quantity".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A Kubernetes quantity, e.g. `500m`, `2`, `1Gi`.",
            "type": ["string", "number"]
        })
    }
}

/// Why a text is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a Kubernetes quantity (expected e.g. `500m`, `2`, `1.5`, `1Gi`)")]
pub struct Error {
    pub text: String,
}

/// Checks a quantity: a signed decimal number, then an optional suffix
/// (`Ki Mi Gi Ti Pi Ei`, `n u m k M G T P E`, or an exponent `e3`/`E3`).
pub fn parse(text: &str) -> Result<(), Error> {
    let bad = || Error {
        text: text.to_owned(),
    };
    let s = text.trim_start_matches(['+', '-']);
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return Err(bad());
    }
    let ok_suffix = matches!(
        suffix,
        "" | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
            | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
    ) || (suffix.len() > 1
        && suffix.starts_with(['e', 'E'])
        && suffix[1..]
            .trim_start_matches(['+', '-'])
            .bytes()
            .all(|b| b.is_ascii_digit())
        && !suffix[1..].trim_start_matches(['+', '-']).is_empty());
    if ok_suffix { Ok(()) } else { Err(bad()) }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn kubernetes_quantities() {
        for ok in [
            "500m",
            "1Gi",
            "2",
            "1.5",
            "1e3",
            "128974848",
            "0.5",
            "100Mi",
            "+1",
        ] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Gi", "1GB", "1.2.3", "abc", "1 Gi", "e3", "1e"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}

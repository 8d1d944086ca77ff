//! Version digests: sha256 of canonical JSON (DESIGN.md section 2).
//!
//! Canonical JSON has object keys sorted and no whitespace, whatever order
//! the YAML had and whatever serde_json's map type is, so reformatting a
//! file, reordering keys or adding comments never changes a digest.

use std::fmt;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// A full sha256 digest in lower-case hex; shown as its first 12 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Digest(String);

impl Digest {
    /// Digest of the canonical JSON of `value`.
    pub fn of_json(value: &Value) -> Digest {
        let mut text = String::new();
        write_canonical(value, &mut text);
        let hash = Sha256::digest(text.as_bytes());
        let mut hex = String::with_capacity(64);
        for byte in hash {
            write!(hex, "{byte:02x}").expect("writing to a String cannot fail");
        }
        Digest(hex)
    }

    /// Wraps a stored 64-hex digest.
    pub fn from_hex(hex: impl Into<String>) -> Digest {
        Digest(hex.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The version as shown to users: the first 12 hex characters.
    pub fn short(&self) -> &str {
        &self.0[..12.min(self.0.len())]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Writes `value` as canonical JSON: sorted keys, no insignificant space.
pub fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_matter() {
        let a = json!({"b": 1, "a": {"y": [1, 2], "x": null}});
        let b = json!({"a": {"x": null, "y": [1, 2]}, "b": 1});
        assert_eq!(Digest::of_json(&a), Digest::of_json(&b));
        assert_ne!(Digest::of_json(&a), Digest::of_json(&json!({"b": 2})));
        assert_eq!(Digest::of_json(&a).short().len(), 12);
    }
}

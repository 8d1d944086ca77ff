//! Version digests: sha256 of canonical JSON (DESIGN.md section 2).
//!
//! Canonical JSON has object keys sorted and no whitespace, whatever order
//! the YAML had and whatever serde_json's map type is, so reformatting a
//! file, reordering keys or adding comments never changes a digest.

pub mod canonical;

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// Lower-case hexadecimal digits: a digest's text and JSON's `\u00xx`.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// A full sha256 digest in lower-case hex; shown as its first 12 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Digest(String);

impl Digest {
    /// Digest of the canonical JSON of `value`.
    pub fn of_json(value: &Value) -> Digest {
        // Written into a buffer and hashed at once: fed to the hash piece by
        // piece (a key, a quote, a scalar), the hash's own buffering of
        // those few bytes cost more than the hashing itself.
        let mut bytes = Vec::with_capacity(1024);
        write_canonical_to(value, &mut bytes);
        Digest::of_canonical(&bytes)
    }

    /// Digest of the canonical JSON of `value` as `serde_json::to_value`
    /// has it: the digest [`Digest::of_json`] gives that value, without
    /// building it.
    pub fn of_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Digest, canonical::Error> {
        let mut bytes = Vec::with_capacity(1024);
        canonical::write(value, &mut bytes)?;
        Ok(Digest::of_canonical(&bytes))
    }

    fn of_canonical(bytes: &[u8]) -> Digest {
        let hash = Sha256::digest(bytes);
        let hex = hash
            .iter()
            .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]])
            .map(char::from)
            .collect();
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
    let mut bytes = Vec::new();
    write_canonical_to(value, &mut bytes);
    out.push_str(std::str::from_utf8(&bytes).expect("serde_json writes UTF-8"));
}

/// [`write_canonical`] into a buffer. Strings and numbers are written by
/// serde_json itself (the same escapes and number forms as its `Display`),
/// without an intermediate `String` per key or scalar.
fn write_canonical_to(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            out.push(b'{');
            // serde_json's map is sorted unless a crate in the build turns on
            // `preserve_order`; sort anyway so the digest cannot depend on it.
            if map.keys().is_sorted() {
                write_entries(map.iter(), out);
            } else {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                write_entries(entries.into_iter(), out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical_to(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_entries<'a>(entries: impl Iterator<Item = (&'a String, &'a Value)>, out: &mut Vec<u8>) {
    for (i, (key, item)) in entries.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_scalar(key, out);
        out.push(b':');
        write_canonical_to(item, out);
    }
}

fn write_scalar(scalar: &(impl Serialize + ?Sized), out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, scalar).expect("a scalar always writes to a buffer");
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

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

    #[test]
    fn canonical_text_is_pinned() {
        // Stored versions depend on these exact bytes: escapes and number
        // forms are serde_json's, keys sorted, no space.
        let value = json!({"b": "q\"\n\u{e9}", "a": {"y": [1, 2.5, -3], "x": null, "~/": true}});
        let mut text = String::new();
        write_canonical(&value, &mut text);
        assert_eq!(
            text,
            "{\"a\":{\"x\":null,\"y\":[1,2.5,-3],\"~/\":true},\"b\":\"q\\\"\\n\u{e9}\"}"
        );
        let mut hash = Sha256::new();
        hash.update(text.as_bytes());
        let mut hex = String::new();
        for byte in hash.finalize() {
            write!(hex, "{byte:02x}").unwrap();
        }
        assert_eq!(Digest::of_json(&value).as_str(), hex);
    }
}

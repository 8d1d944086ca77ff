//! Canonical JSON written straight from a `Serialize` value, byte for byte
//! what `serde_json::to_value` followed by [`super::write_canonical`]
//! writes, without building the `Value`: every string, map node and vector
//! of that tree was an allocation, and building it was most of the cost of
//! versioning 10,000 definitions.
//!
//! Objects are written in the order serde hands their entries (a struct's
//! fields in declaration order) and each one is then put in key order in
//! place: its entries' places are kept on a stack shared by every level,
//! so an object costs no allocation of its own.

use std::borrow::Cow;

use serde::ser::{self, Impossible, Serialize};
use serde_json::Value;

/// Appends the canonical JSON of `value` to `out`.
pub fn write<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), Error> {
    let mut writer = Writer {
        out: std::mem::take(out),
        entries: Vec::new(),
        scratch: Vec::new(),
    };
    let result = value.serialize(&mut writer);
    *out = writer.out;
    result
}

/// Why a value has no JSON form (a map key that is not a string or a
/// number, a custom serializer's error).
#[derive(Debug)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// One entry of an object being written: its key and where its `"key":value`
/// text is in the output.
struct Entry {
    key: Cow<'static, str>,
    start: usize,
    end: usize,
}

struct Writer {
    out: Vec<u8>,
    /// The entries of every object being written, innermost last.
    entries: Vec<Entry>,
    /// Room to put an object's entries in order.
    scratch: Vec<u8>,
}

impl Writer {
    fn scalar(&mut self, value: &Value) -> Result<(), Error> {
        serde_json::to_writer(&mut self.out, value).map_err(|e| Error(e.to_string()))
    }

    fn string(&mut self, value: &str) -> Result<(), Error> {
        write_str(&mut self.out, value);
        Ok(())
    }

    /// `{"variant":` before a variant's array or object: an object of one
    /// entry, already in order; its `Wrapped` closes it.
    fn open_variant(&mut self, variant: &str) -> Result<(), Error> {
        self.out.push(b'{');
        self.string(variant)?;
        self.out.push(b':');
        Ok(())
    }

    fn open_object(&mut self) -> Object<'_> {
        self.out.push(b'{');
        let base = self.entries.len();
        Object { writer: self, base }
    }

    fn open_array(&mut self) -> Array<'_> {
        self.out.push(b'[');
        Array {
            writer: self,
            first: true,
        }
    }
}

/// `value` as a JSON string, escaped as serde_json escapes (`\"`, `\\`,
/// `\b`, `\f`, `\n`, `\r`, `\t`, and `\u00xx` for the other control
/// characters; nothing else): the bytes stored versions depend on. Runs
/// that need no escape, most of a script, are found eight bytes at a time
/// and copied whole.
fn write_str(out: &mut Vec<u8>, value: &str) {
    use super::HEX;
    let bytes = value.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // `bytes[copied..i]` needs no escape and is not yet written.
    let (mut copied, mut i) = (0, 0);
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8) {
            let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            if !needs_escape(word) {
                i += 8;
                continue;
            }
        }
        let escape: &[u8] = match bytes[i] {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            control @ 0..0x20 => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(control >> 4)],
                HEX[usize::from(control & 0xf)],
            ],
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[copied..i]);
        out.extend_from_slice(escape);
        i += 1;
        copied = i;
    }
    out.extend_from_slice(&bytes[copied..]);
    out.push(b'"');
}

/// Whether any of the eight bytes of `word` is a control character, `"`
/// or `\\` (bytes of UTF-8 sequences, 0x80 and up, are none of them).
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Non-zero when a byte of `v` is below `n` (for `n` up to 0x80).
    let below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGH;
    (below(word, 0x20)
        | below(word ^ (ONES * u64::from(b'"')), 1)
        | below(word ^ (ONES * u64::from(b'\\')), 1))
        != 0
}

/// An object being written: entries in any order, sorted when it closes.
struct Object<'a> {
    writer: &'a mut Writer,
    /// Where this object's entries start on the shared stack.
    base: usize,
}

impl<'a> Object<'a> {
    fn entry<T: Serialize + ?Sized>(
        &mut self,
        key: Cow<'static, str>,
        value: &T,
    ) -> Result<(), Error> {
        let w = &mut *self.writer;
        if w.entries.len() > self.base {
            w.out.push(b',');
        }
        let start = w.out.len();
        w.string(&key)?;
        w.out.push(b':');
        w.entries.push(Entry { key, start, end: 0 });
        let at = w.entries.len() - 1;
        value.serialize(&mut *w)?;
        w.entries[at].end = w.out.len();
        Ok(())
    }

    /// Puts the entries in key order (a later duplicate of a key replaces
    /// the earlier, as in a map) and closes the object.
    fn close(self) -> &'a mut Writer {
        let w = self.writer;
        let entries = &mut w.entries[self.base..];
        let sorted = entries.windows(2).all(|p| p[0].key < p[1].key);
        if !sorted {
            let start = entries[0].start;
            w.scratch.clear();
            w.scratch.extend_from_slice(&w.out[start..]);
            // Stable: of equal keys, the last written is the one kept.
            entries.sort_by(|a, b| a.key.cmp(&b.key));
            w.out.truncate(start);
            let mut kept = entries.iter().peekable();
            let mut first = true;
            while let Some(e) = kept.next() {
                if kept.peek().is_some_and(|next| next.key == e.key) {
                    continue;
                }
                if !first {
                    w.out.push(b',');
                }
                first = false;
                w.out
                    .extend_from_slice(&w.scratch[e.start - start..e.end - start]);
            }
        }
        w.entries.truncate(self.base);
        w.out.push(b'}');
        w
    }
}

struct Array<'a> {
    writer: &'a mut Writer,
    first: bool,
}

impl<'a> Array<'a> {
    fn item<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        if !self.first {
            self.writer.out.push(b',');
        }
        self.first = false;
        value.serialize(&mut *self.writer)
    }

    fn close(self) -> &'a mut Writer {
        self.writer.out.push(b']');
        self.writer
    }
}

/// An array or object inside a one-entry object (`{"Variant": ...}`).
struct Wrapped<T>(T);

/// A map: its next key, until its value comes.
struct Map<'a> {
    object: Object<'a>,
    key: Option<String>,
}

/// Scalars JSON has a `Value` for, written as that value is.
macro_rules! scalars {
    ($($method:ident: $type:ty),*) => {$(
        fn $method(self, v: $type) -> Result<(), Error> {
            self.scalar(&Value::from(v))
        }
    )*};
}

/// Map keys written as their text, as `serde_json::to_value` writes them.
macro_rules! keys {
    ($($method:ident: $type:ty),*) => {$(
        fn $method(self, v: $type) -> Result<String, Error> {
            Ok(v.to_string())
        }
    )*};
}

impl<'a> ser::Serializer for &'a mut Writer {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Array<'a>;
    type SerializeTuple = Array<'a>;
    type SerializeTupleStruct = Array<'a>;
    type SerializeTupleVariant = Wrapped<Array<'a>>;
    type SerializeMap = Map<'a>;
    type SerializeStruct = Object<'a>;
    type SerializeStructVariant = Wrapped<Object<'a>>;

    scalars!(
        serialize_bool: bool,
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_i64: i64,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32,
        serialize_u64: u64,
        serialize_f32: f32,
        serialize_f64: f64
    );
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        let value = serde_json::to_value(v).map_err(|e| Error(e.to_string()))?;
        self.scalar(&value)
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        let value = serde_json::to_value(v).map_err(|e| Error(e.to_string()))?;
        self.scalar(&value)
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.string(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.string(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        let mut array = self.open_array();
        for byte in v {
            array.item(byte)?;
        }
        array.close();
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.scalar(&Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.scalar(&Value::Null)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.scalar(&Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.string(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        let mut object = self.open_object();
        object.entry(Cow::Borrowed(variant), value)?;
        object.close();
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Array<'a>, Error> {
        Ok(self.open_array())
    }
    fn serialize_tuple(self, _len: usize) -> Result<Array<'a>, Error> {
        Ok(self.open_array())
    }
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Array<'a>, Error> {
        Ok(self.open_array())
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Wrapped<Array<'a>>, Error> {
        self.open_variant(variant)?;
        Ok(Wrapped(self.open_array()))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Map<'a>, Error> {
        Ok(Map {
            object: self.open_object(),
            key: None,
        })
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Object<'a>, Error> {
        Ok(self.open_object())
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Wrapped<Object<'a>>, Error> {
        self.open_variant(variant)?;
        Ok(Wrapped(self.open_object()))
    }
}

/// A sequence, a tuple and a tuple struct are all arrays.
macro_rules! array {
    ($($trait:ident::$method:ident),*) => {$(
        impl ser::$trait for Array<'_> {
            type Ok = ();
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                self.item(value)
            }
            fn end(self) -> Result<(), Error> {
                self.close();
                Ok(())
            }
        }
    )*};
}

array!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field
);

impl ser::SerializeTupleVariant for Wrapped<Array<'_>> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.0.item(value)
    }
    fn end(self) -> Result<(), Error> {
        self.0.close().out.push(b'}');
        Ok(())
    }
}

impl ser::SerializeMap for Map<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.key = Some(key.serialize(KeyWriter)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let key = self
            .key
            .take()
            .ok_or_else(|| Error("a map's value came before its key".to_owned()))?;
        self.object.entry(Cow::Owned(key), value)
    }
    fn end(self) -> Result<(), Error> {
        self.object.close();
        Ok(())
    }
}

impl ser::SerializeStruct for Object<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.entry(Cow::Borrowed(key), value)
    }
    fn end(self) -> Result<(), Error> {
        self.close();
        Ok(())
    }
}

impl ser::SerializeStructVariant for Wrapped<Object<'_>> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.0.entry(Cow::Borrowed(key), value)
    }
    fn end(self) -> Result<(), Error> {
        self.0.close().out.push(b'}');
        Ok(())
    }
}

/// A map key as `serde_json::to_value` reads it: a string, or a number,
/// boolean or character written as a string.
struct KeyWriter;

impl ser::Serializer for KeyWriter {
    type Ok = String;
    type Error = Error;
    type SerializeSeq = Impossible<String, Error>;
    type SerializeTuple = Impossible<String, Error>;
    type SerializeTupleStruct = Impossible<String, Error>;
    type SerializeTupleVariant = Impossible<String, Error>;
    type SerializeMap = Impossible<String, Error>;
    type SerializeStruct = Impossible<String, Error>;
    type SerializeStructVariant = Impossible<String, Error>;

    keys!(
        serialize_bool: bool,
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_i64: i64,
        serialize_i128: i128,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32,
        serialize_u64: u64,
        serialize_u128: u128,
        serialize_char: char
    );
    fn serialize_f32(self, v: f32) -> Result<String, Error> {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<String, Error> {
        if v.is_finite() {
            Ok(Value::from(v).to_string())
        } else {
            Err(key_must_be_a_string())
        }
    }
    fn serialize_str(self, v: &str) -> Result<String, Error> {
        Ok(v.to_owned())
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<String, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_none(self) -> Result<String, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<String, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit(self) -> Result<String, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<String, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<String, Error> {
        Ok(variant.to_owned())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<String, Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<String, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(key_must_be_a_string())
    }
}

fn key_must_be_a_string() -> Error {
    Error("a map key must be a string".to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;
    use serde_json::{Value, json};

    /// What the digest hashed before: the `Value`, then its canonical text.
    fn through_value<T: Serialize>(value: &T) -> Vec<u8> {
        let mut text = String::new();
        super::super::write_canonical(&serde_json::to_value(value).unwrap(), &mut text);
        text.into_bytes()
    }

    #[track_caller]
    fn same<T: Serialize>(value: &T) {
        let mut direct = Vec::new();
        super::write(value, &mut direct).unwrap();
        assert_eq!(
            String::from_utf8(direct).unwrap(),
            String::from_utf8(through_value(value)).unwrap()
        );
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Fields {
        zeta: u8,
        alpha: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        middle_name: Vec<f64>,
        nested: Nested,
        #[serde(flatten)]
        flat: BTreeMap<String, Value>,
        tag: Tag,
        tuple: (i32, &'static str),
        variants: Vec<Variant>,
        by_number: BTreeMap<u16, bool>,
        unit: (),
        ch: char,
    }

    #[derive(Serialize)]
    struct Nested {
        y: Value,
        b: f32,
        a: i128,
    }

    #[derive(Serialize)]
    #[serde(tag = "kind")]
    enum Tag {
        Spark { z: u8, a: u8 },
    }

    #[derive(Serialize)]
    enum Variant {
        Unit,
        New(String),
        Tuple(u8, u8),
        Struct { y: u8, x: u8 },
    }

    #[test]
    fn writes_what_the_value_writes() {
        let mut flat = BTreeMap::new();
        flat.insert(
            "beta".to_owned(),
            json!({"q": [1, {"d": 2, "c": null}], "a": "x\"\n"}),
        );
        flat.insert("zzz".to_owned(), json!(1.5));
        same(&Fields {
            zeta: 7,
            alpha: None,
            skipped: None,
            middle_name: vec![1.0, -0.5, 1e300, f64::NAN],
            nested: Nested {
                y: json!({"k": [], "j": {}}),
                b: 0.1,
                a: -5,
            },
            flat,
            tag: Tag::Spark { z: 1, a: 2 },
            tuple: (3, "é"),
            variants: vec![
                Variant::Unit,
                Variant::New("n".to_owned()),
                Variant::Tuple(1, 2),
                Variant::Struct { y: 1, x: 2 },
            ],
            by_number: [(10, true), (9, false)].into_iter().collect(),
            unit: (),
            ch: '\u{1}',
        });
        same(&json!({"b": 1, "a": {"y": [1, 2], "x": null, "~/": true}}));
        same(&json!([]));
        same(&json!("plain"));
    }

    #[test]
    fn a_later_duplicate_key_replaces_the_earlier() {
        // Two flattened maps may both name a key: the value keeps the last.
        #[derive(Serialize)]
        struct Twice {
            #[serde(flatten)]
            one: BTreeMap<&'static str, u8>,
            #[serde(flatten)]
            two: BTreeMap<&'static str, u8>,
        }
        same(&Twice {
            one: [("b", 1), ("a", 1)].into_iter().collect(),
            two: [("b", 2), ("c", 2)].into_iter().collect(),
        });
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let every_ascii: String = (0u8..0x80).map(char::from).collect();
        for text in [
            String::new(),
            every_ascii.clone(),
            every_ascii.chars().rev().collect(),
            "print(\"processing\", os.environ[\"DAY\"])\n\tdone\\n é 漢字 🦀\u{7f}".to_owned(),
            "eight ok\"eight ok".to_owned(),
        ] {
            let mut ours = Vec::new();
            super::write_str(&mut ours, &text);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(&text).unwrap()
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

        #[test]
        fn any_string_is_escaped_as_serde_json_escapes_it(
            text in proptest::prop_oneof![
                proptest::prelude::any::<String>(),
                "[\\x00-\\x7f]{0,40}",
                "[a\"\\\\\\n\\x01é]{0,40}",
            ]
        ) {
            let mut ours = Vec::new();
            super::write_str(&mut ours, &text);
            proptest::prop_assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&text).unwrap());
        }

        #[test]
        fn any_value_is_written_as_through_the_value(value in values()) {
            let mut direct = Vec::new();
            super::write(&value, &mut direct).unwrap();
            proptest::prop_assert_eq!(direct, through_value(&value));
        }
    }

    fn values() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "\\PC{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map("[a-c\"é]{0,3}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}

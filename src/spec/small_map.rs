//! [`SmallMap`]: the few-entry maps of a spec (a task's ports, its resource
//! requests), as a sorted vector.
//!
//! A `BTreeMap` allocates a node with room for eleven entries for the first
//! one: for a task's two or three ports that is 1.4 KB, the largest part of
//! a validated repository's memory. A sorted vector holds what is there.
//! It reads, writes and validates as the same JSON object, in the same key
//! order, so specs and their digests are what they were.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use litemap::LiteMap;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::MapAccess;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A map from names to `V`, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmallMap<V>(LiteMap<String, V>);

impl<V> SmallMap<V> {
    pub fn new() -> Self {
        SmallMap(LiteMap::new())
    }

    pub fn with_capacity(capacity: usize) -> Self {
        SmallMap(LiteMap::with_capacity(capacity))
    }
}

impl<V> Default for SmallMap<V> {
    fn default() -> Self {
        SmallMap::new()
    }
}

impl<V> Deref for SmallMap<V> {
    type Target = LiteMap<String, V>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<V> DerefMut for SmallMap<V> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<V> FromIterator<(String, V)> for SmallMap<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(iter: I) -> Self {
        SmallMap(iter.into_iter().collect())
    }
}

impl<V> IntoIterator for SmallMap<V> {
    type Item = (String, V);
    type IntoIter = <LiteMap<String, V> as IntoIterator>::IntoIter;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a, V> IntoIterator for &'a SmallMap<V> {
    type Item = (&'a String, &'a V);
    type IntoIter = <&'a LiteMap<String, V> as IntoIterator>::IntoIter;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Always an object: `LiteMap`'s own impl writes an empty map as `[]` in
/// human-readable formats (it cannot tell its keys are strings without one).
impl<V: Serialize> Serialize for SmallMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter())
    }
}

/// From an object (only), in any key order; of two equal keys the later
/// wins, as in a `BTreeMap` (the YAML reader refuses them before this).
impl<'de, V: Deserialize<'de>> Deserialize<'de> for SmallMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(Visitor(PhantomData))
    }
}

struct Visitor<V>(PhantomData<V>);

impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<V> {
    type Value = SmallMap<V>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<SmallMap<V>, A::Error> {
        // Bounded: a size hint is the input's word, not a promise.
        let mut map = LiteMap::with_capacity(access.size_hint().unwrap_or(0).min(64));
        while let Some((name, value)) = access.next_entry::<String, V>()? {
            // In order, an append; otherwise a sorted insert.
            if let Some((name, value)) = map.try_append(name, value) {
                map.insert(name, value);
            }
        }
        Ok(SmallMap(map))
    }
}

/// The schema of the `BTreeMap` it stands for.
impl<V: JsonSchema> JsonSchema for SmallMap<V> {
    fn inline_schema() -> bool {
        BTreeMap::<String, V>::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        BTreeMap::<String, V>::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        BTreeMap::<String, V>::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        BTreeMap::<String, V>::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_and_writes_as_an_object_in_name_order() {
        let map: SmallMap<u32> = serde_json::from_value(json!({"b": 2, "a": 1, "c": 3})).unwrap();
        assert_eq!(map.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(map.get("b"), Some(&2));
        assert_eq!(
            serde_json::to_string(&map).unwrap(),
            r#"{"a":1,"b":2,"c":3}"#
        );
    }

    #[test]
    fn of_two_equal_keys_the_later_wins_as_in_a_btree_map() {
        let text = r#"{"b": 1, "a": 2, "b": 3}"#;
        let ours: SmallMap<u32> = serde_json::from_str(text).unwrap();
        let map: BTreeMap<String, u32> = serde_json::from_str(text).unwrap();
        assert_eq!(
            ours.iter().collect::<Vec<_>>(),
            map.iter().collect::<Vec<_>>()
        );
    }

    #[test]
    fn only_an_object_reads() {
        let error = serde_json::from_value::<SmallMap<u32>>(json!([["a", 1]])).unwrap_err();
        assert!(error.to_string().contains("expected a map"), "{error}");
    }

    #[test]
    fn an_empty_map_is_an_empty_object() {
        let map: SmallMap<u32> = serde_json::from_value(json!({})).unwrap();
        assert!(map.is_empty());
        assert_eq!(serde_json::to_string(&map).unwrap(), "{}");
        assert_eq!(
            serde_json::to_string(&SmallMap::<u32>::new()).unwrap(),
            "{}"
        );
    }

    #[test]
    fn its_schema_is_the_map_s() {
        let ours = schemars::schema_for!(SmallMap<u32>);
        let map = schemars::schema_for!(BTreeMap<String, u32>);
        assert_eq!(ours, map);
    }
}

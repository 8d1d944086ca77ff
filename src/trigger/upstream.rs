//! An `upstream` trigger's bindings: each input of the triggered launch
//! plan is a value, or exactly one `{{ upstream.inputs.NAME }}` or
//! `{{ upstream.outputs.NAME }}` of the upstream execution, read by
//! [`crate::spec::events::binding`] (validation checks names and types
//! against the upstream plan's workflow); the watcher evaluates them with
//! [`bind`].

use std::collections::BTreeMap;

use serde_json::Value;

use crate::spec::events::{Binding, binding};
use crate::store::trigger::Ended;

/// The inputs `bindings` give for the ended `upstream` execution.
pub fn bind(
    bindings: &BTreeMap<String, Value>,
    upstream: &Ended,
) -> Result<BTreeMap<String, Value>, String> {
    let mut out = BTreeMap::new();
    for (name, value) in bindings {
        let bound = match binding(value)? {
            Binding::Value(v) => v.clone(),
            Binding::Input(from) => upstream.inputs.get(from).cloned().ok_or_else(|| {
                format!(
                    "input `{name}`: upstream {} has no input `{from}`",
                    upstream.id
                )
            })?,
            Binding::Output(from) => upstream
                .outputs
                .as_ref()
                .and_then(|o| o.get(from))
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "input `{name}`: upstream {} has no output `{from}`",
                        upstream.id
                    )
                })?,
        };
        out.insert(name.clone(), bound);
    }
    Ok(out)
}

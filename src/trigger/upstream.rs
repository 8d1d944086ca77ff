//! An `upstream` trigger's bindings: each input of the triggered launch
//! plan is a value, or exactly one `{{ upstream.inputs.NAME }}` or
//! `{{ upstream.outputs.NAME }}` of the upstream execution. Validation
//! reads them with [`binding`] (and checks names and types against the
//! upstream plan's workflow); the watcher evaluates them with [`bind`].

use std::collections::BTreeMap;

use serde_json::Value;

use crate::store::Execution;

/// What one binding takes.
#[derive(Debug, Clone, PartialEq)]
pub enum Binding<'a> {
    /// `{{ upstream.inputs.NAME }}`.
    Input(&'a str),
    /// `{{ upstream.outputs.NAME }}`.
    Output(&'a str),
    /// A value as written.
    Value(&'a Value),
}

/// Reads one binding; the error says what is wrong with it.
pub fn binding(value: &Value) -> Result<Binding<'_>, String> {
    let Value::String(text) = value else {
        return Ok(Binding::Value(value));
    };
    let trimmed = text.trim();
    let inner = trimmed
        .strip_prefix("{{")
        .and_then(|t| t.strip_suffix("}}"))
        .map(str::trim);
    match inner {
        Some(inner) if !inner.contains("{{") && !inner.contains("}}") => {
            let (output, name) = match (
                inner.strip_prefix("upstream.inputs."),
                inner.strip_prefix("upstream.outputs."),
            ) {
                (Some(name), _) => (false, name),
                (None, Some(name)) => (true, name),
                _ => {
                    return Err(format!(
                        "`{text}` is neither `{{{{ upstream.inputs.NAME }}}}` nor `{{{{ upstream.outputs.NAME }}}}`"
                    ));
                }
            };
            if name.is_empty() || name.contains('.') {
                return Err(format!("`{text}` names no single input or output"));
            }
            Ok(if output {
                Binding::Output(name)
            } else {
                Binding::Input(name)
            })
        }
        _ if text.contains("{{") && text.contains("upstream.") => Err(format!(
            "`{text}`: a binding is exactly one `{{{{ upstream.… }}}}`, with no text around it"
        )),
        _ => Ok(Binding::Value(value)),
    }
}

/// The inputs `bindings` give for the ended `upstream` execution.
pub fn bind(
    bindings: &BTreeMap<String, Value>,
    upstream: &Execution,
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

#[cfg(test)]
mod tests {
    use super::{Binding, binding};
    use serde_json::json;

    #[test]
    fn a_binding_is_a_value_or_exactly_one_upstream_reference() {
        assert_eq!(
            binding(&json!("{{ upstream.inputs.day }}")),
            Ok(Binding::Input("day"))
        );
        assert_eq!(
            binding(&json!("{{upstream.outputs.orders}}")),
            Ok(Binding::Output("orders"))
        );
        assert_eq!(binding(&json!(3)), Ok(Binding::Value(&json!(3))));
        assert_eq!(
            binding(&json!("plain")),
            Ok(Binding::Value(&json!("plain")))
        );
        assert!(binding(&json!("day {{ upstream.inputs.day }}")).is_err());
        assert!(binding(&json!("{{ inputs.day }}")).is_err());
        assert!(binding(&json!("{{ upstream.inputs.a.b }}")).is_err());
    }
}

//! What a launch plan's triggers say, read without any I/O, so that
//! validation and the trigger loop read them alike: an `upstream`
//! trigger's bindings ([`binding`]) and an `artifact` trigger's pattern
//! ([`pattern`]).

use serde_json::Value;

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

/// `pattern` as a matcher of keys relative to a prefix: `*` and `?` stay
/// within one folder, `**` crosses folders. The error says why it does
/// not compile.
pub fn pattern(pattern: &str) -> Result<globset::GlobMatcher, String> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("`{pattern}` is not a pattern: {}", e.kind()))
}

#[cfg(test)]
mod tests {
    use super::{Binding, binding, pattern};
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

    #[test]
    fn a_star_stays_in_its_folder_and_two_cross_folders() {
        let one = pattern("*.parquet").expect("pattern");
        assert!(one.is_match("a.parquet"));
        assert!(!one.is_match("day=1/a.parquet"));
        assert!(!one.is_match("a.csv"));
        let any = pattern("**").expect("pattern");
        assert!(any.is_match("day=1/a.parquet"));
        let deep = pattern("**/*.csv").expect("pattern");
        assert!(deep.is_match("x/y/z.csv"));
        assert!(deep.is_match("z.csv"));
        assert!(pattern("[").is_err());
    }
}

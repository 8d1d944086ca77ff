//! `when:` conditions of workflow nodes: expressions of the Common
//! Expression Language (CEL, as Kubernetes uses it) over the workflow's
//! inputs and its upstream nodes' outputs, such as
//! `nodes.evaluate.outputs.auc > 0.8 && inputs.deploy`.
//!
//! What it guarantees: a condition reads only `inputs.<name>` and
//! `nodes.<id>.outputs.<name>` (then any field or index of those); its
//! references are listed in order ([`Condition::references`]) so the
//! validator can check each exists and the compiler can bind each; its
//! types are checked against the ports' declared types before any run
//! ([`Condition::check`]): comparing a string to a number, `&&` on an
//! int, or a condition that is not a `bool` are refused at validate time,
//! with the offending part quoted. At run time ([`Condition::evaluate`])
//! the references' values are given, and anything but `true` or `false`
//! is an error, never taken as either.
//!
//! It must not read anything itself: the caller gives types and values.

use std::collections::BTreeMap;
use std::fmt;

use cel::common::ast::{Expr, IdedExpr, LiteralValue, operators};
use serde_json::Value;

use crate::spec::types::TypeExpr;

/// What a condition reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ref {
    Input(String),
    NodeOutput { node: String, output: String },
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ref::Input(name) => write!(f, "inputs.{name}"),
            Ref::NodeOutput { node, output } => write!(f, "nodes.{node}.outputs.{output}"),
        }
    }
}

/// Why a condition is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("`when` is not a CEL expression: {0}")]
    Syntax(String),
    /// A name or path a condition cannot read.
    #[error("{0}")]
    Name(String),
    #[error("{0}")]
    Type(String),
}

/// A parsed condition.
#[derive(Debug, Clone)]
pub struct Condition {
    source: String,
    expr: IdedExpr,
}

/// The types a condition's values have, as CEL sees them: `datetime`,
/// `duration`, `file` and `directory` values are strings, `json` is
/// dynamic.
#[derive(Debug, Clone, PartialEq)]
enum Ty {
    Bool,
    Int,
    Double,
    String,
    Null,
    List(Box<Ty>),
    Map(Box<Ty>),
    /// Known only at run time.
    Dyn,
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Bool => f.write_str("bool"),
            Ty::Int => f.write_str("int"),
            Ty::Double => f.write_str("double"),
            Ty::String => f.write_str("string"),
            Ty::Null => f.write_str("null"),
            Ty::List(t) => write!(f, "list<{t}>"),
            Ty::Map(t) => write!(f, "map<string, {t}>"),
            Ty::Dyn => f.write_str("dyn"),
        }
    }
}

impl Ty {
    fn of(t: &TypeExpr) -> Ty {
        match t {
            TypeExpr::Bool => Ty::Bool,
            TypeExpr::Int => Ty::Int,
            TypeExpr::Float => Ty::Double,
            TypeExpr::String
            | TypeExpr::Enum(_)
            | TypeExpr::Datetime
            | TypeExpr::Duration
            | TypeExpr::File
            | TypeExpr::Directory => Ty::String,
            TypeExpr::Json | TypeExpr::Optional(_) => Ty::Dyn,
            TypeExpr::List(t) => Ty::List(Box::new(Ty::of(t))),
            TypeExpr::Map(t) => Ty::Map(Box::new(Ty::of(t))),
        }
    }

    fn numeric(&self) -> bool {
        matches!(self, Ty::Int | Ty::Double | Ty::Dyn)
    }

    /// Whether values of the two types may be compared with `==`.
    fn comparable(&self, other: &Ty) -> bool {
        match (self, other) {
            (Ty::Dyn, _) | (_, Ty::Dyn) | (Ty::Null, _) | (_, Ty::Null) => true,
            (a, b) if a.numeric() && b.numeric() => true,
            (Ty::List(a), Ty::List(b)) | (Ty::Map(a), Ty::Map(b)) => a.comparable(b),
            (a, b) => a == b,
        }
    }
}

/// Parses `source`; the names it reads are checked here, their types by
/// [`Condition::check`].
pub fn parse(source: &str) -> Result<Condition, Error> {
    let expr = cel::parser::Parser::default()
        .parse(source)
        .map_err(|e| Error::Syntax(e.to_string().trim().to_owned()))?;
    let condition = Condition {
        source: source.to_owned(),
        expr,
    };
    let mut refs = Vec::new();
    walk_refs(&condition.expr, &mut Vec::new(), &mut refs)?;
    Ok(condition)
}

impl Condition {
    pub fn source(&self) -> &str {
        &self.source
    }

    /// What it reads, each once, in order of appearance.
    pub fn references(&self) -> Vec<Ref> {
        let mut refs = Vec::new();
        walk_refs(&self.expr, &mut Vec::new(), &mut refs)
            .expect("parse checked every name a condition reads");
        let mut seen = Vec::new();
        for r in refs {
            if !seen.contains(&r) {
                seen.push(r);
            }
        }
        seen
    }

    /// Checks the types: what each reference is (`None`: unknown, taken as
    /// dynamic) comes from `type_of`; the whole must be a `bool`.
    pub fn check(&self, type_of: impl Fn(&Ref) -> Option<TypeExpr>) -> Result<(), Error> {
        let checker = Checker { type_of: &type_of };
        match checker.ty(&self.expr)? {
            Ty::Bool | Ty::Dyn => Ok(()),
            other => Err(Error::Type(format!(
                "a condition must be a bool, but `{}` is {other}",
                self.source
            ))),
        }
    }

    /// Evaluates it with the values of its references (`values`: each
    /// [`Ref`] as [`Condition::references`] lists them, with its JSON
    /// value); `Ok` only for `true` or `false`.
    pub fn evaluate(&self, values: &BTreeMap<Ref, Value>) -> Result<bool, String> {
        let mut inputs = serde_json::Map::new();
        let mut nodes: BTreeMap<&str, serde_json::Map<String, Value>> = BTreeMap::new();
        for (r, value) in values {
            match r {
                Ref::Input(name) => {
                    inputs.insert(name.clone(), value.clone());
                }
                Ref::NodeOutput { node, output } => {
                    nodes
                        .entry(node)
                        .or_default()
                        .insert(output.clone(), value.clone());
                }
            }
        }
        let nodes: serde_json::Map<String, Value> = nodes
            .into_iter()
            .map(|(node, outputs)| (node.to_owned(), serde_json::json!({ "outputs": outputs })))
            .collect();
        let program = cel::Program::compile(&self.source).map_err(|e| e.to_string())?;
        let mut context = cel::Context::default();
        for (name, value) in [
            ("inputs", Value::Object(inputs)),
            ("nodes", Value::Object(nodes)),
        ] {
            let value = cel::to_value(value).map_err(|e| e.to_string())?;
            context.add_variable_from_value(name, value);
        }
        match program.execute(&context) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!(
                "`{}` gave {other:?}, not true or false",
                self.source
            )),
            Err(e) => Err(format!("`{}` cannot be evaluated: {e}", self.source)),
        }
    }
}

/// Collects the references under `expr`; `bound` holds the variables of
/// the comprehensions around it. A name that is neither is refused.
fn walk_refs(expr: &IdedExpr, bound: &mut Vec<String>, out: &mut Vec<Ref>) -> Result<(), Error> {
    if let Some(r) = reference(&expr.expr)? {
        out.push(r);
        return Ok(());
    }
    match &expr.expr {
        Expr::Ident(name) if bound.contains(name) => Ok(()),
        Expr::Ident(name) => Err(unknown_name(name)),
        Expr::Select(select) => walk_refs(&select.operand, bound, out),
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                walk_refs(target, bound, out)?;
            }
            call.args.iter().try_for_each(|a| walk_refs(a, bound, out))
        }
        Expr::List(list) => list
            .elements
            .iter()
            .try_for_each(|e| walk_refs(e, bound, out)),
        Expr::Map(map) => map.entries.iter().try_for_each(|entry| match &entry.expr {
            cel::common::ast::EntryExpr::MapEntry(e) => {
                walk_refs(&e.key, bound, out)?;
                walk_refs(&e.value, bound, out)
            }
            cel::common::ast::EntryExpr::StructField(f) => walk_refs(&f.value, bound, out),
        }),
        Expr::Comprehension(c) => {
            walk_refs(&c.iter_range, bound, out)?;
            walk_refs(&c.accu_init, bound, out)?;
            let depth = bound.len();
            bound.push(c.iter_var.clone());
            bound.extend(c.iter_var2.clone());
            bound.push(c.accu_var.clone());
            let inner = [&c.loop_cond, &c.loop_step, &c.result]
                .into_iter()
                .try_for_each(|e| walk_refs(e, bound, out));
            bound.truncate(depth);
            inner
        }
        Expr::Struct(_) => Err(Error::Name(
            "a condition cannot build messages (`Type{...}`)".into(),
        )),
        Expr::Literal(_) | Expr::Unspecified => Ok(()),
    }
}

fn unknown_name(name: &str) -> Error {
    Error::Name(format!(
        "`{name}` is not something a condition can read: it reads `inputs.<name>` and `nodes.<id>.outputs.<name>`"
    ))
}

/// The reference `expr` spells, if it starts at `inputs` or `nodes`:
/// `inputs.x`, `nodes.a.outputs.b` (what follows is a field or an index of
/// its value). `Err` for a path that starts there and reads nothing.
fn reference(expr: &Expr) -> Result<Option<Ref>, Error> {
    // The path from the root name down, while it is plain selection.
    let mut path = Vec::new();
    let mut at = expr;
    loop {
        match at {
            Expr::Select(s) if !s.test => {
                path.push(s.field.as_str());
                at = &s.operand.expr;
            }
            Expr::Ident(name) => {
                path.push(name.as_str());
                break;
            }
            _ => return Ok(None),
        }
    }
    path.reverse();
    match path.as_slice() {
        ["inputs", name] => Ok(Some(Ref::Input((*name).to_owned()))),
        ["nodes", node, "outputs", output] => Ok(Some(Ref::NodeOutput {
            node: (*node).to_owned(),
            output: (*output).to_owned(),
        })),
        // Longer paths are fields of a reference's value: found when the
        // walk reaches their operand.
        ["inputs", _, ..] | ["nodes", _, "outputs", _, ..] => Ok(None),
        ["inputs"] => Err(Error::Name(
            "`inputs` alone: name one, `inputs.<name>`".into(),
        )),
        ["nodes", rest @ ..] => Err(Error::Name(format!(
            "`nodes.{}`: a node's value is read as `nodes.<id>.outputs.<name>`",
            rest.join(".")
        ))),
        _ => Ok(None),
    }
}

/// Infers types bottom-up; comprehension variables (plain identifiers
/// once [`parse`] let them through) are dynamic.
struct Checker<'a> {
    type_of: &'a dyn Fn(&Ref) -> Option<TypeExpr>,
}

impl Checker<'_> {
    fn ty(&self, expr: &IdedExpr) -> Result<Ty, Error> {
        if let Some(r) = reference(&expr.expr)? {
            return Ok((self.type_of)(&r).map_or(Ty::Dyn, |t| Ty::of(&t)));
        }
        Ok(match &expr.expr {
            Expr::Literal(l) => match l {
                LiteralValue::Boolean(_) => Ty::Bool,
                LiteralValue::Int(_) | LiteralValue::UInt(_) => Ty::Int,
                LiteralValue::Double(_) => Ty::Double,
                LiteralValue::String(_) => Ty::String,
                LiteralValue::Bytes(_) => Ty::Dyn,
                LiteralValue::Null => Ty::Null,
            },
            Expr::Ident(_) => Ty::Dyn,
            Expr::Select(s) => match self.ty(&s.operand)? {
                _ if s.test => Ty::Bool,
                Ty::Map(t) => *t,
                Ty::Dyn => Ty::Dyn,
                other => {
                    return Err(Error::Type(format!(
                        "`.{}` selects a field, but its operand is {other}",
                        s.field
                    )));
                }
            },
            Expr::List(list) => {
                let mut item = None;
                for e in &list.elements {
                    let t = self.ty(e)?;
                    item = match item {
                        None => Some(t),
                        Some(i) if i == t => Some(i),
                        Some(_) => Some(Ty::Dyn),
                    };
                }
                Ty::List(Box::new(item.unwrap_or(Ty::Dyn)))
            }
            Expr::Map(_) | Expr::Comprehension(_) | Expr::Struct(_) | Expr::Unspecified => Ty::Dyn,
            Expr::Call(call) => self.call(&call.func_name, call.target.as_deref(), &call.args)?,
        })
    }

    fn call(&self, name: &str, target: Option<&IdedExpr>, args: &[IdedExpr]) -> Result<Ty, Error> {
        let types = args
            .iter()
            .map(|a| self.ty(a))
            .collect::<Result<Vec<Ty>, Error>>()?;
        let mismatch = |what: &str| {
            Error::Type(format!(
                "{what}, but the operands are {}",
                types
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" and ")
            ))
        };
        Ok(match (name, types.as_slice()) {
            (operators::LOGICAL_AND | operators::LOGICAL_OR, [a, b]) => {
                if !matches!(a, Ty::Bool | Ty::Dyn) || !matches!(b, Ty::Bool | Ty::Dyn) {
                    return Err(mismatch(&format!("`{}` joins bools", symbol(name))));
                }
                Ty::Bool
            }
            (operators::LOGICAL_NOT, [a]) => {
                if !matches!(a, Ty::Bool | Ty::Dyn) {
                    return Err(mismatch("`!` negates a bool"));
                }
                Ty::Bool
            }
            (operators::EQUALS | operators::NOT_EQUALS, [a, b]) => {
                if !a.comparable(b) {
                    return Err(Error::Type(format!(
                        "`{}` compares values of one type, but one side is {a} and the other {b}",
                        symbol(name)
                    )));
                }
                Ty::Bool
            }
            (
                operators::LESS
                | operators::LESS_EQUALS
                | operators::GREATER
                | operators::GREATER_EQUALS,
                [a, b],
            ) => {
                let ordered = (a.numeric() && b.numeric())
                    || matches!((a, b), (Ty::String | Ty::Dyn, Ty::String | Ty::Dyn));
                if !ordered {
                    return Err(Error::Type(format!(
                        "`{}` orders two numbers or two strings, but one side is {a} and the other {b}",
                        symbol(name)
                    )));
                }
                Ty::Bool
            }
            (operators::ADD, [a, b]) => match (a, b) {
                (Ty::String, Ty::String) => Ty::String,
                (Ty::List(x), Ty::List(_)) => Ty::List(x.clone()),
                (Ty::Int, Ty::Int) => Ty::Int,
                (Ty::Double, Ty::Double) => Ty::Double,
                (Ty::Dyn, _) | (_, Ty::Dyn) => Ty::Dyn,
                _ => {
                    return Err(mismatch(
                        "`+` adds two numbers of one type, strings or lists",
                    ));
                }
            },
            (
                operators::SUBSTRACT | operators::MULTIPLY | operators::DIVIDE | operators::MODULO,
                [a, b],
            ) => match (a, b) {
                (Ty::Int, Ty::Int) => Ty::Int,
                (Ty::Double, Ty::Double) if name != operators::MODULO => Ty::Double,
                (Ty::Dyn, _) | (_, Ty::Dyn) => Ty::Dyn,
                _ => {
                    return Err(mismatch(&format!(
                        "`{}` needs two numbers of one type (convert with int() or double())",
                        symbol(name)
                    )));
                }
            },
            (operators::NEGATE, [a]) => {
                if !a.numeric() {
                    return Err(mismatch("`-` negates a number"));
                }
                a.clone()
            }
            (operators::CONDITIONAL, [c, a, b]) => {
                if !matches!(c, Ty::Bool | Ty::Dyn) {
                    return Err(mismatch("`? :` chooses by a bool"));
                }
                if a == b { a.clone() } else { Ty::Dyn }
            }
            (operators::INDEX, [container, key]) => match container {
                Ty::List(t) if matches!(key, Ty::Int | Ty::Dyn) => (**t).clone(),
                Ty::Map(t) if matches!(key, Ty::String | Ty::Dyn) => (**t).clone(),
                Ty::Dyn => Ty::Dyn,
                _ => {
                    return Err(mismatch(
                        "`[]` indexes a list by an int or a map by a string",
                    ));
                }
            },
            (operators::IN, [item, container]) => match container {
                Ty::List(t) if t.comparable(item) => Ty::Bool,
                Ty::Map(_) if matches!(item, Ty::String | Ty::Dyn) => Ty::Bool,
                Ty::Dyn => Ty::Bool,
                _ => {
                    return Err(mismatch(
                        "`in` looks for a value in a list or a key in a map",
                    ));
                }
            },
            (operators::NOT_STRICTLY_FALSE, _) => Ty::Bool,
            ("size", _) => Ty::Int,
            ("int", _) => Ty::Int,
            ("double", _) => Ty::Double,
            ("string", _) => Ty::String,
            ("bool", _) => Ty::Bool,
            ("contains" | "startsWith" | "endsWith" | "matches", _) => {
                let on = target.map(|t| self.ty(t)).transpose()?;
                if !matches!(on, Some(Ty::String | Ty::Dyn))
                    || !matches!(types.as_slice(), [Ty::String | Ty::Dyn])
                {
                    return Err(Error::Type(format!(
                        "`{name}` is a method of a string, given a string"
                    )));
                }
                Ty::Bool
            }
            ("max" | "min", _) => Ty::Dyn,
            (other, _) => {
                return Err(Error::Name(format!(
                    "`{other}` is not a function a condition can call"
                )));
            }
        })
    }
}

/// An operator as written: `_&&_` is `&&`.
fn symbol(name: &str) -> &str {
    name.trim_matches('_').trim_start_matches('@')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn types(r: &Ref) -> Option<TypeExpr> {
        match r.to_string().as_str() {
            "inputs.deploy" => Some(TypeExpr::Bool),
            "inputs.region" => Some(TypeExpr::String),
            "inputs.folds" => Some(TypeExpr::Int),
            "nodes.evaluate.outputs.auc" => Some(TypeExpr::Float),
            "nodes.evaluate.outputs.metrics" => Some(TypeExpr::Json),
            "nodes.split.outputs.names" => Some(TypeExpr::List(Box::new(TypeExpr::String))),
            _ => None,
        }
    }

    fn checked(source: &str) -> Result<(), Error> {
        parse(source)?.check(types)
    }

    #[test]
    fn references_are_inputs_and_node_outputs_in_order() {
        let c = parse(
            "nodes.evaluate.outputs.auc > 0.8 && inputs.deploy && nodes.evaluate.outputs.metrics.f1 > 0.5 && inputs.deploy",
        )
        .expect("parses");
        assert_eq!(
            c.references(),
            [
                Ref::NodeOutput {
                    node: "evaluate".into(),
                    output: "auc".into()
                },
                Ref::Input("deploy".into()),
                Ref::NodeOutput {
                    node: "evaluate".into(),
                    output: "metrics".into()
                },
            ]
        );
    }

    #[test]
    fn what_a_condition_cannot_read_is_refused_by_name() {
        for (source, says) in [
            (
                "deploy == true",
                "`deploy` is not something a condition can read",
            ),
            ("nodes.evaluate.auc > 1.0", "`nodes.evaluate.auc`"),
            ("inputs", "`inputs` alone"),
            ("exec('rm -rf /')", "`exec` is not a function"),
        ] {
            let e = parse(source)
                .and_then(|c| c.check(types))
                .expect_err(source);
            assert!(e.to_string().contains(says), "{source}: {e}");
        }
        assert!(matches!(parse("inputs.deploy &&"), Err(Error::Syntax(_))));
    }

    #[test]
    fn types_are_checked_against_the_ports() {
        for good in [
            "nodes.evaluate.outputs.auc > 0.8 && inputs.deploy",
            "inputs.region == 'eu' || inputs.folds >= 3",
            "inputs.folds > 2.5",
            "nodes.evaluate.outputs.metrics.f1 > 0.9",
            "'a' in nodes.split.outputs.names && size(nodes.split.outputs.names) > 1",
            "nodes.split.outputs.names.exists(n, n.startsWith('x'))",
            "inputs.region.startsWith('eu-')",
        ] {
            assert_eq!(checked(good), Ok(()), "{good}");
        }
        for (bad, says) in [
            ("inputs.region > 3", "one side is string and the other int"),
            ("inputs.region == 3", "one side is string and the other int"),
            ("inputs.folds && inputs.deploy", "`&&` joins bools"),
            ("inputs.folds + 1", "a condition must be a bool"),
            ("inputs.region", "a condition must be a bool"),
        ] {
            let e = checked(bad).expect_err(bad);
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn evaluation_is_true_false_or_an_error() {
        let c = parse("nodes.evaluate.outputs.auc > 0.8 && inputs.deploy").expect("parses");
        let values = |auc: Value, deploy: Value| {
            BTreeMap::from([
                (
                    Ref::NodeOutput {
                        node: "evaluate".into(),
                        output: "auc".into(),
                    },
                    auc,
                ),
                (Ref::Input("deploy".into()), deploy),
            ])
        };
        assert_eq!(c.evaluate(&values(json!(0.93), json!(true))), Ok(true));
        assert_eq!(c.evaluate(&values(json!(0.5), json!(true))), Ok(false));
        assert!(c.evaluate(&values(json!("high"), json!(true))).is_err());
        let json_field = parse("nodes.evaluate.outputs.auc.f1 >= 0.5").expect("parses");
        let f1 = BTreeMap::from([(
            Ref::NodeOutput {
                node: "evaluate".into(),
                output: "auc".into(),
            },
            json!({ "f1": 0.75 }),
        )]);
        assert_eq!(json_field.evaluate(&f1), Ok(true));
    }
}

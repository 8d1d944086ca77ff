//! One statement text for both databases, and the values bound to it.
//!
//! Statements written out number their parameters `$1, $2, …`:
//! PostgreSQL's form, which SQLite accepts too (sqlx binds a `$N` by its
//! number on both), so one text serves both databases. Statements built
//! from lists ([`Statement::built`]) write each database's cheapest form
//! ([`Dialect::NUMBERED`]): SQLite looks every numbered parameter up in a
//! list, which costs seconds in a statement of 30,000 of them, where a
//! plain `?` costs nothing. The two are two types ([`Written`] and
//! [`Built`]): only a written statement has `bind` (by number), so a
//! parameter can never be bound by number into a text of `?`s. What is
//! bound is a [`Param`], a small
//! enum of the values the store writes; each dialect encodes it
//! (`sqlite.rs`: times as fixed-precision RFC 3339 text, JSON as text;
//! `postgres.rs`: `timestamptz` and `jsonb`). So the generic store needs no
//! sqlx trait bounds: it builds [`Statement`]s and hands them to its
//! [`Dialect`] to run.
//!
//! Lists of rows are bound as multi-row `VALUES` ([`Statement::push_values`]),
//! cut by the caller into statements of at most [`rows_per_statement`] rows,
//! so that no statement binds more parameters than its database accepts.

use std::fmt::Write as _;
use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Arguments as _, Database, Encode, Type};

use super::Dialect;
use crate::spec::ExecutionId;

/// A value bound to a statement.
#[derive(Debug, Clone)]
pub enum Param<'q> {
    Text(Option<&'q str>),
    Int(i64),
    Int32(i32),
    Bool(bool),
    /// An instant, encoded as each database keeps time.
    Time(Option<DateTime<Utc>>),
    /// A JSON document, already serialized (compact): JSON text on SQLite,
    /// `jsonb` on PostgreSQL. Written by [`Param::json`] only.
    Json(Option<String>),
}

impl<'q> Param<'q> {
    /// A JSON column: `value` serialized compactly, the one way every
    /// JSON column is written (a document, run options, a delivery's
    /// attempts). A typed value is serialized straight from its type, its
    /// fields in their declared order.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Param<'q> {
        Param::Json(Some(to_json(value)))
    }

    /// A JSON column from a document already kept as its text.
    pub fn json_text(text: &crate::store::JsonText) -> Param<'q> {
        Param::Json(Some(text.as_str().to_owned()))
    }

    /// A JSON column, or NULL.
    pub fn json_or_null<T: Serialize>(value: Option<&T>) -> Param<'q> {
        Param::Json(value.map(to_json))
    }
}

/// `value` as compact JSON text. The store's values are JSON values and
/// plain structs (string keys, no fallible `Serialize`), which always
/// serialize.
fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("the store's JSON values serialize")
}

impl<'q> From<&'q str> for Param<'q> {
    fn from(value: &'q str) -> Self {
        Param::Text(Some(value))
    }
}

impl<'q> From<&'q String> for Param<'q> {
    fn from(value: &'q String) -> Self {
        Param::Text(Some(value))
    }
}

impl<'q> From<Option<&'q str>> for Param<'q> {
    fn from(value: Option<&'q str>) -> Self {
        Param::Text(value)
    }
}

impl<'q> From<&'q Option<String>> for Param<'q> {
    fn from(value: &'q Option<String>) -> Self {
        Param::Text(value.as_deref())
    }
}

impl<'q> From<&'q ExecutionId> for Param<'q> {
    fn from(value: &'q ExecutionId) -> Self {
        Param::Text(Some(value.as_str()))
    }
}

impl<'q> From<&'q Option<ExecutionId>> for Param<'q> {
    fn from(value: &'q Option<ExecutionId>) -> Self {
        Param::Text(value.as_ref().map(ExecutionId::as_str))
    }
}

impl From<i64> for Param<'_> {
    fn from(value: i64) -> Self {
        Param::Int(value)
    }
}

impl From<i32> for Param<'_> {
    fn from(value: i32) -> Self {
        Param::Int32(value)
    }
}

impl From<bool> for Param<'_> {
    fn from(value: bool) -> Self {
        Param::Bool(value)
    }
}

impl From<DateTime<Utc>> for Param<'_> {
    fn from(value: DateTime<Utc>) -> Self {
        Param::Time(Some(value))
    }
}

impl From<Option<DateTime<Utc>>> for Param<'_> {
    fn from(value: Option<DateTime<Utc>>) -> Self {
        Param::Time(value)
    }
}

/// How a statement's parameters are written, fixed by its constructor: a
/// [`Statement`] of the one form cannot be handed to a method of the other.
pub trait Form: Send + Sync + 'static {}

/// Written out: its text numbers its parameters `$1, $2, …`
/// ([`Statement::new`]), bound in order with [`Statement::bind`], which only
/// this form has.
#[derive(Debug)]
pub enum Written {}

/// Built: every parameter is appended with its placeholder
/// ([`Statement::built`], then [`Statement::push_bind`] and the like), in
/// the dialect's cheapest form, which may be `?`. It has no `bind`: a
/// `$N`-numbered parameter bound to a text of `?`s would be bound to the
/// wrong placeholder (or to none).
#[derive(Debug)]
pub enum Built {}

impl Form for Written {}
impl Form for Built {}

/// A statement's text and what it binds; `F` is its [`Form`].
#[derive(Debug)]
pub struct Statement<'q, F: Form = Written> {
    pub(crate) sql: String,
    params: Vec<Param<'q>>,
    /// Whether the database keeps it prepared: a fixed text run often is;
    /// one whose text varies with its rows (a multi-row `VALUES`) is not.
    pub(crate) persistent: bool,
    /// How many conditions [`Statement::filter`] has added.
    conditions: usize,
    /// Whether appended parameters are written `$N` (else `?`).
    numbered: bool,
    form: PhantomData<F>,
}

impl<'q> Statement<'q, Written> {
    /// A statement whose text numbers its parameters `$1, $2, …`, bound
    /// in that order with [`Statement::bind`].
    pub fn new(sql: impl Into<String>) -> Statement<'q, Written> {
        Statement::with_form(sql, true)
    }

    /// Binds the next parameter (`$1`, then `$2`, …).
    pub fn bind(mut self, value: impl Into<Param<'q>>) -> Statement<'q, Written> {
        self.params.push(value.into());
        self
    }
}

impl<'q> Statement<'q, Built> {
    /// A statement whose parameters are all appended ([`Statement::push_bind`]
    /// and the like), in `D`'s cheapest form of placeholder.
    pub fn built<D: Dialect>(sql: impl Into<String>) -> Statement<'q, Built> {
        Statement::with_form(sql, D::NUMBERED)
    }
}

impl<'q, F: Form> Statement<'q, F> {
    fn with_form(sql: impl Into<String>, numbered: bool) -> Statement<'q, F> {
        Statement {
            sql: sql.into(),
            params: Vec::new(),
            persistent: true,
            conditions: 0,
            numbered,
            form: PhantomData,
        }
    }

    /// Appends text.
    pub fn push(&mut self, sql: &str) -> &mut Statement<'q, F> {
        self.sql.push_str(sql);
        self
    }

    /// Appends the placeholder of a new parameter, and binds it.
    pub fn push_bind(&mut self, value: impl Into<Param<'q>>) -> &mut Statement<'q, F> {
        self.params.push(value.into());
        if self.numbered {
            // Writing to a String cannot fail.
            let _ = write!(self.sql, "${}", self.params.len());
        } else {
            self.sql.push('?');
        }
        self
    }

    /// Appends `(…, …)`: a placeholder for each value. The text then
    /// depends on how many there are, so the statement is not kept
    /// prepared.
    pub fn push_tuple(
        &mut self,
        values: impl IntoIterator<Item = Param<'q>>,
    ) -> &mut Statement<'q, F> {
        self.persistent = false;
        self.sql.push('(');
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.push_bind(value);
        }
        self.sql.push(')');
        self
    }

    /// Appends `VALUES (…), (…)`, a row of `N` parameters per item (cut
    /// the items with [`rows_per_statement`]).
    pub fn push_values<T, const N: usize>(
        &mut self,
        rows: impl IntoIterator<Item = T>,
        mut row: impl FnMut(T) -> [Param<'q>; N],
    ) -> &mut Statement<'q, F> {
        self.persistent = false;
        self.sql.push_str("VALUES ");
        for (i, item) in rows.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.push_tuple(row(item));
        }
        self
    }

    /// Takes the bound parameters as database `DB`'s arguments, each
    /// encoded by `DB`'s dialect.
    pub(crate) fn arguments<DB: Database>(&mut self) -> Result<DB::Arguments<'q>, sqlx::Error>
    where
        Param<'q>: Encode<'q, DB> + Type<DB>,
    {
        let mut arguments = DB::Arguments::default();
        arguments.reserve(self.params.len(), 0);
        for param in std::mem::take(&mut self.params) {
            arguments.add(param).map_err(sqlx::Error::Encode)?;
        }
        Ok(arguments)
    }

    /// Appends `column = $N` as a condition of the `WHERE` clause (the
    /// first one opens it) when `value` is set; adds nothing otherwise, so
    /// the statement only ever compares what the caller filters on and an
    /// index on that column serves it (never `$N IS NULL OR …`).
    pub fn filter<V: Into<Param<'q>>>(
        &mut self,
        column: &str,
        value: Option<V>,
    ) -> &mut Statement<'q, F> {
        if let Some(value) = value {
            self.sql.push_str(if self.conditions == 0 {
                " WHERE "
            } else {
                " AND "
            });
            self.sql.push_str(column);
            self.sql.push_str(" = ");
            self.push_bind(value);
            self.conditions += 1;
        }
        self
    }

    /// Appends `(created_at, id) < (at, id)`, a row-value comparison that
    /// both databases serve as a range of an index on `(…, created_at,
    /// id)`: the rows of a list after a cursor, newest first (keyset
    /// paging, as cheap on the thousandth page as on the first).
    pub fn before(&mut self, cursor: Option<(DateTime<Utc>, &'q str)>) -> &mut Statement<'q, F> {
        if let Some((at, id)) = cursor {
            self.sql.push_str(if self.conditions == 0 {
                " WHERE "
            } else {
                " AND "
            });
            self.sql.push_str("(created_at, id) < (");
            self.push_bind(Param::Time(Some(at)));
            self.sql.push_str(", ");
            self.push_bind(Param::Text(Some(id)));
            self.sql.push(')');
            self.conditions += 1;
        }
        self
    }
}

/// How many rows of `columns` parameters one statement may bind in `D`,
/// beside `fixed` other parameters.
pub fn rows_per_statement<D: Dialect>(columns: usize, fixed: usize) -> usize {
    (D::MAX_PARAMS - fixed) / columns
}

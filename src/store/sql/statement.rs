//! One statement text for both databases, and the values bound to it.
//!
//! Statements written out number their parameters `$1, $2, …`:
//! PostgreSQL's form, which SQLite accepts too (sqlx binds a `$N` by its
//! number on both), so one text serves both databases. Statements built
//! from lists ([`Statement::built`]) write each database's cheapest form
//! ([`Dialect::NUMBERED`]): SQLite looks every numbered parameter up in a
//! list, which costs seconds in a statement of 30,000 of them, where a
//! plain `?` costs nothing. What is bound is a [`Param`], a small
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

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{Arguments as _, Database, Encode, Type};

use super::Dialect;

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
    /// `jsonb` on PostgreSQL.
    Json(Option<String>),
}

impl<'q> Param<'q> {
    /// A JSON document.
    pub fn json(value: &Value) -> Param<'q> {
        Param::Json(Some(value.to_string()))
    }

    /// A JSON document, or NULL.
    pub fn json_or_null(value: Option<&Value>) -> Param<'q> {
        Param::Json(value.map(Value::to_string))
    }
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

/// A statement's text and what it binds.
#[derive(Debug)]
pub struct Statement<'q> {
    pub(crate) sql: String,
    params: Vec<Param<'q>>,
    /// Whether the database keeps it prepared: a fixed text run often is;
    /// one whose text varies with its rows (a multi-row `VALUES`) is not.
    pub(crate) persistent: bool,
    /// How many conditions [`Statement::filter`] has added.
    conditions: usize,
    /// Whether appended parameters are written `$N` (else `?`).
    numbered: bool,
}

impl<'q> Statement<'q> {
    /// A statement whose text numbers its parameters `$1, $2, …`, bound
    /// in that order with [`Statement::bind`].
    pub fn new(sql: impl Into<String>) -> Statement<'q> {
        Statement {
            sql: sql.into(),
            params: Vec::new(),
            persistent: true,
            conditions: 0,
            numbered: true,
        }
    }

    /// A statement whose parameters are all appended ([`Statement::push_bind`]
    /// and the like), in `D`'s cheapest form of placeholder.
    pub fn built<D: Dialect>(sql: impl Into<String>) -> Statement<'q> {
        Statement {
            numbered: D::NUMBERED,
            ..Statement::new(sql)
        }
    }

    /// Binds the next parameter.
    pub fn bind(mut self, value: impl Into<Param<'q>>) -> Statement<'q> {
        self.params.push(value.into());
        self
    }

    /// Appends text.
    pub fn push(&mut self, sql: &str) -> &mut Statement<'q> {
        self.sql.push_str(sql);
        self
    }

    /// Appends the placeholder of a new parameter, and binds it.
    pub fn push_bind(&mut self, value: impl Into<Param<'q>>) -> &mut Statement<'q> {
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
    ) -> &mut Statement<'q> {
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
    ) -> &mut Statement<'q> {
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
    ) -> &mut Statement<'q> {
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
}

/// How many rows of `columns` parameters one statement may bind in `D`,
/// beside `fixed` other parameters.
pub fn rows_per_statement<D: Dialect>(columns: usize, fixed: usize) -> usize {
    (D::MAX_PARAMS - fixed) / columns
}

//! Pauses of launch plans on SQL ([`Store::set_pause`](crate::store::Store::set_pause),
//! [`Store::pauses`](crate::store::Store::pauses)): one row per launch plan
//! in `launch_plan_pauses`, its last pause or resume, written with its
//! audit entry in one write transaction, so the log never misses a change
//! nor tells of one that did not happen.

use serde_json::json;

use super::statement::{Param, Statement};
use super::{Dialect, SqlStore, commit};
use crate::store::{Error, Pause, Person};

/// The columns [`PauseRow`] decodes, in order.
const COLUMNS: &str =
    "project, name, paused, changed_at, actor_name, actor_email, comment, catch_up";

/// A row of `launch_plan_pauses`.
#[derive(sqlx::FromRow)]
pub(crate) struct PauseRow {
    project: String,
    name: String,
    paused: bool,
    changed_at: chrono::DateTime<chrono::Utc>,
    actor_name: String,
    actor_email: String,
    comment: Option<String>,
    catch_up: bool,
}

impl From<PauseRow> for Pause {
    fn from(row: PauseRow) -> Pause {
        Pause {
            project: row.project,
            name: row.name,
            paused: row.paused,
            at: row.changed_at,
            actor: Person {
                name: row.actor_name,
                email: row.actor_email,
            },
            comment: row.comment,
            catch_up: row.catch_up,
        }
    }
}

impl<D: Dialect> SqlStore<D> {
    pub(super) async fn write_pause(&self, pause: &Pause) -> Result<bool, Error> {
        const DOING: &str = "pausing or resuming a launch plan";
        let mut tx = self.begin_write(DOING).await?;
        let current: Option<PauseRow> = D::fetch_optional(
            &mut tx,
            DOING,
            Statement::new(format!(
                "SELECT {COLUMNS} FROM launch_plan_pauses WHERE project = $1 AND name = $2"
            ))
            .bind(&pause.project)
            .bind(&pause.name),
        )
        .await?;
        if current.is_some_and(|row| row.paused) == pause.paused {
            return Ok(false);
        }
        let upsert = Statement::new(format!(
            "INSERT INTO launch_plan_pauses ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (project, name) DO UPDATE SET paused = excluded.paused, \
             changed_at = excluded.changed_at, actor_name = excluded.actor_name, \
             actor_email = excluded.actor_email, comment = excluded.comment, \
             catch_up = excluded.catch_up"
        ))
        .bind(&pause.project)
        .bind(&pause.name)
        .bind(pause.paused)
        .bind(pause.at)
        .bind(&pause.actor.name)
        .bind(&pause.actor.email)
        .bind(Param::Text(pause.comment.as_deref()))
        .bind(pause.catch_up);
        D::execute(&mut tx, DOING, upsert).await?;
        let details = json!({
            "project": pause.project,
            "kind": "LaunchPlan",
            "name": pause.name,
            "comment": pause.comment,
            "catchUp": pause.catch_up,
        });
        let audit = Statement::new(
            "INSERT INTO audit (at, actor_name, actor_email, action, details) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(pause.at)
        .bind(&pause.actor.name)
        .bind(&pause.actor.email)
        .bind(if pause.paused { "paused" } else { "resumed" })
        .bind(Param::json(&details));
        D::execute(&mut tx, DOING, audit).await?;
        commit(tx, DOING).await?;
        Ok(true)
    }

    pub(super) async fn list_pauses(&self) -> Result<Vec<Pause>, Error> {
        let rows: Vec<PauseRow> = self
            .read(
                "reading the paused launch plans",
                Statement::new(format!(
                    "SELECT {COLUMNS} FROM launch_plan_pauses ORDER BY project, name"
                )),
            )
            .await?;
        Ok(rows.into_iter().map(Pause::from).collect())
    }
}

//! Decisions on approval gates on SQL ([`ExecutionStore::decide`](crate::store::ExecutionStore::decide),
//! [`ExecutionStore::decision`](crate::store::ExecutionStore::decision)):
//! one row per gate in `approvals`, inserted once (the first decision
//! stands), with its audit entry in the same write transaction.

use serde_json::json;

use super::statement::{Param, Statement};
use super::{Dialect, SqlStore, commit};
use crate::spec::ExecutionId;
use crate::store::Error;
use crate::store::execution::Decision;

/// The columns [`DecisionRow`] decodes, in order.
const COLUMNS: &str = "execution, node, approved, decided_at, actor_name, comment";

#[derive(sqlx::FromRow)]
pub(crate) struct DecisionRow {
    execution: String,
    node: String,
    approved: bool,
    decided_at: chrono::DateTime<chrono::Utc>,
    actor_name: String,
    comment: Option<String>,
}

impl From<DecisionRow> for Decision {
    fn from(row: DecisionRow) -> Decision {
        Decision {
            execution: ExecutionId::from(row.execution),
            node: row.node,
            approved: row.approved,
            at: row.decided_at,
            by: row.actor_name,
            comment: row.comment,
        }
    }
}

impl<D: Dialect> SqlStore<D> {
    pub(super) async fn write_decision(&self, decision: &Decision) -> Result<bool, Error> {
        const DOING: &str = "recording an approval decision";
        let mut tx = self.begin_write(DOING).await?;
        let insert = Statement::new(format!(
            "INSERT INTO approvals ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (execution, node) DO NOTHING"
        ))
        .bind(&decision.execution)
        .bind(&decision.node)
        .bind(decision.approved)
        .bind(decision.at)
        .bind(&decision.by)
        .bind(Param::Text(decision.comment.as_deref()));
        if D::execute(&mut tx, DOING, insert).await? == 0 {
            return Ok(false);
        }
        let details = json!({
            "execution": decision.execution,
            "node": decision.node,
            "decision": if decision.approved { "approved" } else { "rejected" },
            "comment": decision.comment,
        });
        let audit = Statement::new(
            "INSERT INTO audit (at, actor_name, actor_email, action, details) \
             VALUES ($1, $2, '', 'approval', $3)",
        )
        .bind(decision.at)
        .bind(&decision.by)
        .bind(Param::json(&details));
        D::execute(&mut tx, DOING, audit).await?;
        commit(tx, DOING).await?;
        self.tell_work(&decision.execution);
        Ok(true)
    }

    pub(super) async fn read_decision(
        &self,
        execution: &ExecutionId,
        node: &str,
    ) -> Result<Option<Decision>, Error> {
        let row: Option<DecisionRow> = self
            .read_optional(
                "reading an approval decision",
                Statement::new(format!(
                    "SELECT {COLUMNS} FROM approvals WHERE execution = $1 AND node = $2"
                ))
                .bind(execution)
                .bind(node),
            )
            .await?;
        Ok(row.map(Decision::from))
    }
}

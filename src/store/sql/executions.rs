//! [`ExecutionStore`] on SQL: executions, their nodes, lineage and the
//! cache.
//!
//! An execution's row and its nodes are written in one write transaction
//! with `INSERT … ON CONFLICT (id) DO NOTHING`: a second creator of the
//! same id waits for the first (SQLite's write lock; PostgreSQL's wait on
//! the uncommitted row), then inserts nothing and reads the first's row,
//! so exactly one gets `created` (I4). A batch of executions
//! (`create_executions`, a scheduler tick's burst) is the same insert with
//! many rows, in id order, `RETURNING` the ids it inserted: the nodes of
//! exactly those follow in the same transaction.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::rows::{self, CACHE_COLUMNS, EXECUTION_COLUMNS, LINEAGE_COLUMNS, NODE_COLUMNS};
use super::statement::{Param, Statement, rows_per_statement};
use super::{Dialect, One, SqlStore, commit, found};
use crate::spec::{Digest, ExecutionId};
use crate::store::execution::{Decision, EngineWrite, NodesPage, UnfinishedSummary, WorkListener};
use crate::store::{
    CacheEntry, Error, Execution, ExecutionFilter, ExecutionStore, LineageEdge, NewExecution,
    NodeState, StoreFuture,
};

/// How many parameters an execution's row binds: one per column of
/// [`EXECUTION_COLUMNS`].
const EXECUTION_PARAMS: usize = 20;

/// An execution's row, as the parameters of [`EXECUTION_COLUMNS`] in order.
fn execution_params(e: &Execution) -> [Param<'_>; EXECUTION_PARAMS] {
    [
        e.id.as_str().into(),
        e.project.as_str().into(),
        e.workflow.as_str().into(),
        e.workflow_version.as_str().into(),
        e.launch_plan.as_deref().into(),
        e.launch_plan_version.as_ref().map(Digest::as_str).into(),
        e.source.0.as_str().into(),
        e.commit.0.as_str().into(),
        e.trigger.as_str().into(),
        e.scheduled_at.into(),
        Param::json(&e.inputs),
        Param::json(&e.plan),
        Param::json(&serde_json::to_value(&e.options).expect("run options serialize")),
        e.status.as_str().into(),
        Param::json_or_null(e.outputs.as_ref()),
        e.error.as_deref().into(),
        e.created_at.into(),
        e.started_at.into(),
        e.finished_at.into(),
        e.cancel_requested.into(),
    ]
}

impl<D: Dialect> SqlStore<D> {
    async fn create(
        &self,
        execution: &Execution,
        nodes: &[NodeState],
        edges: &[LineageEdge],
    ) -> Result<(Execution, bool), Error> {
        const DOING: &str = "creating an execution";
        let mut tx = self.begin_write(DOING).await?;
        let created = Self::insert_execution(&mut tx, execution).await?;
        if created {
            Self::insert_nodes(&mut tx, &execution.id, nodes).await?;
            if !edges.is_empty() {
                Self::insert_lineage_rows(&mut tx, edges).await?;
            }
        }
        let stored = Self::read_execution(&mut tx, &execution.id, DOING).await?;
        let stored = stored.ok_or_else(|| Error::NotFound {
            doing: DOING,
            what: format!("execution {}", execution.id),
        })?;
        commit(tx, DOING).await?;
        if created {
            self.tell_work(&stored.id);
        }
        Ok((stored, created))
    }

    /// The steps of [`ExecutionStore::create_executions`]: the batch in id
    /// order (so that two creators of overlapping batches take their rows'
    /// locks in one order and cannot deadlock), a transaction per chunk
    /// that inserts the executions whose id is free (`RETURNING` says
    /// which), then the nodes of those alone.
    async fn create_many(&self, batch: &[NewExecution]) -> Result<Vec<bool>, Error> {
        const DOING: &str = "creating executions";
        let mut created = vec![false; batch.len()];
        let mut seen = HashSet::with_capacity(batch.len());
        let mut order: Vec<usize> = (0..batch.len())
            .filter(|&i| seen.insert(batch[i].execution.id.as_str()))
            .collect();
        order.sort_by(|&a, &b| batch[a].execution.id.cmp(&batch[b].execution.id));
        for chunk in order.chunks(rows_per_statement::<D>(EXECUTION_PARAMS, 0)) {
            let mut insert =
                Statement::built::<D>(format!("INSERT INTO executions ({EXECUTION_COLUMNS}) "));
            insert
                .push_values(chunk, |&i| execution_params(&batch[i].execution))
                .push(" ON CONFLICT (id) DO NOTHING RETURNING id");
            let mut tx = self.begin_write(DOING).await?;
            let inserted: Vec<One<String>> = D::fetch_all(&mut tx, DOING, insert).await?;
            let inserted: HashSet<ExecutionId> = inserted
                .into_iter()
                .map(|(id,)| ExecutionId::from(id))
                .collect();
            let mut nodes = Vec::new();
            for &i in chunk {
                let new = &batch[i];
                if inserted.contains(&new.execution.id) {
                    created[i] = true;
                    let id = new.execution.id.as_str();
                    nodes.extend((1..).zip(&new.nodes).map(|(n, node)| (id, n, node)));
                }
            }
            Self::insert_node_rows(&mut tx, &nodes).await?;
            commit(tx, DOING).await?;
            for &i in chunk.iter().filter(|&&i| created[i]) {
                self.tell_work(&batch[i].execution.id);
            }
        }
        Ok(created)
    }

    async fn find_execution(&self, id: &ExecutionId) -> Result<Option<Execution>, Error> {
        const DOING: &str = "reading an execution";
        let mut conn = self.connection(DOING).await?;
        Self::read_execution(&mut conn, id, DOING).await
    }

    /// Many executions by id, a statement per chunk of ids.
    async fn find_executions(
        &self,
        ids: &[ExecutionId],
    ) -> Result<HashMap<ExecutionId, Execution>, Error> {
        const DOING: &str = "reading executions";
        let mut found = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(rows_per_statement::<D>(1, 0)) {
            let mut select = Statement::built::<D>(format!(
                "SELECT {EXECUTION_COLUMNS} FROM executions WHERE id IN "
            ));
            select.push_tuple(chunk.iter().map(|id| id.as_str().into()));
            for execution in rows::executions(self.read(DOING, select).await?, DOING)? {
                found.insert(execution.id.clone(), execution);
            }
        }
        Ok(found)
    }

    async fn list_executions(&self, filter: &ExecutionFilter) -> Result<Vec<Execution>, Error> {
        const DOING: &str = "listing executions";
        let mut select =
            Statement::built::<D>(format!("SELECT {EXECUTION_COLUMNS} FROM executions"));
        select
            .filter("project", filter.project.as_deref())
            .filter("launch_plan", filter.launch_plan.as_deref())
            .filter("workflow", filter.workflow.as_deref())
            .filter("status", filter.status.map(|s| s.as_str()))
            .filter("trigger", filter.trigger.map(|t| t.as_str()))
            .before(filter.before.as_ref().map(|(at, id)| (*at, id.as_str())))
            .push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(rows::execution_limit(filter));
        rows::executions(self.read(DOING, select).await?, DOING)
    }

    async fn list_unfinished(&self) -> Result<Vec<Execution>, Error> {
        const DOING: &str = "listing unfinished executions";
        // The WHERE clause is the partial index's, word for word.
        let select = Statement::new(format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions WHERE status IN ('queued', 'running') \
             ORDER BY created_at, id"
        ));
        rows::executions(self.read(DOING, select).await?, DOING)
    }

    async fn summarize_unfinished(&self) -> Result<UnfinishedSummary, Error> {
        const DOING: &str = "summarizing unfinished executions";
        // The WHERE clause is the partial index's, word for word.
        let select = Statement::new(
            "SELECT COUNT(*), COUNT(CASE WHEN cancel_requested THEN 1 END), MIN(id), MAX(id), \
             MAX(created_at) FROM executions WHERE status IN ('queued', 'running')",
        );
        type Row = (
            i64,
            i64,
            Option<String>,
            Option<String>,
            Option<DateTime<Utc>>,
        );
        let row: Option<Row> = self.read_optional(DOING, select).await?;
        let (count, cancel_requested, first, last, newest) = row.unwrap_or_default();
        Ok(UnfinishedSummary {
            count,
            cancel_requested,
            first: first.map(ExecutionId::from),
            last: last.map(ExecutionId::from),
            newest,
        })
    }

    async fn list_nodes(&self, execution: &ExecutionId) -> Result<Vec<NodeState>, Error> {
        const DOING: &str = "reading an execution's nodes";
        let select = Statement::new(format!(
            "SELECT {NODE_COLUMNS} FROM node_executions WHERE execution = $1 ORDER BY plan_order"
        ))
        .bind(execution);
        rows::node_states(self.read(DOING, select).await?, DOING)
    }

    async fn list_nodes_page(
        &self,
        execution: &ExecutionId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<NodesPage, Error> {
        const DOING: &str = "reading a page of an execution's nodes";
        let count = Statement::new(
            "SELECT COUNT(*), COUNT(CASE WHEN node = $2 THEN 1 END) FROM node_executions \
             WHERE execution = $1",
        )
        .bind(execution)
        .bind(after);
        let counted: Option<(i64, i64)> = self.read_optional(DOING, count).await?;
        let (total, found) = counted.unwrap_or_default();
        let select = Statement::new(format!(
            "SELECT {NODE_COLUMNS} FROM node_executions WHERE execution = $1 AND plan_order > \
             COALESCE((SELECT plan_order FROM node_executions WHERE execution = $1 AND node = $2), 0) \
             ORDER BY plan_order LIMIT $3"
        ))
        .bind(execution)
        .bind(after)
        .bind(i64::from(limit));
        Ok(NodesPage {
            nodes: rows::node_states(self.read(DOING, select).await?, DOING)?,
            total: u64::try_from(total).unwrap_or(0),
            after_found: after.is_none() || found > 0,
        })
    }

    /// The nodes of many executions, a statement per chunk of them.
    async fn list_nodes_of(
        &self,
        executions: &[ExecutionId],
    ) -> Result<HashMap<ExecutionId, Vec<NodeState>>, Error> {
        const DOING: &str = "reading executions' nodes";
        let mut all: HashMap<ExecutionId, Vec<NodeState>> = HashMap::new();
        for chunk in executions.chunks(rows_per_statement::<D>(1, 0)) {
            let mut select = Statement::built::<D>(format!(
                "SELECT {NODE_COLUMNS} FROM node_executions WHERE execution IN "
            ));
            select
                .push_tuple(chunk.iter().map(|id| id.as_str().into()))
                .push(" ORDER BY execution, plan_order");
            for node in rows::node_states(self.read(DOING, select).await?, DOING)? {
                all.entry(node.execution.clone()).or_default().push(node);
            }
        }
        Ok(all)
    }

    async fn write_node(&self, node: &NodeState) -> Result<(), Error> {
        let mut conn = self.connection("writing a node's state").await?;
        Self::update_node_row(&mut conn, node).await
    }

    /// The steps of [`ExecutionStore::complete_node`], in one transaction.
    async fn complete(
        &self,
        node: &NodeState,
        cache: Option<&CacheEntry>,
        edges: &[LineageEdge],
    ) -> Result<(), Error> {
        const DOING: &str = "recording a node's success";
        let mut tx = self.begin_write(DOING).await?;
        Self::update_node_row(&mut tx, node).await?;
        if let Some(entry) = cache {
            Self::insert_cache_entry(&mut tx, entry).await?;
        }
        Self::insert_lineage_rows(&mut tx, edges).await?;
        commit(tx, DOING).await
    }

    async fn write_execution(&self, execution: &Execution) -> Result<(), Error> {
        let mut conn = self.connection("writing an execution's status").await?;
        Self::update_execution_row(&mut conn, execution).await
    }

    /// The writes of an engine's pass, in order, in one transaction.
    async fn apply_writes(&self, writes: &[EngineWrite]) -> Result<(), Error> {
        const DOING: &str = "recording the engine's steps";
        if writes.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write(DOING).await?;
        for write in writes {
            match write {
                EngineWrite::Node(node) => Self::update_node_row(&mut tx, node).await?,
                EngineWrite::Completed { node, cache, edges } => {
                    Self::update_node_row(&mut tx, node).await?;
                    if let Some(entry) = cache {
                        Self::insert_cache_entry(&mut tx, entry).await?;
                    }
                    Self::insert_lineage_rows(&mut tx, edges).await?;
                }
                EngineWrite::Execution(execution) => {
                    Self::update_execution_row(&mut tx, execution).await?;
                }
                EngineWrite::Expanded { node, items } => {
                    Self::update_node_row(&mut tx, node).await?;
                    Self::append_nodes(&mut tx, &node.execution, items).await?;
                }
            }
        }
        commit(tx, DOING).await
    }

    /// Inserts nodes an execution gained while it ran (a map node's
    /// items), numbered after its last row.
    async fn append_nodes(
        conn: &mut D::Connection,
        execution: &ExecutionId,
        nodes: &[NodeState],
    ) -> Result<(), Error> {
        const DOING: &str = "numbering a map node's items";
        let last = Statement::new(
            "SELECT CAST(COALESCE(MAX(plan_order), 0) AS BIGINT) FROM node_executions \
             WHERE execution = $1",
        )
        .bind(execution);
        let last: Option<(i64,)> = D::fetch_optional(conn, DOING, last).await?;
        let last = last.map_or(0, |(n,)| n);
        let numbered: Vec<(&str, i64, &NodeState)> = (last + 1..)
            .zip(nodes)
            .map(|(i, n)| (execution.as_str(), i, n))
            .collect();
        Self::insert_node_rows(conn, &numbered).await
    }

    /// Writes an execution's status, outputs, error and times; one that
    /// does not exist is [`Error::NotFound`].
    async fn update_execution_row(
        conn: &mut D::Connection,
        execution: &Execution,
    ) -> Result<(), Error> {
        const DOING: &str = "writing an execution's status";
        let update = Statement::new(
            "UPDATE executions SET status = $1, outputs = $2, error = $3, started_at = $4, \
             finished_at = $5 WHERE id = $6",
        )
        .bind(execution.status.as_str())
        .bind(Param::json_or_null(execution.outputs.as_ref()))
        .bind(&execution.error)
        .bind(execution.started_at)
        .bind(execution.finished_at)
        .bind(&execution.id);
        let changed = D::execute(conn, DOING, update).await?;
        found(changed, DOING, || format!("execution {}", execution.id))
    }

    async fn cancel(&self, id: &ExecutionId) -> Result<bool, Error> {
        let update = Statement::new(
            "UPDATE executions SET cancel_requested = TRUE \
             WHERE id = $1 AND status IN ('queued', 'running')",
        )
        .bind(id);
        let changed = self
            .run("requesting an execution's cancellation", update)
            .await?;
        if changed > 0 {
            self.tell_work(id);
        }
        Ok(changed > 0)
    }

    async fn insert_lineage(&self, edges: &[LineageEdge]) -> Result<(), Error> {
        const DOING: &str = "recording lineage";
        if edges.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write(DOING).await?;
        Self::insert_lineage_rows(&mut tx, edges).await?;
        commit(tx, DOING).await
    }

    /// Lineage edges where `column` (`digest` or `execution`) is `value`,
    /// oldest first.
    async fn lineage_where(
        &self,
        column: &'static str,
        value: &str,
        doing: &'static str,
    ) -> Result<Vec<LineageEdge>, Error> {
        let select = Statement::new(format!(
            "SELECT {LINEAGE_COLUMNS} FROM lineage WHERE {column} = $1 ORDER BY at, id"
        ))
        .bind(value);
        rows::lineage_edges(self.read(doing, select).await?, doing)
    }

    /// The lineage of many artifacts, a statement per chunk of digests,
    /// each chunk's edges oldest first.
    async fn lineage_of_digests(&self, digests: &[Digest]) -> Result<Vec<LineageEdge>, Error> {
        const DOING: &str = "reading artifacts' lineage";
        let mut edges = Vec::new();
        for chunk in digests.chunks(rows_per_statement::<D>(1, 0)) {
            let mut select = Statement::built::<D>(format!(
                "SELECT {LINEAGE_COLUMNS} FROM lineage WHERE digest IN "
            ));
            select
                .push_tuple(chunk.iter().map(|digest| digest.as_str().into()))
                .push(" ORDER BY at, id");
            edges.extend(rows::lineage_edges(self.read(DOING, select).await?, DOING)?);
        }
        Ok(edges)
    }

    /// The lineage of many nodes (execution, node path), a statement per
    /// chunk of nodes, each chunk's edges oldest first.
    async fn lineage_of_node_list(
        &self,
        nodes: &[(ExecutionId, String)],
    ) -> Result<Vec<LineageEdge>, Error> {
        const DOING: &str = "reading nodes' lineage";
        let mut edges = Vec::new();
        for chunk in nodes.chunks(rows_per_statement::<D>(2, 0)) {
            let mut select = Statement::built::<D>(format!(
                "SELECT {LINEAGE_COLUMNS} FROM lineage WHERE (execution, node) IN ("
            ));
            select
                .push_values(chunk, |(execution, node)| {
                    [execution.as_str().into(), node.as_str().into()]
                })
                .push(") ORDER BY at, id");
            edges.extend(rows::lineage_edges(self.read(DOING, select).await?, DOING)?);
        }
        Ok(edges)
    }

    async fn cache_read(&self, key: &Digest) -> Result<Option<CacheEntry>, Error> {
        let select = Statement::new(format!(
            "SELECT {CACHE_COLUMNS} FROM cache_entries WHERE key = $1"
        ))
        .bind(key.as_str());
        let row: Option<rows::CacheRow> =
            self.read_optional("reading a cache entry", select).await?;
        Ok(row.map(CacheEntry::from))
    }

    async fn cache_write(&self, entry: &CacheEntry) -> Result<(), Error> {
        let mut conn = self.connection("writing a cache entry").await?;
        Self::insert_cache_entry(&mut conn, entry).await
    }

    // ------------------------------------------------- steps of a write

    /// Inserts the execution's row unless its id exists; whether it did.
    async fn insert_execution(conn: &mut D::Connection, e: &Execution) -> Result<bool, Error> {
        let mut insert = Statement::new(format!(
            "INSERT INTO executions ({EXECUTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, \
             $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) \
             ON CONFLICT (id) DO NOTHING"
        ));
        for param in execution_params(e) {
            insert = insert.bind(param);
        }
        let inserted = D::execute(conn, "inserting an execution", insert).await?;
        Ok(inserted == 1)
    }

    /// Inserts an execution's nodes, numbered in the order given (plan
    /// order).
    async fn insert_nodes(
        conn: &mut D::Connection,
        execution: &ExecutionId,
        nodes: &[NodeState],
    ) -> Result<(), Error> {
        let numbered: Vec<(&str, i64, &NodeState)> = (1..)
            .zip(nodes)
            .map(|(i, n)| (execution.as_str(), i, n))
            .collect();
        Self::insert_node_rows(conn, &numbered).await
    }

    /// Inserts nodes, each given with its execution's id and its position
    /// in the plan, a multi-row statement per chunk.
    async fn insert_node_rows(
        conn: &mut D::Connection,
        numbered: &[(&str, i64, &NodeState)],
    ) -> Result<(), Error> {
        for chunk in numbered.chunks(rows_per_statement::<D>(15, 0)) {
            let mut insert = Statement::built::<D>(
                "INSERT INTO node_executions (execution, node, plan_order, task, task_version, \
                 status, attempts, inputs, outputs, error, cached_from, started_at, \
                 finished_at, next_attempt_at, handle) ",
            );
            insert.push_values(chunk, |&(execution, plan_order, node)| {
                [
                    execution.into(),
                    node.node.as_str().into(),
                    plan_order.into(),
                    node.task.as_str().into(),
                    node.task_version.as_str().into(),
                    node.status.as_str().into(),
                    rows::attempts_column(node).into(),
                    Param::json_or_null(node.inputs.as_ref()),
                    Param::json_or_null(node.outputs.as_ref()),
                    node.error.as_deref().into(),
                    (&node.cached_from).into(),
                    node.started_at.into(),
                    node.finished_at.into(),
                    node.next_attempt_at.into(),
                    Param::json_or_null(node.handle.as_ref()),
                ]
            });
            D::execute(conn, "inserting an execution's nodes", insert).await?;
        }
        Ok(())
    }

    async fn read_execution(
        conn: &mut D::Connection,
        id: &ExecutionId,
        doing: &'static str,
    ) -> Result<Option<Execution>, Error> {
        let select = Statement::new(format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1"
        ))
        .bind(id);
        let row: Option<rows::ExecutionRow> = D::fetch_optional(conn, doing, select).await?;
        row.map(|row| row.into_execution(doing)).transpose()
    }

    /// Writes a node's state (by execution and node path); a node that
    /// does not exist is [`Error::NotFound`].
    async fn update_node_row(conn: &mut D::Connection, node: &NodeState) -> Result<(), Error> {
        const DOING: &str = "writing a node's state";
        let update = Statement::new(
            "UPDATE node_executions SET status = $1, attempts = $2, inputs = $3, \
             outputs = $4, error = $5, cached_from = $6, started_at = $7, finished_at = $8, \
             next_attempt_at = $9, handle = $10 WHERE execution = $11 AND node = $12",
        )
        .bind(node.status.as_str())
        .bind(rows::attempts_column(node))
        .bind(Param::json_or_null(node.inputs.as_ref()))
        .bind(Param::json_or_null(node.outputs.as_ref()))
        .bind(&node.error)
        .bind(&node.cached_from)
        .bind(node.started_at)
        .bind(node.finished_at)
        .bind(node.next_attempt_at)
        .bind(Param::json_or_null(node.handle.as_ref()))
        .bind(&node.execution)
        .bind(&node.node);
        let changed = D::execute(conn, DOING, update).await?;
        found(changed, DOING, || {
            format!("node {} of execution {}", node.node, node.execution)
        })
    }

    /// Inserts lineage edges, sorted by identity; an edge that exists is
    /// skipped.
    async fn insert_lineage_rows(
        conn: &mut D::Connection,
        edges: &[LineageEdge],
    ) -> Result<(), Error> {
        for chunk in rows::new_lineage(edges).chunks(rows_per_statement::<D>(9, 0)) {
            let mut insert =
                Statement::built::<D>(format!("INSERT INTO lineage ({LINEAGE_COLUMNS}) "));
            insert.push_values(chunk, |edge| {
                [
                    edge.execution.as_str().into(),
                    edge.node.as_str().into(),
                    rows::direction_column(edge.direction).into(),
                    edge.name.as_str().into(),
                    edge.digest.as_str().into(),
                    edge.task.as_str().into(),
                    edge.task_version.as_str().into(),
                    edge.commit.0.as_str().into(),
                    edge.at.into(),
                ]
            });
            insert.push(" ON CONFLICT DO NOTHING");
            D::execute(conn, "recording lineage", insert).await?;
        }
        Ok(())
    }

    /// Inserts a cache entry unless its key has one (the first result
    /// stays).
    async fn insert_cache_entry(conn: &mut D::Connection, entry: &CacheEntry) -> Result<(), Error> {
        let insert = Statement::new(format!(
            "INSERT INTO cache_entries ({CACHE_COLUMNS}) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (key) DO NOTHING"
        ))
        .bind(entry.key.as_str())
        .bind(&entry.execution)
        .bind(&entry.node)
        .bind(Param::json(&entry.outputs))
        .bind(entry.created_at);
        D::execute(conn, "writing a cache entry", insert).await?;
        Ok(())
    }
}

impl<D: Dialect> ExecutionStore for SqlStore<D> {
    fn decide<'a>(&'a self, decision: &'a Decision) -> StoreFuture<'a, bool> {
        Box::pin(self.write_decision(decision))
    }

    fn decision<'a>(
        &'a self,
        execution: &'a ExecutionId,
        node: &'a str,
    ) -> StoreFuture<'a, Option<Decision>> {
        Box::pin(self.read_decision(execution, node))
    }

    fn create_execution<'a>(
        &'a self,
        execution: &'a Execution,
        nodes: &'a [NodeState],
    ) -> StoreFuture<'a, (Execution, bool)> {
        Box::pin(self.create(execution, nodes, &[]))
    }

    fn create_execution_with_lineage<'a>(
        &'a self,
        execution: &'a Execution,
        nodes: &'a [NodeState],
        edges: &'a [LineageEdge],
    ) -> StoreFuture<'a, (Execution, bool)> {
        Box::pin(self.create(execution, nodes, edges))
    }

    fn create_executions<'a>(&'a self, batch: &'a [NewExecution]) -> StoreFuture<'a, Vec<bool>> {
        Box::pin(self.create_many(batch))
    }

    fn execution<'a>(&'a self, id: &'a ExecutionId) -> StoreFuture<'a, Option<Execution>> {
        Box::pin(self.find_execution(id))
    }

    fn executions_of<'a>(
        &'a self,
        ids: &'a [ExecutionId],
    ) -> StoreFuture<'a, HashMap<ExecutionId, Execution>> {
        Box::pin(self.find_executions(ids))
    }

    fn executions<'a>(&'a self, filter: &'a ExecutionFilter) -> StoreFuture<'a, Vec<Execution>> {
        Box::pin(self.list_executions(filter))
    }

    fn unfinished_executions(&self) -> StoreFuture<'_, Vec<Execution>> {
        Box::pin(self.list_unfinished())
    }

    fn unfinished_summary(&self) -> StoreFuture<'_, UnfinishedSummary> {
        Box::pin(self.summarize_unfinished())
    }

    fn on_work(&self, listener: std::sync::Weak<WorkListener>) {
        self.listeners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(listener);
    }

    fn nodes<'a>(&'a self, execution: &'a ExecutionId) -> StoreFuture<'a, Vec<NodeState>> {
        Box::pin(self.list_nodes(execution))
    }

    fn nodes_page<'a>(
        &'a self,
        execution: &'a ExecutionId,
        after: Option<&'a str>,
        limit: u32,
    ) -> StoreFuture<'a, NodesPage> {
        Box::pin(self.list_nodes_page(execution, after, limit))
    }

    fn nodes_of<'a>(
        &'a self,
        executions: &'a [ExecutionId],
    ) -> StoreFuture<'a, HashMap<ExecutionId, Vec<NodeState>>> {
        Box::pin(self.list_nodes_of(executions))
    }

    fn update_node<'a>(&'a self, node: &'a NodeState) -> StoreFuture<'a, ()> {
        Box::pin(self.write_node(node))
    }

    fn complete_node<'a>(
        &'a self,
        node: &'a NodeState,
        cache: Option<&'a CacheEntry>,
        edges: &'a [LineageEdge],
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.complete(node, cache, edges))
    }

    fn update_execution<'a>(&'a self, execution: &'a Execution) -> StoreFuture<'a, ()> {
        Box::pin(self.write_execution(execution))
    }

    fn apply_engine_writes<'a>(&'a self, writes: &'a [EngineWrite]) -> StoreFuture<'a, ()> {
        Box::pin(self.apply_writes(writes))
    }

    fn request_cancel<'a>(&'a self, id: &'a ExecutionId) -> StoreFuture<'a, bool> {
        Box::pin(self.cancel(id))
    }

    fn record_lineage<'a>(&'a self, edges: &'a [LineageEdge]) -> StoreFuture<'a, ()> {
        Box::pin(self.insert_lineage(edges))
    }

    fn lineage_of_artifact<'a>(&'a self, digest: &'a Digest) -> StoreFuture<'a, Vec<LineageEdge>> {
        Box::pin(self.lineage_where("digest", digest.as_str(), "reading an artifact's lineage"))
    }

    fn lineage_of_execution<'a>(
        &'a self,
        execution: &'a ExecutionId,
    ) -> StoreFuture<'a, Vec<LineageEdge>> {
        Box::pin(self.lineage_where(
            "execution",
            execution.as_str(),
            "reading an execution's lineage",
        ))
    }

    fn lineage_of_artifacts<'a>(
        &'a self,
        digests: &'a [Digest],
    ) -> StoreFuture<'a, Vec<LineageEdge>> {
        Box::pin(self.lineage_of_digests(digests))
    }

    fn lineage_of_nodes<'a>(
        &'a self,
        nodes: &'a [(ExecutionId, String)],
    ) -> StoreFuture<'a, Vec<LineageEdge>> {
        Box::pin(self.lineage_of_node_list(nodes))
    }

    fn cache_get<'a>(&'a self, key: &'a Digest) -> StoreFuture<'a, Option<CacheEntry>> {
        Box::pin(self.cache_read(key))
    }

    fn cache_put<'a>(&'a self, entry: &'a CacheEntry) -> StoreFuture<'a, ()> {
        Box::pin(self.cache_write(entry))
    }
}

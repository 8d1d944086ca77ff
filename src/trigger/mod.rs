//! Event triggers (DESIGN.md section 13): a launch plan's `triggers:` run
//! it when an object lands under a prefix ([`artifact`]), when an
//! execution of another launch plan ends ([`upstream`]), or when a system
//! calls it ([`call`]) — each event exactly once.
//!
//! Every event is recorded in the store before its execution is created,
//! with the id that execution gets ([`execution_id`]: the launch plan,
//! its version, the trigger and the event's identity). A repeated
//! observation, a restart, a second replica or a replayed call finds the
//! record and creates nothing new; a new version of the launch plan goes
//! on from the records of the one before (the trigger's key does not
//! change with the version), so it runs none of their events again (I4).
//!
//! A trigger runs at most `maxPending` executions at once: later events
//! are recorded and wait ("deferred"), shown by `weir status` and the
//! metrics, and are created oldest first as earlier ones end.
//!
//! [`Watcher::pass`] is the daemon's trigger loop body (it runs while the
//! replica leads, as the scheduler does); [`call`] is the webhook's, which
//! any replica serves.

pub mod artifact;
pub mod upstream;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use object_store::ObjectStore;
use object_store::path::Path;
use serde_json::{Value, json};

use crate::artifact::ArtifactStore;
use crate::engine::create::{self, Prepared, Request};
use crate::spec::duration::Field;
use crate::spec::{
    Definition, Digest, EntityRef, EventTrigger, ExecutionId, Kind, LaunchPlanSpec, Phase,
    SourceKey, Trigger,
};
use crate::store::trigger::{Ended, EventRef};
use crate::store::{
    self, EventRecord, NewExecution, SourceStatus, Status, Store, TriggerCursor, TriggerKey,
    VersionFilter, VersionKey,
};

/// How often an artifact trigger lists its prefix unless it says.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

/// The longest wait between two listings of a prefix that keeps failing.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How often an upstream trigger reads the executions that ended.
pub const UPSTREAM_INTERVAL: Duration = Duration::from_secs(1);

/// How often every trigger's deferred events are looked at, whether or
/// not this process recorded any (another replica's calls, room made by
/// an execution that ended).
pub const SWEEP: Duration = Duration::from_secs(5);

/// How many prefixes are listed at once.
const LISTINGS: usize = 32;

/// How many new objects are copied into the artifact store at once.
const FETCHES: usize = 16;

/// A prefix ready to list: its store, the prefix, the pattern.
type Listing = (Arc<dyn ObjectStore>, Path, globset::GlobMatcher);

/// How far back an upstream read goes before its cursor: an execution
/// whose end was written a little after a later one's (two writers'
/// clocks, a commit order) is still seen; what was seen is not run twice.
const UPSTREAM_MARGIN: chrono::Duration = chrono::Duration::seconds(10);

/// The id of the execution of `version` of `launch_plan` for `event` of
/// `trigger`, `<launch plan name>-<12 hex>`, a DNS-1123 label like a
/// scheduled instant's ([`crate::schedule::execution_id`]).
pub fn execution_id(
    launch_plan: &EntityRef,
    version: &Digest,
    trigger: &str,
    event: &str,
) -> ExecutionId {
    let key = json!([
        launch_plan.project,
        launch_plan.kind.to_string(),
        launch_plan.name,
        version.as_str(),
        trigger,
        event
    ]);
    let digest = Digest::of_json(&key);
    let name: String = launch_plan.name.chars().take(50).collect();
    ExecutionId::from(format!("{}-{}", name.trim_end_matches('-'), digest.short()))
}

/// What an execution a trigger of this kind creates says created it.
pub fn kind(trigger: &EventTrigger) -> Trigger {
    match trigger {
        EventTrigger::Artifact(_) => Trigger::Artifact,
        EventTrigger::Upstream(_) => Trigger::Upstream,
        EventTrigger::Webhook(_) => Trigger::Webhook,
    }
}

fn phase(status: Status) -> Option<Phase> {
    match status {
        Status::Succeeded => Some(Phase::Succeeded),
        Status::Failed => Some(Phase::Failed),
        Status::TimedOut => Some(Phase::TimedOut),
        Status::Cancelled => Some(Phase::Cancelled),
        Status::Queued | Status::Running => None,
    }
}

/// What one pass did.
#[derive(Debug, Default)]
pub struct Report {
    /// Events recorded this pass to run, by kind of trigger.
    pub seen: Vec<Trigger>,
    /// Executions created (events recorded now or before).
    pub created: Vec<(Trigger, ExecutionId)>,
    /// Triggers that failed this pass, and why.
    pub errors: Vec<(TriggerKey, String)>,
    /// Every trigger's deferred events, when the pass counted them.
    pub waiting: Option<i64>,
}

/// An active launch plan version that has triggers.
#[derive(Debug, Clone)]
struct Active {
    key: VersionKey,
    spec: LaunchPlanSpec,
}

impl Active {
    fn trigger_key(&self, trigger: &EventTrigger) -> TriggerKey {
        TriggerKey {
            project: self.key.entity.project.clone(),
            launch_plan: self.key.entity.name.clone(),
            trigger: trigger.key(),
        }
    }
}

/// A watched prefix.
struct Prefix {
    /// `s3://bucket` or `file:///folder`: the root keys are shown under.
    root: String,
    opened: Option<(Arc<dyn ObjectStore>, Path)>,
    pattern: Option<globset::GlobMatcher>,
    interval: Duration,
    /// Object key → the version of it last seen; read from the store's
    /// records at the first listing.
    seen: Option<HashMap<String, String>>,
    next_poll: DateTime<Utc>,
    failures: u32,
}

/// What a prefix's listing has that its trigger has not seen.
struct Listed {
    key: TriggerKey,
    object_store: Arc<dyn ObjectStore>,
    active: Active,
    /// The input that receives an object.
    input: String,
    /// `s3://bucket` or `file:///folder`.
    root: String,
    /// The trigger's first listing: what is there is not run.
    baseline: bool,
    changed: Vec<artifact::Object>,
}

/// The trigger loop's state between passes.
pub struct Watcher {
    artifacts: Arc<dyn ArtifactStore>,
    stores: artifact::Stores,
    active: Vec<Active>,
    /// Each active launch plan version read, with its spec when it has
    /// triggers.
    read: HashMap<VersionKey, Option<LaunchPlanSpec>>,
    /// Every source's last reconcile when `active` was read.
    reconciled: Option<Vec<(SourceKey, Option<DateTime<Utc>>)>>,
    cursors: HashMap<TriggerKey, TriggerCursor>,
    /// When each cursor was last written (it is written when it changes,
    /// and at least every minute while polled: `weir status` shows it).
    written: HashMap<TriggerKey, DateTime<Utc>>,
    prefixes: HashMap<TriggerKey, Prefix>,
    /// Where upstream reads go on from, and what they saw near it.
    upstream_after: Option<DateTime<Utc>>,
    recent: HashMap<ExecutionId, DateTime<Utc>>,
    next_upstream: Option<DateTime<Utc>>,
    prepared: HashMap<VersionKey, Arc<Prepared>>,
    /// Triggers that may have deferred events.
    waiting: HashSet<TriggerKey>,
    next_sweep: Option<DateTime<Utc>>,
}

impl Watcher {
    /// A watcher copying objects into `artifacts`.
    pub fn new(artifacts: Arc<dyn ArtifactStore>) -> Watcher {
        Watcher {
            artifacts,
            stores: artifact::Stores::default(),
            active: Vec::new(),
            read: HashMap::new(),
            reconciled: None,
            cursors: HashMap::new(),
            written: HashMap::new(),
            prefixes: HashMap::new(),
            upstream_after: None,
            recent: HashMap::new(),
            next_upstream: None,
            prepared: HashMap::new(),
            waiting: HashSet::new(),
            next_sweep: None,
        }
    }

    /// How many triggers the active launch plans have.
    pub fn triggers(&self) -> usize {
        self.active.iter().map(|a| a.spec.triggers.len()).sum()
    }

    /// When the next pass has something to do (`None`: no trigger is
    /// active; nothing until a reconcile changes the launch plans).
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        let polls = self.prefixes.values().map(|p| p.next_poll);
        polls
            .chain(self.next_upstream)
            .chain(self.next_sweep.filter(|_| self.triggers() > 0))
            .min()
    }

    /// One pass at `now`: reads the active launch plans again when a
    /// reconcile happened (seen in `sources`), lists the prefixes due,
    /// reads the executions ended since the upstream cursor, records what
    /// is new and creates the executions there is room for. A trigger's
    /// failure is its own (recorded on its cursor, retried with backoff);
    /// only the store's failure ends the pass.
    pub async fn pass(
        &mut self,
        store: &dyn Store,
        now: DateTime<Utc>,
        sources: &[SourceStatus],
    ) -> Result<Report, store::Error> {
        let mut report = Report::default();
        self.refresh(store, now, sources).await?;
        self.poll_prefixes(store, now, &mut report).await?;
        if self.next_upstream.is_some_and(|at| at <= now) {
            self.read_upstream(store, now, &mut report).await?;
            self.next_upstream = Some(now + UPSTREAM_INTERVAL);
        }
        if self.next_sweep.is_none_or(|at| at <= now) {
            self.next_sweep = Some(now + SWEEP);
            let counts = store.deferred_counts().await?;
            report.waiting = Some(counts.iter().map(|(_, n)| n).sum());
            self.waiting.extend(counts.into_iter().map(|(key, _)| key));
        }
        self.create_waiting(store, now, &mut report).await?;
        Ok(report)
    }

    /// Reads the active launch plans with triggers when a reconcile
    /// happened, and starts the cursor of each trigger new to the store.
    async fn refresh(
        &mut self,
        store: &dyn Store,
        now: DateTime<Utc>,
        sources: &[SourceStatus],
    ) -> Result<(), store::Error> {
        let reconciled: Vec<_> = sources
            .iter()
            .map(|s| (s.source.clone(), s.last_reconciled_at))
            .collect();
        if self.reconciled.as_ref() == Some(&reconciled) {
            return Ok(());
        }
        let filter = VersionFilter {
            kind: Some(Kind::LaunchPlan),
            ..VersionFilter::default()
        };
        // A version's document is read once: versions never change (I1).
        let mut active = Vec::new();
        let mut read = HashMap::new();
        for version in store
            .versions(&filter)
            .await?
            .into_iter()
            .filter(|v| v.active)
        {
            let spec = match self.read.remove(&version.key) {
                Some(known) => known,
                None => match store.version_document(&version.key).await? {
                    Some(doc) => match Definition::from_json(Kind::LaunchPlan, doc) {
                        Ok(Definition::LaunchPlan(lp)) if !lp.spec.triggers.is_empty() => {
                            Some(lp.spec)
                        }
                        _ => None,
                    },
                    None => None,
                },
            };
            if let Some(spec) = &spec {
                active.push(Active {
                    key: version.key.clone(),
                    spec: spec.clone(),
                });
            }
            read.insert(version.key, spec);
        }
        self.read = read;
        let mut keys = HashSet::new();
        let mut upstream = false;
        for a in &active {
            for t in &a.spec.triggers {
                let key = a.trigger_key(t);
                if !self.cursors.contains_key(&key) {
                    let cursor = match store.trigger_cursor(&key).await? {
                        Some(cursor) => cursor,
                        None => {
                            let cursor = TriggerCursor {
                                key: key.clone(),
                                since: now,
                                cursor: None,
                                polled_at: None,
                                error: None,
                                error_since: None,
                            };
                            store.write_trigger_cursor(&cursor).await?;
                            tracing::info!(launch_plan = %key.launch_plan, trigger = %key.trigger, "trigger begins");
                            cursor
                        }
                    };
                    self.cursors.insert(key.clone(), cursor);
                }
                match t {
                    EventTrigger::Artifact(spec) => {
                        let interval = spec
                            .interval
                            .as_ref()
                            .and_then(|i| i.value(Field::Interval).ok())
                            .unwrap_or(DEFAULT_INTERVAL);
                        if let Some(prefix) = self.prefixes.get_mut(&key) {
                            // A new version may change only the interval
                            // (url and pattern are in the key): the next
                            // poll comes no later than the new interval.
                            if prefix.interval != interval {
                                prefix.interval = interval;
                                prefix.next_poll = prefix.next_poll.min(now + interval);
                            }
                        } else {
                            let root = match spec.url.split_once("://") {
                                Some(("s3", rest)) => {
                                    format!("s3://{}", rest.split('/').next().unwrap_or(rest))
                                }
                                _ => spec.url.trim_end_matches('/').to_owned(),
                            };
                            self.prefixes.insert(
                                key.clone(),
                                Prefix {
                                    root,
                                    opened: None,
                                    pattern: None,
                                    interval,
                                    seen: None,
                                    next_poll: now,
                                    failures: 0,
                                },
                            );
                        }
                    }
                    EventTrigger::Upstream(_) => upstream = true,
                    _ => {}
                }
                keys.insert(key);
            }
        }
        self.cursors.retain(|k, _| keys.contains(k));
        self.prefixes.retain(|k, _| keys.contains(k));
        self.written.retain(|k, _| keys.contains(k));
        self.waiting = keys.clone();
        self.next_upstream = if upstream {
            Some(self.next_upstream.unwrap_or(now))
        } else {
            None
        };
        self.prepared.clear();
        self.active = active;
        self.reconciled = Some(reconciled);
        Ok(())
    }

    /// The active launch plan version `key` belongs to, and its trigger.
    fn find(&self, key: &TriggerKey) -> Option<(&Active, &EventTrigger)> {
        self.active.iter().find_map(|a| {
            if a.key.entity.project != key.project || a.key.entity.name != key.launch_plan {
                return None;
            }
            a.spec
                .triggers
                .iter()
                .find(|t| t.key() == key.trigger)
                .map(|t| (a, t))
        })
    }

    async fn poll_prefixes(
        &mut self,
        store: &dyn Store,
        now: DateTime<Utc>,
        report: &mut Report,
    ) -> Result<(), store::Error> {
        let due: Vec<TriggerKey> = self
            .prefixes
            .iter()
            .filter(|(_, p)| p.next_poll <= now)
            .map(|(k, _)| k.clone())
            .collect();
        // Opened (and what was seen read) one by one; listed at once, at
        // most LISTINGS at a time: a thousand prefixes cost the slowest
        // listings, not their sum.
        let mut listings = Vec::with_capacity(due.len());
        let mut outcomes = Vec::with_capacity(due.len());
        for key in due {
            match self.ready(store, &key).await? {
                Ok(Some(ready)) => listings.push((key, ready)),
                Ok(None) => outcomes.push((key, Ok(()))),
                Err(e) => outcomes.push((key, Err(e))),
            }
        }
        let listings: Vec<_> = listings
            .into_iter()
            .map(|(key, listing)| Box::pin(list_one(key, listing)))
            .collect();
        let listed: Vec<_> = futures_util::stream::iter(listings)
            .buffer_unordered(LISTINGS)
            .collect()
            .await;
        let mut found = Vec::with_capacity(listed.len());
        for (key, object_store, listed) in listed {
            match listed {
                Ok(listed) => found.push((key, object_store, listed)),
                Err(e) => outcomes.push((key, Err(e))),
            }
        }
        outcomes.extend(self.take(store, found, now, report).await?);
        for (key, outcome) in outcomes {
            let prefix = self.prefixes.get_mut(&key).expect("due prefixes exist");
            match outcome {
                Ok(()) => {
                    prefix.failures = 0;
                    prefix.next_poll = now + prefix.interval;
                    self.succeeded(store, &key, now).await?;
                }
                Err(e) => {
                    prefix.failures = prefix.failures.saturating_add(1);
                    let wait = prefix
                        .interval
                        .saturating_mul(1 << prefix.failures.min(16))
                        .min(MAX_BACKOFF);
                    prefix.next_poll = now + wait;
                    let message = e.to_string();
                    tracing::warn!(launch_plan = %key.launch_plan, trigger = %key.trigger, error = %message, retry_in = ?wait, "an artifact trigger cannot read its prefix");
                    report.errors.push((key.clone(), message.clone()));
                    self.failed(store, &key, now, message).await?;
                }
            }
        }
        Ok(())
    }

    /// What listing `key`'s prefix needs: its store opened, its pattern
    /// compiled and what it saw read from the store (the first time).
    /// `None` for a key no active launch plan has any more.
    async fn ready(
        &mut self,
        store: &dyn Store,
        key: &TriggerKey,
    ) -> Result<Result<Option<Listing>, artifact::Error>, store::Error> {
        let Some((_, EventTrigger::Artifact(spec))) = self.find(key) else {
            return Ok(Ok(None));
        };
        let spec = spec.clone();
        let prefix = self.prefixes.get_mut(key).expect("polled prefixes exist");
        if prefix.opened.is_none() {
            match self.stores.open(&spec.url) {
                Ok(opened) => prefix.opened = Some(opened),
                Err(e) => return Ok(Err(e)),
            }
        }
        if prefix.pattern.is_none() {
            match artifact::matcher(&spec.pattern) {
                Ok(m) => prefix.pattern = Some(m),
                Err(e) => return Ok(Err(e)),
            }
        }
        if prefix.seen.is_none() {
            let seen = store
                .event_details(key)
                .await?
                .iter()
                .filter_map(artifact::seen_of)
                .collect();
            prefix.seen = Some(seen);
        }
        let (object_store, path) = prefix.opened.clone().expect("opened");
        let pattern = prefix.pattern.clone().expect("compiled");
        Ok(Ok(Some((object_store, path, pattern))))
    }

    /// Records what is new in the prefixes' listings: the objects there at
    /// a trigger's first listing as its baseline (never run), every later
    /// new object or new version of one as an event, copied into the
    /// artifact store first (at most FETCHES at once, across prefixes);
    /// all of them in one write. A prefix whose object cannot be copied
    /// fails its poll; what it copied is recorded, the rest is seen again
    /// at its next listing. Each prefix's outcome.
    async fn take(
        &mut self,
        store: &dyn Store,
        listed: Vec<(TriggerKey, Arc<dyn ObjectStore>, Vec<artifact::Object>)>,
        now: DateTime<Utc>,
        report: &mut Report,
    ) -> Result<Vec<(TriggerKey, Result<(), artifact::Error>)>, store::Error> {
        // What each prefix has that is new, and whether it is a baseline.
        let mut news = Vec::new();
        let mut outcomes = Vec::new();
        for (key, object_store, listed) in listed {
            let Some((active, EventTrigger::Artifact(spec))) = self.find(&key) else {
                outcomes.push((key, Ok(())));
                continue;
            };
            let (active, input) = (active.clone(), spec.input.clone());
            let prefix = &self.prefixes[&key];
            let seen = prefix.seen.as_ref().expect("read");
            let changed: Vec<artifact::Object> = artifact::changed(seen, &listed)
                .into_iter()
                .cloned()
                .collect();
            let baseline = self
                .cursors
                .get(&key)
                .is_some_and(|c| c.polled_at.is_none());
            let root = prefix.root.clone();
            news.push(Listed {
                key,
                object_store,
                active,
                input,
                root,
                baseline,
                changed,
            });
        }
        let artifacts = &self.artifacts;
        let fetches: Vec<_> = news
            .iter()
            .enumerate()
            .filter(|(_, listed)| !listed.baseline)
            .flat_map(|(n, listed)| {
                listed.changed.iter().enumerate().map(move |(i, object)| {
                    let (object_store, object) = (listed.object_store.clone(), object.clone());
                    let artifacts = artifacts.clone();
                    Box::pin(async move {
                        let fetched =
                            artifact::fetch(object_store.as_ref(), &object, artifacts).await;
                        ((n, i), fetched)
                    })
                })
            })
            .collect();
        let mut fetched: HashMap<(usize, usize), Result<String, artifact::Error>> =
            futures_util::stream::iter(fetches)
                .buffer_unordered(FETCHES)
                .collect()
                .await;
        let mut records = Vec::new();
        let mut baselines = Vec::new();
        for (n, listed) in news.iter().enumerate() {
            let Listed {
                key,
                active,
                input,
                root,
                baseline,
                changed,
                ..
            } = listed;
            let mut failure = None;
            for (i, object) in changed.iter().enumerate() {
                let event = object.event();
                let mut detail = object.detail(root);
                let (execution, inputs) = if *baseline {
                    (None, json!({}))
                } else {
                    match fetched.remove(&(n, i)).expect("every object fetched") {
                        Ok(reference) => {
                            detail["artifact"] = Value::String(reference.clone());
                            let id = execution_id(
                                &active.key.entity,
                                &active.key.digest,
                                &key.trigger,
                                &event,
                            );
                            (Some(id), json!({ input.as_str(): reference }))
                        }
                        Err(e) => {
                            failure.get_or_insert(e);
                            continue;
                        }
                    }
                };
                records.push(EventRecord {
                    key: key.clone(),
                    event,
                    execution,
                    version: active.key.digest.clone(),
                    inputs,
                    detail,
                    seen_at: now,
                    created_at: None,
                });
            }
            if *baseline {
                tracing::info!(launch_plan = %key.launch_plan, trigger = %key.trigger, objects = changed.len(), "objects already there when the trigger began are not run");
                // The baseline and the first poll are written together
                // (and kept here only once written).
                if let Some(cursor) = self.cursors.get(key) {
                    baselines.push(TriggerCursor {
                        polled_at: Some(now),
                        error: None,
                        error_since: None,
                        ..cursor.clone()
                    });
                }
            }
            outcomes.push((key.clone(), failure.map_or(Ok(()), Err)));
        }
        if records.is_empty() && baselines.is_empty() {
            return Ok(outcomes);
        }
        let recorded = store.record_events(&records, &baselines).await?;
        for cursor in baselines {
            self.written.insert(cursor.key.clone(), now);
            self.cursors.insert(cursor.key.clone(), cursor);
        }
        for (record, new) in recorded {
            let prefix = self
                .prefixes
                .get_mut(&record.key)
                .expect("polled prefixes exist");
            if let Some((object, tag)) = artifact::seen_of(&record.detail) {
                prefix.seen.as_mut().expect("read").insert(object, tag);
            }
            if new && record.execution.is_some() {
                report.seen.push(Trigger::Artifact);
                self.waiting.insert(record.key);
            }
        }
        Ok(outcomes)
    }

    /// Reads the executions that ended since the upstream cursor and
    /// records an event for each upstream trigger it starts.
    async fn read_upstream(
        &mut self,
        store: &dyn Store,
        now: DateTime<Utc>,
        report: &mut Report,
    ) -> Result<(), store::Error> {
        let watching: Vec<(TriggerKey, Active, crate::spec::UpstreamTrigger)> = self
            .active
            .iter()
            .flat_map(|a| {
                a.spec.triggers.iter().filter_map(move |t| match t {
                    EventTrigger::Upstream(u) => Some((a.trigger_key(t), a.clone(), u.clone())),
                    _ => None,
                })
            })
            .collect();
        if watching.is_empty() {
            return Ok(());
        }
        let start = match self.upstream_after {
            Some(at) => at,
            None => watching
                .iter()
                .filter_map(|(k, _, _)| self.cursors.get(k))
                .map(|c| {
                    c.cursor
                        .as_deref()
                        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
                        .map_or(c.since, |t| t.with_timezone(&Utc))
                })
                .min()
                .unwrap_or(now),
        };
        let mut after = (start - UPSTREAM_MARGIN, String::new());
        let mut newest = start;
        let mut records = Vec::new();
        loop {
            let page = store.ended_executions((after.0, &after.1), 500).await?;
            let full = page.len() == 500;
            for e in &page {
                let finished = e.finished_at;
                after = (finished, e.id.to_string());
                newest = newest.max(finished);
                if self.recent.insert(e.id.clone(), finished).is_some() {
                    continue;
                }
                for (key, active, spec) in &watching {
                    let cursor = &self.cursors[key];
                    // A preview runs a pull request's versions: what it
                    // makes is not the upstream's data.
                    let matches = e.project == key.project
                        && e.trigger != Trigger::Preview
                        && e.launch_plan.as_deref() == Some(spec.launch_plan.as_str())
                        && phase(e.status).is_some_and(|p| spec.on.contains(&p))
                        && finished >= cursor.since;
                    if !matches {
                        continue;
                    }
                    match upstream::bind(&spec.inputs, e) {
                        Ok(inputs) => records.push(upstream_event(key, active, e, inputs, now)),
                        Err(message) => {
                            tracing::warn!(launch_plan = %key.launch_plan, upstream = %e.id, error = %message, "an upstream execution cannot start its downstream");
                            report.errors.push((key.clone(), message));
                        }
                    }
                }
            }
            if !full {
                break;
            }
        }
        if !records.is_empty() {
            for (record, new) in store.record_events(&records, &[]).await? {
                if new {
                    report.seen.push(Trigger::Upstream);
                    self.waiting.insert(record.key);
                }
            }
        }
        let floor = newest - UPSTREAM_MARGIN;
        self.recent.retain(|_, at| *at >= floor);
        let moved = self.upstream_after.is_none_or(|at| at < newest);
        self.upstream_after = Some(newest);
        if moved {
            let text = newest.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            for (key, _, _) in &watching {
                if let Some(cursor) = self.cursors.get_mut(key) {
                    cursor.cursor = Some(text.clone());
                }
                self.succeeded(store, key, now).await?;
            }
        }
        Ok(())
    }

    /// Creates the deferred events' executions of each waiting trigger, as
    /// many as its `maxPending` has room for, oldest first.
    async fn create_waiting(
        &mut self,
        store: &dyn Store,
        now: DateTime<Utc>,
        report: &mut Report,
    ) -> Result<(), store::Error> {
        let mut waiting: Vec<TriggerKey> = self.waiting.drain().collect();
        waiting.sort();
        for key in waiting {
            let Some((active, trigger)) = self.find(&key) else {
                continue;
            };
            let (active, trigger) = (active.clone(), trigger.clone());
            match self
                .create_deferred(store, &active, &trigger, &key, now, report)
                .await
            {
                Ok(more) => {
                    if more {
                        self.waiting.insert(key);
                    }
                }
                Err(create::Error::Store(e)) => return Err(e),
                Err(e) => {
                    let message = format!("cannot start an execution: {e}");
                    tracing::warn!(launch_plan = %key.launch_plan, trigger = %key.trigger, error = %message, "a trigger's event waits");
                    report.errors.push((key.clone(), message.clone()));
                    self.failed(store, &key, now, message).await?;
                }
            }
        }
        Ok(())
    }

    /// Creates what room allows of `key`'s deferred events; whether some
    /// may be left that room would now allow (more than one batch).
    async fn create_deferred(
        &mut self,
        store: &dyn Store,
        active: &Active,
        trigger: &EventTrigger,
        key: &TriggerKey,
        now: DateTime<Utc>,
        report: &mut Report,
    ) -> Result<bool, create::Error> {
        let room = i64::from(trigger.max_pending()) - store.unfinished_of_trigger(key).await?;
        if room <= 0 {
            return Ok(false);
        }
        let limit = u32::try_from(room.min(256)).expect("at most 256");
        let deferred = store.deferred_events(key, limit).await?;
        if deferred.is_empty() {
            return Ok(false);
        }
        let prepared = match self.prepared.get(&active.key) {
            Some(p) => p.clone(),
            None => {
                let p = Arc::new(
                    create::launch_plan_version(store, &active.key)
                        .await?
                        .prepare(store)
                        .await?,
                );
                self.prepared.insert(active.key.clone(), p.clone());
                p
            }
        };
        // An event whose run the workflow refuses (it changed since the
        // event was recorded) is said and counted, and does not hold up
        // the events behind it.
        let mut batch = Vec::with_capacity(deferred.len());
        for record in &deferred {
            match new_execution(&prepared, kind(trigger), record, now) {
                Ok(new) => batch.push(new),
                Err(create::Error::Store(e)) => return Err(create::Error::Store(e)),
                Err(e) => {
                    let message =
                        format!("event {} cannot start, it is not run: {e}", record.event);
                    tracing::warn!(launch_plan = %key.launch_plan, trigger = %key.trigger, error = %message, "a trigger's event is refused");
                    report.errors.push((key.clone(), message.clone()));
                    self.failed(store, key, now, message).await?;
                }
            }
        }
        let made = store.create_executions(&batch).await?;
        let events: Vec<String> = deferred.iter().map(|r| r.event.clone()).collect();
        store.mark_created(key, &events, now).await?;
        for (new, made) in batch.into_iter().zip(made) {
            if made {
                tracing::info!(launch_plan = %key.launch_plan, trigger = %key.trigger, execution = %new.execution.id, "event started an execution");
                report.created.push((kind(trigger), new.execution.id));
            }
        }
        Ok(deferred.len() as u32 == limit)
    }

    /// A trigger's poll succeeded: its error is cleared, and its cursor
    /// written when it changed or a minute after it last was.
    async fn succeeded(
        &mut self,
        store: &dyn Store,
        key: &TriggerKey,
        now: DateTime<Utc>,
    ) -> Result<(), store::Error> {
        let Some(cursor) = self.cursors.get_mut(key) else {
            return Ok(());
        };
        let stale = self
            .written
            .get(key)
            .is_none_or(|at| now - *at >= chrono::Duration::seconds(60));
        let changed = cursor.error.is_some() || cursor.polled_at.is_none();
        cursor.polled_at = Some(now);
        cursor.error = None;
        cursor.error_since = None;
        if changed || stale || cursor.cursor.is_some() {
            store.write_trigger_cursor(cursor).await?;
            self.written.insert(key.clone(), now);
        }
        Ok(())
    }

    /// A trigger's poll failed with `message`: shown on its cursor.
    async fn failed(
        &mut self,
        store: &dyn Store,
        key: &TriggerKey,
        now: DateTime<Utc>,
        message: String,
    ) -> Result<(), store::Error> {
        let Some(cursor) = self.cursors.get_mut(key) else {
            return Ok(());
        };
        if cursor.error.as_deref() == Some(message.as_str()) {
            return Ok(());
        }
        cursor.error_since = cursor.error_since.or(Some(now));
        cursor.error = Some(message);
        store.write_trigger_cursor(cursor).await?;
        self.written.insert(key.clone(), now);
        Ok(())
    }
}

/// Lists one prefix: its key and store back with what it holds.
async fn list_one(
    key: TriggerKey,
    (object_store, path, pattern): Listing,
) -> (
    TriggerKey,
    Arc<dyn ObjectStore>,
    Result<Vec<artifact::Object>, artifact::Error>,
) {
    let listed = artifact::list(object_store.as_ref(), &path, &pattern).await;
    (key, object_store, listed)
}

/// The event of `upstream` ending, for the trigger `key` of `active`.
fn upstream_event(
    key: &TriggerKey,
    active: &Active,
    upstream: &Ended,
    inputs: BTreeMap<String, Value>,
    now: DateTime<Utc>,
) -> EventRecord {
    let event = upstream.id.to_string();
    EventRecord {
        execution: Some(execution_id(
            &active.key.entity,
            &active.key.digest,
            &key.trigger,
            &event,
        )),
        key: key.clone(),
        event,
        version: active.key.digest.clone(),
        inputs: Value::Object(inputs.into_iter().collect()),
        detail: json!({
            "execution": upstream.id,
            "launchPlan": upstream.launch_plan,
            "status": upstream.status.as_str(),
            "finishedAt": upstream.finished_at,
        }),
        seen_at: now,
        created_at: None,
    }
}

/// The execution of a recorded event, with the id recorded.
fn new_execution(
    prepared: &Prepared,
    trigger: Trigger,
    record: &EventRecord,
    now: DateTime<Utc>,
) -> Result<NewExecution, create::Error> {
    let id = record
        .execution
        .clone()
        .expect("only events to run are deferred");
    let inputs = match &record.inputs {
        Value::Object(map) => map.clone().into_iter().collect(),
        _ => BTreeMap::new(),
    };
    let request = Request {
        trigger,
        inputs,
        event: Some((
            EventRef {
                trigger: record.key.trigger.clone(),
                event: record.event.clone(),
                detail: record.detail.clone(),
            },
            id,
        )),
        ..Request::default()
    };
    prepared.execution(&request, None, now)
}

/// Why a webhook call starts nothing.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Create(#[from] create::Error),
    #[error("launch plan `{0}` has no webhook trigger")]
    NoWebhook(String),
    #[error("the body is not a JSON object of the launch plan's inputs")]
    NotAnObject,
    #[error(
        "Idempotency-Key `{0}` was used with another body; a retry sends the same body, a new call a new key"
    )]
    KeyReused(String),
    #[error("Idempotency-Key must be 1 to 255 visible ASCII characters")]
    BadKey,
}

impl From<store::Error> for CallError {
    fn from(e: store::Error) -> CallError {
        CallError::Create(create::Error::Store(e))
    }
}

/// What a webhook call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Called {
    pub execution: ExecutionId,
    /// This call created it (else an earlier call with the same key did,
    /// or it waits).
    pub created: bool,
    /// It waits for room under the trigger's `maxPending`.
    pub deferred: bool,
    pub key: TriggerKey,
}

/// A call of the webhook trigger of launch plan `name` in `project`, with
/// `body` as the run's inputs and the caller's `Idempotency-Key` as the
/// event's identity (a fresh one when it gives none): checked against
/// the launch plan's inputs first (an error names the field), recorded,
/// then created when `maxPending` has room.
pub async fn call(
    store: &dyn Store,
    project: &str,
    name: &str,
    idempotency_key: Option<&str>,
    body: &Value,
    now: DateTime<Utc>,
) -> Result<Called, CallError> {
    if let Some(k) = idempotency_key {
        if k.is_empty() || k.len() > 255 || !k.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            return Err(CallError::BadKey);
        }
    }
    let lp = create::active_launch_plan(store, name, Some(project)).await?;
    let Some(trigger) = lp
        .spec
        .triggers
        .iter()
        .find(|t| matches!(t, EventTrigger::Webhook(_)))
        .cloned()
    else {
        return Err(CallError::NoWebhook(name.to_owned()));
    };
    let Value::Object(inputs) = body else {
        return Err(CallError::NotAnObject);
    };
    let key = TriggerKey {
        project: lp.key.entity.project.clone(),
        launch_plan: lp.key.entity.name.clone(),
        trigger: trigger.key(),
    };
    let event = match idempotency_key {
        Some(k) => k.to_owned(),
        None => fresh_key(now),
    };
    let body_digest = Digest::of_json(body);
    let version = lp.key.clone();
    let prepared = lp.prepare(store).await?;
    let record = EventRecord {
        execution: Some(execution_id(
            &version.entity,
            &version.digest,
            &key.trigger,
            &event,
        )),
        key: key.clone(),
        event: event.clone(),
        version: version.digest.clone(),
        inputs: Value::Object(inputs.clone()),
        detail: json!({ "idempotencyKey": event, "body": body_digest.as_str() }),
        seen_at: now,
        created_at: None,
    };
    // Checked before it is recorded: a call the run would refuse is
    // refused, and leaves nothing behind.
    new_execution(&prepared, Trigger::Webhook, &record, now)?;
    let (stored, _) = store
        .record_events(std::slice::from_ref(&record), &[])
        .await?
        .pop()
        .expect("one event recorded");
    if stored.detail.get("body") != record.detail.get("body") {
        return Err(CallError::KeyReused(event));
    }
    let execution = stored.execution.clone().expect("calls are events to run");
    if stored.created_at.is_some() {
        return Ok(Called {
            execution,
            created: false,
            deferred: false,
            key,
        });
    }
    if store.unfinished_of_trigger(&key).await? >= i64::from(trigger.max_pending()) {
        return Ok(Called {
            execution,
            created: false,
            deferred: true,
            key,
        });
    }
    let new = new_execution(&prepared, Trigger::Webhook, &stored, now)?;
    let (_, created) = store.create_execution(&new.execution, &new.nodes).await?;
    store
        .mark_created(&key, std::slice::from_ref(&stored.event), now)
        .await?;
    Ok(Called {
        execution,
        created,
        deferred: false,
        key,
    })
}

/// An event identity for a call without an Idempotency-Key: every such
/// call is an event of its own.
fn fresh_key(now: DateTime<Utc>) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let seed = json!([
        now.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        std::process::id(),
        n
    ]);
    format!("weir-{}", Digest::of_json(&seed).short())
}

#[cfg(test)]
mod tests {
    use super::execution_id;
    use crate::spec::{Digest, EntityRef, Kind};

    #[test]
    fn an_event_id_depends_on_the_plan_version_trigger_and_event() {
        let lp = EntityRef::new("p", Kind::LaunchPlan, "transform");
        let v1 = Digest::of_json(&serde_json::json!(1));
        let v2 = Digest::of_json(&serde_json::json!(2));
        let a = execution_id(&lp, &v1, "webhook", "k1");
        assert_eq!(a, execution_id(&lp, &v1, "webhook", "k1"));
        assert!(a.as_str().starts_with("transform-"));
        assert_ne!(a, execution_id(&lp, &v2, "webhook", "k1"));
        assert_ne!(a, execution_id(&lp, &v1, "webhook", "k2"));
        assert_ne!(a, execution_id(&lp, &v1, "upstream:x", "k1"));
    }
}

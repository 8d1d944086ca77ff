//! Launch plans at a glance: `weir launchplans -o json`, `GET
//! /api/v1/launchplans`. One entry per active launch plan: its schedule in
//! words and in its time zone, whether it is paused, its next instants and
//! its last run; and the pause and resume of one (`weir pause`, `weir
//! resume`, `POST /api/v1/launchplans/{project}/{name}/pause|resume`).
//!
//! What it guarantees: the next instants are the scheduler's own
//! ([`Rule`]), each in UTC with the offset of the plan's time zone at that
//! instant, so a daylight-saving change reads as one (`02:30+01:00`, then
//! `03:00+02:00` on the day the clocks skip 02:30). A paused plan still
//! shows the instants its schedule has: they are the ones it skips.

use chrono::{DateTime, FixedOffset, Offset as _, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::{ActorView, QueryError, check_actor, instant, to_millis};
use crate::schedule::{Rule, When};
use crate::spec::{CatchUp, CommitId, Concurrency, Definition, Digest, ExecutionId, Kind, Trigger};
use crate::store::execution::{ExecutionFilter, Status};
use crate::store::{self, Pause, Person, Store, VersionFilter};

/// How many next instants an entry shows when the query does not say.
pub const DEFAULT_NEXT: u32 = 3;
/// The most next instants a query may ask for.
pub const MAX_NEXT: u32 = 100;

/// One active launch plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LaunchPlanView {
    pub project: String,
    pub name: String,
    /// The active version's digest, and the commit where it first appeared.
    pub digest: Digest,
    pub commit: CommitId,
    pub workflow: String,
    /// `scheduled`, `paused`, or `unscheduled` (no schedule: it runs by
    /// hand, by API or by backfill only).
    pub status: PlanStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleView>,
    /// The last pause or resume, if it was ever paused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseView>,
    /// The schedule's next instants after the query's `from` (now by
    /// default); empty without a schedule.
    pub next: Vec<InstantView>,
    /// Its newest execution, however it was started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRunView>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PlanStatus {
    Scheduled,
    Paused,
    Unscheduled,
}

impl PlanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanStatus::Scheduled => "scheduled",
            PlanStatus::Paused => "paused",
            PlanStatus::Unscheduled => "unscheduled",
        }
    }
}

/// A schedule as written, and in words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    /// `cron` or `every` in English.
    pub words: String,
    /// The IANA time zone the cron expression is read in.
    pub timezone: String,
    pub concurrency: Concurrency,
    pub catch_up: CatchUp,
}

/// One instant of a schedule: in UTC, as every time in every document,
/// and the offset of the plan's time zone then, which tells a
/// daylight-saving change (`+01:00`, then `+02:00`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstantView {
    #[serde(serialize_with = "instant::millis")]
    pub at: DateTime<Utc>,
    /// The time zone's offset from UTC at that instant, `+HH:MM`.
    pub offset: String,
}

impl InstantView {
    /// The instant in the plan's time zone, with its offset
    /// (`2026-03-29T03:00:00+02:00`), as tables show it.
    pub fn local(&self) -> String {
        match self.offset.parse::<FixedOffset>() {
            Ok(offset) => self
                .at
                .with_timezone(&offset)
                .to_rfc3339_opts(SecondsFormat::Secs, true),
            Err(_) => self.at.to_rfc3339_opts(SecondsFormat::Secs, true),
        }
    }
}

/// A pause or resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PauseView {
    pub paused: bool,
    #[serde(serialize_with = "instant::millis")]
    pub at: DateTime<Utc>,
    pub by: ActorView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// A resume that runs the instants missed while paused.
    pub catch_up: bool,
}

impl From<&Pause> for PauseView {
    fn from(p: &Pause) -> PauseView {
        PauseView {
            paused: p.paused,
            at: to_millis(p.at),
            by: ActorView {
                name: p.actor.name.clone(),
                email: p.actor.email.clone(),
            },
            comment: p.comment.clone(),
            catch_up: p.catch_up,
        }
    }
}

/// A launch plan's newest execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastRunView {
    pub id: ExecutionId,
    pub status: Status,
    pub trigger: Trigger,
    #[serde(
        serialize_with = "instant::millis_opt",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub scheduled_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "instant::millis")]
    pub created_at: DateTime<Utc>,
}

/// Which launch plans, and how far ahead: `weir launchplans --project
/// --name --next --from`, or the same names as query parameters of `GET
/// /api/v1/launchplans`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchPlanQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How many next instants ([`DEFAULT_NEXT`]; at most [`MAX_NEXT`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<u32>,
    /// The next instants after this RFC 3339 instant (default: now).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

impl LaunchPlanQuery {
    /// How many next instants, and after when; refused when out of bounds
    /// or unreadable.
    fn window(&self, now: DateTime<Utc>) -> Result<(usize, DateTime<Utc>), QueryError> {
        let next = self.next.unwrap_or(DEFAULT_NEXT);
        if next > MAX_NEXT {
            return Err(QueryError(format!(
                "next {next} is more than {MAX_NEXT} instants"
            )));
        }
        let from = match &self.from {
            None => now,
            Some(text) => DateTime::parse_from_rfc3339(text)
                .map_err(|e| {
                    QueryError(format!(
                        "from `{text}` is not an RFC 3339 instant such as 2026-03-28T00:00:00Z ({e})"
                    ))
                })?
                .with_timezone(&Utc),
        };
        Ok((next as usize, from))
    }
}

/// Why launch plans could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum LaunchPlanError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// The active launch plans `query` selects, by project and name, as of
/// `now`.
pub async fn launch_plans(
    store: &dyn Store,
    query: &LaunchPlanQuery,
    now: DateTime<Utc>,
) -> Result<Vec<LaunchPlanView>, LaunchPlanError> {
    let (next, from) = query.window(now)?;
    let filter = VersionFilter {
        kind: Some(Kind::LaunchPlan),
        name: query.name.clone(),
        project: query.project.clone(),
    };
    let mut active: Vec<_> = store
        .versions(&filter)
        .await?
        .into_iter()
        .filter(|v| v.active)
        .collect();
    active.sort_by(|a, b| a.key.entity.cmp(&b.key.entity));
    let pauses = store.pauses().await?;
    let mut out = Vec::with_capacity(active.len());
    for version in active {
        let entity = &version.key.entity;
        // Reconciled versions are valid documents; one that no longer
        // reads is left out rather than failing the list.
        let Some(document) = store.version_document(&version.key).await? else {
            continue;
        };
        let Ok(Definition::LaunchPlan(plan)) = Definition::from_json(Kind::LaunchPlan, document)
        else {
            continue;
        };
        let pause = pauses
            .iter()
            .find(|p| p.project == entity.project && p.name == entity.name);
        let schedule = plan.spec.schedule.as_ref();
        let rule = schedule.and_then(|s| Rule::from_spec(s).ok());
        let status = match (schedule, pause) {
            (None, _) => PlanStatus::Unscheduled,
            (Some(_), Some(p)) if p.paused => PlanStatus::Paused,
            (Some(_), _) => PlanStatus::Scheduled,
        };
        let filter = ExecutionFilter {
            project: Some(entity.project.clone()),
            launch_plan: Some(entity.name.clone()),
            limit: Some(1),
            ..ExecutionFilter::default()
        };
        let last_run = store
            .executions(&filter)
            .await?
            .first()
            .map(|e| LastRunView {
                id: e.id.clone(),
                status: e.status,
                trigger: e.trigger,
                scheduled_at: e.scheduled_at.map(to_millis),
                created_at: to_millis(e.created_at),
            });
        out.push(LaunchPlanView {
            project: entity.project.clone(),
            name: entity.name.clone(),
            digest: version.key.digest.clone(),
            commit: version.commit.clone(),
            workflow: plan.spec.workflow.clone(),
            status,
            schedule: schedule.map(|s| ScheduleView {
                cron: s.cron.clone(),
                every: s.every.as_ref().map(ToString::to_string),
                words: rule.as_ref().map_or_else(String::new, words),
                timezone: s.timezone.clone(),
                concurrency: s.concurrency,
                catch_up: s.catch_up,
            }),
            pause: pause.map(PauseView::from),
            next: rule
                .as_ref()
                .map_or_else(Vec::new, |r| upcoming(r, from, next)),
            last_run,
        });
    }
    Ok(out)
}

/// The schedule in English: croner's description of a cron expression,
/// `every N seconds` for a rate.
fn words(rule: &Rule) -> String {
    match &rule.when {
        When::Cron(cron) => cron.describe().trim_end_matches('.').to_owned(),
        When::Every(secs) => every_in_words(*secs),
    }
}

/// `every 90 seconds`, `every 15 minutes`, `every 2 hours`, `every day`:
/// the largest unit that divides the rate.
fn every_in_words(secs: i64) -> String {
    const UNITS: [(i64, &str); 4] = [
        (86_400, "day"),
        (3_600, "hour"),
        (60, "minute"),
        (1, "second"),
    ];
    let (size, unit) = UNITS
        .into_iter()
        .find(|(size, _)| secs % size == 0)
        .unwrap_or((1, "second"));
    match secs / size {
        1 => format!("every {unit}"),
        n => format!("every {n} {unit}s"),
    }
}

/// The first `count` instants of `rule` after `from`.
fn upcoming(rule: &Rule, from: DateTime<Utc>, count: usize) -> Vec<InstantView> {
    let mut out = Vec::with_capacity(count);
    let mut cursor = from;
    while out.len() < count {
        let Some(at) = rule.next_after(cursor) else {
            break;
        };
        let offset = at.with_timezone(&rule.timezone).offset().fix();
        out.push(InstantView {
            at: to_millis(at),
            offset: offset.to_string(),
        });
        cursor = at;
    }
    out
}

/// A pause or resume asked of a launch plan: `weir pause|resume`, or the
/// body of `POST /api/v1/launchplans/{project}/{name}/pause|resume`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PauseBody {
    /// Who asks (recorded in the audit log); default `api` over HTTP, the
    /// user's login name in the CLI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// With a resume: run the instants missed while paused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub catch_up: bool,
}

/// What a pause or resume did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PausedView {
    pub project: String,
    pub name: String,
    pub paused: bool,
    /// `false` when it already was so (nothing written, no audit entry).
    pub changed: bool,
}

/// Why a launch plan could not be paused or resumed.
#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    #[error("no active launch plan `{project}/{name}`")]
    Unknown { project: String, name: String },
    #[error("--catch-up applies to a resume, not to a pause")]
    CatchUpOnPause,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// Pauses (`paused`) or resumes launch plan `project/name` as `body` asks,
/// at `now`, recorded as `by` unless the body names someone.
pub async fn set_paused(
    store: &dyn Store,
    project: &str,
    name: &str,
    paused: bool,
    body: &PauseBody,
    by: &str,
    now: DateTime<Utc>,
) -> Result<PausedView, PauseError> {
    if paused && body.catch_up {
        return Err(PauseError::CatchUpOnPause);
    }
    let by = body.by.as_deref().unwrap_or(by);
    check_actor(by, body.comment.as_deref(), 1000).map_err(PauseError::Invalid)?;
    let active = store
        .active_versions(Kind::LaunchPlan, name, Some(project))
        .await?;
    if active.is_empty() {
        return Err(PauseError::Unknown {
            project: project.to_owned(),
            name: name.to_owned(),
        });
    }
    let pause = Pause {
        project: project.to_owned(),
        name: name.to_owned(),
        paused,
        at: now,
        actor: Person {
            name: by.to_owned(),
            email: String::new(),
        },
        comment: body.comment.clone(),
        catch_up: body.catch_up,
    };
    let changed = store.set_pause(&pause).await?;
    Ok(PausedView {
        project: project.to_owned(),
        name: name.to_owned(),
        paused,
        changed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::{precise_instant, round_trip, to_json};

    #[test]
    fn rates_read_in_their_largest_unit() {
        assert_eq!(every_in_words(1), "every second");
        assert_eq!(every_in_words(90), "every 90 seconds");
        assert_eq!(every_in_words(900), "every 15 minutes");
        assert_eq!(every_in_words(7_200), "every 2 hours");
        assert_eq!(every_in_words(86_400), "every day");
    }

    #[test]
    fn an_entry_reads_back_as_written() {
        let view = LaunchPlanView {
            project: "growth".into(),
            name: "nightly".into(),
            digest: Digest::of_json(&serde_json::json!("nightly")),
            commit: CommitId("a".repeat(40)),
            workflow: "train".into(),
            status: PlanStatus::Paused,
            schedule: Some(ScheduleView {
                cron: Some("30 2 * * *".into()),
                every: None,
                words: "At 02:30".into(),
                timezone: "Europe/Berlin".into(),
                concurrency: Concurrency::Forbid,
                catch_up: CatchUp::Latest,
            }),
            pause: Some(PauseView::from(&Pause {
                project: "growth".into(),
                name: "nightly".into(),
                paused: true,
                at: precise_instant(),
                actor: Person {
                    name: "ada".into(),
                    email: String::new(),
                },
                comment: Some("upstream outage".into()),
                catch_up: false,
            })),
            next: vec![InstantView {
                at: to_millis(precise_instant()),
                offset: "+02:00".into(),
            }],
            last_run: Some(LastRunView {
                id: "nightly-0123456789ab".into(),
                status: Status::Succeeded,
                trigger: Trigger::Schedule,
                scheduled_at: None,
                created_at: to_millis(precise_instant()),
            }),
        };
        assert_eq!(round_trip(&view), view);
        let json = to_json(&view);
        assert_eq!(json["status"], "paused");
        assert_eq!(json["pause"]["at"], "2026-03-29T00:30:05.123Z");
        assert_eq!(json["schedule"]["catchUp"], "latest");
        assert!(json["lastRun"].get("scheduledAt").is_none());
        assert_eq!(view.next[0].local(), "2026-03-29T02:30:05+02:00");
    }
}

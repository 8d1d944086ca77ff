//! Scheduling, decided purely with the clock injected: which instants of a
//! launch plan's schedule are due, which of them start an execution, and the
//! deterministic id each execution gets.
//!
//! - Cron schedules are read in the plan's IANA time zone. Daylight saving
//!   follows croner (and Vixie cron): a fixed wall-clock time skipped by a
//!   spring-forward gap fires once, right after the gap; a fixed time
//!   repeated by a fall-back overlap fires once; crons whose hour field is a
//!   wildcard or a step keep firing every real hour.
//! - `every` schedules are a fixed rate anchored at the Unix epoch, so every
//!   replica and every restart computes the same instants.
//! - The id of the execution of (launch plan, version, instant) is derived
//!   from exactly those, so creating it twice finds the first (I4).
//!
//! Nothing here reads the clock, the store or the network.

pub mod backfill;
pub mod tick;

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::spec::duration::{self, Field};
use crate::spec::{CatchUp, Concurrency, Digest, EntityRef, ExecutionId, Schedule, cron};

/// The deterministic id of the scheduled execution of `version` of
/// `launch_plan` at `instant`, `<launch plan name>-<12 hex>`, a DNS-1123
/// label (I4 holds by construction: a second create of
/// the same trigger collides with the first).
pub fn execution_id(
    launch_plan: &EntityRef,
    version: &Digest,
    instant: DateTime<Utc>,
) -> ExecutionId {
    let key = format!(
        "{}/{}/{}@{}@{}",
        launch_plan.project,
        launch_plan.kind,
        launch_plan.name,
        version.as_str(),
        instant.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let digest = Digest::of_json(&serde_json::Value::String(key));
    // 63 characters at most: 50 of the name, `-`, 12 of the digest.
    let name: String = launch_plan.name.chars().take(50).collect();
    ExecutionId::from(format!("{}-{}", name.trim_end_matches('-'), digest.short()))
}

/// When a schedule fires.
#[derive(Debug, Clone)]
pub enum When {
    /// Shared by every schedule written the same ([`cron::shared`]).
    Cron(std::sync::Arc<croner::Cron>),
    /// A fixed rate in whole seconds, anchored at the Unix epoch.
    Every(i64),
}

/// Why a schedule cannot be read (validation reports each of these first,
/// so only a version registered before a rule existed fails here).
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error(transparent)]
    Cron(#[from] cron::Error),
    /// `every` or `startingDeadline`, naming the field and its text.
    #[error(transparent)]
    Duration(#[from] duration::Unreadable),
    /// The `every` text, whose seconds do not fit an `i64`.
    #[error("`{0}` is too long")]
    EveryTooLong(String),
    #[error("`every: {0}` is shorter than one second")]
    EveryTooShort(String),
    #[error("a schedule needs `cron` or `every`")]
    NoWhen,
    #[error("`{0}` is not an IANA time zone")]
    TimeZone(String),
    #[error("startingDeadline `{0}` is too long")]
    DeadlineTooLong(String),
}

/// A launch plan's schedule, parsed.
#[derive(Debug, Clone)]
pub struct Rule {
    pub when: When,
    pub timezone: Tz,
    pub concurrency: Concurrency,
    pub catch_up: CatchUp,
    pub max_catch_up: u32,
    pub starting_deadline: Option<chrono::Duration>,
}

impl Rule {
    /// Parses a schedule that passed validation.
    pub fn from_spec(schedule: &Schedule) -> Result<Rule, RuleError> {
        let when = match (&schedule.cron, &schedule.every) {
            (Some(c), _) => When::Cron(cron::shared(c)?),
            (None, Some(e)) => {
                let every = e.value(Field::Every)?;
                let secs = i64::try_from(every.as_secs())
                    .map_err(|_| RuleError::EveryTooLong(e.to_string()))?;
                if secs < 1 {
                    return Err(RuleError::EveryTooShort(e.to_string()));
                }
                When::Every(secs)
            }
            (None, None) => return Err(RuleError::NoWhen),
        };
        let timezone = Tz::from_str(&schedule.timezone)
            .map_err(|_| RuleError::TimeZone(schedule.timezone.clone()))?;
        let starting_deadline = match &schedule.starting_deadline {
            Some(d) => Some(
                chrono::Duration::from_std(d.value(Field::StartingDeadline)?)
                    .map_err(|_| RuleError::DeadlineTooLong(d.to_string()))?,
            ),
            None => None,
        };
        Ok(Rule {
            when,
            timezone,
            concurrency: schedule.concurrency,
            catch_up: schedule.catch_up,
            max_catch_up: schedule.max_catch_up,
            starting_deadline,
        })
    }

    /// The first instant strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.when {
            When::Cron(cron) => cron
                .find_next_occurrence(&after.with_timezone(&self.timezone), false)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            When::Every(secs) => {
                // Checked: past the end of the calendar there is no next.
                let t = after.timestamp();
                let next = t.div_euclid(*secs).checked_add(1)?.checked_mul(*secs)?;
                DateTime::from_timestamp(next, 0)
            }
        }
    }

    /// The last instant at or before `at`.
    pub fn last_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.when {
            When::Cron(cron) => cron
                .find_previous_occurrence(&at.with_timezone(&self.timezone), true)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            When::Every(secs) => {
                DateTime::from_timestamp(at.timestamp().div_euclid(*secs) * secs, 0)
            }
        }
    }

    /// Instants in `(after, until]`, newest last; at most `limit`, keeping
    /// the most recent ones. The cost is bounded by `limit`, not by the
    /// length of the window (a year of a minutely cron is cheap).
    pub fn instants_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut newest_first = Vec::new();
        let mut cursor = self.last_at_or_before(until);
        while let Some(t) = cursor {
            if t <= after || newest_first.len() >= limit {
                break;
            }
            newest_first.push(t);
            cursor = t
                .checked_sub_signed(chrono::Duration::seconds(1))
                .and_then(|before| self.last_at_or_before(before));
        }
        newest_first.reverse();
        newest_first
    }
}

#[cfg(test)]
mod tests;

//! The status document: `weir status` (its table), `GET /api/v1/status`.
//! Every source's status, the store's engine lease (which engine drives
//! the store, since when, until when its lease runs, and whether it is
//! live; DESIGN.md section 5), and the launch plans paused now.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{PauseView, SourceView, instant, sources, to_millis};
use crate::store::{self, ENGINE_LEASE, Lease, Store};

/// What `weir status` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    pub sources: Vec<SourceView>,
    /// `None` when no engine ever took the lease, or the last released it.
    pub engine_lease: Option<EngineLeaseView>,
    /// The launch plans paused now (`weir pause`), by project and name.
    #[serde(default)]
    pub paused: Vec<PausedPlanView>,
    /// Every launch plan trigger's cursor, counts and last error.
    #[serde(default)]
    pub triggers: Vec<crate::store::TriggerStatus>,
}

/// A launch plan paused now: who paused it, when and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PausedPlanView {
    pub project: String,
    pub name: String,
    #[serde(flatten)]
    pub pause: PauseView,
}

/// The store's engine lease as read at some instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineLeaseView {
    /// The engine that holds (or last held) it.
    pub holder: String,
    /// When its holder took it.
    #[serde(serialize_with = "instant::millis")]
    pub since: DateTime<Utc>,
    /// When it expires unless renewed.
    #[serde(serialize_with = "instant::millis")]
    pub until: DateTime<Utc>,
    /// Whether it had not expired when read: its holder drives the store.
    pub live: bool,
}

impl EngineLeaseView {
    /// `lease` as read at `now`.
    pub fn new(lease: &Lease, now: DateTime<Utc>) -> EngineLeaseView {
        EngineLeaseView {
            holder: lease.holder.clone(),
            since: to_millis(lease.acquired_at),
            until: to_millis(lease.expires_at),
            live: lease.is_live(now),
        }
    }
}

/// The status of `store` at `now`.
pub async fn status(store: &dyn Store, now: DateTime<Utc>) -> Result<StatusView, store::Error> {
    Ok(StatusView {
        sources: sources(store).await?,
        engine_lease: store
            .lease(ENGINE_LEASE)
            .await?
            .map(|lease| EngineLeaseView::new(&lease, now)),
        paused: store
            .pauses()
            .await?
            .iter()
            .filter(|p| p.paused)
            .map(|p| PausedPlanView {
                project: p.project.clone(),
                name: p.name.clone(),
                pause: PauseView::from(p),
            })
            .collect(),
        triggers: store.trigger_statuses().await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::{precise_instant, round_trip, to_json};

    #[test]
    fn the_engine_lease_reads_back_as_written_and_is_live_until_it_expires() {
        let lease = Lease {
            name: ENGINE_LEASE.into(),
            holder: "box:42:7.0@boot/1".into(),
            acquired_at: precise_instant(),
            renewed_at: precise_instant(),
            expires_at: precise_instant() + chrono::Duration::seconds(15),
        };
        let view = StatusView {
            sources: Vec::new(),
            engine_lease: Some(EngineLeaseView::new(&lease, precise_instant())),
            paused: vec![PausedPlanView {
                project: "growth".into(),
                name: "nightly".into(),
                pause: PauseView::from(&crate::store::Pause {
                    project: "growth".into(),
                    name: "nightly".into(),
                    paused: true,
                    at: precise_instant(),
                    actor: crate::store::Person {
                        name: "ada".into(),
                        email: String::new(),
                    },
                    comment: Some("upstream outage".into()),
                    catch_up: false,
                }),
            }],
            triggers: Vec::new(),
        };
        assert_eq!(round_trip(&view), view);
        let json = to_json(&view);
        assert_eq!(json["engineLease"]["holder"], "box:42:7.0@boot/1");
        assert_eq!(json["engineLease"]["since"], "2026-03-29T00:30:05.123Z");
        assert_eq!(json["engineLease"]["live"], true);
        assert!(!EngineLeaseView::new(&lease, lease.expires_at).live);
        assert_eq!(json["paused"][0]["name"], "nightly");
        assert_eq!(json["paused"][0]["by"]["name"], "ada");
        let none = StatusView {
            sources: Vec::new(),
            engine_lease: None,
            paused: Vec::new(),
            triggers: Vec::new(),
        };
        assert_eq!(to_json(&none)["engineLease"], serde_json::Value::Null);
        assert_eq!(round_trip(&none), none);
    }
}

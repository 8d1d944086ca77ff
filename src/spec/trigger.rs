//! What created an execution ([`Trigger`]): one of eight names, stored,
//! printed and serialized as its lowercase name. The engine sets it when it
//! creates an execution, the store keeps it, the views and the API show it
//! (`weir executions -o json`), so it lives with the identities, below the
//! store.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What created an execution, stored and printed as its lowercase name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// `weir run` (the default of a creation request).
    #[default]
    Manual,
    /// The scheduler, at a launch plan's scheduled instant.
    Schedule,
    /// `weir backfill`, at a past instant (the scheduler's path, same id).
    Backfill,
    /// `weir run --ref`: the versions of a commit, not the active ones.
    Preview,
    /// `POST` to the HTTP API.
    Api,
    /// An object landed under a launch plan's `artifact` trigger's prefix.
    Artifact,
    /// An execution of the launch plan an `upstream` trigger names ended.
    Upstream,
    /// A call to the launch plan's `webhook` trigger.
    Webhook,
}

impl Trigger {
    pub const ALL: [Trigger; 8] = [
        Trigger::Manual,
        Trigger::Schedule,
        Trigger::Backfill,
        Trigger::Preview,
        Trigger::Api,
        Trigger::Artifact,
        Trigger::Upstream,
        Trigger::Webhook,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Schedule => "schedule",
            Trigger::Backfill => "backfill",
            Trigger::Preview => "preview",
            Trigger::Api => "api",
            Trigger::Artifact => "artifact",
            Trigger::Upstream => "upstream",
            Trigger::Webhook => "webhook",
        }
    }

    /// The trigger stored as `text`; `None` for one this version does not
    /// know (the store reports it as corrupt).
    pub fn parse(text: &str) -> Option<Trigger> {
        Trigger::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Trigger;

    /// The stored text, the JSON and the printed name are one and the same.
    #[test]
    fn a_trigger_is_stored_printed_and_serialized_as_its_lowercase_name() {
        for trigger in Trigger::ALL {
            let text = trigger.as_str();
            assert_eq!(Trigger::parse(text), Some(trigger));
            assert_eq!(trigger.to_string(), text);
            assert_eq!(serde_json::to_value(trigger).expect("json"), text);
        }
        let names = Trigger::ALL.map(Trigger::as_str);
        assert_eq!(
            names,
            [
                "manual", "schedule", "backfill", "preview", "api", "artifact", "upstream",
                "webhook"
            ]
        );
        assert_eq!(Trigger::default(), Trigger::Manual);
        assert_eq!(Trigger::parse("Manual"), None);
    }
}

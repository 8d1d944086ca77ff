//! Who runs an attempt: the engine that started it and the host it runs
//! on, recorded in the node's handle ([`super::handle::NodeHandle`]) when
//! a local attempt starts.
//!
//! An engine never kills an attempt it does not own. It treats a running
//! node it does not run itself as interrupted only when the engine that
//! started it no longer holds the store's engine lease (it died, or lost
//! the lease), and it signals the attempt's process group only when that
//! group was started on this very host since its last boot: a process
//! group id from another machine, or from before a reboot, names some
//! other process and is never signalled ([`Owner::may_signal_here`]).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::identity::{EngineIdentity, hostname, read_proc};

/// The engine and host of an attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The engine's identity: its holder name in the engine lease, unique
    /// per engine (`<hostname>:<pid>:<start>.<n>@<boot id>/<pid ns>`,
    /// [`super::identity`]: what proves its process dead).
    pub engine: String,
    /// The host and its boot: `<hostname>/<boot id>`.
    pub host: String,
}

impl Owner {
    /// This process as an engine: a fresh identity on this host.
    pub fn this_process() -> Owner {
        static MADE: AtomicU64 = AtomicU64::new(0);
        let made = MADE.fetch_add(1, Ordering::Relaxed);
        // Off Linux's `/proc`, an identity that names the engine but
        // proves nothing (no holder is ever judged gone by it).
        let engine = EngineIdentity::this_process(made).map_or_else(
            || {
                let started = super::identity::fallback_start();
                format!("{}:{}:{started:x}.{made}", hostname(), std::process::id())
            },
            |identity| identity.to_string(),
        );
        Owner {
            engine,
            host: this_host(),
        }
    }

    /// Whether a process group this owner started may be signalled from
    /// this process: only when it was started on this host, this boot.
    pub fn may_signal_here(&self) -> bool {
        self.host == this_host()
    }
}

/// This host and boot: `<hostname>/<boot id>` (Linux's
/// `/proc/sys/kernel/random/boot_id`; `unknown-boot` elsewhere).
pub fn this_host() -> String {
    let boot =
        read_proc("/proc/sys/kernel/random/boot_id").unwrap_or_else(|| "unknown-boot".into());
    format!("{}/{boot}", hostname())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_may_signal_what_it_started() {
        assert!(Owner::this_process().may_signal_here());
    }

    #[test]
    fn a_group_started_on_another_host_or_boot_is_never_signalled() {
        let other = Owner {
            engine: "elsewhere:1:0".into(),
            host: "elsewhere/00000000-0000-0000-0000-000000000000".into(),
        };
        assert!(!other.may_signal_here());
        let before_reboot = Owner {
            host: format!("{}/before-the-last-boot", hostname()),
            ..other
        };
        assert!(!before_reboot.may_signal_here());
    }

    #[test]
    fn two_engines_in_one_host_have_distinct_identities_and_one_host() {
        let (a, b) = (Owner::this_process(), Owner::this_process());
        assert_eq!(a.host, b.host);
        assert_ne!(a.engine, b.engine, "identities are unique per engine");
    }
}

//! How weir speaks to other HTTP servers as a client: the agent settings
//! every outbound request uses (to a weir server from the CLI, to an
//! OpenLineage endpoint, to a notification's webhook) and the signature a
//! webhook body carries.
//!
//! Why a module of its own: the HTTP server (`http`), lineage and the
//! notifier all send requests, and none of them may depend on another for
//! it (`http` sits above `lineage`, through `views`). Keeping these few
//! functions at the bottom lets each arrow point down.
//!
//! What it guarantees: every agent built from [`agent_config`] verifies TLS
//! against the platform's roots and bounds a whole request by one timeout;
//! [`sign`] is the HMAC-SHA256 GitHub uses, so a receiver checks weir's
//! notifications as it checks GitHub's webhooks.
//!
//! What it must not do: depend on any other weir module. It holds settings
//! and a pure function; sending, retrying and reading answers belong to
//! each caller.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How weir speaks HTTP as a client, to its server, to OpenLineage and to
/// notification receivers: TLS through the system's OpenSSL (already linked
/// by git2) and its root certificates, and one `timeout` for a whole
/// request.
pub fn agent_config(timeout: Duration) -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::NativeTls)
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(timeout))
}

/// `sha256=<hex HMAC-SHA256 of body under secret>`: how GitHub signs a
/// webhook delivery, and how weir signs its notifications.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's documented example: secret `It's a Secret to Everybody`,
    /// body `Hello, World!`.
    #[test]
    fn signs_as_github_documents() {
        assert_eq!(
            sign(b"It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }
}

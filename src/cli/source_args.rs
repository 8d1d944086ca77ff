//! Flags for the secrets of remote repositories (files and environment
//! variables only: a secret on the command line would leak into process
//! lists and shell history).

use std::path::PathBuf;
use std::sync::Arc;

use super::exit::{self, Error};
use crate::source::credentials::Credentials;
use crate::source::verify::TrustedKeys;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct CredentialArgs {
    /// Private key for `ssh://` and `git@host:path` URLs (default: the SSH agent).
    #[arg(long, env = "WEIR_SSH_KEY_FILE", hide_env_values = true)]
    pub ssh_key_file: Option<PathBuf>,
    /// File holding an HTTPS token.
    #[arg(long, env = "WEIR_TOKEN_FILE", hide_env_values = true)]
    pub token_file: Option<PathBuf>,
    /// Name of an environment variable holding an HTTPS token.
    #[arg(long)]
    pub token_env: Option<String>,
}

impl CredentialArgs {
    pub fn credentials(&self) -> Credentials {
        Credentials {
            ssh_key_file: self.ssh_key_file.clone(),
            token_file: self.token_file.clone(),
            token_env: self.token_env.clone(),
        }
    }
}

/// The trusted keys of `--trusted-keys` (none: commits are not checked).
pub fn trusted_keys(paths: &[PathBuf]) -> exit::Result<Option<Arc<TrustedKeys>>> {
    if paths.is_empty() {
        return Ok(None);
    }
    let keys = TrustedKeys::load(paths).map_err(Error::failed)?;
    Ok(Some(Arc::new(keys)))
}

//! Credentials for remote repositories: an SSH key file, the SSH agent, or a
//! token (HTTPS) read from a file or an environment variable. Never from the
//! command line, where it would show in process lists and shell history.

use std::path::PathBuf;

/// Where a source's secrets come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// A private key for `ssh://` and `git@host:` URLs (the agent otherwise).
    pub ssh_key_file: Option<PathBuf>,
    /// A file holding an HTTPS token (e.g. a GitHub token).
    pub token_file: Option<PathBuf>,
    /// An environment variable holding an HTTPS token.
    pub token_env: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the token file `{path}`: {source}")]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the environment variable `{0}` (--token-env) is not set")]
    TokenEnv(String),
}

/// What to answer when the server asks for credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Username(String),
    SshKey {
        user: String,
        key: PathBuf,
    },
    SshAgent {
        user: String,
    },
    Token {
        user: String,
        token: String,
    },
    /// Nothing fits what the server allows: let libgit2 fail with its message.
    Default,
}

/// Which kinds of credential the server accepts (a pure mirror of libgit2's
/// `CredentialType`, so the choice can be tested without a server).
#[derive(Debug, Clone, Copy, Default)]
pub struct Allowed {
    pub ssh_key: bool,
    pub user_pass: bool,
    /// The server first asks for a user name only (SSH URLs without one).
    pub username: bool,
}

impl Credentials {
    /// The HTTPS token, if one is configured.
    pub fn token(&self) -> Result<Option<String>, Error> {
        if let Some(path) = &self.token_file {
            let text = std::fs::read_to_string(path).map_err(|source| Error::TokenFile {
                path: path.clone(),
                source,
            })?;
            return Ok(Some(text.trim().to_owned()));
        }
        if let Some(var) = &self.token_env {
            return std::env::var(var)
                .map(|t| Some(t.trim().to_owned()))
                .map_err(|_| Error::TokenEnv(var.clone()));
        }
        Ok(None)
    }

    /// Chooses the credential for one request of the server.
    pub fn answer(&self, allowed: Allowed, url_user: Option<&str>, token: Option<&str>) -> Answer {
        if allowed.username && !allowed.ssh_key && !allowed.user_pass {
            return Answer::Username(url_user.unwrap_or("git").to_owned());
        }
        if allowed.ssh_key {
            let user = url_user.unwrap_or("git").to_owned();
            return match &self.ssh_key_file {
                Some(key) => Answer::SshKey {
                    user,
                    key: key.clone(),
                },
                None => Answer::SshAgent { user },
            };
        }
        if allowed.user_pass {
            if let Some(token) = token {
                let user = url_user.unwrap_or("x-access-token").to_owned();
                return Answer::Token {
                    user,
                    token: token.to_owned(),
                };
            }
        }
        Answer::Default
    }

    /// libgit2 callbacks that answer credential requests (at most a few
    /// times: a rejected credential is not retried forever).
    pub fn callbacks(&self) -> Result<git2::RemoteCallbacks<'static>, Error> {
        let token = self.token()?;
        let this = self.clone();
        let mut attempts = 0;
        let mut callbacks = git2::RemoteCallbacks::new();
        callbacks.credentials(move |_url, url_user, allowed| {
            attempts += 1;
            if attempts > 3 {
                return Err(git2::Error::from_str(
                    "authentication failed: the server refused the configured credentials",
                ));
            }
            let allowed = Allowed {
                ssh_key: allowed.contains(git2::CredentialType::SSH_KEY),
                user_pass: allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT),
                username: allowed.contains(git2::CredentialType::USERNAME),
            };
            match this.answer(allowed, url_user, token.as_deref()) {
                Answer::Username(user) => git2::Cred::username(&user),
                Answer::SshKey { user, key } => git2::Cred::ssh_key(&user, None, &key, None),
                Answer::SshAgent { user } => git2::Cred::ssh_key_from_agent(&user),
                Answer::Token { user, token } => git2::Cred::userpass_plaintext(&user, &token),
                Answer::Default => git2::Cred::default(),
            }
        });
        Ok(callbacks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_uses_the_key_file_or_the_agent() {
        let with_key = Credentials {
            ssh_key_file: Some("/keys/deploy".into()),
            ..Credentials::default()
        };
        let ssh = Allowed {
            ssh_key: true,
            ..Allowed::default()
        };
        let ask_user = Allowed {
            username: true,
            ..Allowed::default()
        };
        assert_eq!(
            Credentials::default().answer(ask_user, None, None),
            Answer::Username("git".into())
        );
        assert_eq!(
            with_key.answer(ssh, None, None),
            Answer::SshKey {
                user: "git".into(),
                key: "/keys/deploy".into()
            }
        );
        assert_eq!(
            Credentials::default().answer(ssh, Some("deploy"), None),
            Answer::SshAgent {
                user: "deploy".into()
            }
        );
    }

    #[test]
    fn https_uses_the_token_and_never_guesses() {
        let https = Allowed {
            user_pass: true,
            ..Allowed::default()
        };
        assert_eq!(
            Credentials::default().answer(https, None, Some("t0k3n")),
            Answer::Token {
                user: "x-access-token".into(),
                token: "t0k3n".into()
            }
        );
        assert_eq!(
            Credentials::default().answer(https, None, None),
            Answer::Default
        );
    }

    #[test]
    fn tokens_come_from_a_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "abc\n").unwrap();
        let from_file = Credentials {
            token_file: Some(file),
            ..Credentials::default()
        };
        assert_eq!(from_file.token().unwrap().as_deref(), Some("abc"));
        let missing = Credentials {
            token_env: Some("WEIR_TEST_NO_SUCH_VARIABLE".into()),
            ..Credentials::default()
        };
        assert!(matches!(missing.token(), Err(Error::TokenEnv(_))));
        let unreadable = Credentials {
            token_file: Some(dir.path().join("nope")),
            ..Credentials::default()
        };
        assert!(unreadable.token().unwrap_err().to_string().contains("nope"));
    }
}

//! A `sql` task's connection: where its secret is (`{env: NAME}` or
//! `{file: PATH}`), read at run time in the *task's* environment, and the
//! one rule that keeps the secret out of what the attempt leaves behind.
//!
//! What it guarantees: the connection's value is never in an error this
//! module (or a client using [`Secret::scrub`]) returns: the texts of
//! drivers and HTTP clients pass through [`Secret::scrub`], which removes
//! the value itself, its password and any URL's credentials.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::redact::redact_url;
use crate::spec::DaemonSecret;
use crate::spec::types::TypeExpr;

/// A connection's value, read. Its `Debug` shows nothing of it.
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Secret {
    /// Reads `reference` where a task's process would: `env` among the
    /// variables the task is given, `file` from the filesystem.
    pub fn read(
        reference: &DaemonSecret,
        env: &BTreeMap<String, String>,
    ) -> Result<Secret, String> {
        let value = match (&reference.env, &reference.file) {
            (Some(name), None) => env.get(name).cloned().ok_or_else(|| {
                format!(
                    "the connection's variable `{name}` is not given to the task: locally a task gets only the host variables \
                     the operator allows (`[tasks] env` in weir.toml, or --task-env); on Kubernetes name it in the task's `secrets`"
                )
            })?,
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the connection file `{path}`: {}", e.kind()))?,
            _ => return Err("a connection is `{ env: NAME }` or `{ file: PATH }`".to_owned()),
        };
        let value = value.trim().to_owned();
        if value.is_empty() {
            return Err(format!("the connection ({reference}) is empty"));
        }
        Ok(Secret(value))
    }

    /// The value, to connect with.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` (a driver's error, say) without the secret: the value and
    /// the password it holds become `***`, and URLs lose their user part.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.replace(&self.0, "***");
        if let Some(password) = password_of(&self.0)
            && password.len() >= 3
        {
            out = out.replace(password, "***");
        }
        out.split(' ')
            .map(|word| {
                if word.contains("://") {
                    redact_url(word)
                } else {
                    word.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The password of a URL (`scheme://user:password@host`), if it has one.
fn password_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let user = &rest[..rest.rfind('@')?];
    Some(user.split_once(':')?.1)
}

/// A bind parameter: the input's value and its declared type.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    pub name: String,
    pub value: Value,
    pub ty: Option<TypeExpr>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_scrubbed_from_any_text() {
        let env = BTreeMap::from([(
            "DB".to_owned(),
            "postgres://app:s3cr3t-pw@db:5432/x".to_owned(),
        )]);
        let reference = DaemonSecret {
            env: Some("DB".into()),
            file: None,
        };
        let secret = Secret::read(&reference, &env).expect("read");
        let scrubbed = secret.scrub(
            "error connecting to postgres://app:s3cr3t-pw@db:5432/x: password authentication failed (s3cr3t-pw)",
        );
        assert!(!scrubbed.contains("s3cr3t-pw"), "{scrubbed}");
        assert!(!format!("{secret:?}").contains("s3cr3t"));
        let missing = Secret::read(
            &DaemonSecret {
                env: Some("OTHER".into()),
                file: None,
            },
            &env,
        )
        .expect_err("not given");
        assert!(missing.contains("`OTHER`"), "{missing}");
    }
}

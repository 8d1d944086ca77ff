//! The environment a task's process starts with (DESIGN.md section 6).
//!
//! Why it exists: the daemon's own environment holds its credentials
//! (`WEIR_DB` with the database password, `WEIR_API_TOKEN`, a Git token,
//! notification secrets, a Slack URL). A task is code from the repository;
//! a task that prints its environment, or fails while doing so, would put
//! them in its log, and the log's tail goes into notifications. So a task
//! never inherits the daemon's environment wholesale.
//!
//! What it guarantees: a task's process sees exactly
//! - the host's [`ALWAYS`] variables (`PATH`, `HOME`, `LANG`, `LC_ALL`,
//!   `TZ`), when the host has them: `HOME` is the daemon's own (a task runs
//!   as the daemon's user, so `pip --user` packages and tool caches keep
//!   working; the isolation is of the environment, not of the filesystem);
//! - the host variables the operator allows ([`AllowList`]: `[tasks] env`
//!   in `weir.toml`, `--task-env` on `serve`, `run` and `backfill`), as exact
//!   names or `PREFIX*`;
//! - what the task itself is given: the data contract's `WEIR_INPUTS`,
//!   `WEIR_OUTPUTS` and `WEIR_INPUT_<NAME>`, a container's `env`, and (in a
//!   Kubernetes pod) the secrets its Job names;
//!
//! and nothing else. weir's own variables (`WEIR_*`) are never inherited:
//! an allow-list entry that could match one is refused.
//!
//! What it must not do: read the process environment on its own. The caller
//! hands the host's variables to [`Inherited::capture`] once (the CLI, or
//! `weir exec-task` inside a pod).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Host variables every task gets, when the host has them.
pub const ALWAYS: [&str; 5] = ["PATH", "HOME", "LANG", "LC_ALL", "TZ"];

/// The prefix of weir's own variables (`WEIR_DB`, `WEIR_API_TOKEN`, …),
/// which no allow-list entry may match.
const WEIR_PREFIX: &str = "WEIR_";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(
        "`{entry}` is not an environment variable name (letters, digits, `_`), nor a prefix of one followed by `*`"
    )]
    NotAName { entry: String },
    #[error(
        "`{entry}` would pass the daemon's whole environment, its credentials included: name the variables (`HTTPS_PROXY`) or their prefixes (`AWS_*`)"
    )]
    Everything { entry: String },
    #[error(
        "`{entry}` would pass weir's own variables (`WEIR_DB`, `WEIR_API_TOKEN`, …), which never reach a task"
    )]
    WeirOwn { entry: String },
}

/// One entry of an [`AllowList`]: a name, or a prefix (`AWS_*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Entry {
    Exact(String),
    Prefix(String),
}

impl Entry {
    fn parse(text: &str) -> Result<Entry, Error> {
        let entry = || text.to_owned();
        let (name, prefix) = match text.strip_suffix('*') {
            Some("") => return Err(Error::Everything { entry: entry() }),
            Some(prefix) => (prefix, true),
            None => (text, false),
        };
        let valid = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid || name.is_empty() {
            return Err(Error::NotAName { entry: entry() });
        }
        let upper = name.to_ascii_uppercase();
        let hits_weir = if prefix {
            WEIR_PREFIX.starts_with(&upper) || upper.starts_with(WEIR_PREFIX)
        } else {
            upper.starts_with(WEIR_PREFIX)
        };
        if hits_weir {
            return Err(Error::WeirOwn { entry: entry() });
        }
        Ok(if prefix {
            Entry::Prefix(name.to_owned())
        } else {
            Entry::Exact(name.to_owned())
        })
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Entry::Exact(exact) => name == exact,
            Entry::Prefix(prefix) => name.starts_with(prefix.as_str()),
        }
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Exact(name) => f.write_str(name),
            Entry::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

/// The host variables an operator lets tasks inherit beyond [`ALWAYS`]:
/// exact names (`HTTPS_PROXY`) and prefixes (`AWS_*`). Empty by default.
/// Serialized as its entries' text, so the pod side reads the same list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct AllowList {
    entries: Vec<Entry>,
}

impl AllowList {
    /// Checks every entry; the first bad one is the error.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowList, Error> {
        let mut parsed = entries
            .iter()
            .map(|e| Entry::parse(e.as_ref().trim()))
            .collect::<Result<Vec<_>, _>>()?;
        parsed.sort();
        parsed.dedup();
        Ok(AllowList { entries: parsed })
    }

    /// Whether the host variable `name` may reach a task.
    pub fn allows(&self, name: &str) -> bool {
        ALWAYS.contains(&name) || self.entries.iter().any(|e| e.matches(name))
    }

    /// The same list with exact `names` added (a pod's secrets, which its
    /// Job spec names). Names that are not variable names are left out.
    pub fn with_names<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> AllowList {
        let mut entries = self.entries.clone();
        entries.extend(
            names
                .into_iter()
                .filter_map(|n| Entry::parse(n).ok())
                .filter(|e| matches!(e, Entry::Exact(_))),
        );
        entries.sort();
        entries.dedup();
        AllowList { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl TryFrom<Vec<String>> for AllowList {
    type Error = Error;

    fn try_from(entries: Vec<String>) -> Result<AllowList, Error> {
        AllowList::parse(&entries)
    }
}

impl From<AllowList> for Vec<String> {
    fn from(list: AllowList) -> Vec<String> {
        list.entries.iter().map(Entry::to_string).collect()
    }
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.entries.iter().map(Entry::to_string).collect();
        f.write_str(&names.join(", "))
    }
}

/// What a task may inherit from its host: the allow-list and the host
/// variables it let through, taken once when the engine is built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inherited {
    allow: AllowList,
    vars: BTreeMap<String, String>,
}

impl Inherited {
    /// Keeps the host variables `allow` lets through. Variables whose name
    /// or value is not UTF-8 are left out.
    pub fn capture(host: impl IntoIterator<Item = (OsString, OsString)>, allow: AllowList) -> Self {
        let vars = host
            .into_iter()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .filter(|(name, _)| allow.allows(name))
            .collect();
        Inherited { allow, vars }
    }

    /// [`Inherited::capture`] of this process's environment.
    pub fn from_process(allow: AllowList) -> Self {
        Self::capture(std::env::vars_os(), allow)
    }

    /// The allow-list these variables were captured with.
    pub fn allow_list(&self) -> &AllowList {
        &self.allow
    }

    /// Whether the host variable `name` is passed to tasks.
    pub fn has(&self, name: &str) -> bool {
        self.vars.contains_key(name)
    }

    /// A task's whole environment: the inherited variables, then the task's
    /// own (`own`: the data contract and its declared `env`), which win.
    pub fn environment(&self, own: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut env = self.vars.clone();
        env.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Vec<(OsString, OsString)> {
        [
            ("PATH", "/usr/bin:/bin"),
            ("HOME", "/home/weir"),
            ("LANG", "C.UTF-8"),
            ("WEIR_DB", "postgres://weir:hunter2@db/weir"),
            ("WEIR_API_TOKEN", "api-s3cret"),
            ("GITHUB_TOKEN", "ghp_s3cret"),
            ("SLACK_URL", "https://hooks.slack.com/services/T/B/s3cret"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_SECRET_ACCESS_KEY", "aws-s3cret"),
            ("AWSOME", "not a prefix match of AWS_"),
            ("HTTPS_PROXY", "http://proxy:3128"),
            ("HTTPS_PROXY_USER", "not an exact match"),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
    }

    #[test]
    fn by_default_a_task_inherits_only_path_home_and_locale() {
        let inherited = Inherited::capture(host(), AllowList::default());
        let env = inherited.environment(&BTreeMap::new());
        let names: Vec<&str> = env.keys().map(String::as_str).collect();
        assert_eq!(names, ["HOME", "LANG", "PATH"]);
    }

    #[test]
    fn exact_names_and_prefixes_are_allowed_and_nothing_else() {
        let allow = AllowList::parse(&["AWS_*", "HTTPS_PROXY"]).expect("valid");
        let inherited = Inherited::capture(host(), allow);
        let env = inherited.environment(&BTreeMap::from([(
            "WEIR_INPUT_DAY".to_owned(),
            "2026-01-01".to_owned(),
        )]));
        let names: Vec<&str> = env.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "AWS_REGION",
                "AWS_SECRET_ACCESS_KEY",
                "HOME",
                "HTTPS_PROXY",
                "LANG",
                "PATH",
                "WEIR_INPUT_DAY"
            ]
        );
        for value in env.values() {
            assert!(
                !value.contains("hunter2") && !value.contains("ghp_"),
                "{value}"
            );
        }
    }

    #[test]
    fn the_task_s_own_variables_win_over_inherited_ones() {
        let inherited = Inherited::capture(host(), AllowList::default());
        let env = inherited.environment(&BTreeMap::from([("HOME".to_owned(), "/work".to_owned())]));
        assert_eq!(env["HOME"], "/work");
    }

    #[test]
    fn entries_that_would_leak_the_daemon_s_credentials_are_refused() {
        for entry in ["*", "WEIR_DB", "WEIR_*", "WE*", "weir_*"] {
            let error = AllowList::parse(&[entry]).expect_err(entry);
            assert!(
                matches!(error, Error::Everything { .. } | Error::WeirOwn { .. }),
                "{entry}: {error}"
            );
        }
        for entry in ["", "AWS-*", "A*B", "1AWS", "*AWS"] {
            let error = AllowList::parse(&[entry]).expect_err(entry);
            assert!(matches!(error, Error::NotAName { .. }), "{entry}: {error}");
        }
    }

    #[test]
    fn the_list_reads_back_from_its_text() {
        let allow = AllowList::parse(&["HTTPS_PROXY", "AWS_*", "AWS_*"]).expect("valid");
        let text = serde_json::to_string(&allow).expect("json");
        assert_eq!(text, r#"["HTTPS_PROXY","AWS_*"]"#);
        let back: AllowList = serde_json::from_str(&text).expect("reads back");
        assert_eq!(back, allow);
        assert!(serde_json::from_str::<AllowList>(r#"["WEIR_DB"]"#).is_err());
    }

    #[test]
    fn a_pod_s_secrets_are_added_by_name() {
        let allow = AllowList::default().with_names(["DB_PASSWORD", "not a name"]);
        assert!(allow.allows("DB_PASSWORD"));
        assert!(!allow.allows("DB_PASSWORD_2"));
        assert!(allow.allows("PATH"));
    }
}

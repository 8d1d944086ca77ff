//! Signed commits (DESIGN.md section 5): with trusted keys configured, a
//! head commit is reconciled only when it carries a valid signature by one
//! of them, as Flux's `verify` does. Two formats, mixed freely in one file
//! or spread over several:
//!
//! - SSH keys in OpenSSH's `allowed_signers` format (what `git config
//!   gpg.ssh.allowedSignersFile` reads): `principals [options] key`, with the
//!   options `namespaces="git,…"`, `valid-after=` and `valid-before=`
//!   honoured (the latter two against the commit's committer time, as Git
//!   does); signatures made by `git commit -S` with `gpg.format=ssh` or by
//!   `ssh-keygen -Y sign -n git`.
//! - OpenPGP public keys, ASCII-armored (`gpg --export --armor`): the primary
//!   key and its subkeys; a key whose bindings do not verify, or that is
//!   revoked, is refused when the file is read.
//!
//! Trust is the file: to revoke it, remove the key and restart.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use git2::{Oid, Repository};
use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::types::KeyDetails;
use ssh_key::{HashAlg, PublicKey, SshSig};

/// The SSH signature namespace Git signs commits in.
const GIT_NAMESPACE: &str = "git";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read trusted keys `{path}`: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: not an allowed_signers entry: {reason}")]
    Ssh {
        path: PathBuf,
        line: usize,
        reason: SignerError,
    },
    #[error("{path}: not an OpenPGP public key block: {message}")]
    Pgp { path: PathBuf, message: String },
    #[error(
        "`{path}` holds no key (expected allowed_signers lines or armored OpenPGP public keys)"
    )]
    Empty { path: PathBuf },
}

/// Why a commit is not trusted: shown in the source's status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("commit {commit} is not signed; trusted keys are configured ({expected})")]
    Unsigned { commit: String, expected: String },
    #[error(
        "commit {commit} is signed by {signer}, which is not a trusted key (expected one of: {expected})"
    )]
    UnknownKey {
        commit: String,
        signer: String,
        expected: String,
    },
    #[error("commit {commit}: the signature by {signer} does not verify: {reason}")]
    BadSignature {
        commit: String,
        signer: String,
        reason: String,
    },
    #[error("commit {commit}: the key of {signer} is not valid for it: {reason}")]
    NotValid {
        commit: String,
        signer: String,
        reason: String,
    },
    #[error("commit {commit}: unsupported signature: {reason}")]
    Unsupported { commit: String, reason: String },
}

impl Refusal {
    /// A short reason usable as a metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Unsigned { .. } => "UnsignedCommit",
            Refusal::UnknownKey { .. } => "UntrustedSigner",
            Refusal::BadSignature { .. } | Refusal::Unsupported { .. } => "BadSignature",
            Refusal::NotValid { .. } => "KeyNotValid",
        }
    }
}

/// Who signed a trusted commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// The principals of an SSH key, or the first user id of an OpenPGP key.
    pub name: String,
    /// `SHA256:…` for SSH, the hex fingerprint for OpenPGP.
    pub fingerprint: String,
}

/// The keys a commit may be signed with.
#[derive(Debug, Default)]
pub struct TrustedKeys {
    ssh: Vec<SshKey>,
    pgp: Vec<PgpKey>,
}

#[derive(Debug)]
struct SshKey {
    principals: String,
    key: PublicKey,
    namespaces: Option<Vec<String>>,
    valid_after: Option<DateTime<Utc>>,
    valid_before: Option<DateTime<Utc>>,
}

#[derive(Debug)]
struct PgpKey {
    key: SignedPublicKey,
    name: String,
}

impl TrustedKeys {
    /// Reads every file; each may hold allowed_signers lines, armored
    /// OpenPGP public keys, or both.
    pub fn load(paths: &[PathBuf]) -> Result<TrustedKeys, LoadError> {
        let mut keys = TrustedKeys::default();
        for path in paths {
            let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
                path: path.clone(),
                source,
            })?;
            let before = keys.len();
            keys.add(path, &text)?;
            if keys.len() == before {
                return Err(LoadError::Empty { path: path.clone() });
            }
        }
        Ok(keys)
    }

    /// Adds the keys of one file's text.
    pub fn add(&mut self, path: &Path, text: &str) -> Result<(), LoadError> {
        let mut rest = text;
        let mut outside = String::new();
        while let Some(start) = rest.find(PGP_BEGIN) {
            outside.push_str(&rest[..start]);
            let block = &rest[start..];
            let end = block
                .find(PGP_END)
                .map(|end| end + PGP_END.len())
                .ok_or_else(|| LoadError::Pgp {
                    path: path.to_owned(),
                    message: format!("`{PGP_BEGIN}` without `{PGP_END}`"),
                })?;
            self.add_pgp(path, &block[..end])?;
            // Keep line numbers of the SSH lines after the block right.
            outside.extend(block[..end].matches('\n').map(|_| '\n'));
            rest = &block[end..];
        }
        outside.push_str(rest);
        for (index, line) in outside.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = parse_allowed_signer(line).map_err(|reason| LoadError::Ssh {
                path: path.to_owned(),
                line: index + 1,
                reason,
            })?;
            self.ssh.push(key);
        }
        Ok(())
    }

    fn add_pgp(&mut self, path: &Path, block: &str) -> Result<(), LoadError> {
        let error = |message: String| LoadError::Pgp {
            path: path.to_owned(),
            message,
        };
        let (keys, _) =
            SignedPublicKey::from_string_many(block).map_err(|e| error(e.to_string()))?;
        for key in keys {
            let key = key.map_err(|e| error(e.to_string()))?;
            let fingerprint = format!("{:X}", key.fingerprint());
            key.verify_bindings()
                .map_err(|e| error(format!("key {fingerprint}: {e}")))?;
            if !key.details.revocation_signatures.is_empty() {
                return Err(error(format!("key {fingerprint} is revoked")));
            }
            let name = key
                .details
                .users
                .first()
                .and_then(|u| u.id.as_str())
                .unwrap_or("(no user id)")
                .to_owned();
            self.pgp.push(PgpKey { key, name });
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.ssh.len() + self.pgp.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The trusted keys, for messages: principals and fingerprints.
    pub fn describe(&self) -> String {
        let ssh = self
            .ssh
            .iter()
            .map(|k| format!("{} {}", k.principals, k.key.fingerprint(HashAlg::Sha256)));
        let pgp = self
            .pgp
            .iter()
            .map(|k| format!("{} {:X}", k.name, k.key.fingerprint()));
        ssh.chain(pgp).collect::<Vec<_>>().join(", ")
    }

    /// Checks the signature of `commit` in `repo`.
    pub fn verify(&self, repo: &Repository, commit: Oid) -> Result<Signer, Refusal> {
        let short = commit.to_string()[..12].to_owned();
        let (signature, signed) = match repo.extract_signature(&commit, None) {
            Ok(pair) => pair,
            Err(_) => {
                return Err(Refusal::Unsigned {
                    commit: short,
                    expected: self.describe(),
                });
            }
        };
        let committed = repo
            .find_commit(commit)
            .ok()
            .and_then(|c| DateTime::from_timestamp(c.committer().when().seconds(), 0));
        let signature = String::from_utf8_lossy(&signature).into_owned();
        if signature.contains("BEGIN SSH SIGNATURE") {
            self.verify_ssh(&short, &signature, &signed, committed)
        } else if signature.contains("BEGIN PGP SIGNATURE") {
            self.verify_pgp(&short, &signature, &signed)
        } else {
            Err(Refusal::Unsupported {
                commit: short,
                reason: "neither an SSH nor an OpenPGP signature (X.509 is not supported)".into(),
            })
        }
    }

    fn verify_ssh(
        &self,
        commit: &str,
        armored: &str,
        signed: &[u8],
        committed: Option<DateTime<Utc>>,
    ) -> Result<Signer, Refusal> {
        let bad = |signer: String, reason: String| Refusal::BadSignature {
            commit: commit.to_owned(),
            signer,
            reason,
        };
        let signature = SshSig::from_pem(armored.trim())
            .map_err(|e| bad("an SSH key".into(), e.to_string()))?;
        let signer_key = PublicKey::from(signature.public_key().clone());
        let fingerprint = signer_key.fingerprint(HashAlg::Sha256).to_string();
        let Some(trusted) = self
            .ssh
            .iter()
            .find(|k| k.key.key_data() == signature.public_key())
        else {
            return Err(Refusal::UnknownKey {
                commit: commit.to_owned(),
                signer: format!("SSH key {fingerprint}"),
                expected: self.describe(),
            });
        };
        let signer = format!("{} ({fingerprint})", trusted.principals);
        let not_valid = |reason: String| Refusal::NotValid {
            commit: commit.to_owned(),
            signer: signer.clone(),
            reason,
        };
        if signature.namespace() != GIT_NAMESPACE {
            return Err(bad(
                signer.clone(),
                format!(
                    "signed in namespace `{}`, not `{GIT_NAMESPACE}`",
                    signature.namespace()
                ),
            ));
        }
        if let Some(namespaces) = &trusted.namespaces {
            if !namespaces.iter().any(|n| n == GIT_NAMESPACE) {
                return Err(not_valid(format!(
                    "its namespaces are {}, not `{GIT_NAMESPACE}`",
                    namespaces.join(",")
                )));
            }
        }
        if let (Some(after), Some(at)) = (trusted.valid_after, committed) {
            if at < after {
                return Err(not_valid(format!("valid after {after}, committed {at}")));
            }
        }
        if let (Some(before), Some(at)) = (trusted.valid_before, committed) {
            if at > before {
                return Err(not_valid(format!("valid before {before}, committed {at}")));
            }
        }
        trusted
            .key
            .verify(GIT_NAMESPACE, signed, &signature)
            .map_err(|e| bad(signer.clone(), e.to_string()))?;
        Ok(Signer {
            name: trusted.principals.clone(),
            fingerprint,
        })
    }

    fn verify_pgp(&self, commit: &str, armored: &str, signed: &[u8]) -> Result<Signer, Refusal> {
        let bad = |signer: String, reason: String| Refusal::BadSignature {
            commit: commit.to_owned(),
            signer,
            reason,
        };
        let (signature, _) = DetachedSignature::from_string(armored)
            .map_err(|e| bad("an OpenPGP key".into(), e.to_string()))?;
        let issuers: Vec<String> = signature
            .signature
            .issuer_fingerprint()
            .iter()
            .map(|f| format!("{f:X}"))
            .chain(
                signature
                    .signature
                    .issuer_key_id()
                    .iter()
                    .map(|id| id.to_string().to_uppercase()),
            )
            .collect();
        for trusted in &self.pgp {
            let signer = || format!("{} ({:X})", trusted.name, trusted.key.fingerprint());
            let primary = &trusted.key.primary_key;
            let subkeys = trusted.key.public_subkeys.iter().map(|s| &s.key);
            if issued_by(&signature, primary) {
                return signature
                    .verify(primary, signed)
                    .map(|()| pgp_signer(trusted))
                    .map_err(|e| bad(signer(), e.to_string()));
            }
            for subkey in subkeys {
                if issued_by(&signature, subkey) {
                    return signature
                        .verify(subkey, signed)
                        .map(|()| pgp_signer(trusted))
                        .map_err(|e| bad(signer(), e.to_string()));
                }
            }
        }
        Err(Refusal::UnknownKey {
            commit: commit.to_owned(),
            signer: format!(
                "OpenPGP key {}",
                issuers.first().map(String::as_str).unwrap_or("(no issuer)")
            ),
            expected: self.describe(),
        })
    }
}

const PGP_BEGIN: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
const PGP_END: &str = "-----END PGP PUBLIC KEY BLOCK-----";

fn pgp_signer(key: &PgpKey) -> Signer {
    Signer {
        name: key.name.clone(),
        fingerprint: format!("{:X}", key.key.fingerprint()),
    }
}

/// Whether the signature names `key` as its issuer (by fingerprint or key id).
fn issued_by(signature: &DetachedSignature, key: &impl KeyDetails) -> bool {
    let fingerprint = key.fingerprint();
    let id = key.legacy_key_id();
    signature
        .signature
        .issuer_fingerprint()
        .iter()
        .any(|f| **f == fingerprint)
        || signature
            .signature
            .issuer_key_id()
            .iter()
            .any(|k| **k == id)
}

/// Why a line is not an `allowed_signers` entry weir reads.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error("expected `principals [options] key-type base64-key`")]
    Shape,
    #[error("missing the key after the options")]
    NoKey,
    /// `key_type` is the key's first word, as written.
    #[error("`{key_type}` is not an SSH public key: {reason}")]
    NotAKey {
        key_type: String,
        reason: ssh_key::Error,
    },
    #[error("`cert-authority` (certificate signers) is not supported")]
    CertAuthority,
    #[error("unknown option `{0}`")]
    UnknownOption(String),
    #[error("`{0}` is not a time (YYYYMMDD[HHMM[SS]][Z])")]
    Time(String),
}

/// One `allowed_signers` line: `principals [options] keytype base64 [comment]`.
fn parse_allowed_signer(line: &str) -> Result<SshKey, SignerError> {
    let (principals, rest) = split_field(line);
    if principals.is_empty() || rest.is_empty() {
        return Err(SignerError::Shape);
    }
    // Options come before the key type; a key type never contains `=`.
    let (options, key) = if looks_like_key_type(first_token(rest)) {
        ("", rest)
    } else {
        split_field(rest)
    };
    let key_text: Vec<&str> = key.split_whitespace().take(2).collect();
    if key_text.len() < 2 {
        return Err(SignerError::NoKey);
    }
    let key =
        PublicKey::from_openssh(&key_text.join(" ")).map_err(|reason| SignerError::NotAKey {
            key_type: key_text[0].to_owned(),
            reason,
        })?;
    let mut parsed = SshKey {
        principals: principals.to_owned(),
        key,
        namespaces: None,
        valid_after: None,
        valid_before: None,
    };
    for option in split_options(options) {
        let (name, value) = option.split_once('=').unwrap_or((option, ""));
        let value = value.trim_matches('"');
        match name.to_ascii_lowercase().as_str() {
            "namespaces" => {
                parsed.namespaces = Some(value.split(',').map(|n| n.trim().to_owned()).collect())
            }
            "valid-after" => parsed.valid_after = Some(parse_time(value)?),
            "valid-before" => parsed.valid_before = Some(parse_time(value)?),
            "cert-authority" => {
                return Err(SignerError::CertAuthority);
            }
            other => return Err(SignerError::UnknownOption(other.to_owned())),
        }
    }
    Ok(parsed)
}

fn first_token(text: &str) -> &str {
    text.split_whitespace().next().unwrap_or("")
}

fn looks_like_key_type(token: &str) -> bool {
    token.starts_with("ssh-") || token.starts_with("ecdsa-") || token.starts_with("sk-")
}

/// Splits off the first field; a field may quote spaces (`"a b"`).
fn split_field(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return (&text[..i], text[i..].trim_start()),
            _ => {}
        }
    }
    (text, "")
}

/// Options are comma-separated; commas inside quotes belong to the value.
fn split_options(options: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in options.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&options[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < options.len() {
        parts.push(&options[start..]);
    }
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

/// `YYYYMMDD[HHMM[SS]][Z]` as in ssh-keygen(1); without `Z` we read UTC too
/// (the daemon's local time zone is not a property of the repository).
fn parse_time(value: &str) -> Result<DateTime<Utc>, SignerError> {
    let digits = value.trim_end_matches(['Z', 'z']);
    let bad = || SignerError::Time(value.to_owned());
    let time = match digits.len() {
        8 => NaiveDate::parse_from_str(digits, "%Y%m%d")
            .map_err(|_| bad())?
            .and_hms_opt(0, 0, 0)
            .ok_or_else(bad)?,
        12 => NaiveDateTime::parse_from_str(digits, "%Y%m%d%H%M").map_err(|_| bad())?,
        14 => NaiveDateTime::parse_from_str(digits, "%Y%m%d%H%M%S").map_err(|_| bad())?,
        _ => return Err(bad()),
    };
    Ok(time.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINEGxGKnEGVqtewyT0A9M3hfzLEtWKp4b4HpmP/54DzU";

    #[test]
    fn allowed_signers_lines_parse_with_and_without_options() {
        let plain = parse_allowed_signer(&format!("alice@example.com {KEY} a comment")).unwrap();
        assert_eq!(plain.principals, "alice@example.com");
        assert_eq!(plain.namespaces, None);

        let line = format!(
            "alice@example.com,bob@example.com namespaces=\"git,file\",valid-after=20260101,valid-before=\"20270101120000Z\" {KEY}"
        );
        let with = parse_allowed_signer(&line).unwrap();
        assert_eq!(with.principals, "alice@example.com,bob@example.com");
        assert_eq!(with.namespaces, Some(vec!["git".into(), "file".into()]));
        assert_eq!(
            with.valid_after.unwrap().to_rfc3339(),
            "2026-01-01T00:00:00+00:00"
        );
        assert_eq!(
            with.valid_before.unwrap().to_rfc3339(),
            "2027-01-01T12:00:00+00:00"
        );
    }

    #[test]
    fn bad_allowed_signers_lines_say_what_is_wrong() {
        let cases = [
            ("alice@example.com", "expected"),
            ("alice@example.com ssh-ed25519", "missing the key"),
            (
                "alice@example.com ssh-ed25519 AAAAnotbase64",
                "not an SSH public key",
            ),
            (
                &format!("alice@example.com valid-after=2026 {KEY}") as &str,
                "not a time",
            ),
            (
                &format!("alice@example.com frobnicate {KEY}"),
                "unknown option",
            ),
            (
                &format!("alice@example.com cert-authority {KEY}"),
                "not supported",
            ),
        ];
        for (line, expected) in cases {
            let error = parse_allowed_signer(line)
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{line}: {error}");
        }
    }

    #[test]
    fn a_file_without_keys_and_a_broken_block_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "# nobody\n\n").unwrap();
        let error = TrustedKeys::load(&[empty]).unwrap_err();
        assert!(matches!(error, LoadError::Empty { .. }), "{error}");

        let broken = dir.path().join("broken.asc");
        std::fs::write(&broken, format!("{PGP_BEGIN}\n\nAAAA\n")).unwrap();
        let error = TrustedKeys::load(&[broken]).unwrap_err();
        assert!(error.to_string().contains("without"), "{error}");

        let bad_line = dir.path().join("signers");
        std::fs::write(
            &bad_line,
            format!("# ok\nalice@example.com {KEY}\nbob nothing\n"),
        )
        .unwrap();
        let error = TrustedKeys::load(&[bad_line]).unwrap_err().to_string();
        assert!(error.contains("signers:3:"), "{error}");
    }
}

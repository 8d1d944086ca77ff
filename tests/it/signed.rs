//! Signed commits: with trusted keys configured, only a head signed by one
//! of them is reconciled; anything else is refused, the status says why and
//! which keys were expected, and the last good state stays. Keys are made
//! in the test with `ssh-keygen` and `gpg`, and commits are signed the way
//! `git commit -S` does (the signature in the commit's `gpgsig` header).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::common::{GitRepo, TestDb, weir_json, weir_with};

/// Runs `program args` with `input` on stdin; its stdout.
fn pipe(program: &str, args: &[&str], env: &[(&str, &Path)], input: &[u8]) -> String {
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} runs (scripts/test-env installs it): {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// An SSH key made with `ssh-keygen`.
pub struct SshKey {
    _dir: tempfile::TempDir,
    key: PathBuf,
    principal: String,
}

impl SshKey {
    pub fn new(principal: &str) -> SshKey {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("id_ed25519");
        pipe(
            "ssh-keygen",
            &["-q", "-t", "ed25519", "-N", "", "-C", principal, "-f"]
                .into_iter()
                .chain([key.to_str().expect("utf-8")])
                .collect::<Vec<_>>(),
            &[],
            b"",
        );
        SshKey {
            _dir: dir,
            key,
            principal: principal.to_owned(),
        }
    }

    /// Its `allowed_signers` line.
    pub fn allowed_signer(&self) -> String {
        let public = std::fs::read_to_string(self.key.with_extension("pub")).expect("public key");
        format!("{} {}", self.principal, public.trim())
    }

    /// Its fingerprint as ssh-keygen prints it (`SHA256:…`).
    pub fn fingerprint(&self) -> String {
        let public = self.key.with_extension("pub");
        let out = pipe(
            "ssh-keygen",
            &["-l", "-f", public.to_str().expect("utf-8")],
            &[],
            b"",
        );
        out.split_whitespace()
            .nth(1)
            .expect("fingerprint")
            .to_owned()
    }

    /// `ssh-keygen -Y sign -n git`, as `git commit -S` with `gpg.format=ssh`.
    pub fn sign(&self, data: &str) -> String {
        pipe(
            "ssh-keygen",
            &[
                "-Y",
                "sign",
                "-n",
                "git",
                "-f",
                self.key.to_str().expect("utf-8"),
            ],
            &[],
            data.as_bytes(),
        )
    }
}

/// An OpenPGP key in its own `GNUPGHOME`.
struct PgpKey {
    home: tempfile::TempDir,
    fingerprint: String,
}

impl PgpKey {
    fn new(user: &str) -> PgpKey {
        let home = tempfile::tempdir().expect("tempdir");
        let env = [("GNUPGHOME", home.path())];
        pipe(
            "gpg",
            &[
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--quick-gen-key",
                user,
                "ed25519",
                "sign",
                "never",
            ],
            &env,
            b"",
        );
        let listing = pipe("gpg", &["--with-colons", "--list-keys"], &env, b"");
        let fingerprint = listing
            .lines()
            .find(|l| l.starts_with("fpr:"))
            .and_then(|l| l.split(':').nth(9))
            .expect("a fingerprint")
            .to_owned();
        PgpKey { home, fingerprint }
    }

    fn armored_public_key(&self) -> String {
        let env = [("GNUPGHOME", self.home.path())];
        pipe(
            "gpg",
            &["--armor", "--export", &self.fingerprint],
            &env,
            b"",
        )
    }

    fn sign(&self, data: &str) -> String {
        let env = [("GNUPGHOME", self.home.path())];
        pipe(
            "gpg",
            &[
                "--batch",
                "--armor",
                "--detach-sign",
                "--local-user",
                &self.fingerprint,
            ],
            &env,
            data.as_bytes(),
        )
    }
}

/// gpg starts an agent per home; stop it with the home.
impl Drop for PgpKey {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .args(["--kill", "gpg-agent"])
            .env("GNUPGHOME", self.home.path())
            .status();
    }
}

/// Commits everything staged like [`GitRepo::commit`], with the signature
/// `sign` makes of the commit's text in its `gpgsig` header.
pub fn commit_signed(repo: &GitRepo, message: &str, sign: &dyn Fn(&str) -> String) -> String {
    let git = &repo.repo;
    let mut index = git.index().expect("index");
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .expect("add");
    index.update_all(["*"], None).expect("update");
    index.write().expect("write index");
    let tree = git
        .find_tree(index.write_tree().expect("tree"))
        .expect("tree");
    let sig = git.signature().expect("signature");
    let parent = git.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    let buffer = git
        .commit_create_buffer(&sig, &sig, message, &tree, &parents)
        .expect("commit buffer");
    let text = buffer.as_str().expect("utf-8");
    let oid = git
        .commit_signed(text, &sign(text), Some("gpgsig"))
        .expect("signed commit");
    let head = git.find_reference("HEAD").expect("HEAD");
    let branch = head
        .symbolic_target()
        .expect("utf-8")
        .expect("HEAD names a branch");
    git.reference(branch, oid, true, message)
        .expect("move the branch");
    oid.to_string()
}

const TASK: &str = "apiVersion: weir.dev/v1alpha1\nkind: Task\nmetadata: { name: hello }\nspec:\n  script: { interpreter: bash, source: 'echo NN' }\n";

fn change(repo: &GitRepo, n: u32) {
    repo.write("hello.yaml", &TASK.replace("NN", &n.to_string()));
}

fn status(db: &TestDb) -> Value {
    let (code, sources) = weir_json(&["status", "-o", "json"], db);
    assert_eq!(code, 0, "{sources:#}");
    sources[0].clone()
}

/// `weir sync --trusted-keys …`: the exit code and the JSON it prints.
fn sync(db: &TestDb, repo: &GitRepo, keys: &Path) -> (i32, Value) {
    weir_json(
        &[
            "sync",
            "--repo",
            repo.path().to_str().expect("utf-8"),
            "--trusted-keys",
            keys.to_str().expect("utf-8"),
            "-o",
            "json",
        ],
        db,
    )
}

#[test]
fn only_heads_signed_by_a_trusted_key_are_reconciled() {
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    let alice = SshKey::new("alice@example.com");
    let mallory = SshKey::new("mallory@example.com");
    let release = PgpKey::new("Release Bot <release@example.com>");
    let keys_dir = tempfile::tempdir().expect("tempdir");
    // One file may mix both formats: allowed_signers lines and armored keys.
    let keys = keys_dir.path().join("trusted");
    std::fs::write(
        &keys,
        format!(
            "# people\n{}\n{}",
            alice.allowed_signer(),
            release.armored_public_key()
        ),
    )
    .expect("write keys");

    // Signed by a trusted SSH key: reconciled.
    change(&repo, 1);
    let good = commit_signed(&repo, "One", &|text| alice.sign(text));
    let (code, out) = sync(&db, &repo, &keys);
    assert_eq!(
        (code, &out["status"]),
        (0, &Value::from("reconciled")),
        "{out:#}"
    );

    // Unsigned: refused unread, with the keys that were expected.
    change(&repo, 2);
    let unsigned = repo.commit("Two, unsigned");
    let (code, out) = sync(&db, &repo, &keys);
    assert_eq!(code, 1, "{out:#}");
    assert_eq!(out["reason"], "UnsignedCommit", "{out:#}");
    let s = status(&db);
    assert_eq!(s["lastReconciledCommit"], good.as_str(), "{s:#}");
    assert_eq!(s["lastAttemptedCommit"], unsigned.as_str(), "{s:#}");
    assert_eq!(s["error"]["reason"], "UnsignedCommit", "{s:#}");
    let message = s["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("alice@example.com") && message.contains(&alice.fingerprint()),
        "the expected key is named: {message}"
    );
    assert!(message.contains(&release.fingerprint), "{message}");

    // Signed by a key nobody trusts: refused, and the signer is named.
    change(&repo, 3);
    commit_signed(&repo, "Three, by mallory", &|text| mallory.sign(text));
    let (code, out) = sync(&db, &repo, &keys);
    assert_eq!(
        (code, &out["reason"]),
        (1, &Value::from("UntrustedSigner")),
        "{out:#}"
    );
    let message = out["message"].as_str().expect("message");
    assert!(message.contains(&mallory.fingerprint()), "{message}");

    // A trusted key's signature over other content (a forged header): refused.
    change(&repo, 4);
    let other = "tree 0000000000000000000000000000000000000000\n\nsomething else\n";
    commit_signed(&repo, "Four, forged", &|_| alice.sign(other));
    let (code, out) = sync(&db, &repo, &keys);
    assert_eq!(
        (code, &out["reason"]),
        (1, &Value::from("BadSignature")),
        "{out:#}"
    );

    // The active version is still the one of the last trusted commit.
    let (_, versions) = weir_json(&["versions", "--name", "hello", "-o", "json"], &db);
    let active: Vec<&Value> = versions
        .as_array()
        .expect("versions")
        .iter()
        .filter(|v| v["active"] == true)
        .collect();
    assert_eq!(active.len(), 1, "{versions:#}");
    assert_eq!(active[0]["commit"], good.as_str(), "{versions:#}");

    // Signed with the trusted OpenPGP key: reconciled, the error is gone.
    change(&repo, 5);
    let by_release = commit_signed(&repo, "Five, by the release bot", &|text| {
        release.sign(text)
    });
    let (code, out) = sync(&db, &repo, &keys);
    assert_eq!(code, 0, "{out:#}");
    let s = status(&db);
    assert_eq!(s["lastReconciledCommit"], by_release.as_str(), "{s:#}");
    assert_eq!(s["error"], Value::Null, "{s:#}");

    // The audit log shows each refusal.
    let out = weir_with(&["audit", "-o", "json"], &db);
    let audit = String::from_utf8_lossy(&out.stdout);
    for reason in ["UnsignedCommit", "UntrustedSigner", "BadSignature"] {
        assert!(audit.contains(reason), "{reason} in the audit log: {audit}");
    }
}

#[test]
fn unreadable_or_empty_trusted_keys_stop_the_command_before_anything_is_read() {
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    change(&repo, 1);
    repo.commit("One");
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "# no keys yet\n").expect("write");
    for (keys, expected) in [
        (dir.path().join("missing"), "cannot read trusted keys"),
        (empty, "holds no key"),
    ] {
        let out = weir_with(
            &[
                "sync",
                "--repo",
                repo.path().to_str().expect("utf-8"),
                "--trusted-keys",
                keys.to_str().expect("utf-8"),
            ],
            &db,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
}

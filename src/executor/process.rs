//! The process supervisor of the local executor: one node attempt is one host
//! process, started here and waited for here.
//!
//! Why it exists: a task is an arbitrary program (a Python script, a shell
//! pipeline) that may start children of its own. An attempt must end as a
//! whole: when it times out, when it is cancelled, and even when it finishes
//! normally, nothing it started may keep running, burn the machine and write
//! into the outputs of a later attempt.
//!
//! What it guarantees:
//! - every attempt runs in a process group of its own, whose id is the
//!   child's pid ([`Child::pid`]). The engine records it, so that a restarted
//!   daemon can clean up what a crashed one left behind with [`kill_group`]
//!   (DESIGN.md §6: "a restarted daemon simply continues");
//! - [`Child::wait`] returns only once the process has been reaped (it leaves
//!   no zombie) and the rest of its group has been sent SIGKILL, after a
//!   normal exit too;
//! - on a timeout or a cancellation the group first gets SIGTERM, then
//!   `grace` to exit, then SIGKILL;
//! - stdin is `/dev/null`; stdout and stderr are appended to files, so the
//!   logs of every attempt stay on disk;
//! - the process's environment is exactly [`Command::env`]: nothing of the
//!   daemon's own (its credentials) leaks through (see `super::environment`,
//!   which decides what a task gets).
//!
//! What it must not do: decide anything about the workflow. It reports an
//! [`Exit`]; what an exit code means, whether to retry and where outputs are
//! is the engine's business. It reads no configuration: the caller passes
//! the environment, the directory and the limits.
//!
//! Limits: Unix only. A program that leaves its process group (`setsid`, a
//! self-daemonizing server) escapes the group kill. Killed grandchildren are
//! reaped by PID 1: where weir itself is PID 1 (a container), run it under an
//! init (`tini`, `docker run --init`) or they stay zombies.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rustix::io::Errno;
use rustix::process::Pid;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// What to run for one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// A name looked up on `PATH` (the child's, if `env` sets one), or a path
    /// (containing `/`), relative to `cwd`.
    pub program: String,
    pub args: Vec<String>,
    /// The process's whole environment: nothing is inherited from the
    /// daemon (`super::environment` builds it).
    pub env: BTreeMap<String, String>,
    /// The working directory; it must exist.
    pub cwd: PathBuf,
    /// Created (with missing parent directories) or appended to.
    pub stdout: PathBuf,
    /// Created (with missing parent directories) or appended to; may be the
    /// same file as `stdout`.
    pub stderr: PathBuf,
}

/// A running attempt. Consume it with [`Child::wait`]: dropped without
/// waiting, the process keeps running (tokio reaps it once it exits).
#[derive(Debug)]
pub struct Child {
    pid: u32,
    program: String,
    process: tokio::process::Child,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The process exited by itself with this code.
    Exited(i32),
    /// The process was killed by this signal, and not by us (e.g. the OOM
    /// killer's SIGKILL, or the task's own `kill`).
    Signaled(i32),
    /// The timeout passed; the group was stopped.
    TimedOut,
    /// The cancellation token fired; the group was stopped.
    Cancelled,
}

/// The signals sent to a process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: asks the processes to exit.
    Terminate,
    /// SIGKILL: cannot be ignored.
    Kill,
}

impl Signal {
    fn raw(self) -> rustix::process::Signal {
        match self {
            Signal::Terminate => rustix::process::Signal::TERM,
            Signal::Kill => rustix::process::Signal::KILL,
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signal::Terminate => "SIGTERM",
            Signal::Kill => "SIGKILL",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot start `{program}`: the working directory `{cwd}` does not exist")]
    NoWorkingDir { program: String, cwd: PathBuf },
    #[error("cannot start `{program}`: not found on PATH (working directory `{cwd}`)")]
    NotOnPath { program: String, cwd: PathBuf },
    #[error("cannot start `{program}`: no such file (working directory `{cwd}`)")]
    NoSuchFile { program: String, cwd: PathBuf },
    #[error("cannot start `{program}`: `{path}` exists, but its `#!` interpreter was not found")]
    NoInterpreter { program: String, path: PathBuf },
    #[error("cannot start `{program}` in `{cwd}`: {source}")]
    Spawn {
        program: String,
        cwd: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot open `{path}` for the output of `{program}`: {source}")]
    Output {
        program: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot wait for `{program}` (pid {pid}): {source}")]
    Wait {
        program: String,
        pid: u32,
        #[source]
        source: io::Error,
    },
    #[error("cannot send {signal} to process group {pgid}: {source}")]
    SendSignal {
        pgid: u32,
        signal: Signal,
        #[source]
        source: io::Error,
    },
    #[error("refusing to signal process group {pgid}: it cannot be the group of an attempt")]
    NotAnAttemptGroup { pgid: u32 },
}

impl Error {
    /// The program (or its `#!` interpreter) is not installed where it was
    /// to run: starting it again there fails the same way.
    pub fn is_missing_program(&self) -> bool {
        matches!(
            self,
            Error::NotOnPath { .. } | Error::NoSuchFile { .. } | Error::NoInterpreter { .. }
        )
    }
}

/// Starts `cmd` in a new process group, with stdin from `/dev/null` and
/// stdout/stderr appended to their files. Must be called within a tokio
/// runtime, which reaps the child.
pub fn spawn(cmd: &Command) -> Result<Child, Error> {
    if !cmd.cwd.is_dir() {
        return Err(Error::NoWorkingDir {
            program: cmd.program.clone(),
            cwd: cmd.cwd.clone(),
        });
    }
    let stdout = open_output(&cmd.program, &cmd.stdout)?;
    let stderr = open_output(&cmd.program, &cmd.stderr)?;
    let process = tokio::process::Command::new(executable(cmd))
        .args(&cmd.args)
        .env_clear()
        .envs(&cmd.env)
        .current_dir(&cmd.cwd)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .spawn()
        .map_err(|source| start_error(cmd, source))?;
    let pid = process
        .id()
        .expect("a child that was just spawned has not been reaped");
    debug!(pid, program = %cmd.program, cwd = %cmd.cwd.display(), "process started");
    Ok(Child {
        pid,
        program: cmd.program.clone(),
        process,
    })
}

/// The program to execute: a bare name (`python3`) looked up in the
/// task's own `PATH`, as `execvp` in the child would (a relative entry
/// against the task's working directory), so that the process is started
/// by `posix_spawn` rather than by a `fork` copying this process's page
/// tables (the standard library forks when a name must be searched in a
/// `PATH` other than this process's). Not found: the name itself, which
/// then fails to start as before.
fn executable(cmd: &Command) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    if cmd.program.contains('/') {
        return PathBuf::from(&cmd.program);
    }
    let path = cmd.env.get("PATH").map(String::as_str).unwrap_or_default();
    std::env::split_paths(path)
        .map(|dir| {
            let dir = if dir.as_os_str().is_empty() {
                cmd.cwd.clone()
            } else {
                cmd.cwd.join(dir)
            };
            dir.join(&cmd.program)
        })
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .unwrap_or_else(|| PathBuf::from(&cmd.program))
}

impl Child {
    /// The process id, which is also the id of its process group.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for the process to end, or stops its group once `timeout` has
    /// passed (counted from this call) or `cancel` fires: SIGTERM, up to
    /// `grace` for the process to exit, then SIGKILL. In every case the
    /// process is reaped and the rest of its group gets SIGKILL before this
    /// returns. A process that exits in the same instant as the timeout or
    /// the cancellation reports its exit.
    pub async fn wait(
        mut self,
        timeout: Option<Duration>,
        cancel: &CancellationToken,
        grace: Duration,
    ) -> Result<Exit, Error> {
        let deadline = async {
            match timeout {
                Some(timeout) => tokio::time::sleep(timeout).await,
                None => std::future::pending().await,
            }
        };
        let stop = tokio::select! {
            biased;
            status = self.process.wait() => {
                let status = status.map_err(|source| self.wait_error(source))?;
                kill_group(self.pid, Signal::Kill)?;
                let exit = exit_of(status);
                debug!(pid = self.pid, program = %self.program, ?exit, "process ended");
                return Ok(exit);
            }
            () = deadline => Exit::TimedOut,
            () = cancel.cancelled() => Exit::Cancelled,
        };
        info!(pid = self.pid, program = %self.program, reason = ?stop, "stopping process group");
        self.stop(grace).await?;
        Ok(stop)
    }

    /// SIGTERM to the group, `grace` for the process to exit, SIGKILL to the
    /// group; returns once the process is reaped.
    async fn stop(&mut self, grace: Duration) -> Result<ExitStatus, Error> {
        kill_group(self.pid, Signal::Terminate)?;
        let status = match tokio::time::timeout(grace, self.process.wait()).await {
            Ok(status) => status,
            Err(_elapsed) => {
                warn!(
                    pid = self.pid,
                    program = %self.program,
                    grace_ms = grace.as_millis(),
                    "process still running after SIGTERM and the grace period; sending SIGKILL"
                );
                kill_group(self.pid, Signal::Kill)?;
                self.process.wait().await
            }
        };
        let status = status.map_err(|source| self.wait_error(source))?;
        // The process may have exited on SIGTERM while children ignoring it live on.
        kill_group(self.pid, Signal::Kill)?;
        Ok(status)
    }

    fn wait_error(&self, source: io::Error) -> Error {
        Error::Wait {
            program: self.program.clone(),
            pid: self.pid,
            source,
        }
    }
}

/// Sends `signal` to every process of the group `pgid`. A group that no
/// longer exists is not an error: there is nothing left to stop.
///
/// Refuses the ids that would hit more than one attempt (0 and 1 mean "my
/// group" and "every process" to the kernel) and the daemon's own group.
/// Process ids are reused: a caller holding a `pgid` from a previous daemon
/// run should make sure the group is still the attempt's before killing it.
///
/// Sending SIGKILL to the group of a process that has been reaped is safe as
/// long as the group has other members: Linux does not reuse an id that
/// still names a live process group.
pub fn kill_group(pgid: u32, signal: Signal) -> Result<(), Error> {
    let group = i32::try_from(pgid)
        .ok()
        .filter(|&raw| raw > 1)
        .and_then(Pid::from_raw)
        .filter(|&group| group != rustix::process::getpgrp())
        .ok_or(Error::NotAnAttemptGroup { pgid })?;
    match rustix::process::kill_process_group(group, signal.raw()) {
        Ok(()) => {
            debug!(pgid, %signal, "signalled process group");
            Ok(())
        }
        Err(Errno::SRCH) => Ok(()),
        Err(errno) => Err(Error::SendSignal {
            pgid,
            signal,
            source: errno.into(),
        }),
    }
}

fn open_output(program: &str, path: &Path) -> Result<File, Error> {
    let output_error = |source| Error::Output {
        program: program.to_owned(),
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(output_error)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(output_error)
}

/// Words a failed start. ENOENT from exec means the program, or the
/// interpreter named by its `#!` line, was not found: look for the program
/// to tell which.
fn start_error(cmd: &Command, source: io::Error) -> Error {
    let program = cmd.program.clone();
    let cwd = cmd.cwd.clone();
    if source.kind() != io::ErrorKind::NotFound {
        return Error::Spawn {
            program,
            cwd,
            source,
        };
    }
    match locate(cmd) {
        Some(path) => Error::NoInterpreter { program, path },
        None if cmd.program.contains('/') => Error::NoSuchFile { program, cwd },
        None => Error::NotOnPath { program, cwd },
    }
}

/// Where exec would find the program: relative to `cwd` if it is a path,
/// otherwise on the `PATH` the child gets (none: the C library's default).
/// Only used to word an error.
fn locate(cmd: &Command) -> Option<PathBuf> {
    if cmd.program.contains('/') {
        let path = cmd.cwd.join(&cmd.program);
        return path.is_file().then_some(path);
    }
    let search_path = OsString::from(cmd.env.get("PATH").map_or("/bin:/usr/bin", String::as_str));
    std::env::split_paths(&search_path)
        .map(|dir| cmd.cwd.join(dir).join(&cmd.program))
        .find(|candidate| candidate.is_file())
}

fn exit_of(status: ExitStatus) -> Exit {
    match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Exited(code),
        (None, Some(signal)) => Exit::Signaled(signal),
        (None, None) => unreachable!("a reaped process has either exited or been killed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use tempfile::TempDir;

    /// Enough for SIGTERM to end `sh` and `sleep` on a loaded machine; tests
    /// where SIGTERM works do not wait for it to pass.
    const GRACE: Duration = Duration::from_secs(10);
    /// The bound past which a test is considered hung.
    const HUNG: Duration = Duration::from_secs(30);

    fn shell(dir: &TempDir, script: &str) -> Command {
        Command {
            program: "sh".to_owned(),
            args: vec!["-c".to_owned(), script.to_owned()],
            env: BTreeMap::new(),
            cwd: dir.path().to_owned(),
            stdout: dir.path().join("logs/attempt-1/stdout.log"),
            stderr: dir.path().join("logs/attempt-1/stderr.log"),
        }
    }

    /// Writes the pid of a background `sleep 30` to `grandchild.pid`
    /// (atomically, so a reader never sees half of it).
    const START_GRANDCHILD: &str =
        "sleep 30 & echo $! > grandchild.tmp && mv grandchild.tmp grandchild.pid";

    async fn bounded<T>(future: impl Future<Output = T>) -> T {
        tokio::time::timeout(HUNG, future)
            .await
            .expect("the test hung")
    }

    async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
        let polling = async {
            while !condition() {
                // The pace of the real processes under test.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(HUNG, polling)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
    }

    async fn grandchild_pid(dir: &TempDir) -> u32 {
        let path = dir.path().join("grandchild.pid");
        eventually("the grandchild is started", || path.exists()).await;
        fs::read_to_string(&path).unwrap().trim().parse().unwrap()
    }

    /// Gone, or dead and waiting for its new parent to reap it.
    fn is_gone(pid: u32) -> bool {
        match fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => {
                let state = stat.rsplit_once(") ").map(|(_, rest)| &rest[..1]);
                matches!(state, Some("Z" | "X"))
            }
        }
    }

    async fn run(cmd: &Command) -> Exit {
        let child = spawn(cmd).unwrap();
        bounded(child.wait(None, &CancellationToken::new(), GRACE))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn exit_code_is_captured() {
        let dir = TempDir::new().unwrap();
        assert_eq!(run(&shell(&dir, "exit 3")).await, Exit::Exited(3));
        assert_eq!(run(&shell(&dir, "true")).await, Exit::Exited(0));
    }

    #[tokio::test]
    async fn death_by_signal_is_reported() {
        let dir = TempDir::new().unwrap();
        assert_eq!(run(&shell(&dir, "kill -KILL $$")).await, Exit::Signaled(9));
    }

    #[tokio::test]
    async fn stdout_and_stderr_are_appended_to_their_files() {
        let dir = TempDir::new().unwrap();
        let cmd = shell(&dir, "echo out; echo err >&2");
        run(&cmd).await;
        run(&cmd).await;
        assert_eq!(fs::read_to_string(&cmd.stdout).unwrap(), "out\nout\n");
        assert_eq!(fs::read_to_string(&cmd.stderr).unwrap(), "err\nerr\n");
    }

    #[tokio::test]
    async fn the_environment_is_exactly_the_one_given() {
        // This test process has `HOME` (cargo and every shell set it): the
        // child must not see it.
        assert!(
            std::env::var_os("HOME").is_some(),
            "the test needs HOME set"
        );
        let dir = TempDir::new().unwrap();
        let mut cmd = shell(
            &dir,
            r#"printf '%s %s %s' "$WEIR_INPUT_NAME" "${PATH:-none}" "${HOME-unset}""#,
        );
        cmd.env
            .insert("WEIR_INPUT_NAME".to_owned(), "iris".to_owned());
        cmd.env
            .insert("PATH".to_owned(), "/usr/bin:/bin".to_owned());
        assert_eq!(run(&cmd).await, Exit::Exited(0));
        assert_eq!(
            fs::read_to_string(&cmd.stdout).unwrap(),
            "iris /usr/bin:/bin unset"
        );
    }

    #[tokio::test]
    async fn the_working_directory_is_honoured() {
        let dir = TempDir::new().unwrap();
        let work = dir.path().join("work");
        fs::create_dir(&work).unwrap();
        let mut cmd = shell(&dir, "pwd -P");
        cmd.cwd = work.clone();
        assert_eq!(run(&cmd).await, Exit::Exited(0));
        let printed = fs::read_to_string(&cmd.stdout).unwrap();
        assert_eq!(Path::new(printed.trim()), work.canonicalize().unwrap());
    }

    #[tokio::test]
    async fn a_missing_program_is_a_clear_error() {
        let dir = TempDir::new().unwrap();
        let mut cmd = shell(&dir, "");
        cmd.program = "weir-no-such-program".to_owned();
        let error = spawn(&cmd).unwrap_err();
        assert!(matches!(error, Error::NotOnPath { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!(
                "cannot start `weir-no-such-program`: not found on PATH (working directory `{}`)",
                dir.path().display()
            )
        );

        cmd.program = "./bin/train.py".to_owned();
        let error = spawn(&cmd).unwrap_err();
        assert!(matches!(error, Error::NoSuchFile { .. }), "{error:?}");
    }

    #[tokio::test]
    async fn a_missing_working_directory_is_a_clear_error() {
        let dir = TempDir::new().unwrap();
        let mut cmd = shell(&dir, "true");
        cmd.cwd = dir.path().join("absent");
        let error = spawn(&cmd).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "cannot start `sh`: the working directory `{}` does not exist",
                cmd.cwd.display()
            )
        );
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group() {
        let dir = TempDir::new().unwrap();
        let child = spawn(&shell(&dir, &format!("{START_GRANDCHILD}; sleep 30"))).unwrap();
        let pid = child.pid();
        // The timeout counts from `wait`: start it once the grandchild exists.
        let grandchild = grandchild_pid(&dir).await;
        let not_cancelled = CancellationToken::new();
        let exit = child.wait(Some(Duration::from_millis(200)), &not_cancelled, GRACE);
        assert_eq!(bounded(exit).await.unwrap(), Exit::TimedOut);
        assert!(is_gone(pid), "the process was not reaped");
        eventually("the grandchild is gone", || is_gone(grandchild)).await;
    }

    #[tokio::test]
    async fn cancellation_kills_the_whole_group() {
        let dir = TempDir::new().unwrap();
        let child = spawn(&shell(&dir, &format!("{START_GRANDCHILD}; sleep 30"))).unwrap();
        let pid = child.pid();
        let grandchild = grandchild_pid(&dir).await;
        let cancel = CancellationToken::new();
        tokio::spawn({
            let cancel = cancel.clone();
            async move { cancel.cancel() }
        });
        let exit = child.wait(None, &cancel, GRACE);
        assert_eq!(bounded(exit).await.unwrap(), Exit::Cancelled);
        assert!(is_gone(pid), "the process was not reaped");
        eventually("the grandchild is gone", || is_gone(grandchild)).await;
    }

    #[tokio::test]
    async fn a_group_ignoring_sigterm_is_killed_after_the_grace_period() {
        let dir = TempDir::new().unwrap();
        let script = format!("trap '' TERM; {START_GRANDCHILD}; sleep 30");
        let child = spawn(&shell(&dir, &script)).unwrap();
        let pid = child.pid();
        let grandchild = grandchild_pid(&dir).await;
        let short = Duration::from_millis(200);
        let not_cancelled = CancellationToken::new();
        let exit = child.wait(Some(short), &not_cancelled, short);
        assert_eq!(bounded(exit).await.unwrap(), Exit::TimedOut);
        assert!(is_gone(pid), "the process was not reaped");
        eventually("the grandchild is gone", || is_gone(grandchild)).await;
    }

    #[tokio::test]
    async fn leftovers_are_killed_after_a_normal_exit() {
        let dir = TempDir::new().unwrap();
        let cmd = shell(&dir, &format!("{START_GRANDCHILD}; exit 0"));
        assert_eq!(run(&cmd).await, Exit::Exited(0));
        let grandchild = grandchild_pid(&dir).await;
        eventually("the grandchild is gone", || is_gone(grandchild)).await;
    }

    #[tokio::test]
    async fn killing_a_gone_group_is_not_an_error() {
        let dir = TempDir::new().unwrap();
        let child = spawn(&shell(&dir, "true")).unwrap();
        let pid = child.pid();
        bounded(child.wait(None, &CancellationToken::new(), GRACE))
            .await
            .unwrap();
        kill_group(pid, Signal::Kill).unwrap();
    }

    #[test]
    fn kill_group_refuses_groups_that_cannot_be_an_attempt() {
        let own = rustix::process::getpgrp()
            .as_raw_nonzero()
            .get()
            .unsigned_abs();
        for pgid in [0, 1, own, u32::MAX] {
            let error = kill_group(pgid, Signal::Terminate).unwrap_err();
            assert!(
                matches!(error, Error::NotAnAttemptGroup { .. }),
                "{error:?}"
            );
        }
    }
}

//! A task's sidecars on the local executor: each a process group of its
//! own on this host, started before the task's process, probed until
//! ready, and stopped after it (SIGTERM, [`GRACE`], SIGKILL) however it
//! ended.
//!
//! What it guarantees: the task's process starts only once every sidecar
//! is ready; no sidecar outlives its attempt (their groups are told to the
//! engine as they start, so a restarted engine kills them as it kills the
//! task's); a sidecar that exits while the task runs fails the attempt
//! (Kubernetes would restart it: there, `restartPolicy: Always`), with the
//! end of its stderr. Each sidecar's output goes to
//! `<attempt>/sidecars/<name>.stdout.log` and `.stderr.log`.
//!
//! What a sidecar gets: its `command` and `args` as written, run in the
//! attempt's folder, with the host variables the operator lets tasks
//! inherit (but not the task's secrets) and its own `env`; never the
//! task's inputs or the data contract's variables.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::executor::environment::Inherited;
use crate::executor::process::{self, Command, Exit};
use crate::spec::sidecar::Probe;
use crate::spec::{Sidecar, TaskSpec};

/// A sidecar's time between SIGTERM and SIGKILL when its task is done.
pub const GRACE: Duration = Duration::from_secs(5);
/// How often a readiness probe is tried.
const PROBE_EVERY: Duration = Duration::from_millis(100);
/// The longest one probe may take (a TCP connect, an exec command).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the sidecars could not be brought up; the attempt fails with it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "sidecar `{name}` has no `command`: the local executor cannot run image `{image}`'s entrypoint"
    )]
    NoCommand { name: String, image: String },
    #[error("sidecar `{name}`: {source}")]
    Start {
        name: String,
        #[source]
        source: process::Error,
    },
    #[error("sidecar `{name}` is not ready after {after}{tail}")]
    NotReady {
        name: String,
        after: String,
        tail: String,
    },
    #[error("sidecar `{name}` {how} before it was ready{tail}")]
    EndedEarly {
        name: String,
        how: String,
        tail: String,
    },
}

/// Why bringing the sidecars up stopped short.
#[derive(Debug)]
pub enum Interrupted {
    Failed(Error),
    /// The attempt's own timeout passed while they got ready.
    TimedOut,
    Cancelled,
}

/// The sidecars of one attempt, running.
pub struct Running {
    /// Each sidecar's supervisor (it waits for the process, and stops it
    /// once `stop` fires).
    supervisors: Vec<JoinHandle<()>>,
    /// Fired when the task is done: every sidecar is stopped.
    stop: CancellationToken,
    /// Each sidecar that ended by itself, as it ended.
    ended: mpsc::UnboundedReceiver<Ended>,
    logs: PathBuf,
}

/// A sidecar that ended by itself.
#[derive(Debug)]
pub struct Ended {
    pub name: String,
    /// `exited with status 1`, `was killed by signal 9`.
    pub how: String,
}

impl Ended {
    fn new(name: &str, exit: Result<Exit, process::Error>) -> Ended {
        let how = match exit {
            Ok(Exit::Exited(code)) => format!("exited with status {code}"),
            Ok(Exit::Signaled(signal)) => format!("was killed by signal {signal}"),
            Ok(Exit::TimedOut | Exit::Cancelled) => "was stopped".to_owned(),
            Err(e) => format!("could not be waited for ({e})"),
        };
        Ended {
            name: name.to_owned(),
            how,
        }
    }
}

/// Starts `spec`'s sidecars in `dir` and waits until each is ready, or
/// the attempt's `deadline` passes, or `cancel` fires. `started` is told
/// each sidecar's process group as it starts. On any failure the sidecars
/// already started are stopped before this returns.
pub async fn start(
    spec: &TaskSpec,
    sidecars: &[Sidecar],
    dir: &Path,
    inherited: &Inherited,
    deadline: Option<Instant>,
    cancel: &CancellationToken,
    mut started: impl FnMut(u32),
) -> Result<Running, Interrupted> {
    let logs = dir.join("sidecars");
    let (ended_tx, ended) = mpsc::unbounded_channel();
    let mut running = Running {
        supervisors: Vec::new(),
        stop: CancellationToken::new(),
        ended,
        logs: logs.clone(),
    };
    for sidecar in sidecars {
        let command = match command(spec, sidecar, dir, &logs, inherited) {
            Ok(command) => command,
            Err(e) => {
                running.stop().await;
                return Err(Interrupted::Failed(e));
            }
        };
        let child = match process::spawn(&command) {
            Ok(child) => child,
            Err(source) => {
                running.stop().await;
                return Err(Interrupted::Failed(Error::Start {
                    name: sidecar.name.clone(),
                    source,
                }));
            }
        };
        started(child.pid());
        tracing::debug!(sidecar = %sidecar.name, pgid = child.pid(), "sidecar started");
        let (name, stop, ended_tx) = (sidecar.name.clone(), running.stop.clone(), ended_tx.clone());
        running.supervisors.push(tokio::spawn(async move {
            let exit = child.wait(None, &stop, GRACE).await;
            if !stop.is_cancelled() {
                let _ = ended_tx.send(Ended::new(&name, exit));
            }
        }));
        if let Err(e) = running
            .ready(sidecar, &command.env, dir, deadline, cancel)
            .await
        {
            running.stop().await;
            return Err(e);
        }
    }
    Ok(running)
}

/// The command running `sidecar`.
fn command(
    spec: &TaskSpec,
    sidecar: &Sidecar,
    dir: &Path,
    logs: &Path,
    inherited: &Inherited,
) -> Result<Command, Error> {
    let Some((program, first)) = sidecar.command.split_first() else {
        return Err(Error::NoCommand {
            name: sidecar.name.clone(),
            image: sidecar.image.clone(),
        });
    };
    let mut env = inherited.environment(&sidecar.env);
    // The task's secrets are the task's.
    for secret in &spec.secrets {
        if !sidecar.env.contains_key(&secret.env) {
            env.remove(&secret.env);
        }
    }
    Ok(Command {
        program: program.clone(),
        args: first.iter().chain(&sidecar.args).cloned().collect(),
        env,
        cwd: dir.to_path_buf(),
        stdout: logs.join(format!("{}.stdout.log", sidecar.name)),
        stderr: logs.join(format!("{}.stderr.log", sidecar.name)),
    })
}

impl Running {
    /// Probes `sidecar` until it is ready (a sidecar without readiness is
    /// ready once started).
    async fn ready(
        &mut self,
        sidecar: &Sidecar,
        env: &BTreeMap<String, String>,
        dir: &Path,
        deadline: Option<Instant>,
        cancel: &CancellationToken,
    ) -> Result<(), Interrupted> {
        let Some(readiness) = &sidecar.readiness else {
            return Ok(());
        };
        let Some(probe) = readiness.probe() else {
            return Ok(());
        };
        let patience = readiness
            .timeout
            .parsed()
            .unwrap_or(Duration::from_secs(60));
        let give_up = Instant::now() + patience;
        loop {
            if probe_once(&probe, env, dir).await {
                tracing::debug!(sidecar = %sidecar.name, "sidecar ready");
                return Ok(());
            }
            let next = Instant::now() + PROBE_EVERY;
            let attempt_over = deadline.is_some_and(|d| d <= next);
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Err(Interrupted::Cancelled),
                Some(ended) = self.ended.recv() => {
                    return Err(Interrupted::Failed(Error::EndedEarly {
                        tail: self.tail(&ended.name),
                        name: ended.name,
                        how: ended.how,
                    }));
                }
                () = tokio::time::sleep_until(next.min(deadline.unwrap_or(next))) => {
                    if attempt_over {
                        return Err(Interrupted::TimedOut);
                    }
                    if Instant::now() >= give_up {
                        return Err(Interrupted::Failed(Error::NotReady {
                            name: sidecar.name.clone(),
                            after: readiness.timeout.as_str().to_owned(),
                            tail: self.tail(&sidecar.name),
                        }));
                    }
                }
            }
        }
    }

    /// The next sidecar to end by itself while the task runs (never, if
    /// none does).
    pub async fn ended(&mut self) -> Ended {
        match self.ended.recv().await {
            Some(ended) => ended,
            None => std::future::pending().await,
        }
    }

    /// Stops every sidecar (SIGTERM, [`GRACE`], SIGKILL to its group) and
    /// returns once each is reaped.
    pub async fn stop(self) {
        self.stop.cancel();
        for supervisor in self.supervisors {
            if let Err(e) = supervisor.await {
                tracing::warn!(error = %e, "a sidecar's supervisor failed");
            }
        }
    }

    /// The end of sidecar `name`'s stderr, for an error.
    pub fn tail(&self, name: &str) -> String {
        super::log_tail(&self.logs.join(format!("{name}.stderr.log")))
    }
}

/// One readiness probe: a TCP connection to 127.0.0.1, or the command's
/// exit status (its output discarded).
async fn probe_once(probe: &Probe<'_>, env: &BTreeMap<String, String>, dir: &Path) -> bool {
    match probe {
        Probe::Tcp(port) => matches!(
            tokio::time::timeout(
                PROBE_TIMEOUT,
                tokio::net::TcpStream::connect(("127.0.0.1", *port))
            )
            .await,
            Ok(Ok(_))
        ),
        Probe::Exec(command) => {
            let Some((program, args)) = command.split_first() else {
                return false;
            };
            let status = tokio::process::Command::new(program)
                .args(args)
                .env_clear()
                .envs(env)
                .current_dir(dir)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .status();
            matches!(
                tokio::time::timeout(PROBE_TIMEOUT, status).await,
                Ok(Ok(s)) if s.success()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::executor::handle::LocalHandle;
    use crate::executor::{Adoption, AttemptKey};

    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| !stat.contains(") Z "))
    }

    /// An engine that takes over after a crash kills the sidecars the
    /// handle names, as it kills the task's group, even before the task's
    /// own process started.
    #[tokio::test]
    async fn a_restarted_engine_kills_the_sidecars_the_handle_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let child = process::spawn(&Command {
            program: "sleep".into(),
            args: vec!["300".into()],
            env: BTreeMap::from([("PATH".into(), std::env::var("PATH").unwrap_or_default())]),
            cwd: dir.path().to_path_buf(),
            stdout: dir.path().join("out"),
            stderr: dir.path().join("err"),
        })
        .expect("spawn");
        let pid = child.pid();
        let waited = tokio::spawn(async move {
            let never = CancellationToken::new();
            child.wait(None, &never, GRACE).await
        });
        let handle = LocalHandle {
            dir: dir.path().to_path_buf(),
            pgid: None,
            sidecars: vec![pid],
        };
        let key = AttemptKey {
            execution: "e".into(),
            node: "n".into(),
            attempt: 1,
        };
        assert!(alive(pid));
        assert_eq!(super::super::reap(&key, &handle, true), Adoption::Gone);
        let exit = tokio::time::timeout(Duration::from_secs(30), waited)
            .await
            .expect("killed")
            .expect("joined")
            .expect("waited");
        assert_eq!(exit, Exit::Signaled(9));
        assert!(!alive(pid));
    }
}

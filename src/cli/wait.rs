//! How a command waits for executions when it may have to drive them
//! itself (`weir run --wait`, `weir backfill --wait`, `weir cancel`), or,
//! with `--server`, asks the daemon until they end ([`poll_until_ended`]): one
//! engine drives a store at a time (the store's engine lease,
//! `daemon::lease`), so a command either takes the lease and drives the
//! executions here, or hands them to the engine holding the lease (a
//! daemon) and watches the store until they end, taking over should that
//! engine go away meanwhile.
//!
//! Interrupts (SIGINT, SIGTERM) are the user's: executions this process
//! drives are cancelled (its attempts' process groups get SIGTERM, then
//! SIGKILL after the grace; its nodes are recorded cancelled), and the
//! lease is released; executions handed to a daemon are left running
//! there, since they are the daemon's work now (`weir cancel ID` stops one).
//! A second interrupt while a cancellation drains (the store may be down)
//! ends the command at once, saying what was left undone.
//!
//! Should this process lose the lease while it drives (it was stopped, or
//! the store did not answer, for most of a term), it stops at once: it
//! starts nothing more, kills its running attempts (recorded interrupted,
//! so retried without using up a task's retries, by whichever engine
//! drives next), and follows the executions as if handed over, taking
//! them back should the lease come free again.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::exit::notice;
use crate::daemon::leader::Leadership;
use crate::daemon::lease::{Hold, StoreLease};
use crate::engine::Engine;
use crate::http::client::{self, Client};
use crate::spec::ExecutionId;
use crate::store::Store;
use crate::store::execution::{Execution, NodeStatus};
use crate::views::ExecutionView;

/// The default term of the engine lease a command takes.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);

/// How often a command that handed its execution over looks at it.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// Why waiting for executions failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Engine(#[from] crate::engine::Error),
    #[error("execution {0} disappeared")]
    Disappeared(ExecutionId),
}

/// A signal that interrupts a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    Int,
    Term,
}

impl Interrupt {
    /// The shell's code for a process ended by this signal.
    pub fn exit_code(self) -> u8 {
        match self {
            Interrupt::Int => 130,
            Interrupt::Term => 143,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Interrupt::Int => "SIGINT",
            Interrupt::Term => "SIGTERM",
        }
    }
}

/// SIGINT and SIGTERM, caught from creation on (they no longer end the
/// process: the command decides what to do). Each one caught is counted:
/// the first asks to cancel, a second to stop at once.
#[derive(Clone)]
pub struct Interrupts(watch::Receiver<(usize, Option<Interrupt>)>);

impl Interrupts {
    /// Starts catching the signals; must run inside the runtime.
    pub fn catch() -> std::io::Result<Interrupts> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let (tx, interrupts) = Interrupts::channel();
        tokio::spawn(async move {
            loop {
                let caught = tokio::select! {
                    _ = int.recv() => Interrupt::Int,
                    _ = term.recv() => Interrupt::Term,
                };
                tx.send_modify(|(count, last)| {
                    *count += 1;
                    *last = Some(caught);
                });
            }
        });
        Ok(interrupts)
    }

    /// Interrupts fed by hand (`send_modify` counts one): for tests.
    fn channel() -> (watch::Sender<(usize, Option<Interrupt>)>, Interrupts) {
        let (tx, rx) = watch::channel((0, None));
        (tx, Interrupts(rx))
    }

    /// Waits for the first signal.
    pub async fn wait(&mut self) -> Interrupt {
        self.wait_for(1).await
    }

    /// Waits for a second signal (the user insists), returning it.
    pub async fn wait_again(&mut self) -> Interrupt {
        self.wait_for(2).await
    }

    async fn wait_for(&mut self, count: usize) -> Interrupt {
        match self.0.wait_for(|(caught, _)| *caught >= count).await {
            Ok(caught) => caught.1.unwrap_or(Interrupt::Int),
            // The catcher never ends; should it, no signal will come.
            Err(_) => std::future::pending().await,
        }
    }
}

/// How waiting for executions ended (`T`: one execution, or a backfill's).
pub enum Waited<T = Execution> {
    /// They ended, driven here or by the engine they were handed to.
    Finished(T),
    /// Interrupted while driven here: cancelled; `stopped` attempts were
    /// running and were stopped.
    Cancelled {
        execution: T,
        signal: Interrupt,
        stopped: usize,
    },
    /// Interrupted while another engine drives them: they go on there.
    LeftTo { engine: String, signal: Interrupt },
    /// Interrupted again while the cancellation drained: ended at once;
    /// `undone` says what was left undone.
    Abandoned { signal: Interrupt, undone: String },
}

/// Waits until execution `id` ends: drives it with `engine` while this
/// process holds the engine lease, else follows it in the store while the
/// lease's holder drives it (saying so once on stderr).
pub async fn drive_or_follow(
    store: &Arc<dyn Store>,
    engine: Engine,
    id: &ExecutionId,
    lease_duration: Duration,
    interrupts: &mut Interrupts,
) -> Result<Waited, Error> {
    let ids = [id.clone()];
    let waited = drive_or_follow_all(store, engine, &ids, lease_duration, interrupts).await?;
    let one = |mut all: Vec<Execution>| all.pop().ok_or_else(|| Error::Disappeared(id.clone()));
    Ok(match waited {
        Waited::Finished(all) => Waited::Finished(one(all)?),
        Waited::Cancelled {
            execution,
            signal,
            stopped,
        } => Waited::Cancelled {
            execution: one(execution)?,
            signal,
            stopped,
        },
        Waited::LeftTo { engine, signal } => Waited::LeftTo { engine, signal },
        Waited::Abandoned { signal, undone } => Waited::Abandoned { signal, undone },
    })
}

/// [`drive_or_follow`] for several executions (`weir backfill --wait`):
/// waits until every one of `ids` ended, driving them here (the backfill's
/// `--max-parallel` applies) while this process holds the engine lease,
/// else following them while its holder drives them. The executions come
/// back in the order of `ids`.
pub async fn drive_or_follow_all(
    store: &Arc<dyn Store>,
    engine: Engine,
    ids: &[ExecutionId],
    lease_duration: Duration,
    interrupts: &mut Interrupts,
) -> Result<Waited<Vec<Execution>>, Error> {
    let lease = StoreLease::new(store.clone(), engine.owner().engine.clone(), lease_duration);
    // The engine starts attempts only while the lease held now leads.
    let leading: Arc<std::sync::Mutex<Leadership>> = Arc::default();
    let engine = engine.lead_while({
        let leading = leading.clone();
        move || leading.lock().expect("lock").is_leading()
    });
    let what = Described(ids);
    let mut following: Option<String> = None;
    loop {
        // A store that does not answer now (locked, restarting) is asked
        // again: waiting must not end because of it.
        let attempt = match lease.clone().try_hold().await {
            Ok(attempt) => attempt,
            Err(error) => {
                tracing::warn!(%error, "cannot read the engine lease; asking again");
                tokio::select! {
                    signal = interrupts.wait() => {
                        let engine = following.unwrap_or_else(|| "that drives the store".into());
                        return Ok(Waited::LeftTo { engine, signal });
                    }
                    _ = tokio::time::sleep(FOLLOW_EVERY) => {}
                }
                continue;
            }
        };
        match attempt {
            Hold::Held(held) => {
                if let Some(engine) = &following {
                    notice(format_args!(
                        "engine {engine} stopped driving the store: {what} {} here",
                        what.verb("continues", "continue")
                    ));
                }
                *leading.lock().expect("lock") = held.leadership();
                let result = drive(store, &engine, ids, interrupts, &held.lost()).await;
                held.release().await;
                match result? {
                    Some(waited) => return Ok(waited),
                    None => {
                        let stopped = engine.running();
                        engine.kill_running();
                        notice(format_args!(
                            "lost the engine lease: {what} no longer {} here ({stopped} running attempt(s) stopped, to be retried as interrupted); following",
                            what.verb("runs", "run")
                        ));
                        following = None;
                    }
                }
            }
            Hold::Following { holder } => {
                if following.as_deref() != Some(holder.as_str()) {
                    notice(format_args!(
                        "engine {holder} drives this store: {what} {} handed to it; waiting for {} to end",
                        what.verb("is", "are"),
                        what.verb("it", "them"),
                    ));
                    following = Some(holder);
                }
                tokio::select! {
                    signal = interrupts.wait() => {
                        let engine = following.unwrap_or_default();
                        return Ok(Waited::LeftTo { engine, signal });
                    }
                    _ = tokio::time::sleep(FOLLOW_EVERY) => {}
                }
                let executions = read_all(store, ids).await?;
                if executions.iter().all(|e| e.status.is_terminal()) {
                    return Ok(Waited::Finished(executions));
                }
            }
        }
    }
}

/// The executions `ids` as stored, in order.
async fn read_all(store: &Arc<dyn Store>, ids: &[ExecutionId]) -> Result<Vec<Execution>, Error> {
    let mut all = Vec::with_capacity(ids.len());
    for id in ids {
        let execution = store
            .execution(id)
            .await?
            .ok_or_else(|| Error::Disappeared(id.clone()))?;
        all.push(execution);
    }
    Ok(all)
}

/// Executions as one line names them: `execution ID`, or `N executions`.
struct Described<'a>(&'a [ExecutionId]);

impl Described<'_> {
    fn verb<'w>(&self, one: &'w str, many: &'w str) -> &'w str {
        if self.0.len() == 1 { one } else { many }
    }
}

impl std::fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            [id] => write!(f, "execution {id}"),
            ids => write!(f, "{} executions", ids.len()),
        }
    }
}

/// Drives executions `ids` here to their end; an interrupt cancels them,
/// a second one abandons the cancellation. `None`: the lease was `lost`
/// (the caller stops the attempts and follows).
async fn drive(
    store: &Arc<dyn Store>,
    engine: &Engine,
    ids: &[ExecutionId],
    interrupts: &mut Interrupts,
    lost: &CancellationToken,
) -> Result<Option<Waited<Vec<Execution>>>, Error> {
    let run = async {
        match ids {
            [id] => engine.run_until_finished(id).await.map(|e| vec![e]),
            ids => engine.run_until_all_finished(ids).await,
        }
    };
    tokio::pin!(run);
    let signal = tokio::select! {
        done = &mut run => return Ok(Some(Waited::Finished(done?))),
        signal = interrupts.wait() => signal,
        _ = lost.cancelled() => return Ok(None),
    };
    tracing::info!(
        executions = ids.len(),
        signal = signal.name(),
        "interrupted: cancelling"
    );
    let what = Described(ids);
    let cancel = async {
        let mut running = 0;
        for id in ids {
            running += running_nodes(store, id).await?;
            store.request_cancel(id).await?;
        }
        engine.wake.notify_one();
        let executions = run.await?;
        Ok::<_, Error>(Waited::Cancelled {
            execution: executions,
            signal,
            stopped: running,
        })
    };
    tokio::select! {
        cancelled = cancel => cancelled.map(Some),
        // The engine that takes the lease over finishes the cancellation.
        _ = lost.cancelled() => Ok(None),
        again = interrupts.wait_again() => {
            let running = engine.running();
            engine.kill_running();
            Ok(Some(Waited::Abandoned {
                signal: again,
                undone: format!(
                    "stopped at once: the cancellation of {what} may not be recorded ({running} attempt(s) killed here); `weir cancel ID` finishes it"
                ),
            }))
        }
    }
}

/// Waits, with `--server`, until the executions `ids` have ended, asking
/// the daemon every [`FOLLOW_EVERY`]: they are its engine's to drive.
/// Returns them as it serves them, or the interrupt that stopped the
/// waiting (which leaves them running there).
pub async fn poll_until_ended(
    client: &Client,
    ids: &[ExecutionId],
    interrupts: &mut Interrupts,
) -> Result<Result<Vec<ExecutionView>, Interrupt>, client::Error> {
    loop {
        let (client, wanted) = (client.clone(), ids.to_vec());
        // The client blocks; the signals are heard meanwhile.
        let read = tokio::task::spawn_blocking(move || {
            wanted
                .iter()
                .map(|id| {
                    client
                        .execution_all(id)?
                        .ok_or_else(|| client::Error::NotFound {
                            message: format!("no execution `{id}`"),
                        })
                })
                .collect::<Result<Vec<_>, client::Error>>()
        });
        let executions = tokio::select! {
            signal = interrupts.wait() => return Ok(Err(signal)),
            read = read => read.expect("reading executions does not panic")?,
        };
        if executions.iter().all(|e| e.status.is_terminal()) {
            return Ok(Ok(executions));
        }
        tokio::select! {
            signal = interrupts.wait() => return Ok(Err(signal)),
            () = tokio::time::sleep(FOLLOW_EVERY) => {}
        }
    }
}

/// How many nodes of execution `id` are running.
pub async fn running_nodes(
    store: &Arc<dyn Store>,
    id: &ExecutionId,
) -> Result<usize, crate::store::Error> {
    let nodes = store.nodes(id).await?;
    Ok(nodes
        .iter()
        .filter(|n| n.status == NodeStatus::Running)
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(tx: &watch::Sender<(usize, Option<Interrupt>)>, signal: Interrupt) {
        tx.send_modify(|(count, last)| {
            *count += 1;
            *last = Some(signal);
        });
    }

    /// The first signal asks to cancel; only a second one (of either kind)
    /// asks to stop at once.
    #[tokio::test]
    async fn a_second_interrupt_is_heard_while_the_first_is_handled() {
        let (tx, mut interrupts) = Interrupts::channel();
        send(&tx, Interrupt::Int);
        assert_eq!(interrupts.wait().await, Interrupt::Int);
        let again = tokio::select! {
            biased;
            again = interrupts.wait_again() => Some(again),
            () = std::future::ready(()) => None,
        };
        assert_eq!(again, None, "one signal is not two");
        send(&tx, Interrupt::Term);
        assert_eq!(interrupts.wait_again().await, Interrupt::Term);
        assert_eq!(
            interrupts.wait().await,
            Interrupt::Term,
            "still interrupted"
        );
    }
}

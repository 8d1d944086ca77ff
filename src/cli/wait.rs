//! How a command waits for an execution when it may have to drive it
//! itself (`weir run --wait`, `weir cancel`): one engine drives a store at
//! a time (the store's engine lease, `daemon::lease`), so a command either
//! takes the lease and drives the execution here, or hands it to the
//! engine holding the lease (a daemon) and watches the store until it
//! ends, taking over should that engine go away meanwhile.
//!
//! Interrupts (SIGINT, SIGTERM) are the user's: an execution this process
//! drives is cancelled (its attempts' process groups get SIGTERM, then
//! SIGKILL after the grace; its nodes are recorded cancelled), and the
//! lease is released; an execution handed to a daemon is left running
//! there, since it is the daemon's work now (`weir cancel ID` stops it).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::daemon::lease::StoreLease;
use crate::engine::Engine;
use crate::store::Store;
use crate::store::execution::{Execution, NodeStatus};

/// The default term of the engine lease a command takes.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);

/// How often a command that handed its execution over looks at it.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

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
/// process: the command decides what to do).
#[derive(Clone)]
pub struct Interrupts(watch::Receiver<Option<Interrupt>>);

impl Interrupts {
    /// Starts catching the signals; must run inside the runtime.
    pub fn catch() -> std::io::Result<Interrupts> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let (tx, rx) = watch::channel(None);
        tokio::spawn(async move {
            let caught = tokio::select! {
                _ = int.recv() => Interrupt::Int,
                _ = term.recv() => Interrupt::Term,
            };
            let _ = tx.send(Some(caught));
            // Later signals are caught and ignored: the command is ending.
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
        });
        Ok(Interrupts(rx))
    }

    /// Waits for the first signal.
    pub async fn wait(&mut self) -> Interrupt {
        match self.0.wait_for(Option::is_some).await {
            Ok(caught) => caught.unwrap_or(Interrupt::Int),
            // The catcher never ends; should it, no signal will come.
            Err(_) => std::future::pending().await,
        }
    }
}

/// How waiting for an execution ended.
pub enum Waited {
    /// It ended, driven here or by the engine it was handed to.
    Finished(Execution),
    /// Interrupted while driven here: cancelled; `stopped` attempts were
    /// running and were stopped.
    Cancelled {
        execution: Execution,
        signal: Interrupt,
        stopped: usize,
    },
    /// Interrupted while another engine drives it: it goes on there.
    LeftTo { engine: String, signal: Interrupt },
}

/// Waits until execution `id` ends: drives it with `engine` while this
/// process holds the engine lease, else follows it in the store while the
/// lease's holder drives it (saying so once on stderr).
pub async fn drive_or_follow(
    store: &Arc<dyn Store>,
    engine: Engine,
    id: &str,
    lease_duration: Duration,
    interrupts: &mut Interrupts,
) -> Result<Waited, String> {
    let lease = StoreLease::new(store.clone(), engine.owner().engine.clone(), lease_duration);
    let mut following: Option<String> = None;
    loop {
        match lease.clone().try_hold().await.map_err(|e| e.to_string())? {
            Ok(held) => {
                if let Some(engine) = &following {
                    eprintln!(
                        "engine {engine} stopped driving the store: execution {id} continues here"
                    );
                }
                let result = drive(store, &engine, id, interrupts).await;
                held.release().await;
                return result;
            }
            Err(holder) => {
                if following.as_deref() != Some(holder.as_str()) {
                    eprintln!(
                        "engine {holder} drives this store: execution {id} is handed to it; waiting for it to end"
                    );
                    following = Some(holder);
                }
                tokio::select! {
                    signal = interrupts.wait() => {
                        let engine = following.unwrap_or_default();
                        return Ok(Waited::LeftTo { engine, signal });
                    }
                    _ = tokio::time::sleep(FOLLOW_EVERY) => {}
                }
                let execution = store
                    .execution(id)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("execution {id} disappeared"))?;
                if execution.status.is_terminal() {
                    return Ok(Waited::Finished(execution));
                }
            }
        }
    }
}

/// Drives execution `id` here to its end; an interrupt cancels it.
async fn drive(
    store: &Arc<dyn Store>,
    engine: &Engine,
    id: &str,
    interrupts: &mut Interrupts,
) -> Result<Waited, String> {
    let run = engine.run_until_finished(id);
    tokio::pin!(run);
    let signal = tokio::select! {
        done = &mut run => return done.map(Waited::Finished).map_err(|e| e.to_string()),
        signal = interrupts.wait() => signal,
    };
    tracing::info!(execution = %id, signal = signal.name(), "interrupted: cancelling the execution");
    let running = running_nodes(store, id).await?;
    store.request_cancel(id).await.map_err(|e| e.to_string())?;
    engine.wake.notify_one();
    let execution = run.await.map_err(|e| e.to_string())?;
    Ok(Waited::Cancelled {
        execution,
        signal,
        stopped: running,
    })
}

/// How many nodes of execution `id` are running.
pub async fn running_nodes(store: &Arc<dyn Store>, id: &str) -> Result<usize, String> {
    let nodes = store.nodes(id).await.map_err(|e| e.to_string())?;
    Ok(nodes
        .iter()
        .filter(|n| n.status == NodeStatus::Running)
        .count())
}

//! [`LocalExecutor`]: the attempts running as process groups of this
//! process, behind the [`Executor`] boundary.
//!
//! Each attempt runs on a task of its own ([`super::run`]); its process
//! group id is told to the engine as soon as the process runs
//! ([`Events::handle_changed`]), so that should this process die, the next
//! engine finds the group and kills it ([`Executor::adopt`]). An attempt
//! this executor stopped itself ([`Executor::stop_all`]: leadership lost,
//! shutting down) ends `Interrupted`, whatever its process said: the
//! engine stopped it, not its task.
//!
//! What it must not do: outlive its engine. A local attempt dies with the
//! process that started it, or is killed by the next engine; only groups
//! started on this host since its boot are ever signalled.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::{Attempt, attempt_dir, reap, run};
use crate::artifact::ArtifactStore;
use crate::executor::handle::{AttemptHandle, LocalHandle};
use crate::executor::process;
use crate::executor::{
    Adoption, AttemptKey, AttemptRequest, BoxFuture, Events, Executor, Outcome, StartError, lock,
};

/// Runs attempts as process groups of this host, in attempt folders under
/// `<state>/runs/`.
pub struct LocalExecutor {
    state_dir: PathBuf,
    artifacts: Arc<dyn ArtifactStore>,
    /// How to ask each attempt running here to stop.
    tokens: Arc<Mutex<HashMap<AttemptKey, CancellationToken>>>,
    /// Process groups of the attempts running here (the task's and its
    /// sidecars'), once started.
    groups: Arc<Mutex<HashMap<AttemptKey, Vec<u32>>>>,
    /// Attempts [`Executor::stop_all`] killed: they end interrupted.
    killed: Arc<Mutex<HashSet<AttemptKey>>>,
}

impl LocalExecutor {
    /// Attempt folders go under `state_dir` (an absolute path: attempts
    /// run in their own folders); outputs go to `artifacts`.
    pub fn new(state_dir: PathBuf, artifacts: Arc<dyn ArtifactStore>) -> LocalExecutor {
        LocalExecutor {
            state_dir,
            artifacts,
            tokens: Arc::default(),
            groups: Arc::default(),
            killed: Arc::default(),
        }
    }
}

impl Executor for LocalExecutor {
    fn name(&self) -> &'static str {
        "local"
    }

    fn plan(&self, request: &AttemptRequest) -> AttemptHandle {
        let key = &request.key;
        AttemptHandle::Local(LocalHandle {
            dir: attempt_dir(&self.state_dir, &key.execution, &key.node, key.attempt),
            pgid: None,
            sidecars: Vec::new(),
        })
    }

    fn start(
        &self,
        request: AttemptRequest,
        handle: AttemptHandle,
        events: Arc<dyn Events>,
    ) -> BoxFuture<'_, Result<(), StartError>> {
        let AttemptHandle::Local(LocalHandle { dir, .. }) = handle else {
            return Box::pin(async { Err(StartError("not a local attempt".into())) });
        };
        let key = request.key.clone();
        let token = CancellationToken::new();
        lock(&self.tokens).insert(key.clone(), token.clone());
        let artifacts = self.artifacts.clone();
        let (tokens, groups, killed) = (
            self.tokens.clone(),
            self.groups.clone(),
            self.killed.clone(),
        );
        tokio::spawn(async move {
            let (groups_tx, mut groups_rx) = tokio::sync::mpsc::unbounded_channel();
            let attempt = Attempt {
                dir: dir.clone(),
                task: &request.task,
                spec: &request.spec,
                inputs: &request.inputs,
                timeout: request.timeout,
                files: &request.files,
                task_types: &request.task_types,
                sidecars: &request.spec.sidecars,
                inherited: &request.environment,
                runs_in: crate::task::resource::RunsIn::Process,
            };
            let run = run(attempt, artifacts.as_ref(), &token, move |started| {
                let _ = groups_tx.send(started.clone());
            });
            // Each group is remembered (to kill on `stop_all`) and told to
            // the engine (to kill after a restart) as soon as it runs.
            let remember = async {
                while let Some(started) = groups_rx.recv().await {
                    lock(&groups).insert(key.clone(), started.all().collect());
                    let handle = AttemptHandle::Local(LocalHandle {
                        dir: dir.clone(),
                        pgid: started.task,
                        sidecars: started.sidecars,
                    });
                    events.handle_changed(&key, &handle).await;
                }
            };
            let (outcome, ()) = tokio::join!(run, remember);
            lock(&tokens).remove(&key);
            lock(&groups).remove(&key);
            let was_killed = lock(&killed).remove(&key);
            let outcome = match outcome {
                Outcome::Succeeded { .. } => outcome,
                // Killed by this executor (leadership lost): not the
                // task's fault, so it does not use up the task's retries.
                _ if was_killed => Outcome::Interrupted,
                _ => outcome,
            };
            events.ended(key, outcome);
        });
        Box::pin(async { Ok(()) })
    }

    fn cancel<'a>(
        &'a self,
        key: &'a AttemptKey,
        _events: &'a Arc<dyn Events>,
    ) -> BoxFuture<'a, ()> {
        if let Some(token) = lock(&self.tokens).get(key) {
            token.cancel();
        }
        Box::pin(async {})
    }

    fn adopt<'a>(
        &'a self,
        key: &'a AttemptKey,
        handle: &'a AttemptHandle,
        started_here: bool,
        _events: &'a Arc<dyn Events>,
    ) -> BoxFuture<'a, Adoption> {
        let adoption = match handle {
            AttemptHandle::Local(local) => reap(key, local, started_here),
            AttemptHandle::Kubernetes(_) => Adoption::Foreign,
        };
        Box::pin(async move { adoption })
    }

    /// Every attempt started here is marked killed and its token
    /// cancelled, also one still staging its inputs (it then spawns
    /// nothing); the process groups already running are killed.
    fn stop_all(&self) {
        let tokens = lock(&self.tokens);
        // Marked while `tokens` is held: an attempt leaves `tokens` before
        // it reads its mark, so no mark outlives its attempt.
        lock(&self.killed).extend(tokens.keys().cloned());
        for token in tokens.values() {
            token.cancel();
        }
        let groups = lock(&self.groups);
        for (key, pgids) in groups.iter() {
            tracing::warn!(execution = %key.execution, node = %key.node, "shutting down: stopping a running attempt; it will be retried");
            for pgid in pgids {
                if let Err(e) = process::kill_group(*pgid, process::Signal::Kill) {
                    tracing::warn!(error = %e, "cannot stop an attempt");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Barrier;

    use serde_json::json;

    use super::*;
    use crate::artifact::{self, Error};
    use crate::spec::{CommitId, Digest, TaskSpec};

    /// Artifacts whose `fetch` meets the test at `entered`, then waits for
    /// it at `release` (an attempt held while it stages its inputs).
    struct Gated {
        entered: Arc<Barrier>,
        release: Arc<Barrier>,
    }

    impl ArtifactStore for Gated {
        fn put_file(&self, _path: &Path) -> Result<Digest, Error> {
            unreachable!("the attempt never gets to its outputs")
        }
        fn put_dir(&self, _path: &Path) -> Result<Digest, Error> {
            unreachable!("the attempt never gets to its outputs")
        }
        fn fetch(&self, _digest: &Digest, _dest: &Path) -> Result<(), Error> {
            self.entered.wait();
            self.release.wait();
            Ok(())
        }
        fn contains(&self, _digest: &Digest) -> bool {
            true
        }
    }

    #[derive(Default)]
    struct Told {
        handles: Mutex<Vec<AttemptHandle>>,
        ended: Mutex<Vec<Outcome>>,
        wake: tokio::sync::Notify,
    }

    impl Events for Told {
        fn handle_changed<'a>(
            &'a self,
            _key: &'a AttemptKey,
            handle: &'a AttemptHandle,
        ) -> BoxFuture<'a, ()> {
            lock(&self.handles).push(handle.clone());
            Box::pin(async {})
        }
        fn ended(&self, _key: AttemptKey, outcome: Outcome) {
            lock(&self.ended).push(outcome);
            self.wake.notify_one();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_attempt_stopped_while_staging_its_inputs_spawns_nothing() {
        let state = tempfile::tempdir().expect("tempdir");
        let (entered, release) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
        let gated = Gated {
            entered: entered.clone(),
            release: release.clone(),
        };
        let executor = LocalExecutor::new(state.path().to_path_buf(), Arc::new(gated));
        let spec: TaskSpec = serde_json::from_value(json!({
            "inputs": { "data": { "type": "file" } },
            "script": { "interpreter": "bash", "source": "true" },
        }))
        .expect("a task spec");
        let request = AttemptRequest {
            key: AttemptKey {
                execution: "e".into(),
                node: "n".into(),
                attempt: 1,
            },
            project: "p".into(),
            commit: CommitId("c".into()),
            task: "t".into(),
            task_version: Digest::of_json(&json!(null)),
            spec,
            inputs: BTreeMap::from([(
                "data".to_owned(),
                json!(artifact::reference(&Digest::of_json(&json!(1)))),
            )]),
            timeout: None,
            files: Default::default(),
            task_types: Default::default(),
            environment: Arc::default(),
        };
        let handle = executor.plan(&request);
        let told = Arc::new(Told::default());
        executor
            .start(request, handle, told.clone())
            .await
            .expect("started");
        let wait = |barrier: Arc<Barrier>| tokio::task::spawn_blocking(move || barrier.wait());
        wait(entered).await.expect("the attempt stages its inputs");
        executor.stop_all();
        let ended = told.wake.notified();
        wait(release).await.expect("the attempt goes on");
        ended.await;
        assert_eq!(*lock(&told.ended), [Outcome::Interrupted]);
        assert!(
            lock(&told.handles).is_empty(),
            "no process group was spawned"
        );
    }
}

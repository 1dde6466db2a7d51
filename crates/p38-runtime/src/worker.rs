//! The worker: claims due tasks up to its concurrency, runs each in the
//! sandbox, extends their leases while they run, stops the ones that were
//! cancelled, and records outcomes. Generations are tasks too, claimed into
//! slots of their own (see `generation_task.rs`). It finds work by claiming
//! rows, woken early by the queue signal; a worker that dies leaves leases
//! that expire, and its tasks are claimed again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use p38_core::job::{GenerationJob, GenerationRunner, StopSignal};
use p38_core::store::Store;
use p38_core::task::{
    FinishedRun, RunFigures, Task, TaskKind, TaskOutcome, TaskOutput, TaskTarget,
};
use p38_sandbox::CancelFlag;

use crate::executor::Executor;
use crate::generation_task::{self, GenerationSlots};
use crate::history::summarise;
use crate::live::LiveSink;
use crate::spec::{RunFacts, RunOrigin, RunSpec};
use crate::workspace_carry;

/// A worker bound to a store and an executor.
pub struct Worker {
    store: Arc<dyn Store>,
    exec: Arc<Executor>,
    wake: Arc<Notify>,
    stops: Arc<Notify>,
    finished: Arc<Notify>,
    running: Arc<Mutex<HashMap<i64, Stop>>>,
    generations: Option<GenerationSlots>,
}

/// How to stop one of this worker's runs.
#[derive(Clone)]
enum Stop {
    /// An agent's process in the sandbox.
    Sandbox(CancelFlag),
    /// A generation's loop.
    Generation(StopSignal),
}

impl Stop {
    fn stop(&self) {
        match self {
            Stop::Sandbox(flag) => flag.cancel(),
            Stop::Generation(signal) => signal.stop(),
        }
    }
}

impl Worker {
    /// A worker woken by `wake` (the [`crate::LocalSignal`] of this process).
    pub fn new(store: Arc<dyn Store>, exec: Arc<Executor>, wake: Arc<Notify>) -> Worker {
        Worker {
            store,
            exec,
            wake,
            stops: Arc::default(),
            finished: Arc::default(),
            running: Arc::default(),
            generations: None,
        }
    }

    /// Also runs generations' tasks, up to `slots` at once besides the
    /// agent runs (`P38_GENERATION_CONCURRENCY`), through `runner`.
    pub fn with_generations(mut self, runner: Arc<dyn GenerationRunner>, slots: usize) -> Worker {
        self.generations = (slots > 0).then_some(GenerationSlots { runner, slots });
        self
    }

    /// Notifies every waiter on `finished` each time it records the end of
    /// a run (requests of this process waiting for a task to end).
    pub fn with_finished(mut self, finished: Arc<Notify>) -> Worker {
        self.finished = finished;
        self
    }

    /// Also checks its runs at once when `stops` is notified (a task of
    /// this process's API was cancelled or its agent deleted).
    pub fn with_stops(mut self, stops: Arc<Notify>) -> Worker {
        self.stops = stops;
        self
    }

    /// Runs until `shutdown` turns true; then stops claiming and waits up to
    /// `grace` for running tasks, cancelling what is left. Cancelled tasks
    /// are recorded as such; none is lost.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let cfg = self.exec.config().clone();
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut generations: JoinSet<()> = JoinSet::new();
        let mut bulk: JoinSet<()> = JoinSet::new();
        // While no-op tasks stream in, the loop claims again at once; it
        // looks for generations then only once per poll interval.
        let mut last_generation_claim: Option<std::time::Instant> = None;
        let mut streaming_noops = false;
        let mut last_beat = std::time::Instant::now();
        let mut beat = tokio::time::interval(cfg.heartbeat);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let generation_slots = self.generations.as_ref().map_or(0, |g| g.slots);
        tracing::info!(worker = %cfg.worker_id, concurrency = cfg.concurrency, generation_slots, sandboxed = self.exec.sandboxed(), "worker started");
        if let Err(e) = self.store.listen(self.wake.clone()).await {
            tracing::warn!(error = %e.report(), "no task notifications from the database; polling every {:?}", cfg.poll);
        }
        loop {
            if *shutdown.borrow() {
                break;
            }
            // Leases are renewed on time even while a stream of no-op tasks
            // keeps the loop from ever waiting in `select!`.
            if last_beat.elapsed() >= cfg.heartbeat {
                self.heartbeat(&cfg.worker_id, cfg.lease).await;
                last_beat = std::time::Instant::now();
            }
            // Collect every run that ended, so one claim refills all free slots.
            while tasks.try_join_next().is_some() {}
            while generations.try_join_next().is_some() {}
            while bulk.try_join_next().is_some() {}
            if let Some(slots) = &self.generations {
                let free = slots.slots.saturating_sub(generations.len());
                let due = !streaming_noops
                    || last_generation_claim.is_none_or(|at| at.elapsed() >= cfg.poll);
                if free > 0 && due {
                    last_generation_claim = Some(std::time::Instant::now());
                    match self
                        .store
                        .claim_generations(&cfg.worker_id, free as u32, cfg.lease)
                        .await
                    {
                        Ok(claimed) => {
                            for t in claimed {
                                self.spawn_generation(&mut generations, slots, t);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "claiming generations failed; retrying")
                        }
                    }
                }
            }
            streaming_noops = false;
            let free = cfg.concurrency.saturating_sub(tasks.len());
            let mut found_none = false;
            if free > 0 {
                match self
                    .store
                    .claim(&cfg.worker_id, free as u32, cfg.lease)
                    .await
                {
                    Ok(claimed) => {
                        found_none = claimed.is_empty();
                        // No-op tasks start no process: complete them at once,
                        // all in one statement, and claim again.
                        let (noops, runs): (Vec<Task>, Vec<Task>) =
                            claimed.into_iter().partition(|t| t.kind == TaskKind::Noop);
                        for t in runs {
                            self.spawn(&mut tasks, t);
                        }
                        if !noops.is_empty() {
                            // Completing one batch overlaps claiming the next,
                            // with a few batches in flight at most.
                            while bulk.len() >= 4 {
                                bulk.join_next().await;
                            }
                            let ids: Vec<i64> = noops.iter().map(|t| t.id).collect();
                            let (store, me) = (self.store.clone(), cfg.worker_id.clone());
                            bulk.spawn(async move {
                                if let Err(e) = store.complete_noops(&me, &ids).await {
                                    tracing::warn!(error = %e.report(), "completing no-op tasks failed; their leases will expire");
                                }
                            });
                            streaming_noops = true;
                            continue;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e.report(), "claiming tasks failed; retrying")
                    }
                }
            }
            // Sleep until the next delayed task (a retry) is due, at most
            // one poll interval; a wake-up ends the sleep early. Only worth
            // asking when there was nothing to claim.
            let mut sleep = cfg.poll;
            if found_none && let Ok(Some(due)) = self.store.next_due().await {
                let until = (due - chrono::Utc::now()).to_std().unwrap_or_default();
                if !until.is_zero() {
                    sleep = sleep.min(until);
                }
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                Some(_) = generations.join_next(), if !generations.is_empty() => {}
                _ = beat.tick() => {
                    self.heartbeat(&cfg.worker_id, cfg.lease).await;
                    last_beat = std::time::Instant::now();
                }
                _ = self.stops.notified() => self.heartbeat(&cfg.worker_id, cfg.lease).await,
                _ = shutdown.changed() => {}
            }
        }
        while bulk.join_next().await.is_some() {}
        tracing::info!(
            running = tasks.len() + generations.len(),
            "worker stopping: no new claims"
        );
        let drain = async {
            while tasks.join_next().await.is_some() {}
            while generations.join_next().await.is_some() {}
        };
        if tokio::time::timeout(grace, drain).await.is_err() {
            // Hand what is left back to the queue first, so that stopping
            // the processes cannot record them as cancelled: another worker
            // runs them.
            let left: Vec<(i64, Stop)> = self
                .running
                .lock()
                .expect("lock poisoned")
                .iter()
                .map(|(k, v)| (*k, v.clone()))
                .collect();
            let ids: Vec<i64> = left.iter().map(|(id, _)| *id).collect();
            match self.store.release(&cfg.worker_id, &ids).await {
                Ok(n) => tracing::info!(released = n, "handed unfinished tasks back to the queue"),
                Err(e) => {
                    tracing::warn!(error = %e.report(), "releasing tasks failed; their leases will expire")
                }
            }
            for (_, stop) in left {
                stop.stop();
            }
            while tasks.join_next().await.is_some() {}
            while generations.join_next().await.is_some() {}
        }
        tracing::info!("worker stopped");
    }

    fn spawn(&self, set: &mut JoinSet<()>, task: Task) {
        if self
            .running
            .lock()
            .expect("lock poisoned")
            .contains_key(&task.id)
        {
            // This worker's lease ran out while the run went on, and it
            // claimed the task again: the run it has is the run; no second one.
            tracing::warn!(
                task = task.id,
                "re-claimed a task this worker is still running; keeping the running one"
            );
            return;
        }
        let flag = CancelFlag::new();
        self.running
            .lock()
            .expect("lock poisoned")
            .insert(task.id, Stop::Sandbox(flag.clone()));
        let store = self.store.clone();
        let exec = self.exec.clone();
        let running = self.running.clone();
        let finished = self.finished.clone();
        set.spawn(async move {
            let id = task.id;
            let worker = exec.config().worker_id.clone();
            let run = run_task(&store, &exec, &task, flag).await;
            let status = run.outcome.status();
            // A run a user cancelled keeps what it wrote up to the cancel.
            let output = matches!(run.outcome, TaskOutcome::Cancelled { .. }).then(|| TaskOutput {
                stdout: run.figures.stdout.clone().unwrap_or_default(),
                stderr: run.figures.stderr.clone().unwrap_or_default(),
                logs: run.figures.logs.clone().unwrap_or_else(|| serde_json::json!([])),
            });
            match store.complete(id, &worker, run).await {
                Ok(true) => tracing::info!(task = id, status = ?status, "task finished"),
                Ok(false) => {
                    let kept = match output {
                        Some(out) => store.save_output(id, &worker, out).await,
                        None => Ok(false),
                    };
                    match kept {
                        Ok(true) => tracing::info!(task = id, "task was cancelled; its output up to the cancel is kept"),
                        Ok(false) => tracing::info!(task = id, "task was cancelled or taken over; its outcome is discarded"),
                        Err(e) => tracing::warn!(task = id, error = %e.report(), "storing the output of a cancelled task failed"),
                    }
                }
                // The database is away: the lease expires and the task runs
                // again, which is what at-least-once promises.
                Err(e @ p38_core::Error::Unavailable { .. }) => tracing::error!(task = id, error = %e.report(), "recording the outcome failed; the lease will expire and the task will run again"),
                // The database refused this outcome itself: running the task
                // again would repeat its side effects for the same refusal,
                // so record the run as failed, saying why.
                Err(e) => {
                    tracing::error!(task = id, error = %e.report(), "the outcome could not be stored; recording the run as failed");
                    let failed = FinishedRun::bare(TaskOutcome::failed(format!(
                        "the run ended but its outcome could not be stored: {e}"
                    )));
                    if let Err(e) = store.complete(id, &worker, failed).await {
                        tracing::error!(task = id, error = %e.report(), "recording the failure failed too; the lease will expire and the task will run again");
                    }
                }
            }
            running.lock().expect("lock poisoned").remove(&id);
            finished.notify_waiters();
        });
    }

    /// Runs a generation's task in a generation slot; like [`Worker::spawn`],
    /// a task this worker still runs is not started twice.
    fn spawn_generation(&self, set: &mut JoinSet<()>, slots: &GenerationSlots, task: Task) {
        let TaskTarget::Generation { generation_id } = task.target else {
            tracing::error!(
                task = task.id,
                "claimed as a generation, but the task is an agent's run; leaving it to its lease"
            );
            return;
        };
        let stop = StopSignal::new();
        {
            let mut running = self.running.lock().expect("lock poisoned");
            if running.contains_key(&task.id) {
                tracing::warn!(
                    task = task.id,
                    "re-claimed a generation this worker is still running; keeping the running one"
                );
                return;
            }
            running.insert(task.id, Stop::Generation(stop.clone()));
        }
        let job = GenerationJob {
            task_id: task.id,
            generation_id,
            attempt: task.attempt,
            worker: self.exec.config().worker_id.clone(),
        };
        let (store, runner) = (self.store.clone(), slots.runner.clone());
        let (running, finished) = (self.running.clone(), self.finished.clone());
        set.spawn(async move {
            let id = job.task_id;
            generation_task::run(&store, &runner, job, stop).await;
            running.lock().expect("lock poisoned").remove(&id);
            finished.notify_waiters();
        });
    }

    /// Extends leases, stops tasks this worker no longer holds (cancelled
    /// by a user, or taken over after a lost lease), and puts tasks of dead
    /// workers back in the queue.
    async fn heartbeat(&self, worker: &str, lease: Duration) {
        let ids: Vec<i64> = self
            .running
            .lock()
            .expect("lock poisoned")
            .keys()
            .copied()
            .collect();
        if !ids.is_empty() {
            match self.store.heartbeat(worker, &ids, lease).await {
                Ok(lost) => {
                    let running = self.running.lock().expect("lock poisoned");
                    for id in lost {
                        if let Some(stop) = running.get(&id) {
                            tracing::info!(
                                task = id,
                                "stopping a task this worker no longer holds"
                            );
                            stop.stop();
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e.report(), "heartbeat failed"),
            }
        }
        match self.store.requeue_expired().await {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(
                    count = n,
                    "re-queued tasks whose worker stopped renewing its lease"
                );
                self.wake.notify_one();
            }
            Err(e) => tracing::warn!(error = %e.report(), "re-queueing expired tasks failed"),
        }
    }
}

/// Loads what a run needs and runs it; every failure is an outcome. A
/// failed or timed-out run within the agent's retry budget carries the time
/// of its retry, which the store queues with the outcome.
async fn run_task(
    store: &Arc<dyn Store>,
    exec: &Executor,
    task: &Task,
    cancel: CancelFlag,
) -> FinishedRun {
    if task.kind == TaskKind::Noop {
        return FinishedRun {
            outcome: TaskOutcome::Succeeded {
                result: None,
                new_state: None,
            },
            figures: RunFigures {
                duration_ms: Some(0),
                ..Default::default()
            },
        };
    }
    let fail = |e: String| FinishedRun::bare(TaskOutcome::failed(e));
    let TaskTarget::Agent {
        agent_id,
        agent_version,
    } = task.target
    else {
        return fail("a generation's task reached the agent runner".into());
    };
    let agent = match store.get_agent(agent_id).await {
        Ok(Some(a)) => a,
        Ok(None) => return fail("the agent was deleted".into()),
        Err(e) => return fail(format!("loading the agent failed: {e}")),
    };
    // A task queued before the agent was paused is still run; one queued
    // before it was disabled, or before its approval was withdrawn (its code
    // or permissions changed), is not: the claim took it whatever its
    // agent's state, and this is where the one rule is applied.
    if let Err(why) = agent.may_run() {
        return FinishedRun::bare(TaskOutcome::Cancelled {
            reason: format!("not run: {why}"),
        });
    }
    // The code of the version the task was queued for, or no run at all:
    // never other code than the one that was queued (and approved).
    let code = match task_code(store, &agent, agent_version).await {
        Ok(Some(code)) => code,
        Ok(None) => {
            return fail(format!(
                "version {} of agent {} is not stored, so this task (queued for that version) was not run rather than run other code; run the agent again to run its current version {}",
                agent_version, agent.name, agent.version
            ));
        }
        Err(e) => return fail(format!("loading the agent's code failed: {e}")),
    };
    if !agent.secrets.is_empty() {
        // Which secrets each run used (names only) is part of the audit trail.
        let a = p38_core::audit::NewAudit {
            actor: format!("worker:{}", exec.config().worker_id),
            action: "secrets.use".into(),
            target: format!("task:{}", task.id),
            detail: Some(serde_json::json!({"agent_id": agent.id, "names": agent.secrets})),
        };
        if let Err(e) = store.append_audit(a).await {
            return fail(format!("auditing the use of secrets failed: {e}"));
        }
    }
    let state = match store.get_state(agent.id).await {
        Ok(s) => s.map(|s| s.state).unwrap_or_else(|| serde_json::json!({})),
        Err(e) => return fail(format!("loading the agent's state failed: {e}")),
    };
    let history = match store
        .recent_finished(agent.id, exec.config().history_runs)
        .await
    {
        Ok(h) => summarise(&h),
        Err(_) => Vec::new(),
    };
    let carried = match workspace_carry::restore(store, exec.sandbox(), exec.config(), &agent).await
    {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let carry_limit = exec.config().limits.workspace_bytes(&agent.settings);
    let facts = RunFacts {
        origin: RunOrigin::Task {
            task_id: task.id,
            agent_id: agent.id,
            attempt: task.attempt,
            trigger: task.trigger,
        },
        agent_name: agent.name,
        scheduled_at: task.scheduled_at,
    };
    let workspace = exec.config().workspace(agent.id);
    let sink = LiveSink {
        store: store.clone(),
        task: task.id,
        worker: exec.config().worker_id.clone(),
    };
    let retry_at = retry_time(task.attempt, &agent.settings);
    let spec = RunSpec {
        code,
        config: agent.config,
        secrets: agent.secrets,
        tools: agent.tools,
        network: agent.network,
        settings: agent.settings,
        state,
        history,
        facts,
        workspace,
        cancel,
    };
    let mut run = exec.run_saving(spec, Some(sink)).await;
    workspace_carry::save(
        store,
        exec.config(),
        agent.id,
        carry_limit,
        task.id,
        carried,
        &mut run.outcome,
    )
    .await;
    FinishedRun {
        outcome: run.outcome.retried_at(retry_at),
        figures: run.figures,
    }
}

/// The code of `version` of `agent`: its current code, or a kept version;
/// none when that version is not stored.
async fn task_code(
    store: &Arc<dyn Store>,
    agent: &p38_core::agent::Agent,
    version: i64,
) -> p38_core::Result<Option<String>> {
    if agent.version == version {
        return Ok(Some(agent.code.clone()));
    }
    let versions = store.list_versions(agent.id).await?;
    Ok(versions
        .into_iter()
        .find(|v| v.version == version)
        .map(|v| v.code))
}

/// When to retry after attempt `attempt` failed: none past the agent's
/// retry budget; otherwise the backoff delay plus up to 10 % jitter, so
/// agents that failed together do not retry in lockstep.
pub(crate) fn retry_time(
    attempt: i64,
    s: &p38_core::agent::AgentSettings,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let n = u32::try_from(attempt).ok()?;
    if n > s.retries() {
        return None;
    }
    let base = s.retry_delay(n);
    let jitter = base.mul_f64(rand::random::<f64>() * 0.1);
    let delay = chrono::Duration::from_std(base + jitter).ok()?;
    Some(chrono::Utc::now() + delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p38_core::agent::AgentSettings;

    #[test]
    fn retries_back_off_2_4_8_seconds_then_stop() {
        let s = AgentSettings::default();
        for (attempt, secs) in [(1, 2.0), (2, 4.0), (3, 8.0)] {
            let at = retry_time(attempt, &s).unwrap();
            let d = (at - chrono::Utc::now()).num_milliseconds() as f64 / 1000.0;
            assert!(
                d > secs - 0.1 && d <= secs * 1.1 + 0.05,
                "attempt {attempt}: {d}"
            );
        }
        assert!(retry_time(4, &s).is_none(), "three retries by default");
        let none = AgentSettings {
            max_retries: Some(0),
            ..Default::default()
        };
        assert!(retry_time(1, &none).is_none());
    }
}

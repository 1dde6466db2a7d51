//! Work on the queue besides agent runs. A worker claims every task the
//! same way (one lease, one heartbeat); what a generation's task does is
//! the application's, handed to the worker as a [`GenerationRunner`] when
//! the process is wired up, so the runtime never depends on the services
//! that write agents.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::task::TaskId;

/// Tells a running job to stop: its task was cancelled, handed back or
/// taken over. Cheap to clone; every clone sees the same stop.
#[derive(Debug, Clone, Default)]
pub struct StopSignal {
    stopped: Arc<AtomicBool>,
    notify: Arc<Notify>,
}

impl StopSignal {
    /// A signal not given yet.
    pub fn new() -> StopSignal {
        StopSignal::default()
    }

    /// Asks the job to stop; every waiter wakes.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Whether [`StopSignal::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Returns once [`StopSignal::stop`] was called (at once if it was).
    pub async fn stopped(&self) {
        loop {
            // Listen before looking, so a stop between the two is not missed.
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_stopped() {
                return;
            }
            notified.await;
        }
    }
}

/// A generation's task, as the worker that claimed it hands it over.
#[derive(Debug, Clone)]
pub struct GenerationJob {
    /// The task (its lease is the generation's).
    pub task_id: TaskId,
    /// The generation to run.
    pub generation_id: i64,
    /// 1 for the first attempt; more after a worker running it stopped.
    pub attempt: i64,
    /// The worker holding the task: progress and the end are stored only
    /// while it still does.
    pub worker: String,
}

/// How a generation's run ended, for its task.
#[derive(Debug, Clone, PartialEq)]
pub enum GenerationEnd {
    /// An agent was saved.
    Succeeded {
        /// The agent written.
        agent_id: i64,
    },
    /// The generation failed, saying why (also on the generation).
    Failed(String),
    /// A user cancelled it.
    Cancelled,
    /// This worker no longer holds the task (handed back, or taken over
    /// after its lease lapsed): nothing of this run is recorded.
    Lost,
}

/// Runs generations: the model writes an agent, it is validated and
/// repaired, and saved. Implemented by the application services.
#[async_trait]
pub trait GenerationRunner: Send + Sync {
    /// Runs `job` from the start until it ends or `stop` is given. Never
    /// fails: every problem is a [`GenerationEnd::Failed`] with a message
    /// for the user.
    async fn run(&self, job: GenerationJob, stop: StopSignal) -> GenerationEnd;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stop_given_before_waiting_is_seen() {
        let s = StopSignal::new();
        s.clone().stop();
        s.stopped().await;
        assert!(s.is_stopped());
    }
}

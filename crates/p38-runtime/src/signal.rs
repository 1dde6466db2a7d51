//! The in-process wake-up: an API handler that queues a task wakes the
//! worker in the same process at once.

use std::sync::Arc;

use tokio::sync::Notify;

use p38_core::store::QueueSignal;

/// Wakes the local worker.
#[derive(Debug, Clone, Default)]
pub struct LocalSignal(pub Arc<Notify>);

impl QueueSignal for LocalSignal {
    fn task_queued(&self) {
        // notify_one stores a permit when the worker is busy, so a wake-up
        // sent while it is claiming is not lost.
        self.0.notify_one();
    }
}

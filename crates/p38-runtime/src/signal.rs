//! The in-process wake-ups: an API handler that queues a task wakes the
//! worker in the same process at once, and one that changes a schedule
//! wakes the scheduler.

use std::sync::Arc;

use tokio::sync::Notify;

use p38_core::store::QueueSignal;

/// Wakes the local worker and scheduler.
#[derive(Debug, Clone, Default)]
pub struct LocalSignal {
    /// Notified when a task is queued.
    pub tasks: Arc<Notify>,
    /// Notified when an agent's schedule or status changes.
    pub schedules: Arc<Notify>,
    /// Notified when a task was cancelled or its agent deleted.
    pub stops: Arc<Notify>,
}

impl QueueSignal for LocalSignal {
    fn task_queued(&self) {
        // notify_one stores a permit when the worker is busy, so a wake-up
        // sent while it is claiming is not lost.
        self.tasks.notify_one();
    }

    fn schedule_changed(&self) {
        self.schedules.notify_one();
    }

    fn task_stopped(&self) {
        self.stops.notify_one();
    }
}

//! A generation's task on a worker: the worker claims it like any task and
//! holds its lease through the same heartbeat; the generation itself (model
//! calls, validation, saving the agent) is the [`GenerationRunner`]'s,
//! handed to the worker when the process is wired up. Generations run in
//! slots of their own (`P38_GENERATION_CONCURRENCY`), so a long generation
//! never holds up agent runs, nor a burst of runs a generation.

use std::sync::Arc;
use std::time::Instant;

use p38_core::job::{GenerationEnd, GenerationJob, GenerationRunner, StopSignal};
use p38_core::store::Store;
use p38_core::task::{FinishedRun, RunFigures, TaskOutcome};

/// The generation runner and how many generations a worker runs at once.
#[derive(Clone)]
pub(crate) struct GenerationSlots {
    pub(crate) runner: Arc<dyn GenerationRunner>,
    pub(crate) slots: usize,
}

/// Runs generation `generation_id` of task `task_id` (attempt `attempt`)
/// and records the end on the task, while `worker` still holds it.
pub(crate) async fn run(
    store: &Arc<dyn Store>,
    runner: &Arc<dyn GenerationRunner>,
    job: GenerationJob,
    stop: StopSignal,
) {
    let (id, worker) = (job.task_id, job.worker.clone());
    let started = Instant::now();
    let end = runner.run(job, stop).await;
    let Some(finished) = outcome(end, started.elapsed().as_millis() as i64) else {
        tracing::info!(
            task = id,
            "this worker no longer holds the generation's task; nothing recorded"
        );
        return;
    };
    let status = finished.outcome.status();
    match store.complete(id, &worker, finished).await {
        Ok(true) => tracing::info!(task = id, status = ?status, "generation task finished"),
        Ok(false) => tracing::info!(
            task = id,
            "the generation's task was cancelled or taken over; its end is the generation's"
        ),
        // The generation holds its own end; the task's lease expires, and
        // the worker that claims it again finds the generation ended.
        Err(e) => {
            tracing::warn!(task = id, error = %e.report(), "recording the end of a generation's task failed")
        }
    }
}

/// The task's outcome for how the generation ended (`None`: not this
/// worker's to record). Never a retry: a generation that ended has its
/// answer; one whose worker stopped runs again through its lease.
fn outcome(end: GenerationEnd, duration_ms: i64) -> Option<FinishedRun> {
    let outcome = match end {
        GenerationEnd::Lost => return None,
        GenerationEnd::Succeeded { agent_id } => TaskOutcome::Succeeded {
            result: Some(serde_json::json!({ "agent_id": agent_id })),
            new_state: None,
        },
        GenerationEnd::Failed(why) => TaskOutcome::failed(why),
        GenerationEnd::Cancelled => TaskOutcome::Cancelled {
            reason: "cancelled".into(),
        },
    };
    Some(FinishedRun {
        outcome,
        figures: RunFigures {
            duration_ms: Some(duration_ms),
            ..Default::default()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use p38_core::task::TaskStatus;

    #[test]
    fn a_generation_ends_its_task_without_a_retry_and_a_lost_one_records_nothing() {
        let ok = outcome(GenerationEnd::Succeeded { agent_id: 7 }, 5).unwrap();
        assert_eq!(ok.outcome.status(), TaskStatus::Succeeded);
        assert_eq!(
            ok.outcome,
            TaskOutcome::Succeeded {
                result: Some(serde_json::json!({"agent_id": 7})),
                new_state: None
            }
        );
        let failed = outcome(GenerationEnd::Failed("no key".into()), 5).unwrap();
        assert_eq!(failed.outcome.status(), TaskStatus::Failed);
        assert!(failed.outcome.retry_at().is_none());
        assert_eq!(
            outcome(GenerationEnd::Cancelled, 5)
                .unwrap()
                .outcome
                .status(),
            TaskStatus::Cancelled
        );
        assert!(outcome(GenerationEnd::Lost, 5).is_none());
    }
}

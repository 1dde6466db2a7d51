//! `ctx.history`: a compact summary of an agent's last runs, so an agent
//! can react to its own recent failures without reading the whole task log.

use p38_core::task::{Excerpt, TaskSummary};

/// Summarises finished tasks, newest first. Result and error are the
/// store's excerpts (500 characters), marked with `...` where cut.
pub(crate) fn summarise(tasks: &[TaskSummary]) -> Vec<serde_json::Value> {
    tasks
        .iter()
        .map(|t| {
            serde_json::json!({
                "task_id": t.id,
                "status": t.status.as_str(),
                "attempt": t.attempt,
                "trigger": t.trigger.as_str(),
                "completed_at": t.completed_at.map(|c| c.to_rfc3339()),
                "result": t.result_preview.as_ref().map(shown),
                "error": t.error.as_ref().map(shown),
            })
        })
        .collect()
}

fn shown(e: &Excerpt) -> String {
    if e.truncated {
        format!("{}...", e.text)
    } else {
        e.text.clone()
    }
}

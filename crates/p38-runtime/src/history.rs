//! `ctx.history`: a compact summary of an agent's last runs, so an agent
//! can react to its own recent failures without reading the whole task log.

use p38_core::task::Task;

/// Longest result or error text kept per run in the summary.
const MAX_TEXT: usize = 500;

/// Summarises finished tasks, newest first.
pub(crate) fn summarise(tasks: &[Task]) -> Vec<serde_json::Value> {
    tasks
        .iter()
        .map(|t| {
            serde_json::json!({
                "task_id": t.id,
                "status": t.status.as_str(),
                "attempt": t.attempt,
                "trigger": t.trigger.as_str(),
                "completed_at": t.completed_at.map(|c| c.to_rfc3339()),
                "result": t.result.as_ref().map(|r| truncate(&r.to_string())),
                "error": t.error.as_deref().map(truncate),
            })
        })
        .collect()
}

/// Cuts text at a character boundary.
pub(crate) fn truncate(s: &str) -> String {
    if s.len() <= MAX_TEXT {
        return s.to_string();
    }
    let mut end = MAX_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

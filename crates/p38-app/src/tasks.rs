//! Task services: read, retry, cancel.

use std::time::Duration;

use p38_core::auth::{Principal, Scope};
use p38_core::page::{Page, PageRequest};
use p38_core::task::{NewTask, Task, TaskStatus, TaskSummary, TaskTarget, Trigger};
use p38_core::time::now;
use p38_core::{Error, Result};

use crate::App;
use crate::agents::{audit, ensure_runnable};

/// How often a waiting request looks again for a task run by a worker in
/// another process.
pub const WAIT_POLL: Duration = Duration::from_millis(250);

/// The longest a request may wait for a task to end.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

impl App {
    /// One task with its captured output.
    pub async fn get_task(&self, who: &Principal, id: i64) -> Result<Task> {
        who.require(Scope::Viewer)?;
        self.store
            .get_task(id)
            .await?
            .ok_or_else(|| Error::not_found("task", id))
    }

    /// The task once it has ended, or as it is after `wait` (a long poll).
    /// A worker of this process answers at once when it ends the task; one
    /// elsewhere is seen within [`WAIT_POLL`].
    pub async fn wait_task(&self, who: &Principal, id: i64, wait: Duration) -> Result<Task> {
        let until = tokio::time::Instant::now() + wait;
        loop {
            // Listen before looking, so an end between the two is not missed.
            let finished = self.finished.notified();
            tokio::pin!(finished);
            finished.as_mut().enable();
            let t = self.get_task(who, id).await?;
            let now = tokio::time::Instant::now();
            if t.status.is_final() || now >= until {
                return Ok(t);
            }
            tokio::select! {
                () = finished => {}
                () = tokio::time::sleep((until - now).min(WAIT_POLL)) => {}
            }
        }
    }

    /// An agent's tasks, newest first, without captured output.
    pub async fn list_tasks(
        &self,
        who: &Principal,
        agent: &str,
        status: Option<TaskStatus>,
        page: PageRequest,
    ) -> Result<Page<TaskSummary>> {
        let agent = self.find_agent(who, agent).await?;
        self.store.list_tasks(agent.id, status, page).await
    }

    /// Queues a new attempt of a finished task, running the agent's current code.
    pub async fn retry_task(&self, who: &Principal, id: i64) -> Result<Task> {
        who.require(Scope::Operator)?;
        let task = self.get_task(who, id).await?;
        if !task.status.is_final() {
            return Err(Error::conflict(
                "status",
                format!(
                    "task {id} is still {}; retry it once it has ended",
                    task.status.as_str()
                ),
            ));
        }
        let agent_id = match task.target {
            TaskTarget::Agent { agent_id, .. } => agent_id,
            TaskTarget::Generation { generation_id } => {
                return Err(Error::conflict(
                    "kind",
                    format!(
                        "task {id} ran generation {generation_id}; to write the agent again, start a new generation (POST /api/agents with the description)"
                    ),
                ));
            }
        };
        let agent = self
            .store
            .get_agent(agent_id)
            .await?
            .ok_or_else(|| Error::not_found("agent", agent_id))?;
        ensure_runnable(&agent)?;
        let new = NewTask {
            agent_id: agent.id,
            agent_version: agent.version,
            trigger: Trigger::Retry,
            kind: task.kind,
            attempt: task.attempt + 1,
            retry_of: Some(task.retry_of.unwrap_or(task.id)),
            scheduled_at: now(),
        };
        let detail = serde_json::json!({"retry_of": task.id});
        let t = self
            .store
            .enqueue(new, Some(audit(who, "task.retry", "", Some(detail))))
            .await?;
        self.signal.task_queued();
        Ok(t)
    }

    /// Cancels a queued or running task; a running one is stopped by its worker.
    pub async fn cancel_task(&self, who: &Principal, id: i64) -> Result<Task> {
        who.require(Scope::Operator)?;
        let task = self
            .store
            .cancel_task(id, audit(who, "task.cancel", &format!("task:{id}"), None))
            .await?;
        self.signal.task_stopped();
        Ok(task)
    }

    /// The audit log, newest first (admins only).
    pub async fn list_audit(
        &self,
        who: &Principal,
        page: PageRequest,
    ) -> Result<Page<p38_core::audit::AuditEntry>> {
        who.require(Scope::Admin)?;
        self.store.list_audit(page).await
    }
}

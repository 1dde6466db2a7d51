//! The persistence traits. `p38-store` implements them on SQLite and
//! PostgreSQL; services hold an `Arc<dyn Store>` and never see SQL.

use std::time::Duration;

use async_trait::async_trait;

use crate::Result;
use crate::agent::{Agent, AgentChange, AgentId, AgentState, AgentStatus, AgentVersion, NewAgent};
use crate::audit::{AuditEntry, NewAudit};
use crate::auth::{ApiToken, Principal, Scope};
use crate::page::{Page, PageRequest};
use crate::task::{NewTask, Task, TaskId, TaskOutcome, TaskStatus};
use crate::time::Timestamp;

/// Agents and their versions.
#[async_trait]
pub trait AgentStore: Send + Sync {
    /// Inserts an agent and its version 1, and audits it, in one transaction.
    /// A taken name is a [`crate::Error::Conflict`] on `name`.
    async fn create_agent(&self, new: NewAgent, audit: NewAudit) -> Result<Agent>;
    /// One agent by id.
    async fn get_agent(&self, id: AgentId) -> Result<Option<Agent>>;
    /// One agent by name.
    async fn get_agent_by_name(&self, name: &str) -> Result<Option<Agent>>;
    /// Agents, newest first, optionally of one status.
    async fn list_agents(
        &self,
        status: Option<AgentStatus>,
        page: PageRequest,
    ) -> Result<Page<Agent>>;
    /// Applies a change, bumps the version (recording a new code version when
    /// the code changed) and audits it, in one transaction.
    async fn update_agent(
        &self,
        id: AgentId,
        change: AgentChange,
        actor: &str,
        audit: NewAudit,
    ) -> Result<Agent>;
    /// Deletes an agent with its versions, tasks and state; audits it.
    async fn delete_agent(&self, id: AgentId, audit: NewAudit) -> Result<()>;
    /// Every kept version, newest first.
    async fn list_versions(&self, id: AgentId) -> Result<Vec<AgentVersion>>;
    /// The state carried between runs.
    async fn get_state(&self, id: AgentId) -> Result<Option<AgentState>>;
}

/// Tasks and the durable queue.
#[async_trait]
pub trait TaskStore: Send + Sync {
    /// Queues a task and audits it (when `audit` is given).
    async fn enqueue(&self, new: NewTask, audit: Option<NewAudit>) -> Result<Task>;
    /// One task.
    async fn get_task(&self, id: TaskId) -> Result<Option<Task>>;
    /// An agent's tasks, newest first, optionally of one status.
    async fn list_tasks(
        &self,
        agent: AgentId,
        status: Option<TaskStatus>,
        page: PageRequest,
    ) -> Result<Page<Task>>;
    /// The last `n` finished tasks of an agent, newest first.
    async fn recent_finished(&self, agent: AgentId, n: u32) -> Result<Vec<Task>>;
    /// Marks a queued or running task cancelled. A finished task is a
    /// [`crate::Error::Conflict`].
    async fn cancel_task(&self, id: TaskId, audit: NewAudit) -> Result<Task>;
    /// Atomically claims up to `limit` due queued tasks for `worker`, marking
    /// them running with a lease until `now + lease`. No task is ever handed
    /// to two workers at once.
    async fn claim(&self, worker: &str, limit: u32, lease: Duration) -> Result<Vec<Task>>;
    /// Extends the lease of tasks this worker still runs; returns the ids
    /// whose lease it no longer holds (cancelled or taken over).
    async fn heartbeat(&self, worker: &str, ids: &[TaskId], lease: Duration)
    -> Result<Vec<TaskId>>;
    /// Records a final outcome (and the new agent state, for a success) if
    /// `worker` still holds the task; returns false when it does not.
    async fn complete(&self, id: TaskId, worker: &str, outcome: TaskOutcome) -> Result<bool>;
    /// Puts running tasks whose lease ran out back in the queue; returns how many.
    async fn requeue_expired(&self) -> Result<u64>;
    /// The earliest `scheduled_at` among queued tasks, to sleep until then.
    async fn next_due(&self) -> Result<Option<Timestamp>>;
}

/// API tokens.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a token's hash; the caller shows the token once.
    async fn create_token(
        &self,
        name: &str,
        scope: Scope,
        hash: &str,
        prefix: &str,
        audit: Option<NewAudit>,
    ) -> Result<ApiToken>;
    /// The principal behind an unrevoked token hash.
    async fn principal_for_hash(&self, hash: &str) -> Result<Option<Principal>>;
    /// All tokens, revoked ones included.
    async fn list_tokens(&self) -> Result<Vec<ApiToken>>;
    /// Revokes a token; unknown ids are [`crate::Error::NotFound`].
    async fn revoke_token(&self, id: i64, audit: NewAudit) -> Result<ApiToken>;
    /// Number of unrevoked admin tokens.
    async fn count_active_admin_tokens(&self) -> Result<i64>;
}

/// The audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends one record.
    async fn append_audit(&self, entry: NewAudit) -> Result<()>;
    /// Records, newest first.
    async fn list_audit(&self, page: PageRequest) -> Result<Page<AuditEntry>>;
}

/// Everything a service needs from persistence.
#[async_trait]
pub trait Store: AgentStore + TaskStore + TokenStore + AuditStore {
    /// Whether the database answers.
    async fn ping(&self) -> Result<()>;
    /// "sqlite" or "postgres".
    fn backend(&self) -> &'static str;
}

/// Wakes workers when a task is queued, so a run starts at once instead of
/// at the next poll. In one process this is an in-memory signal; across
/// nodes the store's own notification channel.
pub trait QueueSignal: Send + Sync {
    /// A task became due.
    fn task_queued(&self);
}

/// A signal that wakes nobody, for processes without local workers (the
/// workers then find tasks by polling).
pub struct NoSignal;

impl QueueSignal for NoSignal {
    fn task_queued(&self) {}
}

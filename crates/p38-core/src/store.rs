//! The persistence traits. `p38-store` implements them on SQLite and
//! PostgreSQL; services hold an `Arc<dyn Store>` and never see SQL.

use std::time::Duration;

use async_trait::async_trait;

use crate::Result;
use crate::agent::{Agent, AgentChange, AgentId, AgentState, AgentStatus, AgentVersion, NewAgent};
use crate::audit::{AuditEntry, NewAudit};
use crate::auth::{ApiToken, Scope, TokenLookup};
use crate::page::{Page, PageRequest};
use crate::task::{FinishedRun, NewTask, Task, TaskId, TaskOutput, TaskStatus, TaskSummary};

use crate::time::Timestamp;
use crate::workspace::{ArchiveSave, WorkspaceArchive};

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
    /// Deletes an agent with its versions, tasks, state and workspace
    /// archives; audits it.
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
    ) -> Result<Page<TaskSummary>>;
    /// The last `n` finished tasks of an agent, newest first.
    async fn recent_finished(&self, agent: AgentId, n: u32) -> Result<Vec<TaskSummary>>;
    /// Marks a queued or running task cancelled. A finished task is a
    /// [`crate::Error::Conflict`].
    async fn cancel_task(&self, id: TaskId, audit: NewAudit) -> Result<Task>;
    /// Atomically claims up to `limit` due queued tasks for `worker`, marking
    /// them running with a lease until `now + lease`. No task is ever handed
    /// to two workers at once.
    /// Agent runs (kinds `agent` and `noop`) only: generations have slots
    /// of their own ([`TaskStore::claim_generations`]), so that neither
    /// kind of work starves the other.
    async fn claim(&self, worker: &str, limit: u32, lease: Duration) -> Result<Vec<Task>>;
    /// [`TaskStore::claim`] for generations' tasks (kind `generation`).
    async fn claim_generations(
        &self,
        worker: &str,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<Task>>;
    /// Extends the lease of tasks this worker still runs; returns the ids
    /// whose lease it no longer holds (cancelled or taken over).
    async fn heartbeat(&self, worker: &str, ids: &[TaskId], lease: Duration)
    -> Result<Vec<TaskId>>;
    /// Records how a run ended and its figures (with the new agent state
    /// of a success, and the retry of a failure that has one) if `worker`
    /// still holds the task; returns false when it does not.
    async fn complete(&self, id: TaskId, worker: &str, run: FinishedRun) -> Result<bool>;
    /// Stores what a run of `worker` wrote so far: while the task runs, or
    /// once a user cancelled it (what the run wrote up to the cancel).
    /// Returns false, storing nothing, when the task is neither (it ended
    /// otherwise, or went back to the queue, or another worker holds it).
    async fn save_output(&self, id: TaskId, worker: &str, output: TaskOutput) -> Result<bool>;
    /// Records many tasks of `worker` as succeeded with no output in one
    /// statement (no-op tasks); returns how many it still held.
    async fn complete_noops(&self, worker: &str, ids: &[TaskId]) -> Result<u64>;
    /// Puts running tasks whose lease ran out back in the queue; returns how
    /// many. One that ran out too often is failed instead (a generation
    /// after [`crate::generation::GENERATION_ATTEMPTS`], together with its
    /// generation).
    async fn requeue_expired(&self) -> Result<u64>;
    /// The earliest `scheduled_at` among queued tasks, to sleep until then.
    async fn next_due(&self) -> Result<Option<Timestamp>>;
    /// Hands running tasks of `worker` back to the queue (graceful
    /// shutdown): another worker runs them. Returns how many.
    async fn release(&self, worker: &str, ids: &[TaskId]) -> Result<u64>;
}

/// An agent whose schedule is due.
#[derive(Debug, Clone)]
pub struct DueAgent {
    /// The agent.
    pub id: AgentId,
    /// Its code version.
    pub version: i64,
    /// Its schedule, parsed when the row was read; an error (saying why)
    /// when the stored text no longer parses, which stops the schedule.
    pub schedule: std::result::Result<crate::schedule::Schedule, String>,
    /// Its settings (time zone, misfire and overlap policies).
    pub settings: crate::agent::AgentSettings,
    /// The firing that is due.
    pub next_fire_at: Timestamp,
}

/// What happened to one firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FireResult {
    /// A task was queued.
    Queued(TaskId),
    /// The firing was dropped (overlap or misfire policy); the schedule moved on.
    Skipped,
    /// Another scheduler fired it first, or the agent changed meanwhile.
    Lost,
}

/// The scheduler's view of the store. Firing is a compare-and-set on the
/// agent's `next_fire_at`, so two schedulers can never fire the same
/// instant twice, even while both believe they lead.
#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Active agents whose next firing is at or before `now`, earliest first.
    async fn due_agents(&self, now: Timestamp, limit: u32) -> Result<Vec<DueAgent>>;
    /// In one transaction: moves the agent's next firing from `expected` to
    /// `next` (failing with [`FireResult::Lost`] if it is no longer
    /// `expected`), and queues `task` unless `skip_if_busy` and a run of the
    /// agent is queued or running.
    async fn fire(
        &self,
        agent: AgentId,
        expected: Timestamp,
        next: Option<Timestamp>,
        task: Option<NewTask>,
        skip_if_busy: bool,
    ) -> Result<FireResult>;
    /// The earliest next firing of any active agent.
    async fn next_fire_time(&self) -> Result<Option<Timestamp>>;
    /// Takes or renews the scheduler lease for `holder` until `now + lease`;
    /// true when `holder` leads.
    async fn try_lead(&self, holder: &str, lease: Duration) -> Result<bool>;
    /// Gives the lease up (clean shutdown), so another scheduler takes over at once.
    async fn resign(&self, holder: &str) -> Result<()>;
}

/// API tokens.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a token's hash; the caller shows the token once. A token with
    /// `expires_at` stops authenticating then.
    async fn create_token(
        &self,
        name: &str,
        scope: Scope,
        hash: &str,
        prefix: &str,
        expires_at: Option<Timestamp>,
        audit: Option<NewAudit>,
    ) -> Result<ApiToken>;
    /// The unrevoked token behind a hash, expired or not (the caller tells
    /// an expired token from an unknown one).
    async fn principal_for_hash(&self, hash: &str) -> Result<Option<TokenLookup>>;
    /// Records that token `id` authenticated at `at`, unless a use within
    /// the minute before is already recorded (so that not every request
    /// writes).
    async fn touch_token(&self, id: i64, at: Timestamp) -> Result<()>;
    /// All tokens, revoked ones included.
    async fn list_tokens(&self) -> Result<Vec<ApiToken>>;
    /// Revokes a token; unknown ids are [`crate::Error::NotFound`]. The
    /// last active (unrevoked, unexpired) admin token is never revoked: a
    /// [`crate::Error::Conflict`] says why.
    async fn revoke_token(&self, id: i64, audit: NewAudit) -> Result<ApiToken>;
    /// Number of unrevoked, unexpired admin tokens.
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

/// A secret's metadata: never its value.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SecretMeta {
    /// Name.
    pub name: String,
    /// Incremented on every write.
    pub version: i64,
    /// Where it is kept.
    pub backend: String,
    /// First write.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Last write.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// The local secret backend's sealed values.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Writes a sealed value (new or replacing), audited in the same transaction.
    async fn put_secret(
        &self,
        name: &str,
        ciphertext: &[u8],
        audit: NewAudit,
    ) -> Result<SecretMeta>;
    /// The sealed value.
    async fn get_secret(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// Every secret's metadata, by name.
    async fn list_secrets(&self) -> Result<Vec<SecretMeta>>;
    /// Deletes one; unknown names are [`crate::Error::NotFound`].
    async fn delete_secret(&self, name: &str, audit: NewAudit) -> Result<()>;
}

/// Generations. Each is run by the worker holding its task (kind
/// `generation`): the task's lease is the generation's, and progress and
/// the end are stored only while that worker holds the task.
#[async_trait]
pub trait GenerationStore: Send + Sync {
    /// Records a new generation (status `running`, stage `queued`) and
    /// queues its task, audited, in one transaction.
    async fn create_generation(
        &self,
        description: &str,
        overrides: &crate::generation::GenerationOverrides,
        model: &str,
        created_by: &str,
        audit: NewAudit,
    ) -> Result<crate::generation::Generation>;
    /// Records progress of the generation of `task`, if `worker` still
    /// holds that task and the generation runs; `false` otherwise.
    async fn generation_progress(
        &self,
        task: TaskId,
        worker: &str,
        p: &crate::generation::GenerationProgress,
    ) -> Result<bool>;
    /// Records the end of the generation of `task` (status, the full
    /// report, an error, the agent made), if `worker` still holds that task
    /// and the generation runs; `false` otherwise.
    async fn finish_generation(
        &self,
        task: TaskId,
        worker: &str,
        end: &crate::generation::GenerationFinish,
    ) -> Result<bool>;
    /// One generation.
    async fn get_generation(&self, id: i64) -> Result<Option<crate::generation::Generation>>;
    /// Generations newest first, optionally of one status; each without
    /// its `report` (the iterations), so a page's size is bounded.
    async fn list_generations(
        &self,
        status: Option<crate::generation::GenerationStatus>,
        page: crate::page::PageRequest,
    ) -> Result<crate::page::Page<crate::generation::Generation>>;
    /// Marks a running generation `cancelled`, with `error` saying who
    /// stopped it, and cancels its task (the worker running it stops at
    /// its next heartbeat), audited; a finished one is a
    /// [`crate::Error::Conflict`], an unknown one [`crate::Error::NotFound`].
    async fn cancel_generation(
        &self,
        id: i64,
        error: &str,
        audit: NewAudit,
    ) -> Result<crate::generation::Generation>;
}

/// Agents' workspaces, carried between hosts as versioned archives (a
/// run restores the latest where it lands, and saves what it left). Only
/// the latest [`KEPT_WORKSPACE_ARCHIVES`] versions of an agent are kept;
/// deleting the agent deletes them all, in the same transaction.
#[async_trait]
pub trait WorkspaceArchiveStore: Send + Sync {
    /// Stores `bytes` (whose SHA-256 is `sha256`) as the agent's next
    /// version, unless its latest version has that hash already
    /// ([`ArchiveSave::Unchanged`], nothing written); prunes older
    /// versions. An unknown agent is [`crate::Error::NotFound`].
    async fn save_workspace_archive(
        &self,
        agent: AgentId,
        sha256: &str,
        bytes: Vec<u8>,
        saved_by_task: Option<TaskId>,
    ) -> Result<ArchiveSave>;
    /// The latest version's metadata, if the agent has one.
    async fn latest_workspace_archive(&self, agent: AgentId) -> Result<Option<WorkspaceArchive>>;
    /// The bytes of one version, if it is still kept.
    async fn workspace_archive_bytes(
        &self,
        agent: AgentId,
        version: i64,
    ) -> Result<Option<Vec<u8>>>;
}

/// Versions of a workspace kept per agent: the latest, and a few before
/// it to look back at by hand (a run only ever restores the latest).
pub const KEPT_WORKSPACE_ARCHIVES: i64 = 3;

/// Everything a service needs from persistence.
#[async_trait]
pub trait Store:
    AgentStore
    + TaskStore
    + TokenStore
    + AuditStore
    + ScheduleStore
    + SecretStore
    + GenerationStore
    + WorkspaceArchiveStore
{
    /// Whether the database answers.
    async fn ping(&self) -> Result<()>;
    /// "sqlite" or "postgres".
    fn backend(&self) -> &'static str;
    /// Forwards the database's own "task queued" notifications (PostgreSQL
    /// LISTEN/NOTIFY) to `wake`, so workers on other nodes start at once.
    /// A no-op on SQLite, where all workers share the process.
    async fn listen(&self, wake: std::sync::Arc<tokio::sync::Notify>) -> Result<()>;
    /// Tells every process on the database that secrets changed (a write,
    /// a delete, `p38 secret reload`), so each drops its secret cache at
    /// once rather than when the cache's TTL runs out. PostgreSQL NOTIFY;
    /// a no-op on SQLite, where one process holds the only cache.
    async fn announce_secrets_changed(&self) -> Result<()>;
    /// Forwards those announcements, from any process, to `changed`. A
    /// no-op on SQLite.
    async fn listen_secrets(&self, changed: std::sync::Arc<tokio::sync::Notify>) -> Result<()>;
}

/// Wakes workers when a task is queued, so a run starts at once instead of
/// at the next poll. In one process this is an in-memory signal; across
/// nodes the store's own notification channel.
pub trait QueueSignal: Send + Sync {
    /// A task became due.
    fn task_queued(&self);
    /// An agent's schedule or status changed: the scheduler recomputes
    /// when to wake.
    fn schedule_changed(&self) {}
    /// A running task was cancelled or its agent deleted: workers check at
    /// once which of their runs to stop, instead of at their next heartbeat.
    fn task_stopped(&self) {}
}

/// A signal that wakes nobody, for processes without local workers (the
/// workers then find tasks by polling).
pub struct NoSignal;

impl QueueSignal for NoSignal {
    fn task_queued(&self) {}
}

//! Tasks and the durable queue. A task is claimed by one statement that
//! marks it running, names the worker and sets a lease; on PostgreSQL the
//! candidate rows are locked with `FOR UPDATE SKIP LOCKED` so any number of
//! workers can claim side by side without blocking each other; SQLite runs
//! one writer at a time, so the same statement cannot double-claim there.
//! The claim does not ask whether a task's agent may run: the worker does,
//! right after claiming, with the one definition (`Agent::may_run` in
//! p38-core, whose module says why).

use std::time::Duration;

use async_trait::async_trait;

use p38_core::agent::AgentId;
use p38_core::audit::NewAudit;
use p38_core::generation::GENERATION_ATTEMPTS;
use p38_core::page::{Page, PageRequest};
use p38_core::store::TaskStore;
use p38_core::task::{
    FinishedRun, NewTask, Task, TaskId, TaskKind, TaskOutcome, TaskOutput, TaskStatus, TaskSummary,
    TaskTarget, Trigger,
};
use p38_core::time::{Timestamp, from_millis, now, to_millis};
use p38_core::{Error, Result};

use crate::audit::insert_audit;
use crate::rows::{self, task_cols, task_summary_cols, to_json};
use crate::{Backend, SqlStore, db_err};

/// Runs of one agent are limited to its `max_concurrency` (default 1): a
/// task is claimable only while fewer than that many runs of its agent are
/// running or ahead of it in the queue. No-op tasks, which start no
/// process, are exempt so the queue itself can be measured. Both counts are
/// capped (`LIMIT 16`, the largest setting), so a long backlog costs a
/// bounded probe per candidate. On PostgreSQL this also closes the race
/// between workers: a competitor that finds the earlier tasks locked still
/// counts them as ahead in its snapshot, and a task claimed meanwhile fails
/// the re-check of `status = 'queued'`.
macro_rules! per_agent_limit {
    () => {
        concat!(
            "AND (t.kind = 'noop' OR (",
            "(SELECT COUNT(*) FROM (SELECT 1 FROM tasks r WHERE r.agent_id = t.agent_id AND r.status = 'running' AND r.kind = 'agent' LIMIT 16) AS running_runs) ",
            "+ (SELECT COUNT(*) FROM (SELECT 1 FROM tasks e WHERE e.agent_id = t.agent_id AND e.status = 'queued' AND e.kind = 'agent' ",
            "AND e.scheduled_at <= $2 AND e.id < t.id LIMIT 16) AS earlier_runs) ",
            "< (SELECT a.max_concurrency FROM agents a WHERE a.id = t.agent_id))) "
        )
    };
}

/// The one claim statement: marks up to `$4` due queued tasks that pass
/// the filter running for worker `$1` with a lease until `$3`, earliest
/// first. The lock is `FOR UPDATE SKIP LOCKED` on PostgreSQL, so workers
/// claim side by side; SQLite has one writer at a time.
macro_rules! claim_sql {
    ($lock:literal, $($filter:tt)+) => {
        concat!(
            "UPDATE tasks SET status = 'running', worker = $1, started_at = $2, lease_until = $3, stdout = NULL, stderr = NULL, logs = NULL ",
            "WHERE id IN (SELECT t.id FROM tasks t WHERE t.status = 'queued' AND t.scheduled_at <= $2 ",
            $($filter)+,
            "ORDER BY t.scheduled_at, t.id LIMIT $4 ",
            $lock,
            ") RETURNING ",
            task_cols!()
        )
    };
}

/// Attempts after which an agent run whose worker keeps vanishing is failed.
const MAX_LEASE_ATTEMPTS: i64 = 5;

/// An agent may print or raise text holding NUL characters, which
/// PostgreSQL cannot store in text: they become U+FFFD (on SQLite too, so
/// both backends keep the same text). JSON columns escape them anyway.
fn without_nul(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s
    }
}

pub(crate) fn lease_end(lease: Duration) -> i64 {
    to_millis(now()) + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 4)
}

#[async_trait]
impl TaskStore for SqlStore {
    async fn enqueue(&self, new: NewTask, audit: Option<NewAudit>) -> Result<Task> {
        let mut tx = self.begin().await?;
        let task = insert_task(&mut tx, &new).await?;
        self.notify_queued(&mut tx).await?;
        if let Some(a) = audit {
            let a = NewAudit {
                target: format!("task:{}", task.id),
                ..a
            };
            insert_audit(&mut tx, &a).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(task)
    }

    async fn get_task(&self, id: TaskId) -> Result<Option<Task>> {
        sqlx::query(concat!(
            "SELECT ",
            task_cols!(),
            " FROM tasks WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(|r| rows::task(&r))
        .transpose()
    }

    async fn list_tasks(
        &self,
        agent: AgentId,
        status: Option<TaskStatus>,
        page: PageRequest,
    ) -> Result<Page<TaskSummary>> {
        let before = page.before.unwrap_or(i64::MAX);
        let fetch = i64::from(page.limit) + 1;
        // Two static statements rather than `($2 IS NULL OR ...)`: each uses
        // its own index as a range scan, also under a generic plan.
        let q = match status {
            None => sqlx::query(concat!("SELECT ", task_summary_cols!(), " FROM tasks WHERE agent_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"))
                .bind(agent)
                .bind(before)
                .bind(fetch),
            Some(s) => sqlx::query(concat!("SELECT ", task_summary_cols!(), " FROM tasks WHERE agent_id = $1 AND status = $2 AND id < $3 ORDER BY id DESC LIMIT $4"))
                .bind(agent)
                .bind(s.as_str())
                .bind(before)
                .bind(fetch),
        };
        let rows = q.fetch_all(&self.pool).await.map_err(db_err)?;
        let tasks = rows
            .iter()
            .map(rows::task_summary)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(tasks, page.limit, |t| t.id))
    }

    async fn recent_finished(&self, agent: AgentId, n: u32) -> Result<Vec<TaskSummary>> {
        let rows = sqlx::query(concat!(
            "SELECT ", task_summary_cols!(),
            " FROM tasks WHERE agent_id = $1 AND status IN ('succeeded', 'failed', 'timed_out', 'cancelled') ORDER BY id DESC LIMIT $2"
        ))
        .bind(agent)
        .bind(i64::from(n))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(rows::task_summary).collect()
    }

    async fn cancel_task(&self, id: TaskId, audit: NewAudit) -> Result<Task> {
        let mut tx = self.begin().await?;
        let t = to_millis(now());
        let row = sqlx::query(concat!(
            "UPDATE tasks SET status = 'cancelled', completed_at = $2, error = 'cancelled by user', lease_until = NULL, ",
            "duration_ms = CASE WHEN started_at IS NULL THEN NULL ELSE $2 - started_at END ",
            "WHERE id = $1 AND status IN ('queued', 'running') RETURNING ",
            task_cols!()
        ))
        .bind(id)
        .bind(t)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let task = match row {
            Some(r) => rows::task(&r)?,
            None => {
                drop(tx);
                return Err(match self.get_task(id).await? {
                    None => Error::not_found("task", id),
                    Some(t) => Error::conflict(
                        "status",
                        format!(
                            "task {id} already ended ({}); nothing to cancel",
                            t.status.as_str()
                        ),
                    ),
                });
            }
        };
        // A generation's task ends with its generation: neither stays
        // running without the other.
        if let TaskTarget::Generation { generation_id } = task.target {
            crate::generations::cancel_with_task(&mut tx, generation_id, "cancelled by user")
                .await?;
        }
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(task)
    }

    async fn claim(&self, worker: &str, limit: u32, lease: Duration) -> Result<Vec<Task>> {
        let sql = match self.backend {
            Backend::Postgres => claim_sql!(
                "FOR UPDATE SKIP LOCKED",
                "AND t.kind IN ('agent', 'noop') ",
                per_agent_limit!()
            ),
            Backend::Sqlite => {
                claim_sql!("", "AND t.kind IN ('agent', 'noop') ", per_agent_limit!())
            }
        };
        self.claim_with(sql, worker, limit, lease).await
    }

    async fn claim_generations(
        &self,
        worker: &str,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<Task>> {
        let sql = match self.backend {
            Backend::Postgres => {
                claim_sql!("FOR UPDATE SKIP LOCKED", "AND t.kind = 'generation' ")
            }
            Backend::Sqlite => claim_sql!("", "AND t.kind = 'generation' "),
        };
        self.claim_with(sql, worker, limit, lease).await
    }

    async fn heartbeat(
        &self,
        worker: &str,
        ids: &[TaskId],
        lease: Duration,
    ) -> Result<Vec<TaskId>> {
        let until = lease_end(lease);
        let mut lost = Vec::new();
        for &id in ids {
            let done = sqlx::query("UPDATE tasks SET lease_until = $3 WHERE id = $1 AND worker = $2 AND status = 'running'")
                .bind(id)
                .bind(worker)
                .bind(until)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
            if done.rows_affected() == 0 {
                lost.push(id);
            }
        }
        Ok(lost)
    }

    async fn complete(&self, id: TaskId, worker: &str, run: FinishedRun) -> Result<bool> {
        let FinishedRun {
            outcome,
            figures: f,
        } = run;
        let status = outcome.status();
        let error = outcome.error();
        let retry_at = outcome.retry_at();
        let (result, new_state) = match outcome {
            TaskOutcome::Succeeded { result, new_state } => (result, new_state),
            _ => (None, None),
        };
        // Without state to save or a retry to queue, one statement is the
        // whole transaction: one round trip instead of three.
        let saves_more = new_state.is_some() || retry_at.is_some();
        let tx = if saves_more {
            Some(self.begin().await?)
        } else {
            None
        };
        let update = sqlx::query(concat!(
            "UPDATE tasks SET status = $3, completed_at = $4, result = $5, stdout = $6, stderr = $7, logs = $8, error = $9, ",
            "exit_code = $10, signal = $11, duration_ms = $12, cpu_ms = $13, peak_memory_kb = $14, unsandboxed = $15, lease_until = NULL ",
            "WHERE id = $1 AND worker = $2 AND status = 'running'"
        ))
        .bind(id)
        .bind(worker)
        .bind(status.as_str())
        .bind(to_millis(now()))
        .bind(result.as_ref().map(to_json))
        .bind(f.stdout.map(without_nul))
        .bind(f.stderr.map(without_nul))
        .bind(f.logs.as_ref().map(to_json))
        .bind(error.map(without_nul))
        .bind(f.exit_code)
        .bind(f.signal)
        .bind(f.duration_ms)
        .bind(f.cpu_ms)
        .bind(f.peak_memory_kb)
        .bind(f.unsandboxed as i64);
        let Some(mut tx) = tx else {
            let done = update.execute(&self.pool).await.map_err(db_err)?;
            return Ok(done.rows_affected() == 1);
        };
        let done = update.execute(&mut *tx).await.map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        if let Some(state) = &new_state {
            sqlx::query(concat!(
                "INSERT INTO agent_state (agent_id, state, run_count, updated_at) ",
                "SELECT agent_id, $2, 1, $3 FROM tasks WHERE id = $1 ",
                "ON CONFLICT (agent_id) DO UPDATE SET state = excluded.state, run_count = agent_state.run_count + 1, updated_at = excluded.updated_at"
            ))
            .bind(id)
            .bind(to_json(state))
            .bind(to_millis(now()))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        if let Some(at) = retry_at {
            let row = sqlx::query(
                "SELECT agent_id, agent_version, attempt, retry_of, kind FROM tasks WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
            use sqlx::Row;
            let retry = NewTask {
                agent_id: row.try_get("agent_id").map_err(db_err)?,
                agent_version: row.try_get("agent_version").map_err(db_err)?,
                trigger: Trigger::Retry,
                kind: row.try_get::<String, _>("kind").map_err(db_err)?.parse()?,
                attempt: row.try_get::<i64, _>("attempt").map_err(db_err)? + 1,
                retry_of: Some(
                    row.try_get::<Option<i64>, _>("retry_of")
                        .map_err(db_err)?
                        .unwrap_or(id),
                ),
                scheduled_at: at,
            };
            insert_task(&mut tx, &retry).await?;
            self.notify_queued(&mut tx).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn save_output(&self, id: TaskId, worker: &str, o: TaskOutput) -> Result<bool> {
        // One statement, whose size is bounded by the caps the output
        // already has; a task that ended otherwise is left as it is.
        let done = sqlx::query(
            "UPDATE tasks SET stdout = $3, stderr = $4, logs = $5 WHERE id = $1 AND worker = $2 AND status IN ('running', 'cancelled')",
        )
        .bind(id)
        .bind(worker)
        .bind(without_nul(o.stdout))
        .bind(without_nul(o.stderr))
        .bind(to_json(&o.logs))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn complete_noops(&self, worker: &str, ids: &[TaskId]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        // One statement for the whole batch; the ids are bound, only the
        // placeholder list is built here.
        let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "UPDATE tasks SET status = 'succeeded', completed_at = $2, duration_ms = 0, lease_until = NULL \
             WHERE worker = $1 AND status = 'running' AND kind = 'noop' AND id IN ({})",
            placeholders.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(worker)
            .bind(to_millis(now()));
        for id in ids {
            q = q.bind(*id);
        }
        let done = q.execute(&self.pool).await.map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn requeue_expired(&self) -> Result<u64> {
        let t = to_millis(now());
        // A task whose worker vanished again and again is likely what kills
        // its workers: stop re-running it. A generation fails with its
        // task, first, so that it never stays `running` without one.
        sqlx::query(
            "UPDATE generations SET status = 'failed', stage = 'failed', updated_at = $1, \
             error = 'interrupted ' || (SELECT t.attempt FROM tasks t WHERE t.generation_id = generations.id AND t.status = 'running') \
             || ' times: the worker running it stopped each time; start it again' \
             WHERE status = 'running' AND id IN (SELECT generation_id FROM tasks \
             WHERE status = 'running' AND kind = 'generation' AND lease_until < $1 AND attempt >= $2)",
        )
        .bind(t)
        .bind(GENERATION_ATTEMPTS)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "UPDATE tasks SET status = 'failed', completed_at = $1, lease_until = NULL, \
             error = CASE WHEN kind = 'generation' \
             THEN 'abandoned: its worker stopped renewing the lease on ' || attempt || ' attempts (the generation may be what ends its worker)' \
             ELSE 'abandoned: its worker stopped renewing the lease on 5 attempts (the run may be what ends its worker)' END \
             WHERE status = 'running' AND lease_until < $1 \
             AND attempt >= CASE WHEN kind = 'generation' THEN $3 ELSE $2 END",
        )
        .bind(t)
        .bind(MAX_LEASE_ATTEMPTS)
        .bind(GENERATION_ATTEMPTS)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        let done = sqlx::query(
            "UPDATE tasks SET status = 'queued', worker = NULL, lease_until = NULL, attempt = attempt + 1, stdout = NULL, stderr = NULL, logs = NULL WHERE status = 'running' AND lease_until < $1",
        )
        .bind(t)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn release(&self, worker: &str, ids: &[TaskId]) -> Result<u64> {
        let mut n = 0;
        for &id in ids {
            let done = sqlx::query("UPDATE tasks SET status = 'queued', worker = NULL, lease_until = NULL, started_at = NULL, stdout = NULL, stderr = NULL, logs = NULL WHERE id = $1 AND worker = $2 AND status = 'running'")
                .bind(id)
                .bind(worker)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
            n += done.rows_affected();
        }
        if n > 0 && self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(crate::TASKS_CHANNEL)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
        }
        Ok(n)
    }

    async fn next_due(&self) -> Result<Option<Timestamp>> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT scheduled_at FROM tasks WHERE status = 'queued' ORDER BY scheduled_at LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.map(|(ms,)| from_millis(ms)))
    }
}

/// Inserts a queued run of an agent inside the caller's transaction.
pub(crate) async fn insert_task(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    new: &NewTask,
) -> Result<Task> {
    if new.kind == TaskKind::Generation {
        return Err(Error::internal(
            "a generation's task is queued with its generation (create_generation), not as an agent's run",
        ));
    }
    let row = sqlx::query(concat!(
        "INSERT INTO tasks (agent_id, agent_version, status, trigger_kind, kind, attempt, retry_of, scheduled_at, created_at) ",
        "VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $8) RETURNING ",
        task_cols!()
    ))
    .bind(new.agent_id)
    .bind(new.agent_version)
    .bind(new.trigger.as_str())
    .bind(new.kind.as_str())
    .bind(new.attempt)
    .bind(new.retry_of)
    .bind(to_millis(new.scheduled_at))
    .bind(to_millis(now()))
    .fetch_one(&mut **tx)
    .await
    .map_err(db_err)?;
    rows::task(&row)
}

impl SqlStore {
    /// Runs one of the claim statements (`claim_sql!`).
    async fn claim_with(
        &self,
        sql: &'static str,
        worker: &str,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<Task>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(sql)
            .bind(worker)
            .bind(to_millis(now()))
            .bind(lease_end(lease))
            .bind(i64::from(limit))
            .fetch_all(&self.claim_pool)
            .await
            .map_err(db_err)?;
        let mut tasks = rows.iter().map(rows::task).collect::<Result<Vec<_>>>()?;
        tasks.sort_by_key(|t| (t.scheduled_at, t.id));
        Ok(tasks)
    }

    /// Tells listening workers on other nodes that a task was queued
    /// (delivered when the transaction commits). SQLite workers share the
    /// process and are woken directly.
    pub(crate) async fn notify_queued(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    ) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(crate::TASKS_CHANNEL)
                .execute(&mut **tx)
                .await
                .map_err(db_err)?;
        }
        Ok(())
    }
}

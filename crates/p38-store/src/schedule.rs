//! The scheduler's queries: due agents, firing as a compare-and-set on
//! `next_fire_at`, and the lease row that elects one scheduler. Their
//! `status = 'active'` is `AgentStatus::fires_on_schedule` (p38-core) as a
//! column test; the next firing itself is `Schedule::next_firing`.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;

use p38_core::agent::AgentId;
use p38_core::schedule::Schedule;
use p38_core::store::{DueAgent, FireResult, ScheduleStore};
use p38_core::task::NewTask;
use p38_core::time::{Timestamp, from_millis, now, to_millis};
use p38_core::{Error, Result};

use crate::tasks::insert_task;
use crate::{SqlStore, db_err};

#[async_trait]
impl ScheduleStore for SqlStore {
    async fn due_agents(&self, at: Timestamp, limit: u32) -> Result<Vec<DueAgent>> {
        let rows = sqlx::query(
            "SELECT id, version, schedule, settings, next_fire_at FROM agents \
             WHERE next_fire_at IS NOT NULL AND next_fire_at <= $1 AND status = 'active' AND schedule IS NOT NULL \
             ORDER BY next_fire_at LIMIT $2",
        )
        .bind(to_millis(at))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let settings: String = r.try_get("settings").map_err(db_err)?;
                Ok(DueAgent {
                    id: r.try_get("id").map_err(db_err)?,
                    version: r.try_get("version").map_err(db_err)?,
                    schedule: Schedule::parse(&r.try_get::<String, _>("schedule").map_err(db_err)?)
                        .map_err(|e| e.to_string()),
                    settings: serde_json::from_str(&settings)
                        .map_err(|e| Error::internal_source("corrupt settings in store", e))?,
                    next_fire_at: from_millis(r.try_get("next_fire_at").map_err(db_err)?),
                })
            })
            .collect()
    }

    async fn fire(
        &self,
        agent: AgentId,
        expected: Timestamp,
        next: Option<Timestamp>,
        task: Option<NewTask>,
        skip_if_busy: bool,
    ) -> Result<FireResult> {
        let mut tx = self.begin().await?;
        let moved = sqlx::query("UPDATE agents SET next_fire_at = $3 WHERE id = $1 AND next_fire_at = $2 AND status = 'active'")
            .bind(agent)
            .bind(to_millis(expected))
            .bind(next.map(to_millis))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if moved.rows_affected() == 0 {
            return Ok(FireResult::Lost);
        }
        let Some(task) = task else {
            tx.commit().await.map_err(db_err)?;
            return Ok(FireResult::Skipped);
        };
        if skip_if_busy {
            let busy: Option<(i64,)> = sqlx::query_as("SELECT id FROM tasks WHERE agent_id = $1 AND status IN ('queued', 'running') AND kind = 'agent' LIMIT 1")
                .bind(agent)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            if busy.is_some() {
                tx.commit().await.map_err(db_err)?;
                return Ok(FireResult::Skipped);
            }
        }
        let t = insert_task(&mut tx, &task).await?;
        self.notify_queued(&mut tx).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(FireResult::Queued(t.id))
    }

    async fn next_fire_time(&self) -> Result<Option<Timestamp>> {
        let row: Option<(Option<i64>,)> = sqlx::query_as(
            "SELECT MIN(next_fire_at) FROM agents WHERE next_fire_at IS NOT NULL AND status = 'active' AND schedule IS NOT NULL",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.and_then(|(m,)| m).map(from_millis))
    }

    async fn try_lead(&self, holder: &str, lease: Duration) -> Result<bool> {
        let t = to_millis(now());
        let until = t + i64::try_from(lease.as_millis()).unwrap_or(60_000);
        let done = sqlx::query(
            "INSERT INTO scheduler_lease (id, holder, until) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, until = excluded.until \
             WHERE scheduler_lease.holder = excluded.holder OR scheduler_lease.until < $3",
        )
        .bind(holder)
        .bind(until)
        .bind(t)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn resign(&self, holder: &str) -> Result<()> {
        sqlx::query("UPDATE scheduler_lease SET until = 0 WHERE id = 1 AND holder = $1")
            .bind(holder)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

//! Generations and their progress.

use std::time::Duration;

use async_trait::async_trait;

use p38_core::Result;
use p38_core::audit::NewAudit;
use p38_core::generation::{Generation, GenerationProgress, GenerationStatus};
use p38_core::store::GenerationStore;
use p38_core::time::{now, to_millis};

use crate::audit::insert_audit;
use crate::rows::{self, to_json};
use crate::tasks::lease_end;
use crate::{SqlStore, db_err};

/// The generation columns every generation query selects.
macro_rules! generation_cols {
    () => {
        "id, description, status, stage, iteration, findings, cost_usd, input_tokens, output_tokens, model, report, error, agent_id, created_by, created_at, updated_at, overrides"
    };
}

#[async_trait]
impl GenerationStore for SqlStore {
    async fn create_generation(
        &self,
        description: &str,
        overrides: &p38_core::generation::GenerationOverrides,
        model: &str,
        created_by: &str,
        owner: &str,
        lease: Duration,
        audit: NewAudit,
    ) -> Result<Generation> {
        let mut tx = self.begin().await?;
        let t = to_millis(now());
        let row = sqlx::query(concat!(
            "INSERT INTO generations (description, status, stage, model, created_by, created_at, updated_at, owner, lease_until, overrides) \
             VALUES ($1, 'running', 'queued', $2, $3, $4, $4, $5, $6, $7) RETURNING ",
            generation_cols!()
        ))
        .bind(description)
        .bind(model)
        .bind(created_by)
        .bind(t)
        .bind(owner)
        .bind(lease_end(lease))
        .bind(to_json(overrides))
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let g = rows::generation(&row)?;
        insert_audit(
            &mut tx,
            &NewAudit {
                target: format!("generation:{}", g.id),
                ..audit
            },
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(g)
    }

    async fn generation_progress(
        &self,
        id: i64,
        owner: &str,
        p: &GenerationProgress,
    ) -> Result<bool> {
        let done = sqlx::query("UPDATE generations SET stage = $2, iteration = $3, findings = $4, cost_usd = $5, input_tokens = $6, output_tokens = $7, updated_at = $8 WHERE id = $1 AND owner = $9 AND status = 'running'")
            .bind(id)
            .bind(&p.stage)
            .bind(p.iteration)
            .bind(p.findings)
            .bind(p.cost_usd)
            .bind(p.input_tokens)
            .bind(p.output_tokens)
            .bind(to_millis(now()))
            .bind(owner)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn finish_generation(
        &self,
        id: i64,
        owner: &str,
        status: GenerationStatus,
        report: &serde_json::Value,
        error: Option<&str>,
        agent_id: Option<i64>,
    ) -> Result<bool> {
        let stage = if status == GenerationStatus::Succeeded {
            "done"
        } else {
            "failed"
        };
        let done = sqlx::query("UPDATE generations SET status = $2, stage = $3, report = $4, error = $5, agent_id = $6, updated_at = $7, lease_until = NULL WHERE id = $1 AND owner = $8 AND status = 'running'")
            .bind(id)
            .bind(status.as_str())
            .bind(stage)
            .bind(to_json(report))
            .bind(error)
            .bind(agent_id)
            .bind(to_millis(now()))
            .bind(owner)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn get_generation(&self, id: i64) -> Result<Option<Generation>> {
        let sql = concat!(
            "SELECT ",
            generation_cols!(),
            " FROM generations WHERE id = $1"
        );
        sqlx::query(sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .map(|r| rows::generation(&r))
            .transpose()
    }

    async fn renew_generation(&self, id: i64, owner: &str, lease: Duration) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE generations SET lease_until = $3 WHERE id = $1 AND status = 'running' AND owner = $2",
        )
        .bind(id)
        .bind(owner)
        .bind(lease_end(lease))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn take_over_generation(
        &self,
        owner: &str,
        lease: Duration,
        max_attempts: i64,
    ) -> Result<Option<Generation>> {
        let t = to_millis(now());
        // Out of attempts: it keeps taking its process down, or the model
        // keeps hanging; say so rather than try forever.
        sqlx::query(
            "UPDATE generations SET status = 'failed', stage = 'failed', updated_at = $1, \
             error = 'interrupted ' || attempts || ' times: the process running it stopped each time; start it again' \
             WHERE status = 'running' AND lease_until < $1 AND attempts >= $2",
        )
        .bind(t)
        .bind(max_attempts)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        // A compare-and-set on the lapsed lease: of two processes taking
        // over at once, the second finds the lease renewed and gets nothing.
        let row = sqlx::query(concat!(
            "UPDATE generations SET owner = $1, lease_until = $2, attempts = attempts + 1, stage = 'queued', updated_at = $3 \
             WHERE id = (SELECT id FROM generations WHERE status = 'running' AND lease_until < $3 AND attempts < $4 ORDER BY id LIMIT 1) \
             AND status = 'running' AND lease_until < $3 AND attempts < $4 RETURNING ",
            generation_cols!()
        ))
        .bind(owner)
        .bind(lease_end(lease))
        .bind(t)
        .bind(max_attempts)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(|r| rows::generation(&r)).transpose()
    }
}

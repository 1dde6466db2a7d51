//! Generations and their progress.

use std::time::Duration;

use async_trait::async_trait;

use p38_core::audit::NewAudit;
use p38_core::generation::{Generation, GenerationProgress, GenerationStage, GenerationStatus};
use p38_core::page::{Page, PageRequest};
use p38_core::store::GenerationStore;
use p38_core::time::{now, to_millis};
use p38_core::{Error, Result};

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

/// The same columns without the report, for listings.
macro_rules! generation_summary_cols {
    () => {
        "id, description, status, stage, iteration, findings, cost_usd, input_tokens, output_tokens, model, NULL AS report, error, agent_id, created_by, created_at, updated_at, overrides"
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
        let done = sqlx::query("UPDATE generations SET stage = $2, iteration = $3, findings = $4, cost_usd = $5, input_tokens = $6, output_tokens = $7, updated_at = $8, report = COALESCE($10, report) WHERE id = $1 AND owner = $9 AND status = 'running'")
            .bind(id)
            .bind(p.stage.as_str())
            .bind(p.iteration)
            .bind(p.findings)
            .bind(p.cost_usd)
            .bind(p.input_tokens)
            .bind(p.output_tokens)
            .bind(to_millis(now()))
            .bind(owner)
            .bind(p.report.as_ref().map(to_json))
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
        let stage = match status {
            GenerationStatus::Succeeded => GenerationStage::Done,
            GenerationStatus::Cancelled => GenerationStage::Cancelled,
            GenerationStatus::Running | GenerationStatus::Failed => GenerationStage::Failed,
        }
        .as_str();
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

    async fn list_generations(
        &self,
        status: Option<GenerationStatus>,
        page: PageRequest,
    ) -> Result<Page<Generation>> {
        let before = page.before.unwrap_or(i64::MAX);
        let fetch = i64::from(page.limit) + 1;
        let q = match status {
            None => sqlx::query(concat!(
                "SELECT ",
                generation_summary_cols!(),
                " FROM generations WHERE id < $1 ORDER BY id DESC LIMIT $2"
            ))
            .bind(before)
            .bind(fetch),
            Some(s) => sqlx::query(concat!(
                "SELECT ",
                generation_summary_cols!(),
                " FROM generations WHERE status = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
            ))
            .bind(s.as_str())
            .bind(before)
            .bind(fetch),
        };
        let rows = q.fetch_all(&self.pool).await.map_err(db_err)?;
        let items = rows
            .iter()
            .map(rows::generation)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(items, page.limit, |g| g.id))
    }

    async fn cancel_generation(&self, id: i64, error: &str, audit: NewAudit) -> Result<Generation> {
        let mut tx = self.begin().await?;
        // Whoever runs it: its lease renewal and its progress writes fail
        // from now on (they require `running`), which stops its loop.
        let row = sqlx::query(concat!(
            "UPDATE generations SET status = 'cancelled', stage = 'cancelled', error = $2, updated_at = $3, lease_until = NULL \
             WHERE id = $1 AND status = 'running' RETURNING ",
            generation_cols!()
        ))
        .bind(id)
        .bind(error)
        .bind(to_millis(now()))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let g = match row {
            Some(r) => rows::generation(&r)?,
            None => {
                drop(tx);
                return Err(match self.get_generation(id).await? {
                    None => Error::not_found("generation", id),
                    Some(g) => Error::conflict(
                        "status",
                        format!(
                            "generation {id} already ended ({}); nothing to cancel",
                            g.status.as_str()
                        ),
                    ),
                });
            }
        };
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(g)
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

#[cfg(test)]
mod tests {
    use p38_core::generation::GenerationStage;

    /// The stages this file's SQL writes as literals are stages there are.
    #[test]
    fn the_stages_written_in_sql_are_generation_stages() {
        let src = include_str!("generations.rs");
        for literal in [
            "stage = 'cancelled'",
            "stage = 'failed'",
            "stage = 'queued'",
            "'running', 'queued'",
        ] {
            assert!(src.contains(literal), "{literal}");
        }
        for s in ["cancelled", "failed", "queued"] {
            assert!(s.parse::<GenerationStage>().is_ok(), "{s}");
        }
    }
}

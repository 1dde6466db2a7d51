//! Generations and their progress.

use async_trait::async_trait;

use p38_core::audit::NewAudit;
use p38_core::generation::{
    Generation, GenerationFinish, GenerationProgress, GenerationStage, GenerationStatus,
};
use p38_core::page::{Page, PageRequest};
use p38_core::store::GenerationStore;
use p38_core::task::TaskId;
use p38_core::time::{now, to_millis};
use p38_core::{Error, Result};

use crate::audit::insert_audit;
use crate::rows::{self, to_json};
use crate::{SqlStore, db_err};

/// The generation's task (one per generation: a worker that stops hands
/// the same task to the next).
macro_rules! task_id_col {
    () => {
        "(SELECT MAX(t.id) FROM tasks t WHERE t.generation_id = generations.id) AS task_id"
    };
}

/// The generation columns every generation query selects.
macro_rules! generation_cols {
    () => {
        concat!(
            "id, description, status, stage, iteration, findings, cost_usd, input_tokens, output_tokens, model, report, error, agent_id, created_by, created_at, updated_at, overrides, ",
            task_id_col!()
        )
    };
}

/// The same columns without the report, for listings.
macro_rules! generation_summary_cols {
    () => {
        concat!(
            "id, description, status, stage, iteration, findings, cost_usd, input_tokens, output_tokens, model, NULL AS report, error, agent_id, created_by, created_at, updated_at, overrides, ",
            task_id_col!()
        )
    };
}

/// The running generation of task `$task` while worker `$worker` holds
/// that task: the task's lease is the generation's (a macro so that
/// `concat!` can build static SQL from it).
macro_rules! held_generation {
    ($task:literal, $worker:literal) => {
        concat!(
            "id = (SELECT generation_id FROM tasks WHERE id = ",
            $task,
            " AND worker = ",
            $worker,
            " AND status = 'running') AND status = 'running'"
        )
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
        audit: NewAudit,
    ) -> Result<Generation> {
        let mut tx = self.begin().await?;
        let t = to_millis(now());
        let row = sqlx::query(concat!(
            "INSERT INTO generations (description, status, stage, model, created_by, created_at, updated_at, overrides) \
             VALUES ($1, 'running', 'queued', $2, $3, $4, $4, $5) RETURNING ",
            generation_cols!()
        ))
        .bind(description)
        .bind(model)
        .bind(created_by)
        .bind(t)
        .bind(to_json(overrides))
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let mut g = rows::generation(&row)?;
        // Its task: a worker with free generation slots claims it.
        let (task_id,): (i64,) = sqlx::query_as(
            "INSERT INTO tasks (generation_id, status, trigger_kind, kind, attempt, scheduled_at, created_at) \
             VALUES ($1, 'queued', 'manual', 'generation', 1, $2, $2) RETURNING id",
        )
        .bind(g.id)
        .bind(t)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        g.task_id = Some(task_id);
        self.notify_queued(&mut tx).await?;
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
        task: TaskId,
        worker: &str,
        p: &GenerationProgress,
    ) -> Result<bool> {
        let done = sqlx::query(concat!(
            "UPDATE generations SET stage = $2, iteration = $3, findings = $4, cost_usd = $5, input_tokens = $6, output_tokens = $7, updated_at = $8, report = COALESCE($10, report) WHERE ",
            held_generation!("$1", "$9")
        ))
        .bind(task)
        .bind(p.stage.as_str())
        .bind(p.iteration)
        .bind(p.findings)
        .bind(p.cost_usd)
        .bind(p.input_tokens)
        .bind(p.output_tokens)
        .bind(to_millis(now()))
        .bind(worker)
        .bind(p.report.as_ref().map(to_json))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn finish_generation(
        &self,
        task: TaskId,
        worker: &str,
        end: &GenerationFinish,
    ) -> Result<bool> {
        let (status, stage, report, error, agent_id) = match end {
            GenerationFinish::Succeeded { report, agent_id } => (
                GenerationStatus::Succeeded,
                GenerationStage::Done,
                report,
                None,
                Some(*agent_id),
            ),
            GenerationFinish::Failed { report, error } => (
                GenerationStatus::Failed,
                GenerationStage::Failed,
                report,
                Some(error.as_str()),
                None,
            ),
        };
        let done = sqlx::query(concat!(
            "UPDATE generations SET status = $2, stage = $3, report = $4, error = $5, agent_id = $6, updated_at = $7 WHERE ",
            held_generation!("$1", "$8")
        ))
        .bind(task)
        .bind(status.as_str())
        .bind(stage.as_str())
        .bind(to_json(report))
        .bind(error)
        .bind(agent_id)
        .bind(to_millis(now()))
        .bind(worker)
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
        // Whoever runs it: its progress writes fail from now on (they
        // require `running`), and so does its worker's next heartbeat on
        // the cancelled task, which stops its loop.
        let row = sqlx::query(concat!(
            "UPDATE generations SET status = 'cancelled', stage = 'cancelled', error = $2, updated_at = $3 \
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
        cancel_generation_task(&mut tx, id, error).await?;
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(g)
    }
}

/// Cancels the open task of generation `id`, inside the caller's
/// transaction, saying why.
async fn cancel_generation_task(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: i64,
    error: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE tasks SET status = 'cancelled', completed_at = $2, error = $3, lease_until = NULL, \
         duration_ms = CASE WHEN started_at IS NULL THEN NULL ELSE $2 - started_at END \
         WHERE generation_id = $1 AND status IN ('queued', 'running')",
    )
    .bind(id)
    .bind(to_millis(now()))
    .bind(error)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Cancels generation `id` with its task's cancel, inside the caller's
/// transaction (`POST /api/tasks/{id}/cancel` on a generation's task).
pub(crate) async fn cancel_with_task(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: i64,
    error: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE generations SET status = 'cancelled', stage = 'cancelled', error = $2, updated_at = $3 \
         WHERE id = $1 AND status = 'running'",
    )
    .bind(id)
    .bind(error)
    .bind(to_millis(now()))
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use p38_core::generation::GenerationStage;

    /// The stages the store's SQL writes as literals are stages there are
    /// (a generation fails with its abandoned task in `tasks.rs`).
    #[test]
    fn the_stages_written_in_sql_are_generation_stages() {
        let src = [include_str!("generations.rs"), include_str!("tasks.rs")].concat();
        for literal in [
            "stage = 'cancelled'",
            "stage = 'failed'",
            "'running', 'queued'",
        ] {
            assert!(src.contains(literal), "{literal}");
        }
        for s in ["cancelled", "failed", "queued"] {
            assert!(s.parse::<GenerationStage>().is_ok(), "{s}");
        }
    }
}

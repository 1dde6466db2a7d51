//! Agents' workspaces as versioned archives (see
//! `p38_core::store::WorkspaceArchiveStore`).

use async_trait::async_trait;
use sqlx::Row;

use p38_core::agent::AgentId;
use p38_core::store::{KEPT_WORKSPACE_ARCHIVES, WorkspaceArchiveStore};
use p38_core::task::TaskId;
use p38_core::time::{from_millis, now, to_millis};
use p38_core::workspace::{ArchiveSave, WorkspaceArchive};
use p38_core::{Error, Result};

use crate::{SqlStore, db_err};

/// The columns of an archive's metadata (all but its bytes).
macro_rules! meta_cols {
    () => {
        "agent_id, version, sha256, size_bytes, saved_by_task, created_at"
    };
}

fn meta(r: &sqlx::any::AnyRow) -> Result<WorkspaceArchive> {
    Ok(WorkspaceArchive {
        agent_id: r.try_get("agent_id").map_err(db_err)?,
        version: r.try_get("version").map_err(db_err)?,
        sha256: r.try_get("sha256").map_err(db_err)?,
        size_bytes: r.try_get("size_bytes").map_err(db_err)?,
        saved_by_task: r.try_get("saved_by_task").map_err(db_err)?,
        created_at: from_millis(r.try_get("created_at").map_err(db_err)?),
    })
}

/// The agent is gone (deleted while its run saved): say so, not "internal".
fn agent_gone(e: sqlx::Error, agent: AgentId) -> Error {
    match &e {
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
            Error::not_found("agent", agent)
        }
        _ => db_err(e),
    }
}

#[async_trait]
impl WorkspaceArchiveStore for SqlStore {
    async fn save_workspace_archive(
        &self,
        agent: AgentId,
        sha256: &str,
        bytes: Vec<u8>,
        saved_by_task: Option<TaskId>,
    ) -> Result<ArchiveSave> {
        // Two runs of one agent saving at once both pick the next version;
        // the primary key lets one win, and the other tries again on top.
        for _ in 0..3 {
            let latest = self.latest_workspace_archive(agent).await?;
            if let Some(l) = latest.as_ref().filter(|l| l.sha256 == sha256) {
                return Ok(ArchiveSave::Unchanged(l.clone()));
            }
            let version = latest.map_or(1, |l| l.version + 1);
            let mut tx = self.begin().await?;
            let inserted = sqlx::query(concat!(
                "INSERT INTO workspace_archives (agent_id, version, sha256, size_bytes, archive, saved_by_task, created_at) ",
                "SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM agents WHERE id = $1) RETURNING ",
                meta_cols!()
            ))
            .bind(agent)
            .bind(version)
            .bind(sha256)
            .bind(bytes.len() as i64)
            .bind(&bytes[..])
            .bind(saved_by_task)
            .bind(to_millis(now()))
            .fetch_optional(&mut *tx)
            .await;
            let row = match inserted {
                Ok(Some(row)) => row,
                Ok(None) => return Err(Error::not_found("agent", agent)),
                Err(sqlx::Error::Database(d)) if d.is_unique_violation() => continue,
                Err(e) => return Err(agent_gone(e, agent)),
            };
            let stored = meta(&row)?;
            sqlx::query("DELETE FROM workspace_archives WHERE agent_id = $1 AND version <= $2")
                .bind(agent)
                .bind(version - KEPT_WORKSPACE_ARCHIVES)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(|e| agent_gone(e, agent))?;
            return Ok(ArchiveSave::Stored(stored));
        }
        Err(Error::unavailable(format!(
            "saving the workspace of agent {agent}: other runs of it kept saving at the same moment; the next run saves it again"
        )))
    }

    async fn latest_workspace_archive(&self, agent: AgentId) -> Result<Option<WorkspaceArchive>> {
        sqlx::query(concat!(
            "SELECT ",
            meta_cols!(),
            " FROM workspace_archives WHERE agent_id = $1 ORDER BY version DESC LIMIT 1"
        ))
        .bind(agent)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(|r| meta(&r))
        .transpose()
    }

    async fn workspace_archive_bytes(
        &self,
        agent: AgentId,
        version: i64,
    ) -> Result<Option<Vec<u8>>> {
        let row: Option<(Vec<u8>,)> = sqlx::query_as(
            "SELECT archive FROM workspace_archives WHERE agent_id = $1 AND version = $2",
        )
        .bind(agent)
        .bind(version)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.map(|(b,)| b))
    }
}

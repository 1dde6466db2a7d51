//! The audit log.

use async_trait::async_trait;

use p38_core::Result;
use p38_core::audit::{AuditEntry, NewAudit};
use p38_core::page::{Page, PageRequest};
use p38_core::store::AuditStore;
use p38_core::time::{now, to_millis};

use crate::rows::{self, to_json};
use crate::{SqlStore, db_err};

/// Appends an audit record inside the caller's transaction, so the change
/// and its record commit or roll back together.
pub(crate) async fn insert_audit(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    a: &NewAudit,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (actor, action, target, detail, at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&a.actor)
    .bind(&a.action)
    .bind(&a.target)
    .bind(a.detail.as_ref().map(to_json))
    .bind(to_millis(now()))
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn append_audit(&self, entry: NewAudit) -> Result<()> {
        let mut tx = self.begin().await?;
        insert_audit(&mut tx, &entry).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn list_audit(&self, page: PageRequest) -> Result<Page<AuditEntry>> {
        let rows = sqlx::query("SELECT id, actor, action, target, detail, at FROM audit_log WHERE id < $1 ORDER BY id DESC LIMIT $2")
            .bind(page.before.unwrap_or(i64::MAX))
            .bind(i64::from(page.limit) + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let entries = rows.iter().map(rows::audit).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(entries, page.limit, |e| e.id))
    }
}

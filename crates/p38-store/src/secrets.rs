//! Sealed secrets of the local backend.

use async_trait::async_trait;
use sqlx::Row;

use p38_core::audit::NewAudit;
use p38_core::store::{SecretMeta, SecretStore};
use p38_core::time::{from_millis, now, to_millis};
use p38_core::{Error, Result};

use crate::audit::insert_audit;
use crate::{SqlStore, db_err};

fn meta(r: &sqlx::any::AnyRow) -> Result<SecretMeta> {
    Ok(SecretMeta {
        name: r.try_get("name").map_err(db_err)?,
        version: r.try_get("version").map_err(db_err)?,
        backend: "local".into(),
        created_at: from_millis(r.try_get("created_at").map_err(db_err)?),
        updated_at: from_millis(r.try_get("updated_at").map_err(db_err)?),
    })
}

#[async_trait]
impl SecretStore for SqlStore {
    async fn put_secret(
        &self,
        name: &str,
        ciphertext: &[u8],
        audit: NewAudit,
    ) -> Result<SecretMeta> {
        let mut tx = self.begin().await?;
        let t = to_millis(now());
        let row = sqlx::query(
            "INSERT INTO secrets (name, ciphertext, version, created_at, updated_at) VALUES ($1, $2, 1, $3, $3) \
             ON CONFLICT (name) DO UPDATE SET ciphertext = excluded.ciphertext, version = secrets.version + 1, updated_at = excluded.updated_at \
             RETURNING name, version, created_at, updated_at",
        )
        .bind(name)
        .bind(ciphertext.to_vec())
        .bind(t)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let m = meta(&row)?;
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(m)
    }

    async fn get_secret(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let row: Option<(Vec<u8>,)> =
            sqlx::query_as("SELECT ciphertext FROM secrets WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(row.map(|(b,)| b))
    }

    async fn list_secrets(&self) -> Result<Vec<SecretMeta>> {
        let rows =
            sqlx::query("SELECT name, version, created_at, updated_at FROM secrets ORDER BY name")
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
        rows.iter().map(meta).collect()
    }

    async fn delete_secret(&self, name: &str, audit: NewAudit) -> Result<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM secrets WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("secret", name));
        }
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(db_err)
    }
}

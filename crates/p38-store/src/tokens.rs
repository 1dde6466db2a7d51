//! API tokens: hashes and metadata only.

use async_trait::async_trait;

use p38_core::audit::NewAudit;
use p38_core::auth::{ApiToken, Principal, Scope};
use p38_core::store::TokenStore;
use p38_core::time::{now, to_millis};
use p38_core::{Error, Result};

use crate::audit::insert_audit;
use crate::rows;
use crate::{SqlStore, db_err};

#[async_trait]
impl TokenStore for SqlStore {
    async fn create_token(
        &self,
        name: &str,
        scope: Scope,
        hash: &str,
        prefix: &str,
        audit: Option<NewAudit>,
    ) -> Result<ApiToken> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("INSERT INTO api_tokens (name, scope, token_hash, prefix, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id, name, scope, prefix, created_at, revoked_at")
            .bind(name)
            .bind(scope.as_str())
            .bind(hash)
            .bind(prefix)
            .bind(to_millis(now()))
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        let token = rows::token(&row)?;
        if let Some(a) = audit {
            insert_audit(
                &mut tx,
                &NewAudit {
                    target: format!("token:{}", token.id),
                    ..a
                },
            )
            .await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(token)
    }

    async fn principal_for_hash(&self, hash: &str) -> Result<Option<Principal>> {
        let row: Option<(i64, String, String)> = sqlx::query_as(
            "SELECT id, name, scope FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(|(token_id, name, scope)| {
            Ok(Principal {
                token_id,
                name,
                scope: scope.parse()?,
            })
        })
        .transpose()
    }

    async fn list_tokens(&self) -> Result<Vec<ApiToken>> {
        let sql =
            "SELECT id, name, scope, prefix, created_at, revoked_at FROM api_tokens ORDER BY id";
        let rows = sqlx::query(sql)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(rows::token).collect()
    }

    async fn revoke_token(&self, id: i64, audit: NewAudit) -> Result<ApiToken> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING id, name, scope, prefix, created_at, revoked_at")
            .bind(id)
            .bind(to_millis(now()))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Error::not_found("token", id))?;
        let token = rows::token(&row)?;
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(token)
    }

    async fn count_active_admin_tokens(&self) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM api_tokens WHERE scope = 'admin' AND revoked_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(n)
    }
}

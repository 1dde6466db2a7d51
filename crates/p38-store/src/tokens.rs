//! API tokens: hashes and metadata only.

use async_trait::async_trait;

use p38_core::audit::NewAudit;
use p38_core::auth::{ApiToken, Scope, TokenLookup};
use p38_core::store::TokenStore;
use p38_core::time::{Timestamp, now, to_millis};
use p38_core::{Error, Result};

use crate::audit::insert_audit;
use crate::rows;
use crate::{Backend, SqlStore, db_err};

/// The columns of [`ApiToken`] (a macro so that `concat!` can build
/// static SQL from it).
macro_rules! token_cols {
    () => {
        "id, name, scope, prefix, created_at, revoked_at, expires_at, last_used_at"
    };
}

const PRINCIPAL_FOR_HASH: &str = "SELECT id, name, scope, expires_at, last_used_at FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL";

/// A last use is recorded at most this often per token (milliseconds).
const TOUCH_EVERY_MS: i64 = 60_000;

#[async_trait]
impl TokenStore for SqlStore {
    async fn create_token(
        &self,
        name: &str,
        scope: Scope,
        hash: &str,
        prefix: &str,
        expires_at: Option<Timestamp>,
        audit: Option<NewAudit>,
    ) -> Result<ApiToken> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(concat!("INSERT INTO api_tokens (name, scope, token_hash, prefix, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ", token_cols!()))
            .bind(name)
            .bind(scope.as_str())
            .bind(hash)
            .bind(prefix)
            .bind(to_millis(now()))
            .bind(expires_at.map(to_millis))
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

    async fn principal_for_hash(&self, hash: &str) -> Result<Option<TokenLookup>> {
        // Every request's first read: on SQLite it runs on the blocking pool
        // like the other reads of the request path.
        if let Some(r) = &self.reader {
            let hash = rusqlite::types::Value::Text(hash.to_string());
            return r
                .optional(PRINCIPAL_FOR_HASH, vec![hash], |r| rows::token_lookup(r))
                .await;
        }
        sqlx::query(PRINCIPAL_FOR_HASH)
            .bind(hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .map(|r| rows::token_lookup(&r))
            .transpose()
    }

    async fn touch_token(&self, id: i64, at: Timestamp) -> Result<()> {
        let at = to_millis(at);
        sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at <= $3)")
            .bind(id)
            .bind(at)
            .bind(at - TOUCH_EVERY_MS)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn list_tokens(&self) -> Result<Vec<ApiToken>> {
        let sql = concat!("SELECT ", token_cols!(), " FROM api_tokens ORDER BY id");
        let rows = sqlx::query(sql)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(rows::token).collect()
    }

    async fn revoke_token(&self, id: i64, audit: NewAudit) -> Result<ApiToken> {
        let mut tx = self.begin().await?;
        let t = to_millis(now());
        // The active admin tokens, locked on PostgreSQL so that two admins
        // revoking each other's tokens at once cannot both succeed (SQLite's
        // BEGIN IMMEDIATE already serialises writers).
        let active_admins = match self.backend {
            Backend::Postgres => {
                "SELECT id FROM api_tokens WHERE scope = 'admin' AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1) FOR UPDATE"
            }
            Backend::Sqlite => {
                "SELECT id FROM api_tokens WHERE scope = 'admin' AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1)"
            }
        };
        let admins: Vec<(i64,)> = sqlx::query_as(active_admins)
            .bind(t)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
        if admins == [(id,)] {
            return Err(Error::conflict(
                "id",
                format!(
                    "token {id} is the last active admin token; revoking it would lock every admin out. Create another admin token first (p38 token create --scope admin), then revoke this one"
                ),
            ));
        }
        let row = sqlx::query(concat!(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING ",
            token_cols!()
        ))
        .bind(id)
        .bind(t)
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
            "SELECT COUNT(*) FROM api_tokens WHERE scope = 'admin' AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1)",
        )
        .bind(to_millis(now()))
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(n)
    }
}

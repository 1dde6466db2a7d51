//! Tokens: creation (shown once), authentication by hash, revocation, and
//! the first admin token written to the data folder on first start.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

use p38_core::auth::{ApiToken, Principal, Scope};
use p38_core::time::now;
use p38_core::{Error, Result};

use crate::App;
use crate::agents::audit;
use crate::dto::{CreateToken, CreatedToken};

/// Every token starts with this, so leaked ones are easy to find in logs
/// and by secret scanners.
pub const TOKEN_PREFIX: &str = "p38_";

/// The longest a token can be made to last, in days (ten years).
pub const MAX_EXPIRES_IN_DAYS: i64 = 3650;

/// A token's last use is recorded at most this often.
const LAST_USE_EVERY_SECONDS: i64 = 60;

/// The file the first admin token is written to, inside the data folder.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// A fresh random token: 256 bits from the OS generator.
fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of a token. Tokens are 256 random bits, so a plain
/// SHA-256 is enough (no password stretching needed).
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn display_prefix(token: &str) -> String {
    token.chars().take(TOKEN_PREFIX.len() + 4).collect()
}

impl App {
    /// Resolves a bearer token to its principal. An expired token is
    /// refused saying so; a use is recorded at most once a minute per token.
    pub async fn authenticate(&self, token: &str) -> Result<Principal> {
        if token.is_empty() || token.len() > 200 {
            return Err(Error::Unauthorized("invalid token".into()));
        }
        let found = self
            .store
            .principal_for_hash(&hash_token(token))
            .await?
            .ok_or_else(|| Error::Unauthorized("unknown or revoked token".into()))?;
        let t = now();
        if let Some(at) = found.expires_at.filter(|at| *at <= t) {
            return Err(Error::Unauthorized(format!(
                "this token expired at {}; ask an admin for a new one (p38 token create)",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )));
        }
        if found
            .last_used_at
            .is_none_or(|u| t - u >= chrono::Duration::seconds(LAST_USE_EVERY_SECONDS))
        {
            self.store.touch_token(found.principal.token_id, t).await?;
        }
        Ok(found.principal)
    }

    /// Creates a token and returns it once.
    pub async fn create_token(&self, who: &Principal, req: CreateToken) -> Result<CreatedToken> {
        who.require(Scope::Admin)?;
        self.issue_token(&who.actor(), req).await
    }

    /// Creates a token without asking an API token: for `p38 token create
    /// --admin`, run on the server host by someone who can open its
    /// database (the way back in when every admin token is lost). Audited
    /// as `local`.
    pub async fn create_local_token(&self, req: CreateToken) -> Result<CreatedToken> {
        self.issue_token("local", req).await
    }

    async fn issue_token(&self, actor: &str, req: CreateToken) -> Result<CreatedToken> {
        // As the schema says: at most 64 characters as given, not only
        // spaces; kept without the spaces around it.
        let name = req.name.trim();
        if name.is_empty() || req.name.chars().count() > 64 {
            return Err(Error::validation(
                "name",
                "token name must be 1 to 64 characters, not only spaces",
            ));
        }
        let expires_at = match req.expires_in_days {
            None => None,
            Some(d) if (1..=MAX_EXPIRES_IN_DAYS).contains(&d) => {
                Some(now() + chrono::Duration::days(d))
            }
            Some(d) => {
                return Err(Error::validation(
                    "expires_in_days",
                    format!(
                        "expires_in_days must be a whole number of days from 1 to {MAX_EXPIRES_IN_DAYS}, got {d}"
                    ),
                ));
            }
        };
        let token = new_token();
        let detail = serde_json::json!({"name": name, "scope": req.scope.as_str(), "expires_at": expires_at});
        let record = p38_core::audit::NewAudit {
            actor: actor.to_string(),
            action: "token.create".into(),
            target: String::new(),
            detail: Some(detail),
        };
        let info = self
            .store
            .create_token(
                name,
                req.scope,
                &hash_token(&token),
                &display_prefix(&token),
                expires_at,
                Some(record),
            )
            .await?;
        Ok(CreatedToken { info, token })
    }

    /// All tokens' metadata.
    pub async fn list_tokens(&self, who: &Principal) -> Result<Vec<ApiToken>> {
        who.require(Scope::Admin)?;
        self.store.list_tokens().await
    }

    /// Revokes a token; never the last active admin token (409).
    pub async fn revoke_token(&self, who: &Principal, id: i64) -> Result<ApiToken> {
        who.require(Scope::Admin)?;
        self.store
            .revoke_token(id, audit(who, "token.revoke", &format!("token:{id}"), None))
            .await
    }

    /// On a store with no usable admin token, creates one and writes it to
    /// `DATA_DIR/admin.token` with mode 0600. Returns the file's path when
    /// it wrote one.
    pub async fn ensure_admin_token(&self, data_dir: &Path) -> Result<Option<PathBuf>> {
        if self.store.count_active_admin_tokens().await? > 0 {
            return Ok(None);
        }
        let token = new_token();
        let path = data_dir.join(ADMIN_TOKEN_FILE);
        write_private(&path, &format!("{token}\n")).map_err(|e| {
            Error::unavailable_source(
                format!("cannot write the admin token to {}", path.display()),
                e,
            )
        })?;
        let a = p38_core::audit::NewAudit {
            actor: "system".into(),
            action: "token.create".into(),
            target: String::new(),
            detail: Some(serde_json::json!({"name": "admin", "scope": "admin", "bootstrap": true})),
        };
        self.store
            .create_token(
                "admin",
                Scope::Admin,
                &hash_token(&token),
                &display_prefix(&token),
                None,
                Some(a),
            )
            .await?;
        Ok(Some(path))
    }
}

/// Writes a file readable by its owner only, created with mode 0600 so it
/// is never briefly world-readable.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), a);
        assert_eq!(display_prefix(&a).len(), 8);
    }
}

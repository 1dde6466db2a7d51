//! Secret services: values are write-only. A value goes in sealed with the
//! master key; only names, versions and times ever come out.

use std::sync::Arc;

use p38_core::agent::validate_secret_names;
use p38_core::auth::{Principal, Scope};
use p38_core::store::SecretMeta;
use p38_core::{Error, Result};
use p38_secrets::{ChainResolver, LocalCipher, MIN_SECRET_LEN};

use crate::App;
use crate::agents::audit;

/// Largest secret value accepted.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// What the secret services need besides the store.
#[derive(Clone)]
pub struct SecretsAdmin {
    /// Seals values for the local backend.
    pub cipher: Arc<LocalCipher>,
    /// The resolver whose cache a write or `reload` drops.
    pub chain: Arc<ChainResolver>,
}

impl App {
    fn secrets_admin(&self) -> Result<&SecretsAdmin> {
        self.secrets
            .as_ref()
            .ok_or_else(|| Error::unavailable("secrets are not configured on this server"))
    }

    /// Stores (or replaces) a secret in the local backend.
    pub async fn put_secret(&self, who: &Principal, name: &str, value: &str) -> Result<SecretMeta> {
        who.require(Scope::Admin)?;
        validate_secret_names(&[name.to_string()])
            .map_err(|e| Error::validation("name", e.to_string()))?;
        if value.chars().count() < MIN_SECRET_LEN {
            return Err(Error::validation(
                "value",
                format!(
                    "a secret must be at least {MIN_SECRET_LEN} characters: shorter values cannot be masked safely in agent output"
                ),
            ));
        }
        if value.len() > MAX_SECRET_BYTES {
            return Err(Error::TooLarge {
                field: Some("value".into()),
                message: format!("a secret may be at most {MAX_SECRET_BYTES} bytes"),
            });
        }
        let admin = self.secrets_admin()?;
        let sealed = admin.cipher.seal(name, value);
        let meta = self
            .store
            .put_secret(
                name,
                &sealed,
                audit(who, "secret.set", &format!("secret:{name}"), None),
            )
            .await?;
        admin.chain.reload();
        self.announce_secrets_changed().await;
        Ok(meta)
    }

    /// Every local secret's metadata.
    pub async fn list_secrets(&self, who: &Principal) -> Result<Vec<SecretMeta>> {
        who.require(Scope::Admin)?;
        self.store.list_secrets().await
    }

    /// Deletes a local secret.
    pub async fn delete_secret(&self, who: &Principal, name: &str) -> Result<()> {
        who.require(Scope::Admin)?;
        self.store
            .delete_secret(
                name,
                audit(who, "secret.delete", &format!("secret:{name}"), None),
            )
            .await?;
        if let Ok(admin) = self.secrets_admin() {
            admin.chain.reload();
        }
        self.announce_secrets_changed().await;
        Ok(())
    }

    /// Drops the resolver's cache so the next run reads every backend again.
    /// Every other process on the same database (workers elsewhere) is
    /// told too.
    pub async fn reload_secrets(&self, who: &Principal) -> Result<()> {
        who.require(Scope::Admin)?;
        self.secrets_admin()?.chain.reload();
        self.announce_secrets_changed().await;
        self.store
            .append_audit(audit(who, "secret.reload", "secrets", None))
            .await
    }

    /// After a write or delete: other processes drop their caches now. A
    /// failure only delays them until their cache's TTL, so it is logged,
    /// not returned (the write itself succeeded).
    async fn announce_secrets_changed(&self) {
        if let Err(e) = self.store.announce_secrets_changed().await {
            tracing::warn!(error = %e.report(), "could not tell other processes that secrets changed; they see it after the cache TTL");
        }
    }
}

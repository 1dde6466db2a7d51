//! Builds the secret resolver chain from the settings.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};

use p38_core::store::SecretStore;
use p38_secrets::{
    ChainResolver, EnvResolver, GcpBackend, GcpConfig, LocalBackend, LocalCipher, MasterKey,
    SecretBackend, SeenSecrets, VaultAuth, VaultBackend, VaultConfig,
};

use crate::args::{SecretArgs, SecretBackend as Backend};

/// The cipher of the local backend and the chain every run resolves through.
pub struct Secrets {
    /// Seals values written through the API.
    pub cipher: Arc<LocalCipher>,
    /// Resolves declared secrets for runs.
    pub chain: Arc<ChainResolver>,
}

/// Loads the master key (creating `DATA_DIR/master.key` on first start) and
/// builds the backends in the configured order.
pub fn build(
    a: &SecretArgs,
    data_dir: &Path,
    store: Arc<dyn SecretStore>,
    seen: SeenSecrets,
) -> anyhow::Result<Secrets> {
    let key = MasterKey::load_or_create(a.master_key.as_deref(), &data_dir.join("master.key"))?;
    let cipher = Arc::new(LocalCipher::new(key));
    let mut backends: Vec<Arc<dyn SecretBackend>> = Vec::new();
    for backend in &a.secret_backends {
        let b: Arc<dyn SecretBackend> = match backend {
            Backend::Local => Arc::new(LocalBackend::new(store.clone(), cipher.clone())),
            Backend::Env => Arc::new(EnvResolver),
            Backend::Gcp => {
                let project = a
                    .gcp_project
                    .clone()
                    .context("backend gcp needs P38_GCP_PROJECT")?;
                let file = a
                    .gcp_credentials_file
                    .as_ref()
                    .context("backend gcp needs P38_GCP_CREDENTIALS_FILE")?;
                let json = std::fs::read_to_string(file)
                    .with_context(|| format!("reading {}", file.display()))?;
                let mut cfg = GcpConfig::new(project, json);
                cfg.secretmanager_base = a.gcp_secretmanager_url.clone();
                Arc::new(GcpBackend::new(cfg)?)
            }
            Backend::Vault => {
                let addr = a
                    .vault_addr
                    .clone()
                    .context("backend vault needs P38_VAULT_ADDR")?;
                let auth = match (&a.vault_token, &a.vault_role_id, &a.vault_secret_id) {
                    (Some(t), _, _) => VaultAuth::token(t.clone()),
                    (None, Some(r), Some(s)) => VaultAuth::approle(r.clone(), s.clone()),
                    _ => bail!(
                        "backend vault needs P38_VAULT_TOKEN, or P38_VAULT_ROLE_ID and P38_VAULT_SECRET_ID"
                    ),
                };
                let mut cfg = VaultConfig::new(addr, auth);
                cfg.mount = a.vault_mount.clone();
                cfg.path_prefix = a.vault_prefix.clone();
                cfg.namespace = a.vault_namespace.clone();
                cfg.kv_version = a.vault_kv_version;
                cfg.approle_mount = a.vault_approle_mount.clone();
                Arc::new(VaultBackend::new(cfg)?)
            }
        };
        backends.push(b);
    }
    let chain =
        ChainResolver::new(backends, Duration::from_secs(a.secret_cache_seconds)).with_seen(seen);
    Ok(Secrets {
        cipher,
        chain: Arc::new(chain),
    })
}

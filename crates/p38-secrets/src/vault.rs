//! HashiCorp Vault / OpenBao, KV version 2 or version 1.
//!
//! Convention: one KV entry per secret, at `{mount}/{path_prefix}/NAME`,
//! holding the value under the key `value`:
//!
//! ```text
//! vault kv put -mount=secret p38/TELEGRAM_BOT_TOKEN value=123:abc
//! ```
//!
//! is read on a KV v2 mount as `GET {addr}/v1/secret/data/p38/TELEGRAM_BOT_TOKEN`,
//! field `data.data.value`, and on a KV v1 mount as
//! `GET {addr}/v1/secret/p38/TELEGRAM_BOT_TOKEN`, field `data.value`. Which
//! one the mount is comes from configuration, or is asked once of
//! `sys/internal/ui/mounts/{mount}` (`options.version`; the endpoint the
//! `vault kv` command itself asks, open to any token that may use the
//! mount). A missing (or deleted) entry is `Ok(None)`; an entry without a
//! `value` key is an error saying so.
//!
//! Authentication is a token (`X-Vault-Token`) or AppRole: a login at
//! `{addr}/v1/auth/{approle_mount}/login` gives a client token, kept until a
//! minute before its lease ends and fetched anew on a 403 once. Every
//! request carries `X-Vault-Request: true`, as Vault's own clients send.
//! Redirects are not followed (the token would go with them): point `addr`
//! at the active node or a load balancer.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use p38_core::{Error, Result};

use crate::backend::{check_secret_name, http};
use crate::{SecretBackend, SecretValue};

const BACKEND: &str = "vault";

/// How the backend authenticates.
#[derive(Clone)]
pub enum VaultAuth {
    /// A Vault token.
    Token(SecretValue),
    /// AppRole credentials, exchanged for a token at login.
    AppRole {
        /// The role id (not secret on its own, but kept out of logs).
        role_id: String,
        /// The secret id.
        secret_id: SecretValue,
    },
}

impl VaultAuth {
    /// Token authentication.
    pub fn token(token: impl Into<String>) -> Self {
        VaultAuth::Token(SecretValue::new(token))
    }

    /// AppRole authentication.
    pub fn approle(role_id: impl Into<String>, secret_id: impl Into<String>) -> Self {
        VaultAuth::AppRole {
            role_id: role_id.into(),
            secret_id: SecretValue::new(secret_id),
        }
    }
}

impl std::fmt::Debug for VaultAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VaultAuth::Token(_) => f.write_str("Token([REDACTED])"),
            VaultAuth::AppRole { .. } => f.write_str("AppRole([REDACTED])"),
        }
    }
}

/// Where and how to reach Vault.
#[derive(Clone, Debug)]
pub struct VaultConfig {
    /// The server, e.g. `https://vault.example.com:8200`.
    pub addr: String,
    /// The KV v2 mount, usually `secret`.
    pub mount: String,
    /// The folder under the mount holding one entry per secret, e.g. `p38`
    /// (may be empty).
    pub path_prefix: String,
    /// How to authenticate.
    pub auth: VaultAuth,
    /// The Vault Enterprise / HCP namespace, sent as `X-Vault-Namespace`.
    pub namespace: Option<String>,
    /// The KV version of the mount (1 or 2); `None` asks Vault.
    pub kv_version: Option<u8>,
    /// Where the AppRole auth method is mounted (default `approle`).
    pub approle_mount: String,
    /// The timeout of each HTTP request.
    pub timeout: Duration,
}

impl VaultConfig {
    /// A configuration with mount `secret`, prefix `p38`, no namespace and
    /// a 30 s timeout.
    pub fn new(addr: impl Into<String>, auth: VaultAuth) -> Self {
        VaultConfig {
            addr: addr.into(),
            mount: "secret".to_string(),
            path_prefix: "p38".to_string(),
            auth,
            namespace: None,
            kv_version: None,
            approle_mount: "approle".to_string(),
            timeout: Duration::from_secs(30),
        }
    }
}

struct CachedToken {
    token: SecretValue,
    /// `None`: does not expire (or not known to).
    refresh_at: Option<Instant>,
}

/// Reads secrets from a Vault / OpenBao KV v2 mount.
pub struct VaultBackend {
    addr: String,
    mount: String,
    prefix: String,
    namespace: Option<String>,
    auth: VaultAuth,
    approle_mount: String,
    client: reqwest::Client,
    token: Mutex<Option<CachedToken>>,
    /// The mount's KV version: configured, or asked once.
    kv_version: Mutex<Option<u8>>,
}

impl std::fmt::Debug for VaultBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultBackend")
            .field("addr", &self.addr)
            .field("mount", &self.mount)
            .field("path_prefix", &self.prefix)
            .field("namespace", &self.namespace)
            .field("approle_mount", &self.approle_mount)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

fn unavailable(msg: impl std::fmt::Display) -> Error {
    Error::unavailable(format!("vault backend: {msg}"))
}

fn config_error(msg: impl std::fmt::Display) -> Error {
    Error::validation("secrets", format!("vault backend: {msg}"))
}

fn clean_segment(s: &str) -> String {
    s.trim_matches('/').to_string()
}

impl VaultBackend {
    /// Builds the backend; nothing is fetched until the first get.
    pub fn new(cfg: VaultConfig) -> Result<Self> {
        let addr = cfg.addr.trim().trim_end_matches('/').to_string();
        if !(addr.starts_with("http://") || addr.starts_with("https://")) {
            return Err(config_error(format!(
                "addr {addr:?} must start with http:// or https://"
            )));
        }
        let mount = clean_segment(&cfg.mount);
        if mount.is_empty() {
            return Err(config_error("the KV mount is empty"));
        }
        let prefix = clean_segment(&cfg.path_prefix);
        let segments = mount
            .split('/')
            .chain(prefix.split('/').filter(|_| !prefix.is_empty()));
        for seg in segments {
            let ok = !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !ok {
                return Err(config_error(format!(
                    "mount {mount:?} / path_prefix {prefix:?}: each segment may hold only letters, digits, '-', '_' and '.'"
                )));
            }
        }
        if let Some(v) = cfg.kv_version
            && v != 1
            && v != 2
        {
            return Err(config_error(format!("KV version {v}: use 1 or 2")));
        }
        let approle_mount = clean_segment(&cfg.approle_mount);
        let approle_ok = !approle_mount.is_empty()
            && approle_mount.split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            });
        if !approle_ok {
            return Err(config_error(format!(
                "AppRole mount {approle_mount:?}: each segment may hold only letters, digits, '-', '_' and '.'"
            )));
        }
        let token = match &cfg.auth {
            VaultAuth::Token(t) => Some(CachedToken {
                token: t.clone(),
                refresh_at: None,
            }),
            VaultAuth::AppRole { .. } => None,
        };
        Ok(VaultBackend {
            addr,
            mount,
            prefix,
            namespace: cfg.namespace.filter(|n| !n.trim().is_empty()),
            auth: cfg.auth,
            approle_mount,
            client: http::client(BACKEND, cfg.timeout)?,
            token: Mutex::new(token),
            kv_version: Mutex::new(cfg.kv_version),
        })
    }

    fn entry_path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    /// The headers of every request: `X-Vault-Request` (which Vault's own
    /// clients send, and which a Vault behind a proxy may require) and the
    /// namespace.
    fn vault_request(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let req = req.header("X-Vault-Request", "true");
        match &self.namespace {
            Some(ns) => req.header("X-Vault-Namespace", ns),
            None => req,
        }
    }

    /// The mount's KV version: as configured, else from
    /// `sys/internal/ui/mounts/{mount}` (asked once; 2 when Vault does not
    /// say, which is what a mount made by `vault secrets enable kv-v2` or a
    /// dev server's `secret/` is).
    async fn kv_version(&self, token: &SecretValue) -> Result<u8> {
        let mut slot = self.kv_version.lock().await;
        if let Some(v) = *slot {
            return Ok(v);
        }
        let url = format!("{}/v1/sys/internal/ui/mounts/{}", self.addr, self.mount);
        let resp = self
            .vault_request(self.client.get(url))
            .header("X-Vault-Token", token.expose())
            .send()
            .await
            .map_err(|e| http::transport(BACKEND, "asking the KV version of the mount", e))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            tracing::debug!(
                mount = %self.mount,
                status = status.as_u16(),
                "vault: could not ask the mount's KV version; reading it as KV v2 (set P38_VAULT_KV_VERSION to say)"
            );
            // A refused token is fixed by logging in again: ask again then.
            if !matches!(status.as_u16(), 401 | 403) {
                *slot = Some(2);
            }
            return Ok(2);
        }
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        // As the `vault kv` command reads it: no options, or no version in
        // them, is a KV v1 mount (`vault secrets enable kv`).
        let version = match v.pointer("/data/options/version").and_then(|v| v.as_str()) {
            Some("2") => 2,
            Some("" | "1") | None => 1,
            Some(other) => {
                return Err(unavailable(format!(
                    "mount {} reports KV version {other:?}; set P38_VAULT_KV_VERSION to 1 or 2",
                    self.mount
                )));
            }
        };
        tracing::debug!(mount = %self.mount, version, "vault: KV version of the mount");
        *slot = Some(version);
        Ok(version)
    }

    async fn client_token(&self, force_login: bool) -> Result<SecretValue> {
        let mut slot = self.token.lock().await;
        let (role_id, secret_id) = match &self.auth {
            VaultAuth::Token(t) => return Ok(t.clone()),
            VaultAuth::AppRole { role_id, secret_id } => (role_id, secret_id),
        };
        if !force_login
            && let Some(t) = slot.as_ref()
            && t.refresh_at.is_none_or(|at| Instant::now() < at)
        {
            return Ok(t.token.clone());
        }
        let body = serde_json::json!({"role_id": role_id, "secret_id": secret_id.expose()});
        let resp = self
            .vault_request(self.client.post(format!(
                "{}/v1/auth/{}/login",
                self.addr, self.approle_mount
            )))
            .json(&body)
            .send()
            .await
            .map_err(|e| http::transport(BACKEND, "AppRole login", e))?;
        drop(body);
        let status = resp.status();
        let text = Zeroizing::new(resp.text().await.unwrap_or_default());
        if !status.is_success() {
            return Err(unavailable(format!(
                "AppRole login refused (HTTP {}): {}",
                status.as_u16(),
                vault_errors(&text)
            )));
        }
        #[derive(Deserialize)]
        struct Login {
            auth: Auth,
        }
        #[derive(Deserialize)]
        struct Auth {
            client_token: String,
            #[serde(default)]
            lease_duration: u64,
        }
        let mut login: Login = serde_json::from_str(&text)
            .map_err(|_| unavailable("AppRole login answered without auth.client_token"))?;
        let token = SecretValue::new(std::mem::take(&mut login.auth.client_token));
        let refresh_at = (login.auth.lease_duration > 0).then(|| {
            let lease = Duration::from_secs(login.auth.lease_duration);
            let skew = if lease > Duration::from_secs(120) {
                Duration::from_secs(60)
            } else {
                lease / 2
            };
            Instant::now() + lease - skew
        });
        *slot = Some(CachedToken {
            token: token.clone(),
            refresh_at,
        });
        Ok(token)
    }

    /// Where `name` is read: `{mount}/data/{path}` on KV v2,
    /// `{mount}/{path}` on KV v1.
    fn api_path(&self, name: &str, version: u8) -> String {
        if version == 1 {
            format!("{}/{}", self.mount, self.entry_path(name))
        } else {
            format!("{}/data/{}", self.mount, self.entry_path(name))
        }
    }

    async fn read(&self, name: &str, token: &SecretValue) -> Result<(reqwest::Response, u8)> {
        let version = self.kv_version(token).await?;
        let url = format!("{}/v1/{}", self.addr, self.api_path(name, version));
        self.vault_request(self.client.get(url))
            .header("X-Vault-Token", token.expose())
            .send()
            .await
            .map(|r| (r, version))
            .map_err(|e| http::transport(BACKEND, &format!("reading secret {name}"), e))
    }
}

#[async_trait]
impl SecretBackend for VaultBackend {
    fn name(&self) -> &'static str {
        BACKEND
    }

    async fn get(&self, name: &str) -> Result<Option<SecretValue>> {
        check_secret_name(BACKEND, name)?;
        let token = self.client_token(false).await?;
        let (mut resp, mut version) = self.read(name, &token).await?;
        if resp.status() == reqwest::StatusCode::FORBIDDEN
            && matches!(self.auth, VaultAuth::AppRole { .. })
        {
            // The token may have expired or been revoked: log in again, once.
            let token = self.client_token(true).await?;
            (resp, version) = self.read(name, &token).await?;
        }
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let text = Zeroizing::new(resp.text().await.unwrap_or_default());
        let path = self.api_path(name, version);
        match status.as_u16() {
            200..=299 => {}
            403 => {
                return Err(unavailable(format!(
                    "permission denied (HTTP 403) reading {path}: check the token and that its policy grants read on it ({})",
                    vault_errors(&text)
                )));
            }
            s => {
                return Err(unavailable(format!(
                    "HTTP {s} reading {path}: {}",
                    vault_errors(&text)
                )));
            }
        }
        let mut v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|_| unavailable(format!("unexpected answer reading {path}")))?;
        let data = if version == 1 {
            v.pointer_mut("/data")
        } else {
            v.pointer_mut("/data/data")
        };
        let Some(data) = data else {
            // A deleted or destroyed version answers with null data.
            return Ok(None);
        };
        if data.is_null() {
            return Ok(None);
        }
        match data.get_mut("value") {
            Some(serde_json::Value::String(s)) => Ok(Some(SecretValue::new(std::mem::take(s)))),
            Some(_) => Err(config_error(format!(
                "{path}: the key `value` is not a string"
            ))),
            None => Err(config_error(format!(
                "{path} has no key `value`: store each secret as `vault kv put -mount={} {} value=...`",
                self.mount,
                self.entry_path(name)
            ))),
        }
    }
}

/// Vault's `{"errors": [...]}`, joined and capped.
fn vault_errors(body: &str) -> String {
    #[derive(Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<String>,
    }
    match serde_json::from_str::<Errors>(body) {
        Ok(e) => http::excerpt(&e.errors.join("; ")),
        Err(_) => http::excerpt(body),
    }
}

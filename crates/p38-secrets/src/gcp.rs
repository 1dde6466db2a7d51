//! Google Secret Manager over REST.
//!
//! Secret `NAME` is read from
//! `GET {base}/v1/projects/{project}/secrets/NAME/versions/latest:access`,
//! whose `payload.data` is the base64 of the value (checked against
//! `payload.dataCrc32c` when Google sends it). The value is taken as stored,
//! a trailing newline included: create secrets with `printf %s "$V" |
//! gcloud secrets create NAME --data-file=-`.
//!
//! Credentials are the JSON Google hands out, in one of two kinds:
//! - `"type": "service_account"`: a key file. A JWT signed RS256 with the
//!   key is exchanged at the key's `token_uri` for an access token.
//! - `"type": "external_account"`: Workload Identity Federation. A subject
//!   token read from `credential_source.file` or `credential_source.url` is
//!   exchanged at `token_url` (Google STS), then, when
//!   `service_account_impersonation_url` is present, for a service
//!   account's access token.
//!
//! Access tokens are cached until a minute before they expire. The backend
//! needs the role `roles/secretmanager.secretAccessor` on the secrets.
//!
//! A secret that is absent answers 404 when the role is granted on the
//! project, but 403 "Permission 'secretmanager.versions.access' denied for
//! resource ... (or it may not exist)" when it is granted per secret: Google
//! will not say whether a secret it does not let you read exists. That 403
//! is read as a miss, so that the chain asks the next backend (and logged
//! once per name at debug); any other 403 (the API disabled, the project
//! wrong) is an error.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use tokio::sync::Mutex;
use zeroize::{Zeroize, Zeroizing};

use p38_core::{Error, Result};

use crate::backend::{check_secret_name, http};
use crate::{SecretBackend, SecretValue};

/// The public Secret Manager endpoint.
pub const DEFAULT_SECRETMANAGER_BASE: &str = "https://secretmanager.googleapis.com";
/// Google's Security Token Service, the default `token_url` of
/// external-account credentials.
pub const DEFAULT_STS_URL: &str = "https://sts.googleapis.com/v1/token";
/// The OAuth scope asked for.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const BACKEND: &str = "gcp";

/// Where and how to reach Secret Manager.
#[derive(Clone)]
pub struct GcpConfig {
    /// The project id (or number) holding the secrets.
    pub project: String,
    /// A service-account key JSON or an external-account (Workload Identity
    /// Federation) JSON.
    pub credentials_json: String,
    /// The API base, [`DEFAULT_SECRETMANAGER_BASE`] unless testing.
    pub secretmanager_base: String,
    /// The timeout of each HTTP request.
    pub timeout: Duration,
}

impl GcpConfig {
    /// A configuration with the public endpoint and a 30 s timeout.
    pub fn new(project: impl Into<String>, credentials_json: impl Into<String>) -> Self {
        GcpConfig {
            project: project.into(),
            credentials_json: credentials_json.into(),
            secretmanager_base: DEFAULT_SECRETMANAGER_BASE.to_string(),
            timeout: Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for GcpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpConfig")
            .field("project", &self.project)
            .field("credentials_json", &"[REDACTED]")
            .field("secretmanager_base", &self.secretmanager_base)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Reads secrets from Google Secret Manager.
pub struct GcpBackend {
    project: String,
    base: String,
    client: reqwest::Client,
    creds: Credentials,
    token: Mutex<Option<CachedToken>>,
    /// Names whose "denied (or it may not exist)" was logged already.
    denied_logged: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for GcpBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpBackend")
            .field("project", &self.project)
            .field("base", &self.base)
            .field("auth", &self.creds.kind())
            .finish_non_exhaustive()
    }
}

struct CachedToken {
    token: SecretValue,
    refresh_at: Instant,
}

enum Credentials {
    ServiceAccount(ServiceAccount),
    External(External),
}

impl Credentials {
    fn kind(&self) -> &'static str {
        match self {
            Credentials::ServiceAccount(_) => "service_account",
            Credentials::External(_) => "external_account",
        }
    }
}

struct ServiceAccount {
    client_email: String,
    private_key_id: Option<String>,
    key: aws_lc_rs::rsa::KeyPair,
    token_uri: String,
}

struct External {
    audience: String,
    subject_token_type: String,
    token_url: String,
    source: SubjectSource,
    impersonation_url: Option<String>,
    lifetime_secs: u64,
}

enum SubjectSource {
    File {
        path: String,
        format: TokenFormat,
    },
    Url {
        url: String,
        headers: BTreeMap<String, String>,
        format: TokenFormat,
    },
}

enum TokenFormat {
    Text,
    Json(String),
}

#[derive(Deserialize)]
struct CredentialsJson {
    #[serde(rename = "type")]
    kind: Option<String>,
    // service_account
    client_email: Option<String>,
    private_key: Option<String>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
    // external_account
    audience: Option<String>,
    subject_token_type: Option<String>,
    token_url: Option<String>,
    service_account_impersonation_url: Option<String>,
    service_account_impersonation: Option<ImpersonationJson>,
    credential_source: Option<CredentialSourceJson>,
}

#[derive(Deserialize)]
struct ImpersonationJson {
    token_lifetime_seconds: Option<u64>,
}

#[derive(Deserialize)]
struct CredentialSourceJson {
    file: Option<String>,
    url: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    format: Option<FormatJson>,
    environment_id: Option<String>,
    executable: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct FormatJson {
    #[serde(rename = "type")]
    kind: Option<String>,
    subject_token_field_name: Option<String>,
}

fn config_error(msg: impl std::fmt::Display) -> Error {
    Error::validation("secrets", format!("gcp backend: {msg}"))
}

fn unavailable(msg: impl std::fmt::Display) -> Error {
    Error::unavailable(format!("gcp backend: {msg}"))
}

impl GcpBackend {
    /// Parses the credentials and builds the backend. Nothing is fetched
    /// until the first [`SecretBackend::get`]. The credentials string of
    /// `cfg` is zeroed once parsed.
    pub fn new(mut cfg: GcpConfig) -> Result<Self> {
        let parsed = parse_credentials(&cfg.credentials_json);
        cfg.credentials_json.zeroize();
        let creds = parsed?;
        let project = cfg.project.trim().to_string();
        if project.is_empty()
            || !project
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:_".contains(&b))
        {
            return Err(config_error(format!(
                "project {project:?} is not a valid project id"
            )));
        }
        let base = cfg.secretmanager_base.trim_end_matches('/').to_string();
        Ok(GcpBackend {
            project,
            base,
            client: http::client(BACKEND, cfg.timeout)?,
            creds,
            token: Mutex::new(None),
            denied_logged: std::sync::Mutex::new(std::collections::HashSet::new()),
        })
    }

    /// Drops the cached access token.
    pub async fn forget_token(&self) {
        *self.token.lock().await = None;
    }

    async fn access_token(&self) -> Result<SecretValue> {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot.as_ref()
            && Instant::now() < t.refresh_at
        {
            return Ok(t.token.clone());
        }
        let (token, lifetime) = match &self.creds {
            Credentials::ServiceAccount(sa) => self.service_account_token(sa).await?,
            Credentials::External(ext) => self.external_token(ext).await?,
        };
        let skew = if lifetime > Duration::from_secs(120) {
            Duration::from_secs(60)
        } else {
            lifetime / 2
        };
        *slot = Some(CachedToken {
            token: token.clone(),
            refresh_at: Instant::now() + lifetime - skew,
        });
        Ok(token)
    }

    async fn service_account_token(&self, sa: &ServiceAccount) -> Result<(SecretValue, Duration)> {
        let assertion = sa.jwt()?;
        let form = [
            ("grant_type", JWT_BEARER),
            ("assertion", assertion.as_str()),
        ];
        let resp = self
            .client
            .post(&sa.token_uri)
            .form(&form)
            .send()
            .await
            .map_err(|e| http::transport(BACKEND, "token request", e))?;
        oauth_token(resp, "token endpoint (service-account key)").await
    }

    async fn external_token(&self, ext: &External) -> Result<(SecretValue, Duration)> {
        let subject = Zeroizing::new(self.subject_token(ext).await?);
        let form = [
            ("grant_type", TOKEN_EXCHANGE),
            ("audience", ext.audience.as_str()),
            ("scope", CLOUD_PLATFORM_SCOPE),
            ("requested_token_type", ACCESS_TOKEN_TYPE),
            ("subject_token", subject.as_str()),
            ("subject_token_type", ext.subject_token_type.as_str()),
        ];
        let resp = self
            .client
            .post(&ext.token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| http::transport(BACKEND, "STS token exchange", e))?;
        let (sts, lifetime) = oauth_token(resp, "STS token exchange").await?;
        let Some(url) = &ext.impersonation_url else {
            return Ok((sts, lifetime));
        };
        let body = serde_json::json!({
            "scope": [CLOUD_PLATFORM_SCOPE],
            "lifetime": format!("{}s", ext.lifetime_secs),
        });
        let resp = self
            .client
            .post(url)
            .bearer_auth(sts.expose())
            .json(&body)
            .send()
            .await
            .map_err(|e| http::transport(BACKEND, "service-account impersonation", e))?;
        let status = resp.status();
        let text = Zeroizing::new(resp.text().await.unwrap_or_default());
        if !status.is_success() {
            return Err(unavailable(format!(
                "service-account impersonation refused (HTTP {}): {}; grant the federated identity roles/iam.workloadIdentityUser on the service account",
                status.as_u16(),
                google_error(&text)
            )));
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Impersonated {
            access_token: String,
            expire_time: String,
        }
        let mut r: Impersonated = serde_json::from_str(&text).map_err(|_| {
            unavailable("service-account impersonation answered without accessToken/expireTime")
        })?;
        let lifetime = chrono::DateTime::parse_from_rfc3339(&r.expire_time)
            .ok()
            .and_then(|t| {
                (t.with_timezone(&chrono::Utc) - chrono::Utc::now())
                    .to_std()
                    .ok()
            })
            .unwrap_or(Duration::from_secs(300));
        let token = SecretValue::new(std::mem::take(&mut r.access_token));
        Ok((token, lifetime))
    }

    async fn subject_token(&self, ext: &External) -> Result<String> {
        let (raw, format) = match &ext.source {
            SubjectSource::File { path, format } => {
                let raw = tokio::fs::read_to_string(path).await.map_err(|e| {
                    unavailable(format!("cannot read the subject token file {path}: {e}"))
                })?;
                (Zeroizing::new(raw), format)
            }
            SubjectSource::Url {
                url,
                headers,
                format,
            } => {
                let mut req = self.client.get(url);
                for (k, v) in headers {
                    req = req.header(k.as_str(), v.as_str());
                }
                let resp = req
                    .send()
                    .await
                    .map_err(|e| http::transport(BACKEND, "subject token request", e))?;
                let status = resp.status();
                let raw = Zeroizing::new(resp.text().await.unwrap_or_default());
                if !status.is_success() {
                    return Err(unavailable(format!(
                        "the subject token URL answered HTTP {}",
                        status.as_u16()
                    )));
                }
                (raw, format)
            }
        };
        let token = match format {
            TokenFormat::Text => raw.trim().to_string(),
            TokenFormat::Json(field) => {
                let v: serde_json::Value = serde_json::from_str(&raw)
                    .map_err(|_| unavailable("the subject token is not JSON"))?;
                v.get(field)
                    .and_then(|x| x.as_str())
                    .map(str::to_string)
                    .ok_or_else(|| {
                        unavailable(format!(
                            "the subject token JSON has no string field {field:?}"
                        ))
                    })?
            }
        };
        if token.is_empty() {
            return Err(unavailable("the subject token is empty"));
        }
        Ok(token)
    }

    async fn access(&self, name: &str, token: &SecretValue) -> Result<reqwest::Response> {
        let url = format!(
            "{}/v1/projects/{}/secrets/{}/versions/latest:access",
            self.base, self.project, name
        );
        self.client
            .get(url)
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(|e| http::transport(BACKEND, &format!("reading secret {name}"), e))
    }
}

#[async_trait]
impl SecretBackend for GcpBackend {
    fn name(&self) -> &'static str {
        BACKEND
    }

    async fn get(&self, name: &str) -> Result<Option<SecretValue>> {
        check_secret_name(BACKEND, name)?;
        let token = self.access_token().await?;
        let mut resp = self.access(name, &token).await?;
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
            // The token may have been revoked early: fetch a new one, once.
            self.forget_token().await;
            let token = self.access_token().await?;
            resp = self.access(name, &token).await?;
        }
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let text = Zeroizing::new(resp.text().await.unwrap_or_default());
        match status.as_u16() {
            200..=299 => {}
            401 => {
                return Err(unavailable(format!(
                    "the access token was refused (HTTP 401) reading secret {name}: {}",
                    google_error(&text)
                )));
            }
            403 if denied_or_absent(&text) => {
                let first = self
                    .denied_logged
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(name.to_string());
                if first {
                    tracing::debug!(
                        secret = name,
                        project = %self.project,
                        "gcp: access denied, or the secret does not exist (per-secret IAM grants); asking the next backend"
                    );
                }
                return Ok(None);
            }
            403 => {
                return Err(unavailable(format!(
                    "permission denied (HTTP 403) reading secret {name} in project {}: grant roles/secretmanager.secretAccessor ({})",
                    self.project,
                    google_error(&text)
                )));
            }
            s => {
                return Err(unavailable(format!(
                    "HTTP {s} reading secret {name}: {}",
                    google_error(&text)
                )));
            }
        }
        #[derive(Deserialize)]
        struct Access {
            payload: Payload,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Payload {
            #[serde(default)]
            data: String,
            data_crc32c: Option<String>,
        }
        let mut access: Access = serde_json::from_str(&text)
            .map_err(|_| unavailable(format!("unexpected answer reading secret {name}")))?;
        let data = Zeroizing::new(std::mem::take(&mut access.payload.data));
        let bytes = Zeroizing::new(
            STANDARD
                .decode(data.as_bytes())
                .map_err(|_| unavailable(format!("secret {name}: payload.data is not base64")))?,
        );
        if let Some(want) = access.payload.data_crc32c.as_deref()
            && want.parse::<u32>().ok() != Some(crc32c(&bytes))
        {
            return Err(unavailable(format!(
                "secret {name}: the payload checksum does not match (corrupted in transit)"
            )));
        }
        let value = std::str::from_utf8(&bytes)
            .map_err(|_| config_error(format!("secret {name} is not UTF-8 text")))?;
        Ok(Some(SecretValue::new(value)))
    }
}

/// Reads an OAuth token response (`access_token`, `expires_in`).
async fn oauth_token(resp: reqwest::Response, step: &str) -> Result<(SecretValue, Duration)> {
    let status = resp.status();
    let text = Zeroizing::new(resp.text().await.unwrap_or_default());
    if !status.is_success() {
        return Err(unavailable(format!(
            "{step} refused (HTTP {}): {}",
            status.as_u16(),
            google_error(&text)
        )));
    }
    #[derive(Deserialize)]
    struct Token {
        access_token: String,
        expires_in: Option<u64>,
    }
    let mut t: Token = serde_json::from_str(&text)
        .map_err(|_| unavailable(format!("{step} answered without an access_token")))?;
    let lifetime = Duration::from_secs(t.expires_in.unwrap_or(3600));
    Ok((
        SecretValue::new(std::mem::take(&mut t.access_token)),
        lifetime,
    ))
}

/// Whether a 403 body is Google's "denied ... (or it may not exist)", read
/// in full (a long project and name push it past an excerpt's length).
fn denied_or_absent(body: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(|m| m.as_str())
                .map(|m| m.contains("(or it may not exist)"))
        })
        .unwrap_or(false)
}

/// The useful part of a Google error body: `error.message` of API errors,
/// `error` and `error_description` of OAuth errors.
fn google_error(body: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return http::excerpt(body);
    };
    let msg = match v.get("error") {
        Some(serde_json::Value::Object(o)) => o
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or("")
            .to_string(),
        Some(serde_json::Value::String(e)) => {
            match v.get("error_description").and_then(|d| d.as_str()) {
                Some(d) => format!("{e}: {d}"),
                None => e.clone(),
            }
        }
        _ => String::new(),
    };
    http::excerpt(&msg)
}

fn parse_credentials(json: &str) -> Result<Credentials> {
    let mut c: CredentialsJson = serde_json::from_str(json).map_err(|e| {
        // Only the position: a data error's message may quote the input.
        config_error(format!(
            "the credentials are not valid JSON ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    match c.kind.as_deref() {
        Some("service_account") => {
            let client_email = c
                .client_email
                .take()
                .ok_or_else(|| config_error("the service-account key has no client_email"))?;
            let pem = Zeroizing::new(
                c.private_key
                    .take()
                    .ok_or_else(|| config_error("the service-account key has no private_key"))?,
            );
            let key = rsa_key_from_pem(&pem)?;
            Ok(Credentials::ServiceAccount(ServiceAccount {
                client_email,
                private_key_id: c.private_key_id.take(),
                key,
                token_uri: c
                    .token_uri
                    .take()
                    .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string()),
            }))
        }
        Some("external_account") => {
            let audience = c
                .audience
                .take()
                .ok_or_else(|| config_error("the external-account credentials have no audience"))?;
            let subject_token_type = c.subject_token_type.take().ok_or_else(|| {
                config_error("the external-account credentials have no subject_token_type")
            })?;
            let src = c.credential_source.take().ok_or_else(|| {
                config_error("the external-account credentials have no credential_source")
            })?;
            if src.environment_id.is_some() || src.executable.is_some() {
                return Err(config_error(
                    "only file and url credential sources are supported (not AWS or executable sources)",
                ));
            }
            let format = match src.format {
                None => TokenFormat::Text,
                Some(f) => match f.kind.as_deref() {
                    None | Some("text") => TokenFormat::Text,
                    Some("json") => TokenFormat::Json(f.subject_token_field_name.ok_or_else(|| {
                        config_error("credential_source.format of type json needs subject_token_field_name")
                    })?),
                    Some(other) => {
                        return Err(config_error(format!(
                            "credential_source.format type {other:?} is not supported"
                        )));
                    }
                },
            };
            let source = match (src.file, src.url) {
                (Some(path), None) => SubjectSource::File { path, format },
                (None, Some(url)) => SubjectSource::Url {
                    url,
                    headers: src.headers,
                    format,
                },
                _ => {
                    return Err(config_error(
                        "credential_source needs exactly one of file or url",
                    ));
                }
            };
            Ok(Credentials::External(External {
                audience,
                subject_token_type,
                token_url: c
                    .token_url
                    .take()
                    .unwrap_or_else(|| DEFAULT_STS_URL.to_string()),
                source,
                impersonation_url: c.service_account_impersonation_url.take(),
                lifetime_secs: c
                    .service_account_impersonation
                    .and_then(|i| i.token_lifetime_seconds)
                    .unwrap_or(3600),
            }))
        }
        Some(other) => Err(config_error(format!(
            "credentials of type {other:?} are not supported: use a service_account key or external_account (Workload Identity Federation) JSON"
        ))),
        None => Err(config_error(
            "the credentials JSON has no \"type\": use a service_account key or external_account JSON",
        )),
    }
}

/// An RSA private key from PEM: PKCS#8 (`BEGIN PRIVATE KEY`, what Google
/// issues) or PKCS#1 (`BEGIN RSA PRIVATE KEY`).
fn rsa_key_from_pem(pem: &str) -> Result<aws_lc_rs::rsa::KeyPair> {
    let (label, der) =
        pem_body(pem).ok_or_else(|| config_error("private_key is not a PEM block"))?;
    let der = Zeroizing::new(der);
    let key = match label.as_str() {
        "PRIVATE KEY" => aws_lc_rs::rsa::KeyPair::from_pkcs8(&der),
        "RSA PRIVATE KEY" => aws_lc_rs::rsa::KeyPair::from_der(&der),
        _ => {
            return Err(config_error(format!(
                "private_key is a PEM {label:?}, not an RSA private key"
            )));
        }
    };
    key.map_err(|e| config_error(format!("private_key is not a usable RSA key: {e}")))
}

fn pem_body(pem: &str) -> Option<(String, Vec<u8>)> {
    let start = pem.find("-----BEGIN ")?;
    let rest = &pem[start + 11..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_string();
    let body_and_end = &rest[label_end + 5..];
    let end = body_and_end.find(&format!("-----END {label}-----"))?;
    let b64: Zeroizing<String> = Zeroizing::new(
        body_and_end[..end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect(),
    );
    STANDARD.decode(b64.as_bytes()).ok().map(|d| (label, d))
}

impl ServiceAccount {
    fn jwt(&self) -> Result<String> {
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.private_key_id {
            header["kid"] = serde_json::Value::String(kid.clone());
        }
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": CLOUD_PLATFORM_SCOPE,
            "aud": self.token_uri,
            "iat": iat,
            "exp": iat + 3600,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| Error::internal("gcp backend: RS256 signing failed"))?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

/// CRC-32C (Castagnoli), the checksum Secret Manager sends with payloads.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0x82F6_3B78 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_known_vector() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn bad_credentials_are_clear_errors() {
        for (json, want) in [
            ("not json", "not valid JSON"),
            ("{}", "no \"type\""),
            (r#"{"type":"authorized_user"}"#, "not supported"),
            (
                r#"{"type":"service_account","client_email":"a@b"}"#,
                "no private_key",
            ),
            (
                r#"{"type":"service_account","client_email":"a@b","private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}"#,
                "not a usable RSA key",
            ),
            (
                r#"{"type":"external_account","audience":"a","subject_token_type":"t","credential_source":{"environment_id":"aws1"}}"#,
                "not AWS",
            ),
        ] {
            let e = GcpBackend::new(GcpConfig::new("p", json)).unwrap_err();
            assert!(e.to_string().contains(want), "{json}: {e}");
            assert!(e.to_string().starts_with("gcp backend"), "{e}");
        }
    }

    #[test]
    fn google_errors_are_summarised() {
        assert_eq!(
            google_error(
                r#"{"error":{"code":403,"message":"Permission denied","status":"PERMISSION_DENIED"}}"#
            ),
            "Permission denied"
        );
        assert_eq!(
            google_error(r#"{"error":"invalid_grant","error_description":"Invalid JWT"}"#),
            "invalid_grant: Invalid JWT"
        );
    }
}

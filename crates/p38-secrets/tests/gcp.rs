//! Google Secret Manager against loopback servers speaking Google's wire
//! format: an OAuth token endpoint that verifies the RS256 JWT, STS, IAM
//! credentials impersonation, and the Secret Manager access endpoint.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use p38_secrets::{ChainResolver, GcpBackend, GcpConfig, SecretBackend, SecretResolver};

const PROJECT: &str = "proj-38";
const EMAIL: &str = "p38-reader@proj-38.iam.gserviceaccount.com";
const SA_TOKEN: &str = "ya29.service-account-token";
const STS_TOKEN: &str = "ya29.sts-federated-token";
const IMPERSONATED_TOKEN: &str = "ya29.impersonated-token";
const SUBJECT: &str = "eyJhbGciOi.subject-oidc-token.sig";
const AUDIENCE: &str =
    "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/providers/gh";

#[derive(Default)]
struct Google {
    /// PKCS#1 RSAPublicKey DER of the test key.
    public_key: Vec<u8>,
    /// The token endpoint's own URL (the expected `aud`).
    token_uri: Mutex<String>,
    /// Status forced on the token endpoint (0: normal).
    token_status: Mutex<u16>,
    token_calls: AtomicUsize,
    jwt_verified: AtomicUsize,
    /// The bearer the secret endpoint accepts.
    accepted_bearer: Mutex<String>,
    secrets: Mutex<HashMap<String, String>>,
    /// Names whose reads are denied with 403.
    denied: Mutex<Vec<String>>,
    /// The role is granted per secret: an absent secret answers 403 "(or
    /// it may not exist)", not 404.
    per_secret_grants: std::sync::atomic::AtomicBool,
    /// The Secret Manager API is disabled on the project.
    api_disabled: std::sync::atomic::AtomicBool,
    /// Names whose payload arrives with a checksum that does not match.
    corrupted: Mutex<Vec<String>>,
    sts_forms: Mutex<Vec<HashMap<String, String>>>,
    impersonation_bodies: Mutex<Vec<Value>>,
    subject_headers: Mutex<Vec<String>>,
}

type St = State<Arc<Google>>;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn bad(status: StatusCode, error: &str, desc: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": desc})),
    )
        .into_response()
}

/// The OAuth 2.0 token endpoint of a service-account key: verifies the JWT
/// assertion's signature with the public key, then its claims.
async fn token(State(g): St, Form(f): Form<HashMap<String, String>>) -> Response {
    g.token_calls.fetch_add(1, Ordering::SeqCst);
    let forced = *g.token_status.lock().unwrap();
    if forced != 0 {
        return bad(
            StatusCode::from_u16(forced).unwrap(),
            "invalid_client",
            "The OAuth client was not found.",
        );
    }
    if f.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return bad(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type",
        );
    }
    let Some(jwt) = f.get("assertion") else {
        return bad(StatusCode::BAD_REQUEST, "invalid_request", "no assertion");
    };
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return bad(StatusCode::BAD_REQUEST, "invalid_grant", "not a JWT");
    }
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap_or_default();
    let signed = format!("{}.{}", parts[0], parts[1]);
    if UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &g.public_key)
        .verify(signed.as_bytes(), &sig)
        .is_err()
    {
        return bad(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid JWT Signature.",
        );
    }
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let iat = claims["iat"].as_u64().unwrap_or(0);
    let exp = claims["exp"].as_u64().unwrap_or(0);
    let ok = header["alg"] == "RS256"
        && header["kid"] == "key-id-1"
        && claims["iss"] == EMAIL
        && claims["scope"] == "https://www.googleapis.com/auth/cloud-platform"
        && claims["aud"] == *g.token_uri.lock().unwrap()
        && iat.abs_diff(now()) < 60
        && exp > iat
        && exp - iat <= 3600;
    if !ok {
        return bad(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            &format!("bad claims {header} {claims}"),
        );
    }
    g.jwt_verified.fetch_add(1, Ordering::SeqCst);
    Json(json!({"access_token": SA_TOKEN, "expires_in": 3599, "token_type": "Bearer"}))
        .into_response()
}

/// Google STS: token exchange, form-encoded.
async fn sts(State(g): St, Form(f): Form<HashMap<String, String>>) -> Response {
    g.sts_forms.lock().unwrap().push(f.clone());
    if f.get("subject_token").map(String::as_str) != Some(SUBJECT) {
        return bad(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "The subject token is invalid.",
        );
    }
    Json(json!({
        "access_token": STS_TOKEN,
        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "token_type": "Bearer",
        "expires_in": 3600
    }))
    .into_response()
}

/// IAM credentials generateAccessToken.
async fn impersonate(State(g): St, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    g.impersonation_bodies.lock().unwrap().push(body);
    if common::bearer(&headers).as_deref() != Some(STS_TOKEN) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}})),
        )
            .into_response();
    }
    let expire = chrono::Utc::now() + chrono::Duration::hours(1);
    Json(json!({"accessToken": IMPERSONATED_TOKEN, "expireTime": expire.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}))
        .into_response()
}

/// A subject token URL (as on GitHub Actions or Azure: JSON, needs a header).
async fn subject_url(State(g): St, headers: HeaderMap) -> Response {
    let h = headers
        .get("metadata-flavor")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    g.subject_headers.lock().unwrap().push(h.clone());
    if h != "p38-test" {
        return StatusCode::FORBIDDEN.into_response();
    }
    Json(json!({"value": SUBJECT, "count": 1})).into_response()
}

/// Secret Manager `versions/latest:access`.
async fn access(
    State(g): St,
    headers: HeaderMap,
    Path((project, secret, version)): Path<(String, String, String)>,
) -> Response {
    let err = |code: u16, status: &str, message: &str| {
        (
            StatusCode::from_u16(code).unwrap(),
            Json(json!({"error": {"code": code, "message": message, "status": status}})),
        )
            .into_response()
    };
    if common::bearer(&headers) != Some(g.accepted_bearer.lock().unwrap().clone()) {
        return err(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
        );
    }
    if project != PROJECT || version != "latest:access" {
        return err(400, "INVALID_ARGUMENT", "bad path");
    }
    if g.api_disabled.load(Ordering::SeqCst) {
        return err(
            403,
            "PERMISSION_DENIED",
            "Secret Manager API has not been used in project 123 before or it is disabled. Enable it by visiting https://console.developers.google.com/apis/api/secretmanager.googleapis.com/overview?project=123 then retry. If you enabled this API recently, wait a few minutes for the action to propagate to our systems and retry.",
        );
    }
    // Google's words for a read it does not allow, whether or not the
    // secret exists.
    let denied = format!(
        "Permission 'secretmanager.versions.access' denied for resource 'projects/{project}/secrets/{secret}/versions/latest' (or it may not exist)."
    );
    if g.denied.lock().unwrap().contains(&secret) {
        return err(403, "PERMISSION_DENIED", &denied);
    }
    let found = g.secrets.lock().unwrap().get(&secret).cloned();
    if found.is_none() && g.per_secret_grants.load(Ordering::SeqCst) {
        return err(403, "PERMISSION_DENIED", &denied);
    }
    if let Some(value) = &found
        && g.corrupted.lock().unwrap().contains(&secret)
    {
        return Json(json!({
            "name": format!("projects/123/secrets/{secret}/versions/3"),
            "payload": {
                "data": STANDARD.encode(value),
                "dataCrc32c": (common::crc32c(value.as_bytes()) ^ 1).to_string()
            }
        }))
        .into_response();
    }
    let Some(value) = found else {
        return err(
            404,
            "NOT_FOUND",
            &format!("Secret [projects/123/secrets/{secret}] not found or has no versions."),
        );
    };
    Json(json!({
        "name": format!("projects/123/secrets/{secret}/versions/3"),
        "payload": {
            "data": STANDARD.encode(&value),
            "dataCrc32c": common::crc32c(value.as_bytes()).to_string()
        }
    }))
    .into_response()
}

fn router(g: Arc<Google>) -> Router {
    Router::new()
        .route("/token", post(token))
        .route("/v1/token", post(sts))
        .route("/v1/projects/-/serviceAccounts/{sa}", post(impersonate))
        .route("/subject", get(subject_url))
        .route(
            "/v1/projects/{project}/secrets/{secret}/versions/{version}",
            get(access),
        )
        .with_state(g)
}

/// A throwaway RSA key made now: (PKCS#8 PEM, PKCS#1 public key DER).
fn throwaway_key() -> (String, Vec<u8>) {
    let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&kp).unwrap();
    let b64 = STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    (pem, kp.public_key().as_ref().to_vec())
}

/// A Google with a service-account key; returns it, its base URL and the
/// key JSON.
async fn sa_setup() -> (Arc<Google>, String, String) {
    let (pem, public_key) = throwaway_key();
    let g = Arc::new(Google {
        public_key,
        ..Default::default()
    });
    let base = common::serve(router(g.clone())).await;
    *g.token_uri.lock().unwrap() = format!("{base}/token");
    *g.accepted_bearer.lock().unwrap() = SA_TOKEN.to_string();
    let key_json = json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "key-id-1",
        "private_key": pem,
        "client_email": EMAIL,
        "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": format!("{base}/token"),
    })
    .to_string();
    (g, base, key_json)
}

fn backend(base: &str, creds: &str) -> GcpBackend {
    let mut cfg = GcpConfig::new(PROJECT, creds);
    cfg.secretmanager_base = base.to_string();
    cfg.timeout = Duration::from_secs(5);
    GcpBackend::new(cfg).unwrap()
}

#[tokio::test]
async fn service_account_jwt_is_verified_and_the_secret_decoded() {
    let (g, base, key) = sa_setup().await;
    g.secrets.lock().unwrap().insert(
        "TELEGRAM_BOT_TOKEN".into(),
        "123456:ABC-def_ghí\nline2".into(),
    );
    let b = backend(&base, &key);
    assert_eq!(b.name(), "gcp");
    let v = b.get("TELEGRAM_BOT_TOKEN").await.unwrap().unwrap();
    assert_eq!(v.expose(), "123456:ABC-def_ghí\nline2");
    assert_eq!(g.jwt_verified.load(Ordering::SeqCst), 1);
    // The access token is cached: a second read makes no token call.
    b.get("TELEGRAM_BOT_TOKEN").await.unwrap().unwrap();
    assert_eq!(g.token_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_token_server_really_checks_the_signature() {
    // The server knows another key's public half: the JWT must be refused.
    let (_pem, other_public) = throwaway_key();
    let (_g0, _b0, key) = sa_setup().await;
    let g = Arc::new(Google {
        public_key: other_public,
        ..Default::default()
    });
    let base = common::serve(router(g.clone())).await;
    *g.token_uri.lock().unwrap() = format!("{base}/token");
    let mut v: Value = serde_json::from_str(&key).unwrap();
    v["token_uri"] = json!(format!("{base}/token"));
    let e = backend(&base, &v.to_string())
        .get("ANY_SECRET")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("Invalid JWT Signature"), "{e}");
    assert_eq!(g.jwt_verified.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn service_account_missing_secret_is_none() {
    let (_g, base, key) = sa_setup().await;
    let b = backend(&base, &key);
    assert!(b.get("NOT_THERE").await.unwrap().is_none());
}

#[tokio::test]
async fn rotated_value_reaches_the_chain_after_the_ttl() {
    // Long enough for "still cached" to hold on a busy machine; the
    // wait past it is the behaviour.
    const TTL: Duration = Duration::from_secs(1);
    let (g, base, key) = sa_setup().await;
    g.secrets
        .lock()
        .unwrap()
        .insert("API_KEY".into(), "first-value".into());
    let chain = ChainResolver::new(vec![Arc::new(backend(&base, &key))], TTL);
    let n = vec!["API_KEY".to_string()];
    assert_eq!(
        chain.resolve(&n).await.unwrap()["API_KEY"].expose(),
        "first-value"
    );
    g.secrets
        .lock()
        .unwrap()
        .insert("API_KEY".into(), "second-value".into());
    assert_eq!(
        chain.resolve(&n).await.unwrap()["API_KEY"].expose(),
        "first-value"
    );
    tokio::time::sleep(TTL + Duration::from_millis(100)).await;
    assert_eq!(
        chain.resolve(&n).await.unwrap()["API_KEY"].expose(),
        "second-value"
    );
}

#[tokio::test]
async fn token_endpoint_401_is_a_clear_error_naming_gcp() {
    let (g, base, key) = sa_setup().await;
    *g.token_status.lock().unwrap() = 401;
    let b = backend(&base, &key);
    let e = b.get("ANY_SECRET").await.unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("gcp backend:"), "{msg}");
    assert!(
        msg.contains("401") && msg.contains("invalid_client"),
        "{msg}"
    );
    assert!(!msg.contains("PRIVATE KEY"));
}

#[tokio::test]
async fn wrong_bearer_at_the_secret_endpoint_is_an_error() {
    let (g, base, key) = sa_setup().await;
    g.secrets
        .lock()
        .unwrap()
        .insert("API_KEY".into(), "the-value-1".into());
    *g.accepted_bearer.lock().unwrap() = "ya29.some-other-token".into();
    let b = backend(&base, &key);
    let e = b.get("API_KEY").await.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("gcp backend:") && msg.contains("401"),
        "{msg}"
    );
    assert!(!msg.contains("the-value-1"));
    // It fetched a fresh token once before giving up.
    assert_eq!(g.token_calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn permission_denied_names_the_role() {
    let (g, base, key) = sa_setup().await;
    g.secrets
        .lock()
        .unwrap()
        .insert("LOCKED".into(), "locked-value".into());
    g.api_disabled.store(true, Ordering::SeqCst);
    let e = backend(&base, &key).get("LOCKED").await.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("gcp backend") && msg.contains("403") && msg.contains("secretAccessor"),
        "{msg}"
    );
    assert!(msg.contains("API has not been used"), "{msg}");
}

/// Collects log lines in memory.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A second backend that has every secret asked of it.
struct Fallback;

#[async_trait::async_trait]
impl SecretBackend for Fallback {
    fn name(&self) -> &'static str {
        "local"
    }
    async fn get(&self, name: &str) -> p38_core::Result<Option<p38_secrets::SecretValue>> {
        Ok(Some(p38_secrets::SecretValue::new(format!(
            "fallback-{name}"
        ))))
    }
}

#[tokio::test]
async fn denied_or_absent_under_per_secret_grants_is_a_miss_and_the_chain_asks_on() {
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (g, base, key) = sa_setup().await;
    g.per_secret_grants.store(true, Ordering::SeqCst);
    g.secrets
        .lock()
        .unwrap()
        .insert("IN_GCP".into(), "gcp-value-77".into());
    let b = backend(&base, &key);
    assert_eq!(
        b.get("IN_GCP").await.unwrap().unwrap().expose(),
        "gcp-value-77"
    );
    // Absent: Google answers 403 "(or it may not exist)", read as a miss.
    assert!(b.get("ONLY_LOCAL").await.unwrap().is_none());
    assert!(b.get("ONLY_LOCAL").await.unwrap().is_none());
    let chain = ChainResolver::new(
        vec![Arc::new(b), Arc::new(Fallback)],
        Duration::from_millis(1),
    );
    let names = vec!["IN_GCP".to_string(), "ONLY_LOCAL".to_string()];
    let got = chain.resolve(&names).await.unwrap();
    assert_eq!(got["IN_GCP"].expose(), "gcp-value-77");
    assert_eq!(got["ONLY_LOCAL"].expose(), "fallback-ONLY_LOCAL");

    let logs = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("may not exist") || l.contains("does not exist"))
        .collect();
    assert_eq!(lines.len(), 1, "logged once: {logs}");
    assert!(
        lines[0].contains("DEBUG") && lines[0].contains("ONLY_LOCAL"),
        "{logs}"
    );
    assert!(
        !logs.contains("gcp-value-77") && !logs.contains(SA_TOKEN),
        "{logs}"
    );
}

#[tokio::test]
async fn payload_checksum_mismatch_is_an_error() {
    let (g, base, key) = sa_setup().await;
    g.secrets
        .lock()
        .unwrap()
        .insert("TAMPERED".into(), "tampered-value-3".into());
    g.corrupted.lock().unwrap().push("TAMPERED".into());
    let e = backend(&base, &key).get("TAMPERED").await.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("gcp backend") && msg.contains("checksum"),
        "{msg}"
    );
    assert!(!msg.contains("tampered-value-3"), "{msg}");
    assert_eq!(e.code(), "unavailable");
}

#[tokio::test]
async fn unreachable_server_is_an_error_naming_gcp() {
    let (_g, _base, key) = sa_setup().await;
    // Nothing listens on port 9 of loopback.
    let b = backend("http://127.0.0.1:9", &key);
    // The token endpoint is still the live one; the secret endpoint is not.
    let e = b.get("API_KEY").await.unwrap_err();
    assert!(e.to_string().starts_with("gcp backend:"), "{e}");
    assert_eq!(e.code(), "unavailable");
}

#[tokio::test]
async fn workload_identity_file_source_sts_then_impersonation() {
    let g = Arc::new(Google::default());
    let base = common::serve(router(g.clone())).await;
    *g.accepted_bearer.lock().unwrap() = IMPERSONATED_TOKEN.to_string();
    g.secrets
        .lock()
        .unwrap()
        .insert("DB_PASSWORD".into(), "wif-secret-value".into());
    let dir = tempfile::tempdir().unwrap();
    let subject_file = dir.path().join("oidc-token");
    std::fs::write(&subject_file, format!("{SUBJECT}\n")).unwrap();
    let creds = json!({
        "type": "external_account",
        "audience": AUDIENCE,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": format!("{base}/v1/token"),
        "service_account_impersonation_url": format!("{base}/v1/projects/-/serviceAccounts/{EMAIL}:generateAccessToken"),
        "credential_source": {"file": subject_file.to_str().unwrap()}
    })
    .to_string();
    let b = backend(&base, &creds);
    let v = b.get("DB_PASSWORD").await.unwrap().unwrap();
    assert_eq!(v.expose(), "wif-secret-value");

    let forms = g.sts_forms.lock().unwrap().clone();
    assert_eq!(forms.len(), 1);
    let f = &forms[0];
    assert_eq!(
        f["grant_type"],
        "urn:ietf:params:oauth:grant-type:token-exchange"
    );
    assert_eq!(f["audience"], AUDIENCE);
    assert_eq!(f["scope"], "https://www.googleapis.com/auth/cloud-platform");
    assert_eq!(
        f["requested_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(f["subject_token"], SUBJECT);
    assert_eq!(
        f["subject_token_type"],
        "urn:ietf:params:oauth:token-type:jwt"
    );
    let bodies = g.impersonation_bodies.lock().unwrap().clone();
    assert_eq!(
        bodies,
        vec![
            json!({"scope": ["https://www.googleapis.com/auth/cloud-platform"], "lifetime": "3600s"})
        ]
    );
    // Cached: no second exchange.
    b.get("DB_PASSWORD").await.unwrap().unwrap();
    assert_eq!(g.sts_forms.lock().unwrap().len(), 1);
    assert!(b.get("NOPE").await.unwrap().is_none());
}

#[tokio::test]
async fn workload_identity_url_source_with_json_format_and_no_impersonation() {
    let g = Arc::new(Google::default());
    let base = common::serve(router(g.clone())).await;
    *g.accepted_bearer.lock().unwrap() = STS_TOKEN.to_string();
    g.secrets
        .lock()
        .unwrap()
        .insert("DIRECT".into(), "direct-access-value".into());
    let creds = json!({
        "type": "external_account",
        "audience": AUDIENCE,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": format!("{base}/v1/token"),
        "credential_source": {
            "url": format!("{base}/subject"),
            "headers": {"Metadata-Flavor": "p38-test"},
            "format": {"type": "json", "subject_token_field_name": "value"}
        }
    })
    .to_string();
    let v = backend(&base, &creds).get("DIRECT").await.unwrap().unwrap();
    assert_eq!(v.expose(), "direct-access-value");
    assert_eq!(
        *g.subject_headers.lock().unwrap(),
        vec!["p38-test".to_string()]
    );
    assert!(g.impersonation_bodies.lock().unwrap().is_empty());
}

#[tokio::test]
async fn workload_identity_missing_subject_file_is_a_clear_error() {
    let creds = json!({
        "type": "external_account",
        "audience": AUDIENCE,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": "http://127.0.0.1:9/v1/token",
        "credential_source": {"file": "/nonexistent/p38/token"}
    })
    .to_string();
    let e = backend("http://127.0.0.1:9", &creds)
        .get("X_SECRET")
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("gcp backend") && e.to_string().contains("/nonexistent/p38/token"),
        "{e}"
    );
}

#[tokio::test]
async fn debug_shows_no_key_token_or_value() {
    let (g, base, key) = sa_setup().await;
    g.secrets
        .lock()
        .unwrap()
        .insert("CANARY".into(), "canary-value-777".into());
    let mut cfg = GcpConfig::new(PROJECT, key.clone());
    cfg.secretmanager_base = base.clone();
    let d_cfg = format!("{cfg:?}");
    let b = GcpBackend::new(cfg).unwrap();
    b.get("CANARY").await.unwrap().unwrap();
    let d_b = format!("{b:?}");
    for d in [d_cfg, d_b] {
        assert!(!d.contains("PRIVATE KEY") && !d.contains("MII"), "{d}");
        assert!(!d.contains(SA_TOKEN) && !d.contains("canary-value"), "{d}");
        assert!(d.contains(PROJECT), "{d}");
    }
}

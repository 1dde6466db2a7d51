//! Vault / OpenBao KV v2 and v1 against a loopback server speaking Vault's
//! wire format (token header, AppRole login, the mount's KV version, KV v2
//! and v1 reads, `{"errors": [...]}`). The server refuses any request
//! without `X-Vault-Request: true`, so every test checks that header.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use p38_secrets::{
    ChainResolver, SecretBackend, SecretResolver, VaultAuth, VaultBackend, VaultConfig,
};

const ROOT_TOKEN: &str = "hvs.static-test-token";
const ROLE_ID: &str = "role-id-0000-1111";
const SECRET_ID: &str = "secret-id-canary-2222";

#[derive(Default)]
struct Vault {
    valid_tokens: Mutex<HashSet<String>>,
    /// Secrets by path under the mount, e.g. "p38/API_KEY" → the KV data.
    kv: Mutex<HashMap<String, Value>>,
    logins: AtomicUsize,
    lease_duration: Mutex<u64>,
    namespaces: Mutex<Vec<String>>,
    /// Secrets of the KV v1 mount `kv`, by path.
    kv1: Mutex<HashMap<String, Value>>,
    /// How often a mount's KV version was asked.
    version_asks: AtomicUsize,
    /// The mounts of AppRole logins, e.g. "approle".
    login_mounts: Mutex<Vec<String>>,
}

/// Vault's own clients send `X-Vault-Request: true`; this server insists.
/// `Some(refusal)` when the header is missing.
fn vault_request(headers: &HeaderMap) -> Option<Response> {
    match headers.get("x-vault-request").and_then(|v| v.to_str().ok()) {
        Some("true") => None,
        _ => Some(errors(
            StatusCode::PRECONDITION_FAILED,
            &["missing X-Vault-Request: true"],
        )),
    }
}

fn token_ok(v: &Vault, headers: &HeaderMap) -> bool {
    let token = headers
        .get("x-vault-token")
        .and_then(|t| t.to_str().ok())
        .unwrap_or("");
    v.valid_tokens.lock().unwrap().contains(token)
}

/// `sys/internal/ui/mounts/{mount}`: `secret` is KV v2, `kv` KV v1 (as
/// `vault secrets enable -version=1 kv`), `legacy` a KV made by
/// `vault secrets enable kv` (no options: version 1).
async fn mount_info(State(v): St, headers: HeaderMap, Path(mount): Path<String>) -> Response {
    if let Some(r) = vault_request(&headers) {
        return r;
    }
    if !token_ok(&v, &headers) {
        return errors(StatusCode::FORBIDDEN, &["permission denied"]);
    }
    v.version_asks.fetch_add(1, Ordering::SeqCst);
    let options = match mount.as_str() {
        "secret" => json!({"version": "2"}),
        "kv" => json!({"version": "1"}),
        "legacy" => Value::Null,
        _ => return errors(StatusCode::BAD_REQUEST, &[&format!("no mount at {mount}/")]),
    };
    Json(json!({
        "request_id": "0d1c-mounts", "lease_id": "", "renewable": false, "lease_duration": 0,
        "data": {
            "accessor": "kv_7f2a9e1c",
            "config": {"default_lease_ttl": 0, "force_no_cache": false, "max_lease_ttl": 0},
            "description": "key/value secret storage",
            "external_entropy_access": false, "local": false,
            "options": options, "path": format!("{mount}/"),
            "plugin_version": "", "running_plugin_version": "v0.20.0+builtin",
            "running_sha256": "", "seal_wrap": false, "type": "kv",
            "uuid": "5b8a7c3e-1111-2222-3333-444455556666"
        },
        "wrap_info": null, "warnings": null, "auth": null
    }))
    .into_response()
}

/// A KV v1 read: `GET /v1/{mount}/{path}`, the entry straight in `data`.
async fn read_v1(
    State(v): St,
    headers: HeaderMap,
    Path((mount, path)): Path<(String, String)>,
) -> Response {
    if let Some(r) = vault_request(&headers) {
        return r;
    }
    if !token_ok(&v, &headers) {
        return errors(StatusCode::FORBIDDEN, &["permission denied"]);
    }
    if mount != "kv" && mount != "legacy" {
        return errors(StatusCode::NOT_FOUND, &[]);
    }
    match v.kv1.lock().unwrap().get(&path) {
        None => errors(StatusCode::NOT_FOUND, &[]),
        Some(data) => Json(json!({
            "request_id": "7c2d-read-v1", "lease_id": "", "renewable": false,
            "lease_duration": 2764800, "data": data,
            "wrap_info": null, "warnings": null, "auth": null
        }))
        .into_response(),
    }
}

type St = State<Arc<Vault>>;

fn errors(status: StatusCode, e: &[&str]) -> Response {
    (status, Json(json!({"errors": e}))).into_response()
}

async fn login(
    State(v): St,
    headers: HeaderMap,
    Path(mount): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = vault_request(&headers) {
        return r;
    }
    v.login_mounts.lock().unwrap().push(mount.clone());
    if mount != "approle" && mount != "ci-approle" {
        return errors(StatusCode::NOT_FOUND, &["no handler for route"]);
    }
    if let Some(ns) = headers.get("x-vault-namespace") {
        v.namespaces
            .lock()
            .unwrap()
            .push(ns.to_str().unwrap().to_string());
    }
    if body["role_id"] != ROLE_ID || body["secret_id"] != SECRET_ID {
        return errors(StatusCode::BAD_REQUEST, &["invalid role or secret ID"]);
    }
    let n = v.logins.fetch_add(1, Ordering::SeqCst) + 1;
    let token = format!("hvs.approle-token-{n}");
    v.valid_tokens.lock().unwrap().insert(token.clone());
    Json(json!({
        "request_id": "5e7f-login", "lease_id": "", "renewable": false, "lease_duration": 0,
        "data": null, "wrap_info": null, "warnings": null,
        "auth": {
            "client_token": token, "accessor": "acc-1", "policies": ["default", "p38"],
            "token_policies": ["default", "p38"], "metadata": {"role_name": "p38"},
            "lease_duration": *v.lease_duration.lock().unwrap(), "renewable": true,
            "entity_id": "ent-1", "token_type": "service", "orphan": true
        }
    }))
    .into_response()
}

async fn read(
    State(v): St,
    headers: HeaderMap,
    Path((mount, path)): Path<(String, String)>,
) -> Response {
    if let Some(r) = vault_request(&headers) {
        return r;
    }
    if !token_ok(&v, &headers) {
        return errors(StatusCode::FORBIDDEN, &["permission denied"]);
    }
    if let Some(ns) = headers.get("x-vault-namespace") {
        v.namespaces
            .lock()
            .unwrap()
            .push(ns.to_str().unwrap().to_string());
    }
    if mount != "secret" {
        return errors(StatusCode::NOT_FOUND, &["no handler for route"]);
    }
    match v.kv.lock().unwrap().get(&path) {
        None => errors(StatusCode::NOT_FOUND, &[]),
        Some(data) => Json(json!({
            "request_id": "9a1b-read", "lease_id": "", "renewable": false, "lease_duration": 0,
            "data": {
                "data": data,
                "metadata": {"created_time": "2026-11-24T10:00:00.000000Z", "custom_metadata": null,
                              "deletion_time": "", "destroyed": false, "version": 2}
            },
            "wrap_info": null, "warnings": null, "auth": null
        }))
        .into_response(),
    }
}

async fn start() -> (Arc<Vault>, String) {
    let v = Arc::new(Vault::default());
    v.valid_tokens
        .lock()
        .unwrap()
        .insert(ROOT_TOKEN.to_string());
    *v.lease_duration.lock().unwrap() = 2_764_800;
    let app = Router::new()
        .route("/v1/auth/{mount}/login", post(login))
        .route("/v1/sys/internal/ui/mounts/{mount}", get(mount_info))
        .route("/v1/{mount}/data/{*path}", get(read))
        .route(
            "/v1/kv/{*path}",
            get(|s, h, Path(p): Path<String>| read_v1(s, h, Path(("kv".to_string(), p)))),
        )
        .route(
            "/v1/legacy/{*path}",
            get(|s, h, Path(p): Path<String>| read_v1(s, h, Path(("legacy".to_string(), p)))),
        )
        .with_state(v.clone());
    let base = common::serve(app).await;
    (v, base)
}

fn put(v: &Vault, path: &str, value: &str) {
    v.kv.lock()
        .unwrap()
        .insert(path.to_string(), json!({"value": value}));
}

fn cfg(base: &str, auth: VaultAuth) -> VaultConfig {
    let mut c = VaultConfig::new(base, auth);
    c.timeout = Duration::from_secs(5);
    c
}

#[tokio::test]
async fn token_auth_reads_data_data_value() {
    let (v, base) = start().await;
    put(&v, "p38/API_KEY", "vault-value-1");
    let b = VaultBackend::new(cfg(&base, VaultAuth::token(ROOT_TOKEN))).unwrap();
    assert_eq!(b.name(), "vault");
    assert_eq!(
        b.get("API_KEY").await.unwrap().unwrap().expose(),
        "vault-value-1"
    );
    assert_eq!(v.logins.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn custom_mount_prefix_and_namespace() {
    let (v, base) = start().await;
    put(&v, "teams/bots/BOT_TOKEN", "nested-value");
    let mut c = cfg(&base, VaultAuth::approle(ROLE_ID, SECRET_ID));
    c.mount = "/secret/".into();
    c.path_prefix = "teams/bots/".into();
    c.namespace = Some("admin/p38".into());
    let b = VaultBackend::new(c).unwrap();
    assert_eq!(
        b.get("BOT_TOKEN").await.unwrap().unwrap().expose(),
        "nested-value"
    );
    assert_eq!(*v.namespaces.lock().unwrap(), ["admin/p38", "admin/p38"]);
}

#[tokio::test]
async fn approle_logs_in_once_then_reads() {
    let (v, base) = start().await;
    put(&v, "p38/DB_PASSWORD", "approle-value");
    let b = VaultBackend::new(cfg(&base, VaultAuth::approle(ROLE_ID, SECRET_ID))).unwrap();
    assert_eq!(
        b.get("DB_PASSWORD").await.unwrap().unwrap().expose(),
        "approle-value"
    );
    assert_eq!(
        b.get("DB_PASSWORD").await.unwrap().unwrap().expose(),
        "approle-value"
    );
    assert_eq!(v.logins.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn approle_logs_in_again_when_the_token_is_refused() {
    let (v, base) = start().await;
    put(&v, "p38/DB_PASSWORD", "approle-value");
    let b = VaultBackend::new(cfg(&base, VaultAuth::approle(ROLE_ID, SECRET_ID))).unwrap();
    b.get("DB_PASSWORD").await.unwrap().unwrap();
    // Revoke every token: the next read gets 403, logs in again, succeeds.
    v.valid_tokens.lock().unwrap().clear();
    assert_eq!(
        b.get("DB_PASSWORD").await.unwrap().unwrap().expose(),
        "approle-value"
    );
    assert_eq!(v.logins.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn approle_logs_in_again_when_the_lease_ends() {
    let (v, base) = start().await;
    *v.lease_duration.lock().unwrap() = 1; // refreshed after half a second
    put(&v, "p38/DB_PASSWORD", "approle-value");
    let b = VaultBackend::new(cfg(&base, VaultAuth::approle(ROLE_ID, SECRET_ID))).unwrap();
    b.get("DB_PASSWORD").await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    b.get("DB_PASSWORD").await.unwrap().unwrap();
    assert_eq!(v.logins.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn bad_approle_credentials_are_a_clear_error() {
    let (_v, base) = start().await;
    let b = VaultBackend::new(cfg(&base, VaultAuth::approle(ROLE_ID, "wrong-secret-id"))).unwrap();
    let e = b.get("ANY").await.unwrap_err().to_string();
    assert!(
        e.starts_with("vault backend: AppRole login refused (HTTP 400)"),
        "{e}"
    );
    assert!(
        e.contains("invalid role or secret ID") && !e.contains("wrong-secret-id"),
        "{e}"
    );
}

#[tokio::test]
async fn missing_entry_is_none() {
    let (_v, base) = start().await;
    let b = VaultBackend::new(cfg(&base, VaultAuth::token(ROOT_TOKEN))).unwrap();
    assert!(b.get("NOT_THERE").await.unwrap().is_none());
}

#[tokio::test]
async fn forbidden_is_a_clear_error_naming_vault() {
    let (v, base) = start().await;
    put(&v, "p38/API_KEY", "vault-value-1");
    let b = VaultBackend::new(cfg(&base, VaultAuth::token("hvs.revoked-token"))).unwrap();
    let e = b.get("API_KEY").await.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with(
            "vault backend: permission denied (HTTP 403) reading secret/data/p38/API_KEY"
        ),
        "{msg}"
    );
    assert!(
        !msg.contains("vault-value-1") && !msg.contains("hvs.revoked"),
        "{msg}"
    );
    assert_eq!(e.code(), "unavailable");
}

#[tokio::test]
async fn entry_without_value_key_is_explained() {
    let (v, base) = start().await;
    v.kv.lock().unwrap().insert(
        "p38/WRONG_SHAPE".into(),
        json!({"password": "hunter2-long"}),
    );
    let b = VaultBackend::new(cfg(&base, VaultAuth::token(ROOT_TOKEN))).unwrap();
    let e = b.get("WRONG_SHAPE").await.unwrap_err().to_string();
    assert!(
        e.contains("has no key `value`") && e.contains("vault kv put"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "{e}");
}

#[tokio::test]
async fn rotated_value_reaches_the_chain_after_the_ttl() {
    // Long enough for "still cached" to hold on a busy machine; the
    // wait past it is the behaviour.
    const TTL: Duration = Duration::from_secs(1);
    let (v, base) = start().await;
    put(&v, "p38/ROTATING", "first-value");
    let b = VaultBackend::new(cfg(&base, VaultAuth::token(ROOT_TOKEN))).unwrap();
    let chain = ChainResolver::new(vec![Arc::new(b)], TTL);
    let n = vec!["ROTATING".to_string()];
    assert_eq!(
        chain.resolve(&n).await.unwrap()["ROTATING"].expose(),
        "first-value"
    );
    put(&v, "p38/ROTATING", "second-value");
    assert_eq!(
        chain.resolve(&n).await.unwrap()["ROTATING"].expose(),
        "first-value"
    );
    tokio::time::sleep(TTL + Duration::from_millis(100)).await;
    assert_eq!(
        chain.resolve(&n).await.unwrap()["ROTATING"].expose(),
        "second-value"
    );
    put(&v, "p38/ROTATING", "third-value");
    chain.reload();
    assert_eq!(
        chain.resolve(&n).await.unwrap()["ROTATING"].expose(),
        "third-value"
    );
}

#[tokio::test]
async fn bad_config_is_refused() {
    assert!(VaultBackend::new(VaultConfig::new("vault:8200", VaultAuth::token("t"))).is_err());
    let mut c = VaultConfig::new("http://127.0.0.1:8200", VaultAuth::token("t"));
    c.path_prefix = "../sys".into();
    assert!(VaultBackend::new(c).is_err());
}

#[tokio::test]
async fn debug_shows_no_token_or_secret_id() {
    let (v, base) = start().await;
    put(&v, "p38/CANARY", "canary-value-999");
    for auth in [
        VaultAuth::token(ROOT_TOKEN),
        VaultAuth::approle(ROLE_ID, SECRET_ID),
    ] {
        let c = cfg(&base, auth);
        let d_cfg = format!("{c:?}");
        let b = VaultBackend::new(c).unwrap();
        b.get("CANARY").await.unwrap().unwrap();
        let d_b = format!("{b:?}");
        for d in [d_cfg, d_b] {
            for canary in [
                ROOT_TOKEN,
                SECRET_ID,
                ROLE_ID,
                "canary-value",
                "approle-token",
            ] {
                assert!(!d.contains(canary), "{canary} in {d}");
            }
            assert!(d.contains("REDACTED"), "{d}");
        }
    }
}

fn put_v1(v: &Vault, path: &str, value: &str) {
    v.kv1
        .lock()
        .unwrap()
        .insert(path.to_string(), json!({"value": value}));
}

#[tokio::test]
async fn kv_v1_mount_is_detected_and_read() {
    let (v, base) = start().await;
    put_v1(&v, "p38/API_KEY", "kv1-value-1");
    for mount in ["kv", "legacy"] {
        let mut c = cfg(&base, VaultAuth::token(ROOT_TOKEN));
        c.mount = mount.into();
        let b = VaultBackend::new(c).unwrap();
        assert_eq!(
            b.get("API_KEY").await.unwrap().unwrap().expose(),
            "kv1-value-1",
            "{mount}"
        );
        assert!(b.get("NOT_THERE").await.unwrap().is_none(), "{mount}");
    }
    assert_eq!(
        v.version_asks.load(Ordering::SeqCst),
        2,
        "asked once per backend"
    );
    // The KV v2 mount is detected as such and read at data/.
    put(&v, "p38/API_KEY", "kv2-value");
    let b = VaultBackend::new(cfg(&base, VaultAuth::token(ROOT_TOKEN))).unwrap();
    assert_eq!(
        b.get("API_KEY").await.unwrap().unwrap().expose(),
        "kv2-value"
    );
}

#[tokio::test]
async fn kv_version_from_configuration_is_not_asked() {
    let (v, base) = start().await;
    put_v1(&v, "p38/API_KEY", "kv1-value-2");
    let mut c = cfg(&base, VaultAuth::token(ROOT_TOKEN));
    c.mount = "kv".into();
    c.kv_version = Some(1);
    let b = VaultBackend::new(c).unwrap();
    assert_eq!(
        b.get("API_KEY").await.unwrap().unwrap().expose(),
        "kv1-value-2"
    );
    assert_eq!(v.version_asks.load(Ordering::SeqCst), 0);
    // Told v2 for a v1 mount, it reads at data/ and finds nothing there.
    let mut c = cfg(&base, VaultAuth::token(ROOT_TOKEN));
    c.mount = "kv".into();
    c.kv_version = Some(2);
    assert!(
        VaultBackend::new(c)
            .unwrap()
            .get("API_KEY")
            .await
            .unwrap()
            .is_none()
    );
    let mut c = cfg(&base, VaultAuth::token(ROOT_TOKEN));
    c.kv_version = Some(3);
    assert!(VaultBackend::new(c).is_err());
}

#[tokio::test]
async fn approle_mount_is_configurable() {
    let (v, base) = start().await;
    put(&v, "p38/DB_PASSWORD", "approle-value");
    let mut c = cfg(&base, VaultAuth::approle(ROLE_ID, SECRET_ID));
    c.approle_mount = "ci-approle".into();
    let b = VaultBackend::new(c).unwrap();
    assert_eq!(
        b.get("DB_PASSWORD").await.unwrap().unwrap().expose(),
        "approle-value"
    );
    let b = VaultBackend::new(cfg(&base, VaultAuth::approle(ROLE_ID, SECRET_ID))).unwrap();
    b.get("DB_PASSWORD").await.unwrap().unwrap();
    assert_eq!(*v.login_mounts.lock().unwrap(), ["ci-approle", "approle"]);
    let mut c = cfg(&base, VaultAuth::approle(ROLE_ID, SECRET_ID));
    c.approle_mount = "elsewhere".into();
    let e = VaultBackend::new(c)
        .unwrap()
        .get("DB_PASSWORD")
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("AppRole login refused (HTTP 404)"),
        "{e}"
    );
    let mut c = cfg(&base, VaultAuth::approle(ROLE_ID, SECRET_ID));
    c.approle_mount = "../sys".into();
    assert!(VaultBackend::new(c).is_err());
}

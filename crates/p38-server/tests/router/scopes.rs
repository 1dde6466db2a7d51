//! Tokens and scopes: who may do what, and how a missing, wrong or revoked
//! token is answered (moved from `crates/p38-cli/tests/api.rs`).

use axum::http::Method;
use serde_json::json;

use crate::harness::{self, COUNTER_CODE, OK_CODE, SLEEP_CODE, Server};

#[test]
fn health_needs_no_auth_and_reports_the_backend() {
    let s = Server::start();
    let r = s.req(Method::GET, "/health", None, None);
    let b = r.expect(200);
    assert_eq!(b["status"], "ok");
    assert!(
        b["version"].as_str().is_some_and(|v| !v.is_empty()),
        "version: {b}"
    );
    assert_eq!(b["database"], harness::backend());
    assert_eq!(b["database_reachable"], true);
}

#[test]
fn root_names_the_api_and_links_to_openapi_and_health() {
    let s = Server::start();
    let b = s.req(Method::GET, "/", None, None).expect(200).clone();
    assert_eq!(b["name"], "Project38");
    assert!(b["version"].as_str().is_some_and(|v| !v.is_empty()), "{b}");
    for link in ["openapi", "health"] {
        let path = b[link].as_str().expect(link);
        s.req(Method::GET, path, None, None).expect(200);
    }
}

#[test]
fn auth_missing_header_is_401_with_www_authenticate() {
    let s = Server::start();
    let r = s.req(Method::GET, "/api/agents", None, None);
    r.assert_error(401, "unauthorized", None);
    let h = r
        .headers
        .get("www-authenticate")
        .expect("401 must carry WWW-Authenticate");
    assert!(
        h.to_str().unwrap().starts_with("Bearer"),
        "WWW-Authenticate: {h:?}"
    );
}

#[test]
fn auth_wrong_token_is_401() {
    let s = Server::start();
    let r = s.req(
        Method::GET,
        "/api/agents",
        Some("p38_this-is-not-a-real-token"),
        None,
    );
    r.assert_error(401, "unauthorized", None);
    assert!(r.headers.get("www-authenticate").is_some());
}

#[test]
fn auth_non_bearer_scheme_is_401() {
    let s = Server::start();
    let r = s.http_with_header("authorization", &format!("Basic {}", s.token));
    r.assert_error(401, "unauthorized", None);
}

#[test]
fn viewer_can_list_agents() {
    let s = Server::start();
    let (_, viewer) = s.create_token("viewer");
    let r = s.req(Method::GET, "/api/agents", Some(&viewer), None);
    r.expect(200);
}

#[test]
fn viewer_cannot_create_agent() {
    let s = Server::start();
    let (_, viewer) = s.create_token("viewer");
    let r = s.req(
        Method::POST,
        "/api/agents",
        Some(&viewer),
        Some(&json!({"name": "v1", "code": OK_CODE})),
    );
    r.assert_error(403, "forbidden", None);
    s.get("/api/agents/v1").assert_error(404, "not_found", None);
}

#[test]
fn viewer_cannot_execute() {
    let s = Server::start();
    s.create_agent("a1", OK_CODE, json!({}));
    let (_, viewer) = s.create_token("viewer");
    let r = s.req(
        Method::POST,
        "/api/agents/a1/execute",
        Some(&viewer),
        Some(&json!({})),
    );
    r.assert_error(403, "forbidden", None);
}

#[test]
fn viewer_cannot_read_audit() {
    let s = Server::start();
    let (_, viewer) = s.create_token("viewer");
    s.req(Method::GET, "/api/audit", Some(&viewer), None)
        .assert_error(403, "forbidden", None);
}

#[test]
fn operator_cannot_create_agent() {
    let s = Server::start();
    let (_, op) = s.create_token("operator");
    s.req(
        Method::POST,
        "/api/agents",
        Some(&op),
        Some(&json!({"name": "o1", "code": OK_CODE})),
    )
    .assert_error(403, "forbidden", None);
}

#[test]
fn operator_cannot_change_code() {
    let s = Server::start();
    s.create_agent("a1", OK_CODE, json!({}));
    let (_, op) = s.create_token("operator");
    s.req(
        Method::PATCH,
        "/api/agents/a1",
        Some(&op),
        Some(&json!({"code": COUNTER_CODE})),
    )
    .assert_error(403, "forbidden", None);
}

#[test]
fn operator_can_pause_agent() {
    let s = Server::start();
    s.create_agent("a1", OK_CODE, json!({"schedule": "every 5m"}));
    let (_, op) = s.create_token("operator");
    let r = s.req(
        Method::PATCH,
        "/api/agents/a1",
        Some(&op),
        Some(&json!({"status": "paused"})),
    );
    let b = r.expect(200);
    assert_eq!(b["status"], "paused");
    assert_eq!(b["next_runs"], json!([]), "a paused agent has no next runs");
}

#[test]
fn revoked_token_is_401() {
    let s = Server::start();
    let (id, tok) = s.create_token("operator");
    s.req(Method::GET, "/api/agents", Some(&tok), None)
        .expect(200);
    let r = s.delete(&format!("/api/tokens/{id}"));
    let b = r.expect(200);
    assert!(!b["revoked_at"].is_null(), "revoked_at set: {b}");
    s.req(Method::GET, "/api/agents", Some(&tok), None)
        .assert_error(401, "unauthorized", None);
}

#[test]
fn token_list_never_shows_tokens() {
    let s = Server::start();
    let (_, tok) = s.create_token("viewer");
    let r = s.get("/api/tokens");
    let text = r.text.clone();
    let b = r.expect(200);
    assert!(b.as_array().unwrap().len() >= 2, "admin + viewer: {b}");
    assert!(!text.contains(&tok), "token list leaks a token");
    assert!(!text.contains(&s.token), "token list leaks the admin token");
}

#[test]
fn token_unknown_scope_is_422() {
    let s = Server::start();
    s.post("/api/tokens", &json!({"name": "x", "scope": "root"}))
        .assert_error(422, "validation", Some("scope"));
}

#[test]
fn viewer_cannot_cancel_or_retry() {
    let s = Server::start();
    s.create_agent("sleepy", SLEEP_CODE, json!({}));
    let t = s.execute("sleepy");
    let tid = t["id"].as_i64().unwrap();
    let (_, viewer) = s.create_token("viewer");
    s.req(
        Method::POST,
        &format!("/api/tasks/{tid}/cancel"),
        Some(&viewer),
        Some(&json!({})),
    )
    .assert_error(403, "forbidden", None);
    s.req(
        Method::POST,
        &format!("/api/tasks/{tid}/retry"),
        Some(&viewer),
        Some(&json!({})),
    )
    .assert_error(403, "forbidden", None);
    s.post(&format!("/api/tasks/{tid}/cancel"), &json!({}))
        .expect(200);
}

#[test]
fn viewer_can_read_tasks_and_state() {
    let s = Server::start();
    s.create_agent("a", OK_CODE, json!({}));
    let t = s.execute("a");
    let (_, viewer) = s.create_token("viewer");
    for path in [
        format!("/api/tasks/{}", t["id"]),
        "/api/agents/a/tasks".to_string(),
        "/api/agents/a/state".to_string(),
        "/api/agents/a/versions".to_string(),
        "/api/agents/a".to_string(),
    ] {
        s.req(Method::GET, &path, Some(&viewer), None).expect(200);
    }
}

#[test]
fn operator_cannot_manage_tokens_or_read_audit() {
    let s = Server::start();
    let (_, op) = s.create_token("operator");
    s.req(Method::GET, "/api/tokens", Some(&op), None)
        .assert_error(403, "forbidden", None);
    s.req(
        Method::POST,
        "/api/tokens",
        Some(&op),
        Some(&json!({"name": "x", "scope": "admin"})),
    )
    .assert_error(403, "forbidden", None);
    s.req(Method::GET, "/api/audit", Some(&op), None)
        .assert_error(403, "forbidden", None);
}

#[test]
fn operator_cannot_delete_agent() {
    let s = Server::start();
    s.create_agent("a", OK_CODE, json!({}));
    let (_, op) = s.create_token("operator");
    s.req(Method::DELETE, "/api/agents/a", Some(&op), None)
        .assert_error(403, "forbidden", None);
    s.get("/api/agents/a").expect(200);
}

#[test]
fn operator_status_with_other_field_needs_admin() {
    let s = Server::start();
    s.create_agent("a", OK_CODE, json!({"schedule": "every 5m"}));
    let (_, op) = s.create_token("operator");
    s.req(
        Method::PATCH,
        "/api/agents/a",
        Some(&op),
        Some(&json!({"status": "paused", "schedule": null})),
    )
    .assert_error(403, "forbidden", None);
    assert_eq!(s.get("/api/agents/a").expect(200)["schedule"], "every 5m");
}

#[test]
fn empty_and_overlong_bearer_tokens_are_401() {
    let s = Server::start();
    s.http_with_header("authorization", "Bearer ")
        .assert_error(401, "unauthorized", None);
    s.http_with_header("authorization", &format!("Bearer {}", "x".repeat(5000)))
        .assert_error(401, "unauthorized", None);
}

#[test]
fn token_empty_name_is_422() {
    let s = Server::start();
    s.post("/api/tokens", &json!({"name": "  ", "scope": "viewer"}))
        .assert_error(422, "validation", Some("name"));
    s.post(
        "/api/tokens",
        &json!({"name": "n".repeat(65), "scope": "viewer"}),
    )
    .assert_error(422, "validation", Some("name"));
}

#[test]
fn revoke_unknown_token_is_404() {
    let s = Server::start();
    s.delete("/api/tokens/99999")
        .assert_error(404, "not_found", None);
    s.delete("/api/tokens/abc")
        .assert_error(422, "validation", Some("id"));
}

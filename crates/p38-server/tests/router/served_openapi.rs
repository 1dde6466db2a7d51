//! `/openapi.json` as served: every route, only real routes, the query
//! parameters with their bounds (moved from `crates/p38-cli/tests/api.rs`).

use axum::http::Method;
use serde_json::{Value, json};

use crate::harness::Server;

#[test]
fn openapi_is_served_without_auth() {
    let s = Server::start();
    s.req(Method::GET, "/openapi.json", None, None).expect(200);
}

#[test]
fn openapi_is_3_1_with_every_route() {
    let s = Server::start();
    let doc = s
        .req(Method::GET, "/openapi.json", None, None)
        .expect(200)
        .clone();
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "openapi version: {}",
        doc["openapi"]
    );
    let expect: &[(&str, &[&str])] = &[
        ("/", &["get"]),
        ("/health", &["get"]),
        ("/api/agents", &["get", "post"]),
        ("/api/agents/{id}", &["get", "patch", "delete"]),
        ("/api/agents/{id}/versions", &["get"]),
        ("/api/agents/{id}/state", &["get"]),
        ("/api/agents/{id}/execute", &["post"]),
        ("/api/agents/{id}/tasks", &["get"]),
        ("/api/tasks/{id}", &["get"]),
        ("/api/tasks/{id}/retry", &["post"]),
        ("/api/tasks/{id}/cancel", &["post"]),
        ("/api/tokens", &["get", "post"]),
        ("/api/tokens/{id}", &["delete"]),
        ("/api/audit", &["get"]),
    ];
    for (path, methods) in expect {
        let p = &doc["paths"][*path];
        assert!(p.is_object(), "path {path} missing from openapi.json");
        for m in *methods {
            assert!(p[*m].is_object(), "{m} {path} missing from openapi.json");
        }
    }
    assert!(
        doc["components"]["schemas"]["ErrorBody"].is_object(),
        "ErrorBody schema missing"
    );
    let bearer = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(bearer["type"], "http", "{bearer}");
    assert_eq!(
        bearer["scheme"].as_str().map(str::to_ascii_lowercase),
        Some("bearer".into())
    );
}

#[test]
fn openapi_documents_only_real_routes() {
    // Every documented path answers something other than the 404 fallback
    // (with placeholders filled in, the 404 is a not_found for the item,
    // which names the item, not "route").
    let s = Server::start();
    let doc = s
        .req(Method::GET, "/openapi.json", None, None)
        .expect(200)
        .clone();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", "1");
        for m in ops.as_object().unwrap().keys() {
            let method = Method::from_bytes(m.to_ascii_uppercase().as_bytes()).unwrap();
            let r = s.req(method, &concrete, Some(&s.token), Some(&json!({})));
            assert_ne!(r.status, 405, "{m} {path} documented but not routed");
            let msg = r.body["error"]["message"].as_str().unwrap_or("");
            assert!(
                !(r.status == 404 && msg.contains("openapi.json")),
                "{m} {path} documented but not routed: {}",
                r.text
            );
        }
    }
}

#[test]
fn openapi_declares_query_parameters_as_optional_queries_with_their_bounds() {
    let s = Server::start();
    let doc = s
        .req(Method::GET, "/openapi.json", None, None)
        .expect(200)
        .clone();
    let params = |path: &str| -> Vec<Value> {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("{path} has no parameters"))
            .clone()
    };
    let find = |ps: &[Value], name: &str| -> Value {
        ps.iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no parameter {name}: {ps:?}"))
            .clone()
    };
    for path in ["/api/agents", "/api/agents/{id}/tasks", "/api/audit"] {
        let ps = params(path);
        // The audit log has no status to filter by.
        let names: &[&str] = if path == "/api/audit" {
            &["cursor", "limit"]
        } else {
            &["cursor", "limit", "status"]
        };
        assert_eq!(
            ps.len(),
            names.len() + usize::from(path.contains("{id}")),
            "{path}"
        );
        for name in names {
            let p = find(&ps, name);
            assert_eq!(p["in"], "query", "{path} {name}: {p}");
            assert_ne!(p["required"], true, "{path} {name}: {p}");
        }
        let limit = find(&ps, "limit");
        assert_eq!(limit["schema"]["minimum"], 1, "{limit}");
        assert_eq!(limit["schema"]["maximum"], 500, "{limit}");
    }
    let ps = params("/api/tasks/{id}");
    let wait = find(&ps, "wait");
    assert_eq!(wait["in"], "query", "{wait}");
    assert_ne!(wait["required"], true, "{wait}");
    assert_eq!(wait["schema"]["maximum"], 60, "{wait}");
    assert_eq!(find(&ps, "id")["in"], "path");
}

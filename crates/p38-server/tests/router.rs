//! The HTTP behaviour of every route, in process against the router over a
//! temporary SQLite store (no server process, no workers): one table names
//! each route with the least scope it needs, a request that is refused for
//! a lesser scope, an unknown id and a wrong field; the tests walk it.
//! What a user does across processes (create, approve, run, schedule, a
//! worker killed) stays in `crates/p38-cli/tests`.

#[path = "router/harness.rs"]
mod harness;
#[path = "router/junk.rs"]
mod junk;
#[path = "router/scopes.rs"]
mod scopes;
#[path = "router/served_openapi.rs"]
mod served_openapi;
#[path = "router/validation.rs"]
mod validation;
#[path = "router/words.rs"]
mod words;

use axum::http::Method;
use serde_json::{Value, json};

use harness::{OK_CODE, Server};

/// One route of the API.
struct Route {
    method: Method,
    /// The path as `/openapi.json` spells it.
    template: &'static str,
    /// The path with an existing resource (see [`fixture`]).
    path: &'static str,
    /// A body the route accepts, where it takes one.
    body: Option<Value>,
    /// The scopes `/openapi.json` documents (`x-p38-scopes`).
    scopes: &'static [&'static str],
    /// Scopes that get 403 for this request.
    refused: &'static [&'static str],
    /// The path with an id that does not exist: 404.
    unknown: Option<&'static str>,
    /// A request with one wrong field, the status and the field named.
    bad: Option<Bad>,
}

/// A request with one wrong field.
struct Bad {
    path: &'static str,
    body: Option<Value>,
    status: u16,
    field: &'static str,
}

fn bad(path: &'static str, body: Option<Value>, field: &'static str) -> Option<Bad> {
    Some(Bad {
        path,
        body,
        status: 422,
        field,
    })
}

const BELOW_OPERATOR: &[&str] = &["viewer"];
const BELOW_AUTHOR: &[&str] = &["viewer", "operator"];
const BELOW_APPROVER: &[&str] = &["viewer", "author"];
const BELOW_ADMIN: &[&str] = &["viewer", "operator", "author"];

#[rustfmt::skip]
fn routes() -> Vec<Route> {
    use Method as M;
    let r = |method, template, path, body, scopes, refused, unknown, bad| Route {
        method, template, path, body, scopes, refused, unknown, bad,
    };
    vec![
        r(M::GET, "/api/agents", "/api/agents", None, &["viewer"], &[], None,
          bad("/api/agents?limit=0", None, "limit")),
        r(M::POST, "/api/agents", "/api/agents", Some(json!({"name": "b1", "code": OK_CODE})),
          &["author"], BELOW_AUTHOR, None,
          bad("/api/agents", Some(json!({"name": "b2", "code": OK_CODE, "shedule": "every 5m"})), "shedule")),
        r(M::GET, "/api/agents/{id}", "/api/agents/1", None, &["viewer"], &[],
          Some("/api/agents/999999"), None),
        r(M::PATCH, "/api/agents/{id}", "/api/agents/1", Some(json!({"description": "d"})),
          &["author", "operator"], BELOW_OPERATOR, Some("/api/agents/999999"),
          bad("/api/agents/1", Some(json!({"shedule": "every 5m"})), "shedule")),
        r(M::DELETE, "/api/agents/{id}", "/api/agents/1", None, &["admin"], BELOW_ADMIN,
          Some("/api/agents/999999"), bad("/api/agents/1?keep_workspace=maybe", None, "keep_workspace")),
        r(M::POST, "/api/agents/{id}/approve", "/api/agents/1/approve", Some(json!({"version": 1})),
          &["operator"], BELOW_APPROVER, Some("/api/agents/999999/approve"),
          bad("/api/agents/1/approve", Some(json!({"version": "x"})), "version")),
        r(M::POST, "/api/agents/{id}/execute", "/api/agents/1/execute", Some(json!({})),
          &["operator"], BELOW_OPERATOR, Some("/api/agents/999999/execute"), None),
        r(M::POST, "/api/agents/{id}/reject", "/api/agents/1/reject", Some(json!({"reason": "no"})),
          &["operator"], BELOW_APPROVER, Some("/api/agents/999999/reject"),
          bad("/api/agents/1/reject", Some(json!({"reason": 5})), "reason")),
        r(M::GET, "/api/agents/{id}/state", "/api/agents/1/state", None, &["viewer"], &[],
          Some("/api/agents/999999/state"), None),
        r(M::GET, "/api/agents/{id}/tasks", "/api/agents/1/tasks", None, &["viewer"], &[],
          Some("/api/agents/999999/tasks"), bad("/api/agents/1/tasks?limit=0", None, "limit")),
        r(M::GET, "/api/agents/{id}/versions", "/api/agents/1/versions", None, &["viewer"], &[],
          Some("/api/agents/999999/versions"), None),
        r(M::GET, "/api/audit", "/api/audit", None, &["admin"], BELOW_ADMIN, None,
          bad("/api/audit?limit=0", None, "limit")),
        r(M::GET, "/api/generations", "/api/generations", None, &["viewer"], &[], None,
          bad("/api/generations?status=bogus", None, "status")),
        r(M::GET, "/api/generations/{id}", "/api/generations/12345", None, &["viewer"], &[],
          Some("/api/generations/12345"), bad("/api/generations/abc", None, "id")),
        r(M::POST, "/api/generations/{id}/cancel", "/api/generations/12345/cancel", Some(json!({})),
          &["operator"], BELOW_OPERATOR, Some("/api/generations/12345/cancel"),
          bad("/api/generations/abc/cancel", Some(json!({})), "id")),
        r(M::GET, "/api/secrets", "/api/secrets", None, &["admin"], BELOW_ADMIN, None, None),
        r(M::POST, "/api/secrets/reload", "/api/secrets/reload", Some(json!({})), &["admin"],
          BELOW_ADMIN, None, None),
        r(M::PUT, "/api/secrets/{name}", "/api/secrets/API_KEY", Some(json!({"value": "abcd1234"})),
          &["admin"], BELOW_ADMIN, None,
          bad("/api/secrets/API_KEY", Some(json!({"valu": "abcd1234"})), "value")),
        r(M::DELETE, "/api/secrets/{name}", "/api/secrets/API_KEY", None, &["admin"], BELOW_ADMIN,
          Some("/api/secrets/NO_SUCH_SECRET"), None),
        r(M::GET, "/api/tasks/{id}", "/api/tasks/1", None, &["viewer"], &[],
          Some("/api/tasks/999999"), bad("/api/tasks/1?wait=61", None, "wait")),
        r(M::POST, "/api/tasks/{id}/cancel", "/api/tasks/1/cancel", Some(json!({})), &["operator"],
          BELOW_OPERATOR, Some("/api/tasks/999999/cancel"), bad("/api/tasks/abc/cancel", Some(json!({})), "id")),
        r(M::POST, "/api/tasks/{id}/retry", "/api/tasks/1/retry", Some(json!({})), &["operator"],
          BELOW_OPERATOR, Some("/api/tasks/999999/retry"), bad("/api/tasks/abc/retry", Some(json!({})), "id")),
        r(M::GET, "/api/tokens", "/api/tokens", None, &["admin"], BELOW_ADMIN, None, None),
        r(M::POST, "/api/tokens", "/api/tokens", Some(json!({"name": "t", "scope": "viewer"})),
          &["admin"], BELOW_ADMIN, None,
          bad("/api/tokens", Some(json!({"name": "t", "scope": "root"})), "scope")),
        r(M::DELETE, "/api/tokens/{id}", "/api/tokens/1", None, &["admin"], BELOW_ADMIN,
          Some("/api/tokens/999999"), bad("/api/tokens/abc", None, "id")),
    ]
}

/// The resources the table's paths name: agent 1 with code version 1, its
/// queued task 1 (no worker runs it) and token 1 (the admin's).
fn fixture() -> Server {
    let s = Server::start();
    let a = s.create_agent("a1", OK_CODE, json!({}));
    assert_eq!(a["id"], 1, "{a}");
    assert_eq!(s.execute("a1")["id"], 1);
    s
}

fn send(
    s: &Server,
    method: &Method,
    path: &str,
    token: Option<&str>,
    body: &Option<Value>,
) -> harness::Resp {
    s.req(method.clone(), path, token, body.as_ref())
}

#[test]
fn the_table_names_every_route_of_the_document_with_its_scopes() {
    let doc = p38_server::openapi_document();
    let table = routes();
    let mut documented = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let Some(scopes) = op.get("x-p38-scopes") else {
                continue; // `/` and `/health` need no token
            };
            documented.push(format!("{} {path}", method.to_uppercase()));
            let row = table
                .iter()
                .find(|r| r.template == path && r.method.as_str().eq_ignore_ascii_case(method))
                .unwrap_or_else(|| {
                    panic!("{} {path} is missing from the table", method.to_uppercase())
                });
            assert_eq!(scopes, &json!(row.scopes), "{} {path}", row.method);
        }
    }
    assert_eq!(
        documented.len(),
        table.len(),
        "routes in the table but not in the document: {documented:?}"
    );
}

#[test]
fn every_route_without_a_token_is_401_saying_how_to_send_one() {
    let s = fixture();
    for r in routes() {
        let resp = send(&s, &r.method, r.path, None, &r.body);
        resp.assert_error(401, "unauthorized", None);
        let h = resp
            .headers
            .get("www-authenticate")
            .unwrap_or_else(|| panic!("{} {}: no WWW-Authenticate", r.method, r.path));
        assert!(
            h.to_str().unwrap().starts_with("Bearer"),
            "{} {}: {h:?}",
            r.method,
            r.path
        );
        let resp = send(
            &s,
            &r.method,
            r.path,
            Some("p38_this-is-not-a-real-token"),
            &r.body,
        );
        resp.assert_error(401, "unauthorized", None);
    }
}

#[test]
fn every_route_refuses_a_lesser_scope_with_403_and_changes_nothing() {
    let s = fixture();
    let tokens: Vec<(&str, String)> = ["viewer", "operator", "author"]
        .into_iter()
        .map(|scope| (scope, s.create_token(scope).1))
        .collect();
    let before = s.get("/api/audit?limit=500").expect(200)["items"]
        .as_array()
        .unwrap()
        .len();
    for r in routes() {
        for scope in r.refused {
            let token = &tokens.iter().find(|(s, _)| s == scope).unwrap().1;
            let resp = send(&s, &r.method, r.path, Some(token), &r.body);
            assert_eq!(
                resp.status, 403,
                "{} {} as {scope}: {}",
                r.method, r.path, resp.text
            );
            resp.assert_error(403, "forbidden", None);
        }
    }
    let after = s.get("/api/audit?limit=500").expect(200)["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after, "a refused request left an audit record");
    s.get("/api/agents/1").expect(200);
}

#[test]
fn every_route_with_an_unknown_id_is_404() {
    let s = fixture();
    for r in routes() {
        if let Some(path) = r.unknown {
            let resp = send(&s, &r.method, path, Some(&s.token), &r.body);
            resp.assert_error(404, "not_found", None);
        }
    }
}

#[test]
fn every_route_names_the_wrong_field() {
    let s = fixture();
    for r in routes() {
        if let Some(b) = r.bad {
            let resp = send(&s, &r.method, b.path, Some(&s.token), &b.body);
            resp.assert_error(b.status, "validation", Some(b.field));
        }
    }
}

//! The OpenAPI document as a contract: a committed snapshot, so that every
//! change of the contract is a visible diff, and the promises it must keep
//! (constraints, the error responses of each route).

use serde_json::Value;

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openapi.snapshot.json");

fn document() -> Value {
    p38_server::openapi_document()
}

/// `GET /openapi.json` is the committed snapshot. After a deliberate change
/// of the contract: `P38_UPDATE_SNAPSHOT=1 cargo test -p p38-server --test
/// openapi`, and commit the new snapshot with the change.
#[test]
fn openapi_document_matches_the_snapshot() {
    let now = serde_json::to_string_pretty(&document()).unwrap() + "\n";
    if std::env::var("P38_UPDATE_SNAPSHOT").as_deref() == Ok("1") {
        std::fs::write(SNAPSHOT, &now).unwrap();
        return;
    }
    let before = std::fs::read_to_string(SNAPSHOT).unwrap_or_default();
    if before == now {
        return;
    }
    let (a, b): (Vec<_>, Vec<_>) = (before.lines().collect(), now.lines().collect());
    let first = a
        .iter()
        .zip(&b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let show = |lines: &[&str]| {
        lines
            .iter()
            .skip(first.saturating_sub(3))
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    };
    panic!(
        "the OpenAPI document changed (first difference at line {}).\n--- snapshot\n{}\n+++ now\n{}\n\
         If the change is meant: P38_UPDATE_SNAPSHOT=1 cargo test -p p38-server --test openapi, \
         then review and commit crates/p38-server/tests/openapi.snapshot.json",
        first + 1,
        show(&a),
        show(&b)
    );
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.push((method.clone(), path.clone(), op));
        }
    }
    out
}

fn param<'a>(doc: &'a Value, method: &str, path: &str, name: &str) -> &'a Value {
    doc["paths"][path][method]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))
}

#[test]
fn every_route_documents_the_errors_its_shape_implies() {
    let doc = document();
    for (method, path, op) in operations(&doc) {
        let responses = op["responses"].as_object().unwrap();
        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        assert_eq!(
            responses.contains_key("401"),
            secured,
            "{method} {path}: 401 iff the route needs a token"
        );
        let body = op.get("requestBody").is_some();
        for status in ["400", "413"] {
            assert_eq!(
                responses.contains_key(status),
                body,
                "{method} {path}: {status} iff the route takes a body"
            );
        }
        let params = op["parameters"].as_array().is_some_and(|p| !p.is_empty());
        if body || params {
            assert!(responses.contains_key("422"), "{method} {path}: 422");
        }
        for (status, r) in responses {
            if status.starts_with('4') {
                assert_eq!(
                    r["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {status}: the error shape"
                );
                assert!(
                    !r["description"].as_str().unwrap_or("").is_empty(),
                    "{method} {path} {status}: described"
                );
            }
        }
        // Only the routes beyond the viewer scope can answer 403.
        if path == "/api/agents" && method == "get" || path == "/api/tasks/{id}" {
            assert!(!responses.contains_key("403"), "{method} {path}");
        }
    }
}

#[test]
fn constraints_are_stated() {
    let doc = document();
    for (m, p) in [
        ("get", "/api/agents"),
        ("get", "/api/agents/{id}/tasks"),
        ("get", "/api/audit"),
        ("get", "/api/generations"),
    ] {
        let limit = &param(&doc, m, p, "limit")["schema"];
        assert_eq!(limit["minimum"], 1, "{m} {p}");
        assert_eq!(limit["maximum"], 500, "{m} {p}");
        assert_eq!(param(&doc, m, p, "limit")["in"], "query");
        assert_eq!(param(&doc, m, p, "cursor")["in"], "query");
    }
    assert!(
        doc["paths"]["/api/audit"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["name"] != "status"),
        "the audit log has no status filter"
    );
    // The generation statuses a listing filters on, each of them.
    let status = param(&doc, "get", "/api/generations", "status");
    assert_eq!(status["in"], "query");
    let statuses =
        serde_json::to_string(&doc["components"]["schemas"]["GenerationStatus"]).unwrap();
    for s in ["running", "succeeded", "failed", "cancelled"] {
        assert!(statuses.contains(s), "{statuses}");
    }
    let cancel = &doc["paths"]["/api/generations/{id}/cancel"]["post"]["responses"];
    for code in ["403", "404", "409"] {
        assert!(cancel.get(code).is_some(), "cancel answers {code}");
    }
    let wait = param(&doc, "get", "/api/tasks/{id}", "wait");
    assert_eq!(wait["in"], "query");
    assert_eq!(wait["required"], false);
    assert_eq!(wait["schema"]["maximum"], 60);
    assert_eq!(
        param(&doc, "get", "/api/tasks/{id}", "id")["schema"]["minimum"],
        1
    );
    let schemas = &doc["components"]["schemas"];
    let name = schemas["CreateAgent"]["properties"]["name"]["pattern"]
        .as_str()
        .unwrap();
    assert!(name.contains("[A-Za-z0-9._-]{0,63}"), "{name}");
    let settings = &schemas["AgentSettings"]["properties"];
    assert_eq!(settings["concurrency"]["minimum"], 1);
    assert_eq!(settings["concurrency"]["maximum"], 16);
    assert_eq!(settings["max_result_kb"]["maximum"], 16384);
    assert_eq!(settings["memory_mb"]["minimum"], 16);
    assert!(
        settings["timezone"]["enum"]
            .as_array()
            .unwrap()
            .contains(&"Asia/Jerusalem".into())
    );
    assert_eq!(
        schemas["CreateAgent"]["properties"]["secrets"]["uniqueItems"],
        true
    );
    assert!(
        schemas["ErrorDetail"]["properties"]
            .as_object()
            .unwrap()
            .contains_key("findings")
    );
}

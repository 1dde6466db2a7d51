//! Input that cannot work is refused when it is given, and errors speak the
//! API's language (moved from `crates/p38-cli/tests/contract.rs`).

use axum::http::Method;
use serde_json::{Value, json};

use crate::harness::{OK_CODE, Resp, Server};

fn ruff_installed() -> bool {
    std::process::Command::new("ruff")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn code_with_a_syntax_error_is_refused_with_its_findings() {
    let s = Server::start();
    let r = s.post(
        "/api/agents",
        &json!({"name": "broken", "code": "def run(ctx) return\n"}),
    );
    let err = r.assert_error(422, "validation", Some("code"));
    let findings = err["findings"].as_array().expect("findings");
    let syntax = findings
        .iter()
        .find(|f| f["stage"] == "syntax" && f["severity"] == "error")
        .unwrap_or_else(|| panic!("a syntax finding: {findings:?}"));
    assert_eq!(syntax["line"], 1);
    assert!(syntax["rule"].as_str().is_some_and(|r| !r.is_empty()));
    assert!(syntax["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(err["message"].as_str().unwrap().contains("line 1"), "{err}");
    s.get("/api/agents/broken").expect(404);

    // A change of code passes the same checks; the agent stays as it was.
    s.create_agent("fine", OK_CODE, json!({}));
    let r = s.patch(
        "/api/agents/fine",
        &json!({"code": "def run(ctx):\n    return eval('1')\n"}),
    );
    let err = r.assert_error(422, "validation", Some("code"));
    assert!(
        err["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["severity"] == "error" && f["line"] == 2),
        "{err}"
    );
    assert_eq!(s.get("/api/agents/fine").expect(200)["code"], OK_CODE);
}

#[test]
fn network_use_without_the_permission_is_refused_and_with_it_accepted() {
    let s = Server::start();
    let code = "import urllib.request\n\ndef run(ctx):\n    return urllib.request.urlopen('https://example.com').status\n";
    let err = s
        .post("/api/agents", &json!({"name": "net", "code": code}))
        .assert_error(422, "validation", Some("code"))
        .clone();
    assert!(err.to_string().contains("network"), "{err}");
    s.post(
        "/api/agents",
        &json!({"name": "net", "code": code, "network": true}),
    )
    .expect(201);
    // Taking the permission away from that code is refused too.
    s.patch("/api/agents/net", &json!({"network": false}))
        .assert_error(422, "validation", Some("code"));
}

#[test]
fn warnings_come_back_with_the_agent() {
    let s = Server::start();
    let code = "import os\n\n\ndef run(ctx):\n    return {}\n";
    let a = s
        .post("/api/agents", &json!({"name": "warned", "code": code}))
        .expect(201)
        .clone();
    if ruff_installed() {
        let warnings = a["warnings"].as_array().expect("warnings");
        assert!(
            warnings
                .iter()
                .all(|w| w["severity"] == "warning" && w["stage"].is_string()),
            "{warnings:?}"
        );
        assert!(
            warnings
                .iter()
                .any(|w| w["rule"] == "F401" && w["line"] == 1),
            "the unused import: {warnings:?}"
        );
    }
    // Only the answer to the change that gave the code carries them.
    assert!(
        s.get("/api/agents/warned")
            .expect(200)
            .get("warnings")
            .is_none()
    );
}

#[test]
fn a_cron_that_never_fires_is_refused() {
    let s = Server::start();
    let err = s
        .post(
            "/api/agents",
            &json!({"name": "feb30", "code": OK_CODE, "schedule": "0 0 30 2 *"}),
        )
        .assert_error(422, "validation", Some("schedule"))
        .clone();
    assert!(
        err["message"].as_str().unwrap().contains("never fires"),
        "{err}"
    );
    s.create_agent("later", OK_CODE, json!({}));
    s.patch("/api/agents/later", &json!({"schedule": "0 0 31 4 *"}))
        .assert_error(422, "validation", Some("schedule"));
    s.patch("/api/agents/later", &json!({"schedule": "0 0 29 2 *"}))
        .expect(200);
}

#[test]
fn tasks_abc_minus_one_and_zero_answer_alike() {
    let s = Server::start();
    let answers: Vec<Value> = ["abc", "-1", "0", "9223372036854775808"]
        .iter()
        .map(|id| {
            let r = s.get(&format!("/api/tasks/{id}"));
            let e = r.assert_error(422, "validation", Some("id")).clone();
            let m = e["message"].as_str().unwrap().to_string();
            assert!(m.contains("positive whole number"), "{id}: {m}");
            json!([r.status, e["code"], e["field"]])
        })
        .collect();
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
}

#[test]
fn errors_name_the_field_the_type_and_the_range_never_rust() {
    let s = Server::start();
    s.create_agent("words", OK_CODE, json!({}));
    let rust = [
        "invalid digit",
        "u32",
        "u64",
        "i64",
        "number too large to fit",
        "struct ",
        "expected enum",
    ];
    let check = |r: Resp, field: &str, words: &str| {
        let e = r
            .assert_error(422, "validation", (!field.is_empty()).then_some(field))
            .clone();
        let m = e["message"].as_str().unwrap();
        assert!(m.contains(words), "{field}: {m}");
        for w in rust {
            assert!(!m.contains(w), "{field}: {m:?} speaks Rust ({w})");
        }
    };
    check(s.get("/api/agents?limit=abc"), "limit", "whole number");
    check(s.get("/api/agents?limit=99999999999"), "limit", "too large");
    check(s.get("/api/agents?limit=0"), "limit", "between 1 and 500");
    check(
        s.get("/api/agents?status=nope"),
        "status",
        "pending_approval",
    );
    check(
        s.get("/api/agents/words/tasks?limit=-1"),
        "limit",
        "whole number",
    );
    check(s.get("/api/tasks/1?wait=61"), "wait", "60");
    check(s.get("/api/tasks/1?wait=x"), "wait", "whole number");
    check(
        s.post("/api/agents/words/approve", &json!(3)),
        "",
        "JSON object",
    );
    check(
        s.post("/api/agents/words/approve", &json!({"version": "x"})),
        "version",
        "whole number",
    );
    check(
        s.post(
            "/api/agents",
            &json!({"name": "n", "code": OK_CODE, "settings": {"memory_mb": -5}}),
        ),
        "settings.memory_mb",
        "whole number",
    );
    check(
        s.post(
            "/api/agents",
            &json!({"name": "n", "code": OK_CODE, "settings": {"memory_mb": 8}}),
        ),
        "settings.memory_mb",
        "between 16 and 65536",
    );
    check(
        s.post("/api/tokens", &json!({"name": "t", "scope": "root"})),
        "scope",
        "admin",
    );
    check(
        s.patch("/api/agents/words", &json!({"network": "yes"})),
        "network",
        "network must be true or \"host\"",
    );
}

#[test]
fn generation_routes_check_their_parameters_and_scopes() {
    let s = Server::start();
    // An empty listing, then the errors in the API's words.
    let page = s.get("/api/generations").expect(200).clone();
    assert_eq!(page["items"], json!([]), "{page}");
    for status in ["running", "succeeded", "failed", "cancelled"] {
        s.get(&format!("/api/generations?status={status}"))
            .expect(200);
    }
    let err = s
        .get("/api/generations?status=bogus")
        .assert_error(422, "validation", Some("status"))
        .clone();
    assert!(
        err["message"].as_str().unwrap().contains("cancelled"),
        "{err}"
    );
    s.get("/api/generations?limit=0")
        .assert_error(422, "validation", Some("limit"));
    s.post("/api/generations/12345/cancel", &json!({}))
        .assert_error(404, "not_found", None);
    s.post("/api/generations/abc/cancel", &json!({}))
        .assert_error(422, "validation", Some("id"));
    // A viewer may list, not cancel.
    let (_, viewer) = s.create_token("viewer");
    let r = s.req(Method::GET, "/api/generations", Some(&viewer), None);
    r.expect(200);
    let r = s.req(
        Method::POST,
        "/api/generations/12345/cancel",
        Some(&viewer),
        Some(&json!({})),
    );
    r.assert_error(403, "forbidden", None);
}

//! The API as a user finds it (issue 10), against the real `p38 up` binary,
//! where the answer depends on the server's own settings (the model key in
//! its environment, `P38_MAX_BODY_BYTES`). Refused input and errors in the
//! API's language are tested in process in `crates/p38-server/tests/router.rs`.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

// ------------------------------------------------ description-only create

#[test]
fn a_description_alone_is_checked_field_by_field_before_the_model_key() {
    let s = Server::start();
    for (body, field) in [
        (
            json!({"description": "watch tesla", "schedule": "banana"}),
            "schedule",
        ),
        (
            json!({"description": "watch tesla", "schedule": "0 0 30 2 *"}),
            "schedule",
        ),
        (json!({"description": "watch tesla", "name": "a b"}), "name"),
        (
            json!({"description": "watch tesla", "settings": {"concurrency": 99}}),
            "settings.concurrency",
        ),
        (
            json!({"description": "watch tesla", "config": [1]}),
            "config",
        ),
        (
            json!({"description": "watch tesla", "secrets": ["API_KEY"]}),
            "secrets",
        ),
        (
            json!({"description": "watch tesla", "network": true}),
            "network",
        ),
        (
            json!({"description": "watch tesla", "status": "active"}),
            "status",
        ),
        (json!({"description": "x".repeat(10_001)}), "description"),
    ] {
        s.post("/api/agents", &body)
            .assert_error(422, "validation", Some(field));
    }
    s.create_agent("taken", OK_CODE, json!({}));
    s.post(
        "/api/agents",
        &json!({"description": "watch tesla", "name": "taken"}),
    )
    .assert_error(409, "conflict", Some("name"));
    // Everything is right: now the missing key, which is the server's.
    if std::env::var_os("ANTHROPIC_API_KEY").is_none() {
        let err = s
            .post(
                "/api/agents",
                &json!({"description": "watch tesla", "name": "tesla", "schedule": "every 1h"}),
            )
            .assert_error(503, "unavailable", None)
            .clone();
        let m = err["message"].as_str().unwrap();
        assert!(
            m.contains("ANTHROPIC_API_KEY") && m.contains("server") && m.contains("environment"),
            "{m}"
        );
        assert!(m.contains("not from the CLI"), "{m}");
    }
}

// ------------------------------------------------ settings of the server

#[test]
fn an_approve_body_too_large_is_413_in_the_api_shape() {
    let s = Server::start_with(&[("P38_MAX_BODY_BYTES", "1024")]);
    s.create_agent("big", OK_CODE, json!({"status": "pending_approval"}));
    let body = format!("{{\"version\": 1, \"x\": \"{}\"}}", "a".repeat(4096));
    let r = s.raw(
        Method::POST,
        "/api/agents/big/approve",
        Some(&s.token),
        Some("application/json"),
        Some(body.into_bytes()),
    );
    r.assert_error(413, "too_large", None);
    // No body, or null, approves what is there.
    let r = s.raw(
        Method::POST,
        "/api/agents/big/approve",
        Some(&s.token),
        Some("application/json"),
        Some(b"null".to_vec()),
    );
    assert_eq!(r.expect(200)["status"], "active");
}

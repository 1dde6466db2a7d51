//! Bad fields, bodies, ids and query strings: each answered with the
//! status and the field it names (moved from `crates/p38-cli/tests/api.rs`,
//! which started a server for each only to read a status and a body).

use axum::http::Method;
use serde_json::{Value, json};

use crate::harness::{OK_CODE, Server};

fn create_err(s: &Server, body: Value, status: u16, code: &str, field: Option<&str>) {
    s.post("/api/agents", &body)
        .assert_error(status, code, field);
}

#[test]
fn malformed_json_is_400() {
    let s = Server::start();
    s.raw(
        Method::POST,
        "/api/agents",
        Some(&s.token),
        Some("application/json"),
        Some(b"{\"name\": \"x\",".to_vec()),
    )
    .assert_error(400, "malformed", None);
}

#[test]
fn trailing_garbage_after_json_is_400() {
    let s = Server::start();
    let r = s.raw(
        Method::POST,
        "/api/agents",
        Some(&s.token),
        Some("application/json"),
        Some(b"{\"name\": \"t\", \"code\": \"def run(ctx): pass\"} xyz".to_vec()),
    );
    r.assert_error(400, "malformed", None);
    s.get("/api/agents/t").assert_error(404, "not_found", None);
}

#[test]
fn missing_content_type_is_400() {
    let s = Server::start();
    let body = serde_json::to_vec(&json!({"name": "x", "code": OK_CODE})).unwrap();
    s.raw(
        Method::POST,
        "/api/agents",
        Some(&s.token),
        None,
        Some(body),
    )
    .assert_error(400, "malformed", None);
}

#[test]
fn wrong_content_type_is_400() {
    let s = Server::start();
    let body = serde_json::to_vec(&json!({"name": "x", "code": OK_CODE})).unwrap();
    s.raw(
        Method::POST,
        "/api/agents",
        Some(&s.token),
        Some("text/plain"),
        Some(body),
    )
    .assert_error(400, "malformed", None);
}

#[test]
fn unknown_field_is_422_naming_it() {
    let s = Server::start();
    create_err(
        &s,
        json!({"name": "x", "code": OK_CODE, "shedule": "every 5m"}),
        422,
        "validation",
        Some("shedule"),
    );
}

#[test]
fn patch_unknown_field_is_422_naming_it() {
    let s = Server::start();
    s.create_agent("x", OK_CODE, json!({}));
    s.patch("/api/agents/x", &json!({"shedule": "every 5m"}))
        .assert_error(422, "validation", Some("shedule"));
}

#[test]
fn wrong_type_is_422_naming_field() {
    let s = Server::start();
    create_err(
        &s,
        json!({"name": "x", "code": OK_CODE, "network": "yes"}),
        422,
        "validation",
        Some("network"),
    );
}

#[test]
fn missing_code_is_422() {
    let s = Server::start();
    create_err(&s, json!({"name": "x"}), 422, "validation", Some("code"));
}

#[test]
fn code_without_run_is_422() {
    let s = Server::start();
    create_err(
        &s,
        json!({"name": "x", "code": "print('hi')\n"}),
        422,
        "validation",
        Some("code"),
    );
}

#[test]
fn invalid_schedules_are_422() {
    let s = Server::start();
    for sched in [
        "every banana",
        "61 * * * *",
        "* * *",
        "every 0s",
        "every 400d",
    ] {
        let r = s.post(
            "/api/agents",
            &json!({"name": "x", "code": OK_CODE, "schedule": sched}),
        );
        assert_eq!(r.status, 422, "schedule {sched:?}: {}", r.text);
        r.assert_error(422, "validation", Some("schedule"));
    }
}

#[test]
fn patch_invalid_schedule_is_422() {
    let s = Server::start();
    s.create_agent("x", OK_CODE, json!({}));
    s.patch("/api/agents/x", &json!({"schedule": "every banana"}))
        .assert_error(422, "validation", Some("schedule"));
}

#[test]
fn invalid_names_are_422() {
    let s = Server::start();
    let long = "a".repeat(65);
    for name in ["has space", "123", "", "-leading", long.as_str()] {
        let r = s.post("/api/agents", &json!({"name": name, "code": OK_CODE}));
        assert_eq!(r.status, 422, "name {name:?}: {}", r.text);
        r.assert_error(422, "validation", Some("name"));
    }
}

#[test]
fn unknown_tool_is_422() {
    let s = Server::start();
    create_err(
        &s,
        json!({"name": "x", "code": OK_CODE, "tools": ["teleporter"]}),
        422,
        "validation",
        Some("tools[0]"),
    );
}

#[test]
fn bad_secret_name_is_422() {
    let s = Server::start();
    create_err(
        &s,
        json!({"name": "x", "code": OK_CODE, "secrets": ["lower-case"]}),
        422,
        "validation",
        Some("secrets[0]"),
    );
}

#[test]
fn config_not_object_is_422() {
    let s = Server::start();
    create_err(
        &s,
        json!({"name": "x", "code": OK_CODE, "config": [1, 2]}),
        422,
        "validation",
        Some("config"),
    );
}

#[test]
fn settings_out_of_range_is_422() {
    let s = Server::start();
    create_err(
        &s,
        json!({"name": "x", "code": OK_CODE, "settings": {"memory_mb": 1}}),
        422,
        "validation",
        Some("settings.memory_mb"),
    );
    create_err(
        &s,
        json!({"name": "x", "code": OK_CODE, "settings": {"timezone": "Mars/Olympus"}}),
        422,
        "validation",
        Some("settings.timezone"),
    );
}

#[test]
fn duplicate_name_is_409() {
    let s = Server::start();
    s.create_agent("dup", OK_CODE, json!({}));
    create_err(
        &s,
        json!({"name": "dup", "code": OK_CODE}),
        409,
        "conflict",
        Some("name"),
    );
}

#[test]
fn unknown_agent_is_404() {
    let s = Server::start();
    s.get("/api/agents/999999")
        .assert_error(404, "not_found", None);
    s.get("/api/agents/no-such-agent")
        .assert_error(404, "not_found", None);
    s.get("/api/agents/no-such-agent/tasks")
        .assert_error(404, "not_found", None);
    s.post("/api/agents/no-such-agent/execute", &json!({}))
        .assert_error(404, "not_found", None);
}

#[test]
fn task_id_not_number_is_422() {
    let s = Server::start();
    s.get("/api/tasks/abc")
        .assert_error(422, "validation", Some("id"));
    s.post("/api/tasks/abc/retry", &json!({}))
        .assert_error(422, "validation", Some("id"));
}

#[test]
fn unknown_task_is_404() {
    let s = Server::start();
    s.get("/api/tasks/999999")
        .assert_error(404, "not_found", None);
    s.post("/api/tasks/999999/retry", &json!({}))
        .assert_error(404, "not_found", None);
    s.post("/api/tasks/999999/cancel", &json!({}))
        .assert_error(404, "not_found", None);
}

#[test]
fn code_over_256k_is_413_naming_code() {
    let s = Server::start();
    let code = format!(
        "def run(ctx):\n    return {{}}\n# {}\n",
        "x".repeat(300 * 1024)
    );
    create_err(
        &s,
        json!({"name": "big", "code": code}),
        413,
        "too_large",
        Some("code"),
    );
}

#[test]
fn body_over_1mib_is_413() {
    let s = Server::start();
    let code = format!(
        "def run(ctx):\n    return {{}}\n# {}\n",
        "x".repeat(1100 * 1024)
    );
    create_err(
        &s,
        json!({"name": "huge", "code": code}),
        413,
        "too_large",
        None,
    );
}

#[test]
fn limit_out_of_range_is_422() {
    let s = Server::start();
    for l in ["0", "100000", "501"] {
        s.get(&format!("/api/agents?limit={l}"))
            .assert_error(422, "validation", Some("limit"));
    }
}

#[test]
fn limit_not_a_number_is_422() {
    let s = Server::start();
    s.get("/api/agents?limit=ten")
        .assert_error(422, "validation", Some("limit"));
}

#[test]
fn garbage_cursor_is_422() {
    let s = Server::start();
    s.get("/api/agents?cursor=garbage!!")
        .assert_error(422, "validation", Some("cursor"));
    s.get("/api/audit?cursor=bm90LWEtY3Vyc29y")
        .assert_error(422, "validation", Some("cursor"));
}

#[test]
fn unknown_status_filter_is_422() {
    let s = Server::start();
    s.get("/api/agents?status=sleeping")
        .assert_error(422, "validation", Some("status"));
    s.create_agent("a", OK_CODE, json!({}));
    s.get("/api/agents/a/tasks?status=sleeping")
        .assert_error(422, "validation", Some("status"));
}

#[test]
fn unknown_query_parameter_is_422() {
    let s = Server::start();
    s.get("/api/agents?limt=3")
        .assert_error(422, "validation", None);
}

#[test]
fn unknown_route_is_404_json() {
    let s = Server::start();
    s.get("/api/nothing-here")
        .assert_error(404, "not_found", None);
    s.req(Method::GET, "/nope", None, None)
        .assert_error(404, "not_found", None);
}

#[test]
fn wrong_method_is_405_json() {
    let s = Server::start();
    s.req(Method::PUT, "/api/agents", Some(&s.token), Some(&json!({})))
        .assert_error(405, "method_not_allowed", None);
}

#[test]
fn description_over_limit_is_413() {
    let s = Server::start();
    create_err(
        &s,
        json!({"name": "x", "code": OK_CODE, "description": "d".repeat(17 * 1024)}),
        413,
        "too_large",
        Some("description"),
    );
}

#[test]
fn patch_rename_to_digits_is_422() {
    let s = Server::start();
    s.create_agent("a", OK_CODE, json!({}));
    s.patch("/api/agents/a", &json!({"name": "42"}))
        .assert_error(422, "validation", Some("name"));
}

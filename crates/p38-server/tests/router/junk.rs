//! Hostile input: junk bodies, query strings and ids answer 4xx in the
//! API's shape, never a 500 (moved from `crates/p38-cli/tests/api.rs`).

use std::time::{Duration, Instant};

use axum::http::Method;
use serde_json::{Value, json};

use crate::harness::{OK_CODE, Server};

/// A small deterministic generator for junk bytes.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn junk_bodies() -> Vec<(String, Vec<u8>)> {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut v: Vec<(String, Vec<u8>)> = Vec::new();
    for n in [1, 17, 300, 4096] {
        v.push((format!("{n} random bytes"), rng.bytes(n)));
    }
    let mut j =
        |label: &str, body: Value| v.push((label.to_string(), serde_json::to_vec(&body).unwrap()));
    j("array", json!([]));
    j("string", json!("agent"));
    j("number", json!(42));
    j("null", Value::Null);
    j("true", json!(true));
    j("empty object", json!({}));
    j(
        "nulls everywhere",
        json!({"name": null, "description": null, "code": null, "config": null,
               "secrets": null, "tools": null, "network": null, "settings": null, "status": null}),
    );
    j("emoji name", json!({"name": "🤖🔥", "code": OK_CODE}));
    j("zwj emoji name", json!({"name": "a👩‍💻", "code": OK_CODE}));
    j(
        "sql name",
        json!({"name": "'; DROP TABLE agents; --", "code": OK_CODE}),
    );
    j(
        "sql name 2",
        json!({"name": "x' OR '1'='1", "code": OK_CODE}),
    );
    j("nul in name", json!({"name": "a\u{0}b", "code": OK_CODE}));
    j("name is number", json!({"name": 12345, "code": OK_CODE}));
    j("name is object", json!({"name": {"a": 1}, "code": OK_CODE}));
    j(
        "tools [null]",
        json!({"name": "t", "code": OK_CODE, "tools": [null]}),
    );
    j(
        "network 1",
        json!({"name": "t", "code": OK_CODE, "network": 1}),
    );
    j(
        "status bogus",
        json!({"name": "t", "code": OK_CODE, "status": "bogus"}),
    );
    j(
        "negative memory",
        json!({"name": "t", "code": OK_CODE, "settings": {"memory_mb": -1}}),
    );
    j(
        "u32 overflow",
        json!({"name": "t", "code": OK_CODE, "settings": {"timeout_seconds": 99_999_999_999u64}}),
    );
    j(
        "unknown settings key",
        json!({"name": "t", "code": OK_CODE, "settings": {"bogus": 1}}),
    );
    j(
        "duplicate secrets",
        json!({"name": "t", "code": OK_CODE, "secrets": ["A", "A"]}),
    );
    j(
        "huge interval",
        json!({"name": "t", "code": OK_CODE, "schedule": "every 99999999999999999999d"}),
    );
    j(
        "cron of garbage",
        json!({"name": "t", "code": OK_CODE, "schedule": "*/0 * * * *"}),
    );
    j(
        "config too large",
        json!({"name": "t", "code": OK_CODE, "config": {"x": "y".repeat(70 * 1024)}}),
    );
    j("code whitespace", json!({"name": "t", "code": "   \n\t  "}));
    let mut raw = |label: &str, b: &[u8]| v.push((label.to_string(), b.to_vec()));
    raw(
        "huge number",
        b"{\"name\": 1e400, \"code\": \"def run(ctx): pass\"}",
    );
    raw(
        "huge integer",
        b"{\"name\": \"t\", \"code\": \"def run(ctx): pass\", \"settings\": {\"memory_mb\": 123456789012345678901234567890}}",
    );
    raw(
        "lone surrogate",
        b"{\"name\": \"\\ud800\", \"code\": \"def run(ctx): pass\"}",
    );
    raw(
        "invalid utf-8",
        b"{\"name\": \"\xff\xfe\", \"code\": \"def run(ctx): pass\"}",
    );
    raw(
        "duplicate keys",
        b"{\"name\": \"t\", \"name\": \"u\", \"code\": \"def run(ctx): pass\"}",
    );
    raw("empty", b"");
    raw("whitespace", b"   \n ");
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes();
    raw("nested 200", &deep(200));
    raw("nested 100k", &deep(100_000));
    let deep_cfg = format!(
        "{{\"name\": \"t\", \"code\": \"def run(ctx): pass\", \"config\": {{\"a\": {}{}}}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    raw("nested config", deep_cfg.as_bytes());
    v
}

#[test]
fn junk_bodies_never_500_on_create() {
    let s = Server::start();
    let mut failures = Vec::new();
    for (label, body) in junk_bodies() {
        let r = s.raw(
            Method::POST,
            "/api/agents",
            Some(&s.token),
            Some("application/json"),
            Some(body),
        );
        if !(400..500).contains(&r.status) || r.body["error"]["code"].as_str().is_none() {
            failures.push(format!("{label}: HTTP {} {}", r.status, r.text));
        }
    }
    assert!(
        failures.is_empty(),
        "non-4xx answers:\n{}",
        failures.join("\n")
    );
    s.req(Method::GET, "/health", None, None).expect(200);
    let list = s.get("/api/agents").expect(200).clone();
    assert_eq!(list["items"], json!([]), "no junk body created an agent");
}

#[test]
fn nul_characters_are_refused_naming_the_field() {
    let s = Server::start();
    let r = s.post(
        "/api/agents",
        &json!({"name": "nul", "code": OK_CODE, "description": "before\u{0}after"}),
    );
    r.assert_error(422, "validation", Some("description"));
    let r = s.post(
        "/api/agents",
        &json!({"name": "nul", "code": OK_CODE, "config": {"list": ["ok", "bad\u{0}"]}}),
    );
    r.assert_error(422, "validation", Some("config.list[1]"));
    s.create_agent("nul", OK_CODE, json!({}));
    let r = s.patch("/api/agents/nul", &json!({"description": "x\u{0}"}));
    r.assert_error(422, "validation", Some("description"));
    // A literal backslash-u text is not a NUL.
    let r = s.patch(
        "/api/agents/nul",
        &json!({"description": "\\u0000 is fine"}),
    );
    assert_eq!(r.expect(200)["description"], "\\u0000 is fine");
    s.get("/api/agents/a%00b")
        .assert_error(404, "not_found", None);
}

#[test]
fn junk_bodies_never_500_on_patch() {
    let s = Server::start();
    s.create_agent("target", OK_CODE, json!({}));
    let mut failures = Vec::new();
    for (label, body) in junk_bodies() {
        let r = s.raw(
            Method::PATCH,
            "/api/agents/target",
            Some(&s.token),
            Some("application/json"),
            Some(body),
        );
        if !(400..500).contains(&r.status) || r.body["error"]["code"].as_str().is_none() {
            failures.push(format!("{label}: HTTP {} {}", r.status, r.text));
        }
    }
    // Hostile ids in the path.
    for path in [
        "/api/agents/'%3B%20DROP%20TABLE%20agents%3B%20--",
        "/api/agents/%F0%9F%A4%96",
        "/api/agents/-1",
        "/api/agents/99999999999999999999999",
        "/api/agents/%00",
    ] {
        let r = s.patch(path, &json!({"description": "x"}));
        if !(400..500).contains(&r.status) {
            failures.push(format!("PATCH {path}: HTTP {} {}", r.status, r.text));
        }
    }
    assert!(
        failures.is_empty(),
        "non-4xx answers:\n{}",
        failures.join("\n")
    );
    s.req(Method::GET, "/health", None, None).expect(200);
    let a = s.get("/api/agents/target").expect(200).clone();
    assert_eq!(a["version"], 1, "no junk body changed the agent: {a}");
    assert_eq!(a["description"], "");
}

#[test]
fn impossible_cron_does_not_hang_or_500() {
    let s = Server::start();
    let start = Instant::now();
    let r = s.post(
        "/api/agents",
        &json!({"name": "feb30", "code": OK_CODE, "schedule": "0 0 30 2 *"}),
    );
    assert!(
        r.status == 201 || r.status == 422,
        "Feb 30 schedule: HTTP {} {}",
        r.status,
        r.text
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    s.req(Method::GET, "/health", None, None).expect(200);
}

#[test]
fn junk_bodies_never_500_on_tokens() {
    let s = Server::start();
    let mut failures = Vec::new();
    for (label, body) in junk_bodies() {
        let r = s.raw(
            Method::POST,
            "/api/tokens",
            Some(&s.token),
            Some("application/json"),
            Some(body),
        );
        if !(400..500).contains(&r.status) {
            failures.push(format!("{label}: HTTP {} {}", r.status, r.text));
        }
    }
    assert!(
        failures.is_empty(),
        "non-4xx answers:\n{}",
        failures.join("\n")
    );
    assert_eq!(
        s.get("/api/tokens").expect(200).as_array().unwrap().len(),
        1
    );
}

#[test]
fn junk_query_strings_never_500() {
    let s = Server::start();
    s.create_agent("a", OK_CODE, json!({}));
    let mut failures = Vec::new();
    for q in [
        "limit=-1",
        "limit=1&limit=2",
        "limit=99999999999999999999",
        "cursor=%FF%FE",
        "cursor=djE6LTE",                          // "v1:-1"
        "cursor=djE6OTk5OTk5OTk5OTk5OTk5OTk5OTk5", // "v1:" + huge
        "status=",
        "status=%00",
        "status='%20OR%201=1",
        "%ZZ=1",
    ] {
        for base in ["/api/agents", "/api/agents/a/tasks", "/api/audit"] {
            let r = s.get(&format!("{base}?{q}"));
            if r.status >= 500 {
                failures.push(format!("{base}?{q}: HTTP {} {}", r.status, r.text));
            }
        }
    }
    assert!(failures.is_empty(), "5xx answers:\n{}", failures.join("\n"));
}

#[test]
fn head_and_trailing_slash_behave() {
    let s = Server::start();
    let r = s.req(Method::HEAD, "/health", None, None);
    assert_eq!(r.status, 200);
    let r = s.get("/api/agents/");
    assert!(
        r.status == 404 || r.status == 200,
        "{} {}",
        r.status,
        r.text
    );
    assert!(r.status < 500);
}

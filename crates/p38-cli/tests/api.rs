//! End-to-end tests of the REST API against the real `p38 up` binary.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

// ---------------------------------------------------------------- health

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
    assert_eq!(b["database"], common::backend());
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

// ---------------------------------------------------------------- auth

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
fn operator_can_execute_and_cancel() {
    let s = Server::start();
    s.create_agent("sleepy", SLEEP_CODE, json!({}));
    let (_, op) = s.create_token("operator");
    let r = s.req(
        Method::POST,
        "/api/agents/sleepy/execute",
        Some(&op),
        Some(&json!({})),
    );
    let t = r.expect(202).clone();
    let id = t["id"].as_i64().unwrap();
    let r = s.req(
        Method::POST,
        &format!("/api/tasks/{id}/cancel"),
        Some(&op),
        Some(&json!({})),
    );
    assert_eq!(r.expect(200)["status"], "cancelled");
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

// ---------------------------------------------------------------- files

#[test]
fn admin_token_file_is_mode_0600() {
    let s = Server::start();
    assert_eq!(mode_of(&s.data_dir.join("admin.token")), 0o600);
}

#[test]
fn database_file_is_mode_0600() {
    if common::backend() != "sqlite" {
        p38_testkit::not_applicable("the database is PostgreSQL, not a file");
        return;
    }
    let s = Server::start();
    let db = s.data_dir.join("p38.db");
    assert_eq!(mode_of(&db), 0o600, "{} mode", db.display());
    for side in ["p38.db-wal", "p38.db-shm"] {
        let p = s.data_dir.join(side);
        if p.exists() {
            assert_eq!(mode_of(&p), 0o600, "{} mode", p.display());
        }
    }
}

// ---------------------------------------------------------------- agents

fn full_agent_body() -> Value {
    json!({
        "name": "full-agent",
        "description": "does everything",
        "code": OK_CODE,
        "schedule": "every 5m",
        "config": {"city": "Berlin", "n": 3},
        "secrets": ["API_KEY", "OTHER_1"],
        "tools": ["webhook", "browser"],
        "network": true,
    })
}

#[test]
fn create_agent_is_201_and_echoes_fields() {
    let s = Server::start();
    let r = s.post("/api/agents", &full_agent_body());
    let b = r.expect(201);
    assert!(b["id"].as_i64().is_some_and(|i| i > 0), "id: {b}");
    assert_eq!(b["name"], "full-agent");
    assert_eq!(b["description"], "does everything");
    assert_eq!(b["code"], OK_CODE);
    assert_eq!(b["schedule"], "every 5m");
    assert_eq!(b["config"], json!({"city": "Berlin", "n": 3}));
    assert_eq!(b["secrets"], json!(["API_KEY", "OTHER_1"]));
    assert_eq!(b["tools"], json!(["webhook", "browser"]));
    assert_eq!(b["network"], true);
    assert_eq!(b["status"], "active");
    assert_eq!(b["version"], 1);
    assert_eq!(b["created_by"], "token:admin#1");
    let next = b["next_runs"].as_array().expect("next_runs array");
    assert!(!next.is_empty(), "next_runs for a schedule: {b}");
}

#[test]
fn create_agent_defaults() {
    let s = Server::start();
    let b = s.create_agent("minimal", OK_CODE, json!({}));
    assert_eq!(b["description"], "");
    assert_eq!(b["schedule"], Value::Null);
    assert_eq!(b["config"], json!({}));
    assert_eq!(b["secrets"], json!([]));
    assert_eq!(b["tools"], json!([]));
    assert_eq!(b["network"], false);
    assert_eq!(b["next_runs"], json!([]));
}

#[test]
fn get_agent_by_id_and_by_name() {
    let s = Server::start();
    let created = s
        .post("/api/agents", &full_agent_body())
        .expect(201)
        .clone();
    let id = created["id"].as_i64().unwrap();
    let by_id = s.get(&format!("/api/agents/{id}")).expect(200).clone();
    let by_name = s.get("/api/agents/full-agent").expect(200).clone();
    assert_eq!(by_id["name"], "full-agent");
    assert_eq!(by_name["id"], id);
    assert_eq!(by_id["code"], by_name["code"]);
}

#[test]
fn list_agents_cursor_pagination_newest_first() {
    let s = Server::start();
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            s.create_agent(&format!("page-{i}"), OK_CODE, json!({}))["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/agents?limit=3&cursor={c}"),
            None => "/api/agents?limit=3".to_string(),
        };
        let b = s.get(&path).expect(200).clone();
        let items = b["items"].as_array().unwrap();
        assert!(items.len() <= 3, "page larger than limit: {b}");
        seen.extend(items.iter().map(|a| a["id"].as_i64().unwrap()));
        pages += 1;
        assert!(pages <= 4, "pagination does not end");
        match b["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3, "7 agents in pages of 3");
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an agent seen twice: {seen:?}");
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected, "all seen once, newest first");
}

#[test]
fn list_agents_status_filter() {
    let s = Server::start();
    s.create_agent("act", OK_CODE, json!({}));
    s.create_agent("drf", OK_CODE, json!({"status": "draft"}));
    let b = s.get("/api/agents?status=draft").expect(200).clone();
    let names: Vec<_> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["drf"]);
}

#[test]
fn patch_code_bumps_version_and_versions_lists_both() {
    let s = Server::start();
    s.create_agent("v", OK_CODE, json!({}));
    let b = s
        .patch("/api/agents/v", &json!({"code": COUNTER_CODE}))
        .expect(200)
        .clone();
    assert_eq!(b["version"], 2);
    assert_eq!(b["code"], COUNTER_CODE);
    let vs = s.get("/api/agents/v/versions").expect(200).clone();
    let nums: Vec<_> = vs
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(nums, vec![2, 1]);
}

#[test]
fn patch_description_only_keeps_version() {
    let s = Server::start();
    s.create_agent("d", OK_CODE, json!({}));
    let b = s
        .patch("/api/agents/d", &json!({"description": "new words"}))
        .expect(200)
        .clone();
    assert_eq!(b["description"], "new words");
    assert_eq!(
        b["version"], 1,
        "a description change is not a code version"
    );
    let vs = s.get("/api/agents/d/versions").expect(200).clone();
    assert_eq!(vs.as_array().unwrap().len(), 1, "versions: {vs}");
}

#[test]
fn patch_schedule_null_removes_it() {
    let s = Server::start();
    s.create_agent("sch", OK_CODE, json!({"schedule": "every 5m"}));
    let b = s
        .patch("/api/agents/sch", &json!({"schedule": null}))
        .expect(200)
        .clone();
    assert_eq!(b["schedule"], Value::Null);
    assert_eq!(b["next_runs"], json!([]));
    let again = s.get("/api/agents/sch").expect(200).clone();
    assert_eq!(again["schedule"], Value::Null);
}

#[test]
fn patch_absent_schedule_keeps_it() {
    let s = Server::start();
    s.create_agent("sch", OK_CODE, json!({"schedule": "every 5m"}));
    let b = s
        .patch("/api/agents/sch", &json!({"description": "x"}))
        .expect(200)
        .clone();
    assert_eq!(b["schedule"], "every 5m");
}

#[test]
fn patch_empty_body_is_422() {
    let s = Server::start();
    s.create_agent("e", OK_CODE, json!({}));
    s.patch("/api/agents/e", &json!({}))
        .assert_error(422, "validation", None);
}

#[test]
fn patch_rename_to_taken_name_is_409() {
    let s = Server::start();
    s.create_agent("one", OK_CODE, json!({}));
    s.create_agent("two", OK_CODE, json!({}));
    s.patch("/api/agents/two", &json!({"name": "one"}))
        .assert_error(409, "conflict", Some("name"));
}

#[test]
fn delete_agent_answers_then_404() {
    let s = Server::start();
    let a = s.create_agent("gone", OK_CODE, json!({}));
    let r = s.delete("/api/agents/gone");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!({"deleted": a["id"], "workspace": "removed"}));
    s.get("/api/agents/gone")
        .assert_error(404, "not_found", None);
    s.delete("/api/agents/gone")
        .assert_error(404, "not_found", None);
}

/// Deleting an agent removes its workspace (its image too), unless asked
/// to keep it.
#[test]
fn delete_agent_removes_its_workspace_unless_kept() {
    let s = Server::start();
    let code = "def run(ctx):\n    open('note.txt', 'w').write('hi')\n    return 'ok'\n";
    for (name, keep) in [("tidy", false), ("keeper", true)] {
        let a = s.create_agent(name, code, json!({}));
        let id = a["id"].as_i64().unwrap();
        let t = s.execute(name);
        let t = s.wait_task_until(t["id"].as_i64().unwrap(), Duration::from_secs(60), |st| {
            !matches!(st, "queued" | "running")
        });
        assert_eq!(t["status"], "succeeded", "{t}");
        let ws = s.data_dir.join("workspaces").join(id.to_string());
        assert_eq!(std::fs::read_to_string(ws.join("note.txt")).unwrap(), "hi");
        let r = s.delete(&format!("/api/agents/{name}?keep_workspace={keep}"));
        assert_eq!(r.status, 200, "{}", r.text);
        let fate = if keep { "kept" } else { "removed" };
        assert_eq!(r.body, json!({"deleted": id, "workspace": fate}));
        assert_eq!(ws.join("note.txt").exists(), keep, "{name}");
        let image = s.data_dir.join("workspaces").join(format!("{id}.img"));
        assert_eq!(ws.exists(), keep, "{name}");
        if !keep {
            assert!(!image.exists(), "the image stays: {}", image.display());
        }
    }
}

/// A data folder inside a folder only root can enter (like /root): agents
/// still run, and their workspace is where the data folder says.
#[test]
fn agents_run_with_the_data_folder_inside_a_folder_only_root_can_enter() {
    use std::os::unix::fs::PermissionsExt;
    if !nix::unistd::geteuid().is_root() {
        p38_testkit::not_applicable("only root drops agents to other uids");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let locked = tmp.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    let s = Server::start_in(&locked);
    let code = "import os\ndef run(ctx):\n    seen = os.path.exists('note.txt')\n    open('note.txt', 'w').write('hi')\n    return seen\n";
    let a = s.create_agent("private", code, json!({}));
    for kept in [false, true] {
        let t = s.execute("private");
        let t = s.wait_task_until(t["id"].as_i64().unwrap(), Duration::from_secs(60), |st| {
            !matches!(st, "queued" | "running")
        });
        assert_eq!(t["status"], "succeeded", "{t}\n{}", s.log_text());
        assert_eq!(
            t["result"],
            json!(kept),
            "the workspace is kept between runs"
        );
    }
    // Its files are in the data folder (the workspace's image).
    let image = s
        .data_dir
        .join("workspaces")
        .join(format!("{}.img", a["id"]));
    assert!(image.is_file(), "{}", image.display());
    assert_eq!(
        mode_of(&locked),
        0o700,
        "the operator's folder is left as it was"
    );
    drop(s);
}

/// What a run can read of the mount table names neither the data folder
/// nor where the p38 binary is installed (the workspace is its own image,
/// the runner is copied in, the init program runs through its fd).
#[test]
fn the_sandbox_mount_table_names_no_host_folder() {
    if !nix::unistd::geteuid().is_root() {
        p38_testkit::not_applicable("workspace images need root");
        return;
    }
    let s = Server::start();
    let code = "def run(ctx):\n    return open('/proc/self/mountinfo').read()\n";
    s.create_agent("mounts", code, json!({}));
    let t = s.execute("mounts");
    let t = s.wait_task_until(t["id"].as_i64().unwrap(), Duration::from_secs(60), |st| {
        !matches!(st, "queued" | "running")
    });
    assert_eq!(t["status"], "succeeded", "{t}\n{}", s.log_text());
    let table = t["result"].as_str().unwrap();
    assert!(table.contains(" /workspace "), "{table}");
    let data = std::fs::canonicalize(&s.data_dir).unwrap();
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_p38")).unwrap();
    for host in [data.as_path(), exe.parent().unwrap()] {
        assert!(
            !table.contains(host.to_str().unwrap()),
            "{} in the mount table:\n{table}",
            host.display()
        );
    }
    assert!(!table.contains("/run/p38"), "{table}");
}

// ---------------------------------------------------------------- errors

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
fn get_task_can_wait_for_the_end() {
    let s = Server::start();
    let code = "import time\n\ndef run(ctx):\n    time.sleep(1)\n    return 7\n";
    s.create_agent("slow", code, json!({}));
    let id = s.execute("slow")["id"].as_i64().unwrap();
    // One call: the task queued a moment ago comes back ended.
    let done = s
        .get(&format!("/api/tasks/{id}?wait=30"))
        .expect(200)
        .clone();
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"], 7);
    // An ended task answers at once; a wait that runs out answers as is.
    s.get(&format!("/api/tasks/{id}?wait=60")).expect(200);
    s.create_agent("sleepy", SLEEP_CODE, json!({}));
    let long = s.execute("sleepy")["id"].as_i64().unwrap();
    let t = s
        .get(&format!("/api/tasks/{long}?wait=1"))
        .expect(200)
        .clone();
    assert!(
        matches!(t["status"].as_str(), Some("queued" | "running")),
        "{t}"
    );
    for bad in ["61", "-1", "soon"] {
        s.get(&format!("/api/tasks/{id}?wait={bad}"))
            .assert_error(422, "validation", Some("wait"));
    }
    let r = s.get(&format!("/api/tasks/{id}?nope=1"));
    assert!((400..500).contains(&r.status), "{}", r.text);
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
fn nul_characters_in_agent_output_are_stored_once() {
    let s = Server::start();
    let code = "def run(ctx):\n    print('out\\x00put')\n    raise ValueError('bad\\x00value')\n";
    let settings = json!({"max_retries": 0});
    let r = s.post(
        "/api/agents",
        &json!({"name": "nul-out", "code": code, "settings": settings}),
    );
    r.expect(201);
    let t = s.execute("nul-out");
    let id = t["id"].as_i64().unwrap();
    let done = s.wait_task_until(id, Duration::from_secs(60), |st| {
        !matches!(st, "queued" | "running")
    });
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["attempt"], 1, "{done}");
    assert!(
        done["stdout"].as_str().unwrap().contains("out\u{FFFD}put"),
        "{done}"
    );
    let err = done["error"].as_str().unwrap();
    assert!(err.contains("ValueError: bad\u{FFFD}value"), "{err}");
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

// ---------------------------------------------------------------- execute

#[test]
fn execute_queues_then_succeeds_with_output() {
    let s = Server::start();
    let a = s.create_agent("counter", COUNTER_CODE, json!({}));
    let id = a["id"].as_i64().unwrap();
    let r = s.post(&format!("/api/agents/{id}/execute"), &json!({}));
    let t = r.expect(202).clone();
    assert_eq!(t["status"], "queued");
    assert_eq!(t["trigger"], "manual");
    assert_eq!(t["attempt"], 1);
    assert_eq!(t["agent_id"], id);
    let tid = t["id"].as_i64().unwrap();
    let done = s.wait_task(tid);
    assert_eq!(done["status"], "succeeded", "task: {done}");
    assert_eq!(done["result"], json!({"count": 1}));
    assert!(
        done["stdout"]
            .as_str()
            .is_some_and(|o| o.contains("hello 1")),
        "stdout: {done}"
    );
    let logs = done["logs"].as_array().expect("logs array");
    assert!(
        logs.iter()
            .any(|l| l["message"] == "run 1" && l["level"] == "info"),
        "logs: {done}"
    );
    assert!(
        done["duration_ms"].as_i64().is_some(),
        "duration_ms: {done}"
    );
    assert!(
        done["peak_memory_kb"].as_i64().is_some_and(|k| k > 0),
        "peak_memory_kb: {done}"
    );
    assert_eq!(done["unsandboxed"], false);
    assert!(!done["started_at"].is_null() && !done["completed_at"].is_null());
}

#[test]
fn state_shows_run_count_and_state() {
    let s = Server::start();
    s.create_agent("counter", COUNTER_CODE, json!({}));
    let before = s.get("/api/agents/counter/state").expect(200).clone();
    assert_eq!(before["run_count"], 0);
    assert_eq!(before["state"], json!({}));
    for _ in 0..2 {
        let t = s.execute("counter");
        let done = s.wait_task(t["id"].as_i64().unwrap());
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    let st = s.get("/api/agents/counter/state").expect(200).clone();
    assert_eq!(st["run_count"], 2);
    assert_eq!(st["state"], json!({"count": 2}));
}

#[test]
fn execute_draft_agent_is_409() {
    let s = Server::start();
    s.create_agent("drf", OK_CODE, json!({"status": "draft"}));
    s.post("/api/agents/drf/execute", &json!({}))
        .assert_error(409, "conflict", None);
}

#[test]
fn execute_disabled_agent_is_409() {
    let s = Server::start();
    s.create_agent("dis", OK_CODE, json!({}));
    s.patch("/api/agents/dis", &json!({"status": "disabled"}))
        .expect(200);
    s.post("/api/agents/dis/execute", &json!({}))
        .assert_error(409, "conflict", None);
}

#[test]
fn execute_paused_agent_runs() {
    let s = Server::start();
    s.create_agent("p", OK_CODE, json!({}));
    s.patch("/api/agents/p", &json!({"status": "paused"}))
        .expect(200);
    let t = s.execute("p");
    let done = s.wait_task(t["id"].as_i64().unwrap());
    assert_eq!(done["status"], "succeeded", "{done}");
}

#[test]
fn failing_agent_task_is_failed_with_error() {
    let s = Server::start();
    s.create_agent("bad", FAIL_CODE, json!({"settings": {"max_retries": 0}}));
    let t = s.execute("bad");
    let done = s.wait_task(t["id"].as_i64().unwrap());
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["error"]
            .as_str()
            .is_some_and(|e| e.contains("boom from agent")),
        "error: {done}"
    );
}

#[test]
fn task_list_filters_by_status_and_omits_stdout() {
    let s = Server::start();
    s.create_agent("ok", COUNTER_CODE, json!({}));
    let t1 = s.execute("ok");
    s.wait_task(t1["id"].as_i64().unwrap());
    s.patch(
        "/api/agents/ok",
        &json!({"code": FAIL_CODE, "settings": {"max_retries": 0}}),
    )
    .expect(200);
    // A code change waits for approval again.
    assert_eq!(
        s.get("/api/agents/ok").expect(200)["status"],
        "pending_approval"
    );
    s.post("/api/agents/ok/approve", &json!({})).expect(200);
    let t2 = s.execute("ok");
    let d2 = s.wait_task(t2["id"].as_i64().unwrap());
    assert_eq!(d2["status"], "failed", "{d2}");

    let all = s.get("/api/agents/ok/tasks").expect(200).clone();
    let items = all["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{all}");
    assert_eq!(items[0]["id"], t2["id"], "newest first");
    for it in items {
        assert_eq!(it["stdout"], Value::Null, "list items omit stdout: {it}");
    }
    let ok = s
        .get("/api/agents/ok/tasks?status=succeeded")
        .expect(200)
        .clone();
    let ids: Vec<_> = ok["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].clone())
        .collect();
    assert_eq!(ids, vec![t1["id"].clone()]);
    let failed = s
        .get("/api/agents/ok/tasks?status=failed")
        .expect(200)
        .clone();
    let ids: Vec<_> = failed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].clone())
        .collect();
    assert_eq!(ids, vec![t2["id"].clone()]);
    // The full task still has its stdout.
    let full = s
        .get(&format!("/api/tasks/{}", t1["id"]))
        .expect(200)
        .clone();
    assert!(
        full["stdout"].as_str().is_some_and(|o| o.contains("hello")),
        "{full}"
    );
}

// ---------------------------------------------------------------- retry / cancel

#[test]
fn retry_finished_task_queues_attempt_2_and_runs() {
    let s = Server::start();
    s.create_agent("r", COUNTER_CODE, json!({}));
    let t = s.execute("r");
    let tid = t["id"].as_i64().unwrap();
    s.wait_task(tid);
    let r = s.post(&format!("/api/tasks/{tid}/retry"), &json!({}));
    let n = r.expect(202).clone();
    assert_ne!(n["id"], t["id"], "a new task");
    assert_eq!(n["attempt"], 2);
    assert_eq!(n["trigger"], "retry");
    assert_eq!(n["retry_of"], tid);
    assert_eq!(n["status"], "queued");
    let done = s.wait_task(n["id"].as_i64().unwrap());
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"], json!({"count": 2}));
}

#[test]
fn retry_unfinished_task_is_409() {
    let s = Server::start();
    s.create_agent("sleepy", SLEEP_CODE, json!({}));
    let t = s.execute("sleepy");
    let tid = t["id"].as_i64().unwrap();
    s.post(&format!("/api/tasks/{tid}/retry"), &json!({}))
        .assert_error(409, "conflict", None);
    s.wait_task_until(tid, Duration::from_secs(30), |st| st == "running");
    s.post(&format!("/api/tasks/{tid}/retry"), &json!({}))
        .assert_error(409, "conflict", None);
    s.post(&format!("/api/tasks/{tid}/cancel"), &json!({}))
        .expect(200);
}

/// Pids of every process below `root`.
fn descendants(root: u32) -> Vec<(u32, String)> {
    let mut parent = std::collections::HashMap::new();
    let mut comm = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let (Some(l), Some(r)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[l + 1..r].to_string();
        let ppid: u32 = stat[r + 2..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        parent.insert(pid, ppid);
        comm.insert(pid, name);
    }
    let mut out = Vec::new();
    for &pid in parent.keys() {
        let mut p = pid;
        let mut hops = 0;
        while p > 1 && hops < 64 {
            p = parent.get(&p).copied().unwrap_or(0);
            if p == root {
                out.push((pid, comm.get(&pid).cloned().unwrap_or_default()));
                break;
            }
            hops += 1;
        }
    }
    out
}

fn python_below(root: u32) -> Vec<(u32, String)> {
    descendants(root)
        .into_iter()
        .filter(|(_, c)| c.starts_with("python"))
        .collect()
}

#[test]
fn cancel_running_task_stops_it() {
    let s = Server::start();
    s.create_agent("sleepy", SLEEP_CODE, json!({}));
    let t = s.execute("sleepy");
    let tid = t["id"].as_i64().unwrap();
    s.wait_task_until(tid, Duration::from_secs(30), |st| st == "running");
    // The agent's Python is running below the server.
    let deadline = Instant::now() + Duration::from_secs(10);
    while python_below(s.pid()).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !python_below(s.pid()).is_empty(),
        "the running agent's python process is not below the server: {:?}",
        descendants(s.pid())
    );

    let r = s.post(&format!("/api/tasks/{tid}/cancel"), &json!({}));
    let b = r.expect(200);
    assert_eq!(b["status"], "cancelled");

    // The run is stopped: its process goes away within ~10 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !python_below(s.pid()).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        python_below(s.pid()).is_empty(),
        "agent process still alive 10 s after cancel: {:?}",
        python_below(s.pid())
    );
    // And the worker, once it has handled the end of the run, did not
    // overwrite the cancellation.
    let handled = |log: &str| {
        log.lines().any(|l| {
            l.contains("task was cancelled")
                && l.split_whitespace().any(|w| w == format!("task={tid}"))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !handled(&s.log_text()) {
        assert!(
            Instant::now() < deadline,
            "the worker did not handle the cancelled run in 30 s:\n{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let t = s.get(&format!("/api/tasks/{tid}")).expect(200).clone();
    assert_eq!(t["status"], "cancelled", "{t}");
    assert!(!t["completed_at"].is_null(), "{t}");
}

#[test]
fn cancel_finished_task_is_409() {
    let s = Server::start();
    s.create_agent("quick", OK_CODE, json!({}));
    let t = s.execute("quick");
    let tid = t["id"].as_i64().unwrap();
    s.wait_task(tid);
    s.post(&format!("/api/tasks/{tid}/cancel"), &json!({}))
        .assert_error(409, "conflict", None);
}

#[test]
fn cancel_twice_is_409() {
    let s = Server::start();
    s.create_agent("sleepy", SLEEP_CODE, json!({}));
    let t = s.execute("sleepy");
    let tid = t["id"].as_i64().unwrap();
    s.post(&format!("/api/tasks/{tid}/cancel"), &json!({}))
        .expect(200);
    s.post(&format!("/api/tasks/{tid}/cancel"), &json!({}))
        .assert_error(409, "conflict", None);
}

// ---------------------------------------------------------------- audit

fn audit_entries(s: &Server) -> Vec<Value> {
    let b = s.get("/api/audit?limit=500").expect(200).clone();
    b["items"].as_array().unwrap().clone()
}

#[test]
fn audit_records_agent_lifecycle_with_actor() {
    let s = Server::start();
    s.create_agent("aud", OK_CODE, json!({}));
    s.patch("/api/agents/aud", &json!({"description": "changed"}))
        .expect(200);
    let t = s.execute("aud");
    s.wait_task(t["id"].as_i64().unwrap());
    assert_eq!(s.delete("/api/agents/aud").status, 200);
    let entries = audit_entries(&s);
    for action in [
        "agent.create",
        "agent.update",
        "agent.execute",
        "agent.delete",
    ] {
        let e = entries
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("no {action} in audit: {entries:?}"));
        assert_eq!(e["actor"], "token:admin#1", "{action}: {e}");
    }
    // Newest first.
    let ids: Vec<i64> = entries.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted, "audit newest first");
}

#[test]
fn audit_update_names_changed_fields() {
    let s = Server::start();
    s.create_agent("aud", OK_CODE, json!({}));
    s.patch("/api/agents/aud", &json!({"description": "changed"}))
        .expect(200);
    let entries = audit_entries(&s);
    let e = entries
        .iter()
        .find(|e| e["action"] == "agent.update")
        .unwrap();
    assert_eq!(e["detail"]["fields"], json!(["description"]), "{e}");
}

#[test]
fn failed_requests_are_not_audited() {
    let s = Server::start();
    s.create_agent("dup", OK_CODE, json!({}));
    s.post("/api/agents", &json!({"name": "dup", "code": OK_CODE}))
        .assert_error(409, "conflict", Some("name"));
    s.post("/api/agents", &json!({"name": "bad name", "code": OK_CODE}))
        .assert_error(422, "validation", Some("name"));
    let (_, viewer) = s.create_token("viewer");
    s.req(
        Method::POST,
        "/api/agents",
        Some(&viewer),
        Some(&json!({"name": "v", "code": OK_CODE})),
    )
    .assert_error(403, "forbidden", None);
    let entries = audit_entries(&s);
    let creates = entries
        .iter()
        .filter(|e| e["action"] == "agent.create")
        .count();
    assert_eq!(
        creates, 1,
        "only the successful create is audited: {entries:?}"
    );
}

#[test]
fn audit_records_token_create_and_revoke() {
    let s = Server::start();
    let (id, _) = s.create_token("viewer");
    s.delete(&format!("/api/tokens/{id}")).expect(200);
    let entries = audit_entries(&s);
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "token.create" && e["actor"] == "token:admin#1")
    );
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "token.revoke" && e["target"] == format!("token:{id}"))
    );
    let text = serde_json::to_string(&entries).unwrap();
    assert!(!text.contains(&s.token), "audit leaks the admin token");
}

// ---------------------------------------------------------------- openapi

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

// ---------------------------------------------------------------- shutdown

#[test]
fn sigterm_exits_0_quickly() {
    let mut s = Server::start();
    s.req(Method::GET, "/health", None, None).expect(200);
    let start = Instant::now();
    let st = s
        .terminate(Duration::from_secs(10))
        .expect("p38 up did not exit within 10 s of SIGTERM");
    assert!(st.success(), "exit status {st:?}; log:\n{}", s.log_text());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        s.log_text().contains("Shutting down"),
        "log:\n{}",
        s.log_text()
    );
}

#[test]
fn restart_keeps_data_and_admin_token() {
    let mut s = Server::start();
    s.create_agent("keep", OK_CODE, json!({}));
    let token = s.token.clone();
    s.terminate(Duration::from_secs(10)).expect("exit");
    // Start again on the same data folder.
    let s2 = Server::start_in(&s.root);
    assert_eq!(s2.token, token, "admin token unchanged");
    s2.get("/api/agents/keep").expect(200);
}

// ---------------------------------------------------------------- more scopes and tokens

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

// ---------------------------------------------------------------- more agent rules

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

#[test]
fn patch_rename_then_old_name_is_404() {
    let s = Server::start();
    let a = s.create_agent("old", OK_CODE, json!({}));
    let b = s
        .patch("/api/agents/old", &json!({"name": "new"}))
        .expect(200)
        .clone();
    assert_eq!(b["id"], a["id"]);
    s.get("/api/agents/old")
        .assert_error(404, "not_found", None);
    s.get("/api/agents/new").expect(200);
}

#[test]
fn next_runs_follow_the_interval() {
    let s = Server::start();
    let a = s.create_agent("iv", OK_CODE, json!({"schedule": "every 5m"}));
    let runs: Vec<chrono::DateTime<chrono::Utc>> = a["next_runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(runs.len(), 5, "{a}");
    for w in runs.windows(2) {
        assert_eq!((w[1] - w[0]).num_seconds(), 300, "{runs:?}");
    }
}

#[test]
fn six_field_cron_and_whitespace_are_accepted() {
    let s = Server::start();
    let a = s.create_agent("c6", OK_CODE, json!({"schedule": "*/10 * * * * *"}));
    assert_eq!(a["next_runs"].as_array().unwrap().len(), 5);
    let b = s.create_agent("c5", OK_CODE, json!({"schedule": "  0 * * * *  "}));
    assert_eq!(b["schedule"], "0 * * * *", "schedule stored trimmed");
}

#[test]
fn empty_schedule_means_none() {
    let s = Server::start();
    let a = s.create_agent("e", OK_CODE, json!({"schedule": ""}));
    assert_eq!(a["schedule"], Value::Null);
}

fn tasks_of(s: &Server, agent: &str) -> Vec<Value> {
    s.get(&format!("/api/agents/{agent}/tasks?limit=500"))
        .expect(200)["items"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn schedule_fires_on_its_own() {
    let s = Server::start();
    s.create_agent("tick", COUNTER_CODE, json!({"schedule": "every 1s"}));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let done: Vec<_> = tasks_of(&s, "tick")
            .into_iter()
            .filter(|t| t["status"] == "succeeded")
            .collect();
        if done.len() >= 2 {
            assert!(done.iter().all(|t| t["trigger"] == "schedule"), "{done:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "an every-1s schedule did not run twice in 20 s: {:?}\n{}",
            tasks_of(&s, "tick"),
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let st = s.get("/api/agents/tick/state").expect(200).clone();
    assert!(st["run_count"].as_i64().unwrap() >= 2, "{st}");
}

#[test]
fn paused_agent_schedule_does_not_fire() {
    let s = Server::start();
    s.create_agent(
        "p",
        OK_CODE,
        json!({"schedule": "every 1s", "status": "paused"}),
    );
    // An active agent on the same schedule, created after it, fires: the
    // scheduler is alive and has had its chances to fire the paused one.
    s.create_agent("a", OK_CODE, json!({"schedule": "every 1s"}));
    let deadline = Instant::now() + Duration::from_secs(30);
    while tasks_of(&s, "a").len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the active agent did not fire twice in 30 s: {:?}\n{}",
            tasks_of(&s, "a"),
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(tasks_of(&s, "p"), Vec::<Value>::new());
}

#[test]
fn failed_run_is_retried_automatically() {
    let s = Server::start();
    s.create_agent(
        "flaky",
        FAIL_CODE,
        json!({"settings": {"max_retries": 1, "retry_base_seconds": 1}}),
    );
    let t = s.execute("flaky");
    let tid = t["id"].as_i64().unwrap();
    assert_eq!(s.wait_task(tid)["status"], "failed");
    let deadline = Instant::now() + Duration::from_secs(20);
    let retry = loop {
        let ts = tasks_of(&s, "flaky");
        if let Some(r) = ts.iter().find(|x| x["attempt"] == 2) {
            break r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no automatic retry in 20 s: {ts:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(retry["trigger"], "retry", "{retry}");
    assert_eq!(retry["retry_of"], tid, "{retry}");
    assert_eq!(
        s.wait_task(retry["id"].as_i64().unwrap())["status"],
        "failed"
    );
    // A retry is queued in the same transaction that records the failure:
    // had the failed retry earned another, it would be listed already.
    assert_eq!(
        tasks_of(&s, "flaky").len(),
        2,
        "max_retries 1 means one retry only"
    );
}

#[test]
fn retry_on_disabled_agent_is_409() {
    let s = Server::start();
    s.create_agent("d", OK_CODE, json!({}));
    let t = s.execute("d");
    let tid = t["id"].as_i64().unwrap();
    s.wait_task(tid);
    s.patch("/api/agents/d", &json!({"status": "disabled"}))
        .expect(200);
    s.post(&format!("/api/tasks/{tid}/retry"), &json!({}))
        .assert_error(409, "conflict", None);
}

#[test]
fn task_list_paginates() {
    let s = Server::start();
    s.create_agent("many", OK_CODE, json!({"status": "paused"}));
    let (_, op) = s.create_token("operator");
    let mut ids = Vec::new();
    for _ in 0..5 {
        let t = s.req(
            Method::POST,
            "/api/agents/many/execute",
            Some(&op),
            Some(&json!({})),
        );
        ids.push(t.expect(202)["id"].as_i64().unwrap());
    }
    let p1 = s.get("/api/agents/many/tasks?limit=2").expect(200).clone();
    let c = p1["next_cursor"].as_str().expect("cursor").to_string();
    let p2 = s
        .get(&format!("/api/agents/many/tasks?limit=2&cursor={c}"))
        .expect(200)
        .clone();
    let c2 = p2["next_cursor"].as_str().expect("cursor").to_string();
    let p3 = s
        .get(&format!("/api/agents/many/tasks?limit=2&cursor={c2}"))
        .expect(200)
        .clone();
    assert!(p3["next_cursor"].is_null(), "{p3}");
    let seen: Vec<i64> = [&p1, &p2, &p3]
        .iter()
        .flat_map(|p| {
            p["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_i64().unwrap())
        })
        .collect();
    ids.reverse();
    assert_eq!(seen, ids);
}

#[test]
fn delete_agent_with_running_task_stops_the_run() {
    let s = Server::start();
    s.create_agent("sleepy", SLEEP_CODE, json!({}));
    let t = s.execute("sleepy");
    let tid = t["id"].as_i64().unwrap();
    s.wait_task_until(tid, Duration::from_secs(30), |st| st == "running");
    // "running" means claimed; wait until the sandbox is up too, so the
    // check below cannot pass before the run has even started.
    let deadline = Instant::now() + Duration::from_secs(10);
    while python_below(s.pid()).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !python_below(s.pid()).is_empty(),
        "the agent never started: {:?}",
        descendants(s.pid())
    );
    let r = s.delete("/api/agents/sleepy");
    assert_eq!(r.status, 200, "{}", r.text);
    s.get(&format!("/api/tasks/{tid}"))
        .assert_error(404, "not_found", None);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !python_below(s.pid()).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        python_below(s.pid()).is_empty(),
        "the deleted agent's run is still going 15 s later: {:?}\n{}",
        descendants(s.pid()),
        s.log_text()
    );
    s.req(Method::GET, "/health", None, None).expect(200);
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

#[test]
fn task_lists_are_bounded_whatever_the_agents_return() {
    let s = Server::start();
    // Just under the default result cap (1 MiB), three times.
    s.create_agent(
        "fat",
        "def run(ctx):\n    return {'blob': 'é' * 400_000}\n",
        json!({}),
    );
    let mut ids = Vec::new();
    for _ in 0..3 {
        let t = s.execute("fat");
        let done = s.wait_task(t["id"].as_i64().unwrap());
        assert_eq!(done["status"], "succeeded", "{done}");
        ids.push(done["id"].as_i64().unwrap());
    }
    let page = s.get("/api/agents/fat/tasks?limit=500");
    page.expect(200);
    assert!(
        page.text.len() < 16 * 1024,
        "a page of three summaries is {} bytes",
        page.text.len()
    );
    for it in page.body["items"].as_array().unwrap() {
        let preview = &it["result_preview"];
        assert_eq!(preview["truncated"], true, "{it}");
        assert_eq!(preview["text"].as_str().unwrap().chars().count(), 500);
        assert!(
            it.get("result").is_none() && it.get("stdout").is_none(),
            "{it}"
        );
    }
    // The whole result is on the task itself.
    let full = s.get(&format!("/api/tasks/{}", ids[0]));
    assert_eq!(
        full.expect(200)["result"]["blob"]
            .as_str()
            .unwrap()
            .chars()
            .count(),
        400_000
    );
    // A result over the cap fails the run, and is not stored.
    s.create_agent(
        "fatter",
        "def run(ctx):\n    return 'x' * 3000\n",
        json!({"settings": {"max_result_kb": 2}}),
    );
    let t = s.execute("fatter");
    let done = s.wait_task(t["id"].as_i64().unwrap());
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["error"]
            .as_str()
            .unwrap()
            .contains("settings.max_result_kb"),
        "{done}"
    );
    assert_eq!(done["result"], Value::Null);
    s.patch(
        "/api/agents/fatter",
        &json!({"settings": {"max_result_kb": 16385}}),
    )
    .assert_error(422, "validation", Some("settings.max_result_kb"));
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

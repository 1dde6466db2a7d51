//! End-to-end tests of the `p38` command line against a real server.

mod common;

use common::*;
use serde_json::{Value, json};

fn create_counter(s: &Server, name: &str) {
    let f = s.write_file(&format!("{name}.py"), COUNTER_CODE);
    let o = s.cli(&[
        "agent",
        "create",
        "--name",
        name,
        "--file",
        f.to_str().unwrap(),
    ]);
    assert_ok(&o);
}

#[test]
fn cli_agent_create_with_schedule_prints_name() {
    let s = Server::start();
    let f = s.write_file("n.py", COUNTER_CODE);
    let o = s.cli(&[
        "agent",
        "create",
        "--name",
        "n",
        "--file",
        f.to_str().unwrap(),
        "--schedule",
        "every 5m",
    ]);
    assert_ok(&o);
    let out = stdout(&o);
    let name_line = out
        .lines()
        .find(|l| l.starts_with("name:"))
        .unwrap_or_else(|| panic!("no name: line in stdout: {out}"));
    assert_eq!(
        name_line.trim_start_matches("name:").trim(),
        "n",
        "stdout: {out}"
    );
    assert!(out.contains("every 5m"), "stdout: {out}");
    let a = s.get("/api/agents/n").expect(200).clone();
    assert_eq!(a["schedule"], "every 5m");
    assert_eq!(a["code"], COUNTER_CODE);
}

#[test]
fn cli_agent_list_prints_table() {
    let s = Server::start();
    create_counter(&s, "listed-agent");
    let o = s.cli(&["agent", "list"]);
    assert_ok(&o);
    let out = stdout(&o);
    assert!(out.contains("NAME"), "table header: {out}");
    assert!(out.contains("listed-agent"), "stdout: {out}");
    assert!(out.contains("active"), "stdout: {out}");
}

#[test]
fn cli_agent_list_json_parses() {
    let s = Server::start();
    create_counter(&s, "j1");
    let o = s.cli(&["agent", "list", "--json"]);
    assert_ok(&o);
    let v: Value = serde_json::from_str(&stdout(&o)).expect("--json output is JSON");
    assert_eq!(v["items"][0]["name"], "j1");
}

#[test]
fn cli_agent_show_json_parses() {
    let s = Server::start();
    create_counter(&s, "j2");
    let o = s.cli(&["agent", "show", "j2", "--json"]);
    assert_ok(&o);
    let v: Value = serde_json::from_str(&stdout(&o)).expect("--json output is JSON");
    assert_eq!(v["name"], "j2");
    assert_eq!(v["version"], 1);
}

#[test]
fn cli_agent_run_wait_prints_result() {
    let s = Server::start();
    create_counter(&s, "c");
    let o = s.cli(&["agent", "run", "c", "--wait"]);
    assert_ok(&o);
    let out = stdout(&o);
    assert!(out.contains("succeeded"), "stdout: {out}");
    assert!(out.contains(r#"{"count":1}"#), "result in stdout: {out}");
    assert!(out.contains("hello 1"), "agent stdout shown: {out}");
}

#[test]
fn cli_agent_run_without_wait_queues() {
    let s = Server::start();
    create_counter(&s, "c");
    let o = s.cli(&["agent", "run", "c"]);
    assert_ok(&o);
    assert!(stdout(&o).contains("queued task"), "stdout: {}", stdout(&o));
}

#[test]
fn cli_agent_run_wait_failing_agent_exits_1() {
    let s = Server::start();
    let f = s.write_file("bad.py", FAIL_CODE);
    assert_ok(&s.cli(&[
        "agent",
        "create",
        "--name",
        "bad",
        "--file",
        f.to_str().unwrap(),
        "--settings",
        r#"{"max_retries": 0}"#,
    ]));
    let o = s.cli(&["agent", "run", "bad", "--wait"]);
    assert_eq!(o.status.code(), Some(1), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("failed"), "stdout: {out}");
    assert!(out.contains("boom from agent"), "error printed: {out}");
}

#[test]
fn cli_agent_show_unknown_fails_with_not_found() {
    let s = Server::start();
    let o = s.cli(&["agent", "show", "nope"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.to_lowercase().contains("not found"), "stderr: {err}");
    assert!(err.contains("404"), "stderr: {err}");
}

#[test]
fn cli_agent_create_invalid_schedule_names_field() {
    let s = Server::start();
    let f = s.write_file("x.py", OK_CODE);
    let o = s.cli(&[
        "agent",
        "create",
        "--name",
        "x",
        "--file",
        f.to_str().unwrap(),
        "--schedule",
        "every banana",
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("schedule"), "stderr: {err}");
    assert!(err.contains("422"), "stderr: {err}");
}

#[test]
fn cli_agent_create_missing_file_fails() {
    let s = Server::start();
    let o = s.cli(&[
        "agent",
        "create",
        "--name",
        "x",
        "--file",
        "/nonexistent/agent.py",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("agent.py"), "stderr: {}", stderr(&o));
}

#[test]
fn cli_task_list_show_retry() {
    let s = Server::start();
    create_counter(&s, "t");
    assert_ok(&s.cli(&["agent", "run", "t", "--wait"]));
    let tasks = s.get("/api/agents/t/tasks").expect(200).clone();
    let id = tasks["items"][0]["id"].as_i64().unwrap().to_string();

    let o = s.cli(&["task", "list", "t"]);
    assert_ok(&o);
    let out = stdout(&o);
    assert!(
        out.contains("succeeded") && out.contains("manual"),
        "task list: {out}"
    );

    let o = s.cli(&["task", "show", &id]);
    assert_ok(&o);
    let out = stdout(&o);
    assert!(out.contains(r#"{"count":1}"#), "task show: {out}");

    let o = s.cli(&["task", "retry", &id]);
    assert_ok(&o);
    let out = stdout(&o);
    assert!(out.contains("attempt 2"), "task retry: {out}");
}

#[test]
fn cli_task_show_non_numeric_id_is_usage_error() {
    let s = Server::start();
    let o = s.cli(&["task", "show", "abc"]);
    assert_eq!(o.status.code(), Some(2), "clap usage error: {}", stderr(&o));
}

#[test]
fn cli_agent_versions_edit_delete() {
    let s = Server::start();
    create_counter(&s, "v");
    let f2 = s.write_file("v2.py", OK_CODE);
    assert_ok(&s.cli(&["agent", "edit", "v", "--file", f2.to_str().unwrap()]));

    let o = s.cli(&["agent", "versions", "v"]);
    assert_ok(&o);
    let out = stdout(&o);
    // The table's cells, row by row (inside its box-drawing borders).
    let rows: Vec<Vec<&str>> = out
        .lines()
        .filter_map(|l| l.strip_prefix('│')?.strip_suffix('│'))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.first(), Some(&vec!["VERSION", "BY", "AT"]), "{out}");
    let versions: Vec<&str> = rows[1..].iter().map(|r| r[0]).collect();
    assert_eq!(versions, ["2", "1"], "newest first, one row each: {out}");
    for r in &rows[1..] {
        assert_eq!(r.len(), 3, "{out}");
        assert_eq!(r[1], "token:admin#1", "{out}");
        assert!(chrono::DateTime::parse_from_rfc3339(r[2]).is_ok(), "{out}");
    }
    assert!(rows[2][2] <= rows[1][2], "version 1 is the older: {out}");
    let o = s.cli(&["agent", "versions", "v", "--json"]);
    assert_ok(&o);
    let vs: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let nums: Vec<_> = vs
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].clone())
        .collect();
    assert_eq!(nums, vec![json!(2), json!(1)]);

    let o = s.cli(&["agent", "edit", "v", "--description", "x"]);
    assert_ok(&o);
    assert_eq!(s.get("/api/agents/v").expect(200)["description"], "x");

    let o = s.cli(&["agent", "delete", "v", "--yes"]);
    assert_ok(&o);
    assert_eq!(stdout(&o), "deleted agent v, its workspace removed\n");
    s.get("/api/agents/v").assert_error(404, "not_found", None);
}

#[test]
fn cli_agent_edit_no_schedule_and_status() {
    let s = Server::start();
    let f = s.write_file("e.py", OK_CODE);
    assert_ok(&s.cli(&[
        "agent",
        "create",
        "--name",
        "e",
        "--file",
        f.to_str().unwrap(),
        "--schedule",
        "every 5m",
    ]));
    assert_ok(&s.cli(&["agent", "edit", "e", "--no-schedule"]));
    assert_eq!(s.get("/api/agents/e").expect(200)["schedule"], Value::Null);
    assert_ok(&s.cli(&["agent", "edit", "e", "--status", "paused"]));
    assert_eq!(s.get("/api/agents/e").expect(200)["status"], "paused");
    let o = s.cli(&["agent", "edit", "e"]);
    assert!(!o.status.success(), "edit with nothing to change must fail");
}

#[test]
fn cli_agent_state() {
    let s = Server::start();
    create_counter(&s, "st");
    assert_ok(&s.cli(&["agent", "run", "st", "--wait"]));
    let o = s.cli(&["agent", "state", "st"]);
    assert_ok(&o);
    let out = stdout(&o);
    assert!(out.contains("runs:  1"), "state: {out}");
    assert!(out.contains("\"count\": 1"), "state: {out}");
}

#[test]
fn cli_viewer_token_can_list_but_not_create() {
    let s = Server::start();
    let o = s.cli(&["token", "create", "--scope", "viewer", "--name", "ro"]);
    assert_ok(&o);
    let tok = stdout(&o).trim().to_string();
    assert!(tok.starts_with("p38_"), "printed token: {tok:?}");
    assert!(stderr(&o).contains("viewer"), "stderr: {}", stderr(&o));

    let o = s.cli_env(&["agent", "list"], &[("P38_TOKEN", &tok)]);
    assert_ok(&o);

    let f = s.write_file("x.py", OK_CODE);
    let o = s.cli_env(
        &[
            "agent",
            "create",
            "--name",
            "x",
            "--file",
            f.to_str().unwrap(),
        ],
        &[("P38_TOKEN", &tok)],
    );
    assert!(!o.status.success(), "viewer create must fail");
    assert!(stderr(&o).contains("403"), "stderr: {}", stderr(&o));
}

#[test]
fn cli_token_list_and_revoke() {
    let s = Server::start();
    let o = s.cli(&[
        "token", "create", "--scope", "operator", "--name", "opsbot", "--json",
    ]);
    assert_ok(&o);
    let created: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let id = created["id"].as_i64().unwrap().to_string();
    let tok = created["token"].as_str().unwrap().to_string();

    let o = s.cli(&["token", "list"]);
    assert_ok(&o);
    let out = stdout(&o);
    assert!(
        out.contains("opsbot") && out.contains("operator"),
        "token list: {out}"
    );
    assert!(!out.contains(&tok), "token list leaks the token");

    let o = s.cli(&["token", "revoke", &id]);
    assert_ok(&o);
    assert!(stdout(&o).contains("revoked"), "{}", stdout(&o));

    let o = s.cli_env(&["agent", "list"], &[("P38_TOKEN", &tok)]);
    assert!(!o.status.success(), "revoked token still works");
    assert!(stderr(&o).contains("401"), "stderr: {}", stderr(&o));
}

#[test]
fn cli_without_server_mentions_p38_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = p38_command();
    cmd.args(["agent", "list"])
        .current_dir(dir.path())
        .env("P38_URL", "http://127.0.0.1:1")
        .env("P38_TOKEN", "p38_whatever");
    let o = run_with_timeout(cmd, std::time::Duration::from_secs(60));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("p38 up"), "stderr: {}", stderr(&o));
}

#[test]
fn cli_without_token_says_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = p38_command();
    cmd.args(["agent", "list"])
        .current_dir(dir.path())
        .env("P38_URL", "http://127.0.0.1:1")
        .env("P38_DATA_DIR", dir.path().join("nothing-here"));
    let o = run_with_timeout(cmd, std::time::Duration::from_secs(60));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("P38_TOKEN"), "stderr: {}", stderr(&o));
}

#[test]
fn cli_run_file_without_server() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("counter.py");
    std::fs::write(&f, COUNTER_CODE).unwrap();
    let mut cmd = p38_command();
    cmd.args(["run", f.to_str().unwrap(), "--state", r#"{"count":1}"#])
        .current_dir(dir.path())
        .env("P38_URL", "http://127.0.0.1:1");
    let o = run_with_timeout(cmd, std::time::Duration::from_secs(60));
    assert_ok(&o);
    let out = stdout(&o);
    assert!(out.contains("succeeded"), "stdout: {out}");
    assert!(
        out.contains(r#"{"count":2}"#),
        "result from the given state: {out}"
    );
}

#[test]
fn cli_run_file_json() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("counter.py");
    std::fs::write(&f, COUNTER_CODE).unwrap();
    let mut cmd = p38_command();
    cmd.args(["run", f.to_str().unwrap(), "--json"])
        .current_dir(dir.path());
    let o = run_with_timeout(cmd, std::time::Duration::from_secs(60));
    assert_ok(&o);
    let v: Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    assert_eq!(v["status"], "succeeded");
    assert_eq!(v["result"], json!({"count": 1}));
    assert_eq!(v["state"], json!({"count": 1}));
    assert_eq!(v["sandboxed"], true);
}

#[test]
fn cli_run_failing_file_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.py");
    std::fs::write(&f, FAIL_CODE).unwrap();
    let mut cmd = p38_command();
    cmd.args(["run", f.to_str().unwrap()])
        .current_dir(dir.path());
    let o = run_with_timeout(cmd, std::time::Duration::from_secs(60));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("boom from agent"),
        "stdout: {}",
        stdout(&o)
    );
}

#[test]
fn cli_run_bad_state_json_fails() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("ok.py");
    std::fs::write(&f, OK_CODE).unwrap();
    let mut cmd = p38_command();
    cmd.args(["run", f.to_str().unwrap(), "--state", "{nope"])
        .current_dir(dir.path());
    let o = run_with_timeout(cmd, std::time::Duration::from_secs(60));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--state"), "stderr: {}", stderr(&o));
}

#[test]
fn cli_task_cancel() {
    let s = Server::start();
    let f = s.write_file("sleepy.py", SLEEP_CODE);
    assert_ok(&s.cli(&[
        "agent",
        "create",
        "--name",
        "sleepy",
        "--file",
        f.to_str().unwrap(),
    ]));
    let o = s.cli(&["agent", "run", "sleepy", "--json"]);
    assert_ok(&o);
    let t: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let id = t["id"].as_i64().unwrap().to_string();
    let o = s.cli(&["task", "cancel", &id]);
    assert_ok(&o);
    assert!(stdout(&o).contains("cancelled"), "{}", stdout(&o));
    let o = s.cli(&["task", "cancel", &id]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("409"), "stderr: {}", stderr(&o));
}

#[test]
fn cli_agent_list_bad_status_names_field() {
    let s = Server::start();
    let o = s.cli(&["agent", "list", "--status", "sleeping"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("status"), "stderr: {}", stderr(&o));
}

#[test]
fn cli_agent_create_bad_config_json_fails_before_sending() {
    let s = Server::start();
    let f = s.write_file("x.py", OK_CODE);
    let o = s.cli(&[
        "agent",
        "create",
        "--name",
        "x",
        "--file",
        f.to_str().unwrap(),
        "--config",
        "{nope",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--config"), "stderr: {}", stderr(&o));
    s.get("/api/agents/x").assert_error(404, "not_found", None);
}

#[test]
fn cli_agent_create_with_all_fields() {
    let s = Server::start();
    let f = s.write_file("x.py", OK_CODE);
    let o = s.cli(&[
        "agent",
        "create",
        "--name",
        "x",
        "--file",
        f.to_str().unwrap(),
        "--description",
        "desc",
        "--config",
        r#"{"a":1}"#,
        "--secret",
        "API_KEY",
        "--tool",
        "webhook",
        "--network",
        "true",
        "--json",
    ]);
    assert_ok(&o);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["description"], "desc");
    assert_eq!(v["config"], json!({"a": 1}));
    assert_eq!(v["secrets"], json!(["API_KEY"]));
    assert_eq!(v["tools"], json!(["webhook"]));
    assert_eq!(v["network"], true);
}

#[test]
fn cli_agent_approve_shows_what_changed_since_the_last_approval_first() {
    let s = Server::start();
    let a = s.create_agent("diffy", OK_CODE, json!({}));
    s.patch(
        "/api/agents/diffy",
        &json!({"config": {"url": "https://x\u{1b}]52;c;aGk=\u{7}"}, "secrets": ["API_KEY"]}),
    )
    .expect(200);
    // The API refuses such code now; an agent stored before could hold it.
    let code = "def run(ctx):\n    # \u{1b}[2K\r sneaky\n    return {\"ok\": True}\n";
    s.store_code_past_the_api(a["id"].as_i64().unwrap(), code);
    let o = s.cli(&["agent", "approve", "diffy", "--yes"]);
    assert_ok(&o);
    let out = stdout(&o);
    assert!(
        out.contains("changed since the approval of version 1 (3):"),
        "{out}"
    );
    assert!(out.contains("+   2 |     # \\x1b[2K\\r sneaky"), "{out}");
    assert!(out.contains("secrets: added API_KEY"), "{out}");
    assert!(
        out.contains("config: {} -> {\"url\":\"https://x\\u001b]52;c;aGk=\\u0007\"}"),
        "{out}"
    );
    assert!(
        !out.contains('\u{1b}') && !out.contains('\u{7}') && !out.contains('\r'),
        "{out:?}"
    );
    // The diff comes before the approval screen.
    let diff_at = out.find("changed since").unwrap();
    let screen_at = out.find("description:").unwrap();
    assert!(diff_at < screen_at, "{out}");
    assert!(out.contains("approved: agent"), "{out}");
}

#[test]
fn cli_agent_reject_with_a_reason() {
    let s = Server::start();
    s.create_agent("nope", OK_CODE, json!({"status": "pending_approval"}));
    let o = s.cli(&[
        "agent",
        "reject",
        "nope",
        "--reason",
        "talks to the wrong host",
    ]);
    assert_ok(&o);
    assert!(stdout(&o).contains("is rejected"), "{}", stdout(&o));
    let a = s.get("/api/agents/nope").expect(200).clone();
    assert_eq!(a["status"], "rejected");
    assert_eq!(a["rejected_reason"], "talks to the wrong host");
    let o = s.cli(&["agent", "run", "nope"]);
    assert!(!o.status.success(), "a rejected agent ran: {}", stdout(&o));
}

#[test]
fn cli_token_create_expires_and_list_shows_expiry_and_last_use() {
    let s = Server::start();
    let o = s.cli(&[
        "token",
        "create",
        "--scope",
        "author",
        "--name",
        "script",
        "--expires",
        "30d",
        "--json",
    ]);
    assert_ok(&o);
    let created: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(created["expires_at"].is_string(), "{created}");
    assert_eq!(created["scope"], "author");
    let o = s.cli(&["token", "create", "--scope", "viewer", "--expires", "0d"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("1 to 3650"), "{}", stderr(&o));
    let o = s.cli(&["token", "list"]);
    assert_ok(&o);
    let out = stdout(&o);
    assert!(
        out.contains("EXPIRES") && out.contains("LAST USED"),
        "{out}"
    );
    let at = created["expires_at"].as_str().unwrap();
    assert!(out.contains(&at[..10]), "{out}");
}

#[test]
fn four_eyes_flag_keeps_the_creator_from_approving() {
    let s = Server::start_with(&[("P38_APPROVAL_FOUR_EYES", "true")]);
    let a = s.create_agent("fe", OK_CODE, json!({}));
    assert_eq!(a["status"], "pending_approval");
    let r = s.post("/api/agents/fe/approve", &json!({}));
    r.assert_error(403, "forbidden", None);
    let (_, op) = s.create_token("operator");
    let r = s.req(
        reqwest::Method::POST,
        "/api/agents/fe/approve",
        Some(&op),
        Some(&json!({})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn cli_token_create_admin_on_the_server_host_needs_no_api_token() {
    let s = Server::start();
    // The database of this server: SQLite in its data folder, or the
    // PostgreSQL schema the harness made.
    let mut env = vec![("P38_TOKEN", "p38_not_a_valid_token".to_string())];
    if let Ok(text) = std::fs::read_to_string(s.root.join("e2e-database")) {
        let (url, _schema) = text.split_once('\n').unwrap();
        env.push(("P38_DATABASE_URL", url.to_string()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let o = s.cli_env(
        &[
            "token",
            "create",
            "--admin",
            "--name",
            "rescue",
            "--expires",
            "1d",
        ],
        &env,
    );
    assert_ok(&o);
    let token = stdout(&o).trim().to_string();
    assert!(token.starts_with("p38_"), "{token}");
    let r = s.req(reqwest::Method::GET, "/api/tokens", Some(&token), None);
    assert_eq!(r.status, 200, "{}", r.text);
    let rescue = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "rescue")
        .cloned()
        .unwrap();
    assert_eq!(rescue["scope"], "admin");
    assert!(rescue["expires_at"].is_string());
    let audit = s.get("/api/audit").expect(200).clone();
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "token.create" && e["actor"] == "local"),
        "{audit}"
    );
}

/// Waits (up to 30 s) for the agent's workspace to exist, then writes
/// `name` in it: the agents below wait for such a file.
fn release_agent(s: &Server, agent_id: i64, name: &str) {
    let ws = s.data_dir.join("workspaces").join(agent_id.to_string());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !ws.is_dir() {
        assert!(std::time::Instant::now() < deadline, "no workspace {ws:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::fs::write(ws.join(name), "go").unwrap();
}

/// An agent that prints, then waits for the file `go` in its workspace.
const WAITING_CODE: &str = r#"
import os, time
def run(ctx):
    print("one")
    ctx.log.info("two")
    print("\x1b[2Kthree")
    for _ in range(600):
        if os.path.exists("/workspace/go"):
            break
        time.sleep(0.05)
    print("after")
    return {"n": 1}
"#;

#[test]
fn cli_a_running_task_shows_its_output_so_far() {
    let s = Server::start();
    let a = s.create_agent("partial", WAITING_CODE, json!({}));
    let id = s.execute("partial")["id"].as_i64().unwrap();
    // Running, and still waiting for `go`: what it printed is there already.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut t = s.get(&format!("/api/tasks/{id}")).expect(200).clone();
    while !(t["status"] == "running" && t["stdout"] == "one\n\u{1b}[2Kthree\n") {
        assert!(
            std::time::Instant::now() < deadline,
            "no output so far: {t}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
        t = s.get(&format!("/api/tasks/{id}")).expect(200).clone();
    }
    assert_eq!(t["logs"][0]["message"], "two");
    assert_eq!(t["completed_at"], Value::Null);
    release_agent(&s, a["id"].as_i64().unwrap(), "go");
    let done = s.wait_task(id);
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["stdout"], "one\n\u{1b}[2Kthree\nafter\n");

    // The API's schema says so.
    let doc = s
        .req(reqwest::Method::GET, "/openapi.json", None, None)
        .expect(200)
        .clone();
    // A task is its target (an agent's run or a generation) and its own
    // fields: those are in the `allOf` part with properties.
    let parts = doc["components"]["schemas"]["Task"]["allOf"]
        .as_array()
        .expect("Task is allOf its target and its fields");
    let task = &parts
        .iter()
        .find(|p| p["properties"].is_object())
        .expect("a part with the task's own fields")["properties"];
    for field in ["stdout", "stderr", "logs"] {
        let about = task[field]["description"].as_str().unwrap_or_default();
        assert!(about.contains("so far"), "{field}: {about}");
    }
}

#[test]
fn cli_follow_prints_output_as_it_comes_then_the_outcome() {
    use std::io::BufRead;
    let s = Server::start();
    let a = s.create_agent("follower", WAITING_CODE, json!({}));
    let mut cmd = p38_command();
    cmd.args(["agent", "run", "follower", "--follow"])
        .current_dir(&s.root)
        .env("P38_URL", &s.url)
        .env("P38_DATA_DIR", &s.data_dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    // The lines come while the run waits for `go`, which is written only
    // once they were read.
    while !seen.iter().any(|l: &String| l.contains("three")) {
        match lines.next() {
            Some(l) => seen.push(l.unwrap()),
            None => panic!("follow ended early: {seen:?}"),
        }
    }
    release_agent(&s, a["id"].as_i64().unwrap(), "go");
    seen.extend(lines.map(Result::unwrap));
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}: {seen:?}");
    let at = |want: &str| {
        seen.iter()
            .position(|l| l == want)
            .unwrap_or_else(|| panic!("no line {want:?} in {seen:?}"))
    };
    assert!(seen[0].starts_with("following task "), "{seen:?}");
    let (one, two, three, after) = (
        at("[stdout] one"),
        at("[info] two"),
        at("[stdout] \\x1b[2Kthree"),
        at("[stdout] after"),
    );
    assert!(one < three && three < after && two < after, "{seen:?}");
    let status_line = seen.iter().position(|l| l.starts_with("status:")).unwrap();
    assert!(status_line > after, "{seen:?}");
    assert_eq!(
        seen[status_line].split_whitespace().nth(1),
        Some("succeeded")
    );
    assert!(seen.iter().any(|l| l.contains(r#"{"n":1}"#)), "{seen:?}");
    assert!(!seen.concat().contains('\u{1b}'), "no raw escape: {seen:?}");

    // A failed run: its error, and a non-zero exit; `task show --follow`
    // of an ended task prints it all at once.
    s.create_agent(
        "failing",
        "def run(ctx):\n    print('before')\n    raise ValueError('boom from agent')\n",
        json!({"settings": {"max_retries": 0}}),
    );
    let o = s.cli(&["agent", "run", "failing", "--follow"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("[stdout] before\n"), "{out}");
    assert!(out.contains("boom from agent"), "{out}");
    let id = out
        .split_whitespace()
        .nth(2)
        .and_then(|w| w.parse::<i64>().ok())
        .unwrap();
    let o = s.cli(&["task", "show", &id.to_string(), "--follow"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let again = stdout(&o);
    assert!(again.contains("[stdout] before\n"), "{again}");
    assert!(
        again
            .lines()
            .any(|l| l.starts_with("status:") && l.ends_with("failed")),
        "{again}"
    );
}

#[test]
fn cli_a_closed_stdout_ends_quietly() {
    let s = Server::start();
    let loud = "def run(ctx):\n    print('x' * 300000)\n    return 1\n";
    s.create_agent("loud", loud, json!({}));
    let id = s.execute("loud")["id"].as_i64().unwrap().to_string();
    assert_eq!(s.wait_task(id.parse().unwrap())["status"], "succeeded");
    let file = s.write_file("loud.py", loud);
    let client = |args: &[&str]| {
        let mut cmd = p38_command();
        cmd.args(args)
            .current_dir(&s.root)
            .env("P38_URL", &s.url)
            .env("P38_DATA_DIR", &s.data_dir);
        cmd
    };
    let mut local = p38_command();
    local
        .args(["run", file.to_str().unwrap()])
        .current_dir(&s.root);
    for mut cmd in [
        client(&["task", "show", &id]),
        client(&["task", "show", &id, "--follow"]),
        local,
    ] {
        closed_after_ten_bytes(&mut cmd);
    }
}

/// As `CMD | head -c 10`: the reader goes after a few bytes of an output
/// larger than the pipe holds; the command ends quietly, by SIGPIPE.
fn closed_after_ten_bytes(cmd: &mut std::process::Command) {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut head = [0u8; 10];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    let args: Vec<_> = cmd.get_args().collect();
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert!(!err.contains("error"), "{args:?}: quiet: {err}");
    assert_eq!(
        o.status.signal(),
        Some(libc_sigpipe()),
        "{args:?}: ended by SIGPIPE as `cat` is: {:?}",
        o.status
    );
}

fn libc_sigpipe() -> i32 {
    nix::sys::signal::Signal::SIGPIPE as i32
}

#[test]
fn cli_a_url_without_a_scheme_is_explained() {
    let mut cmd = p38_command();
    cmd.args(["agent", "list"])
        .env("P38_URL", "localhost:8080")
        .env("P38_TOKEN", "t")
        .stdin(std::process::Stdio::null());
    let o = run_with_timeout(cmd, std::time::Duration::from_secs(30));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("localhost:8080"), "{err}");
    assert!(err.contains("http://host:port"), "{err}");
    assert!(err.contains("http://localhost:8080"), "{err}");
    assert!(!err.contains("p38 up"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

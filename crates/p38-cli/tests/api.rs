//! End-to-end tests of the REST API against the real `p38 up` binary: the
//! journeys a user makes (create, change, run, retry, cancel, schedule,
//! restart), on SQLite or PostgreSQL. Each route's validation, scopes and
//! error shape are tested in process in `crates/p38-server/tests/router.rs`.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

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

// ---------------------------------------------------------------- waits and outputs

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

// ---------------------------------------------------------------- more agent rules

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

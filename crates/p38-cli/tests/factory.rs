//! From a Hebrew description to a running agent, through a loopback server
//! that answers in Anthropic's Messages API format: the first answer has a
//! syntax error and a hard-coded key, the repair loop fixes it, the agent
//! waits for approval with its report and cost, is approved, and runs.

mod fake_model;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};

use fake_model::*;

async fn messages(
    State(f): State<Fake>,
    headers: axum::http::HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let n = {
        let mut r = f.requests.lock().unwrap();
        r.push((key, body));
        r.len()
    };
    Json(answer(if n == 1 { BROKEN } else { CLEAN }))
}

fn p38(url: &str, data: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_p38"))
        .args(args)
        .env("P38_URL", url)
        .env("P38_DATA_DIR", data)
        .env("P38_WORKSPACE_QUOTA", "walk") // no image left mounted in the temporary folder
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hebrew_description_becomes_an_approved_running_agent() {
    if !p38_testkit::sandbox_available() {
        return;
    }
    let (fake, llm) = serve_fake(post(messages)).await;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_up, url, log) = start_up(&data, &llm, &[]);

    let (d, u) = (data.clone(), url.clone());
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        p38(&u, &d, &["agent", "create", "--description", HEBREW])
    })
    .await
    .unwrap();
    assert!(ok, "generation failed: {out}\n{err}");
    assert!(out.contains("pending_approval"), "{out}");

    // The model saw the Hebrew description, the key, and, the second time, the findings.
    let reqs = fake.requests.lock().unwrap().clone();
    assert_eq!(reqs.len(), 2, "one generation and one repair");
    assert!(reqs.iter().all(|(k, _)| k.as_deref() == Some(KEY)));
    assert!(reqs[0].1.to_string().contains("טסלה"));
    let repair = reqs[1].1.to_string();
    assert!(
        repair.contains("hardcoded_secret") || repair.contains("hard-coded"),
        "the repair request names the key finding"
    );
    assert!(
        repair.to_lowercase().contains("syntax"),
        "the repair request names the syntax finding"
    );

    let client = reqwest::Client::new();
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let get = |path: String| {
        let (client, url, token) = (client.clone(), url.clone(), token.trim().to_string());
        async move {
            client
                .get(format!("{url}{path}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let agents = get("/api/agents".into()).await;
    let agent = agents["items"][0].clone();
    assert_eq!(agent["status"], "pending_approval");
    assert_eq!(agent["name"], "tesla-watch");
    assert!(!agent["code"].as_str().unwrap().contains("sk-ant-"));
    let g = get(format!("/api/generations/{}", agent["generation_id"])).await;
    assert_eq!(g["status"], "succeeded");
    let iterations = g["report"]["iterations"].as_array().unwrap();
    assert_eq!(iterations.len(), 2, "every iteration is kept");
    let rules: Vec<&str> = iterations[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["rule"].as_str())
        .collect();
    assert!(
        rules.iter().any(|r| r.contains("hardcoded_secret")),
        "{rules:?}"
    );
    // The finding is kept, the key it found is not.
    let stored = iterations[0]["code"].as_str().unwrap();
    assert!(
        !stored.contains("abcdefghijklmnopqrstuvwxyz0123456789") && stored.contains("[masked]"),
        "{stored}"
    );
    assert!(
        iterations[1]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["severity"] != "error")
    );
    assert!(g["cost_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(g["input_tokens"], 2000);
    assert_eq!(g["output_tokens"], 600);
    // The agent itself shows what writing it cost.
    let one = get(format!("/api/agents/{}", agent["id"])).await;
    assert_eq!(one["generation"]["id"], agent["generation_id"]);
    assert_eq!(one["generation"]["cost_usd"], g["cost_usd"]);
    assert_eq!(one["generation"]["iterations"], 2);
    assert_eq!(one["generation"]["input_tokens"], 2000);
    assert!(
        agents["items"][0].get("generation").is_none(),
        "listings stay one query"
    );

    // Nothing runs before approval.
    let id = agent["id"].to_string();
    let (d, u, i) = (data.clone(), url.clone(), id.clone());
    let (ok, _, err) = tokio::task::spawn_blocking(move || p38(&u, &d, &["agent", "run", &i]))
        .await
        .unwrap();
    assert!(!ok && err.contains("pending_approval"), "{err}");
    let (d, u, i) = (data.clone(), url.clone(), id.clone());
    let (ok, out, err) =
        tokio::task::spawn_blocking(move || p38(&u, &d, &["agent", "approve", &i, "--yes"]))
            .await
            .unwrap();
    assert!(ok, "{out} {err}");
    assert!(
        out.contains("findings") && out.contains("$"),
        "approval shows the report first: {out}"
    );
    let (d, u, i) = (data.clone(), url.clone(), id.clone());
    let (ok, out, err) = tokio::task::spawn_blocking(move || p38(&u, &d, &["agent", "show", &i]))
        .await
        .unwrap();
    assert!(ok, "{out} {err}");
    assert!(
        out.contains("written by:") && out.contains("2 iteration(s)"),
        "agent show tells what writing the agent cost: {out}"
    );
    let (d, u, i) = (data.clone(), url.clone(), id.clone());
    let (ok, out, err) =
        tokio::task::spawn_blocking(move || p38(&u, &d, &["agent", "run", &i, "--wait", "--json"]))
            .await
            .unwrap();
    assert!(ok, "{out} {err}");
    let t: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(t["result"]["alert"], false);
    let audit = get("/api/audit?limit=100".into()).await.to_string();
    assert!(audit.contains("agent.approve") && audit.contains("generation.start"));
    assert!(
        !log.lock().unwrap().contains(KEY),
        "the provider key reached a log line"
    );
}

/// Clean to every static stage, but its test fails when it runs: only a
/// real dry run finds it, and only the sandbox's names its host
/// `p38-sandbox`.
const FAILS_WHEN_RUN: &str = "\"\"\"Report where it runs.\"\"\"\nimport os\n\n\ndef run(ctx):\n    \"\"\"Fail, naming the host it ran on.\"\"\"\n    raise RuntimeError(\"ran on \" + os.uname().nodename)\n";

async fn messages_failing_first(State(f): State<Fake>, Json(body): Json<Value>) -> Json<Value> {
    let n = {
        let mut r = f.requests.lock().unwrap();
        r.push((None, body));
        r.len()
    };
    Json(answer(if n == 1 { FAILS_WHEN_RUN } else { CLEAN }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dry_run_runs_the_generated_test_in_the_sandbox_and_its_failure_is_repaired() {
    if !p38_testkit::sandbox_available() {
        return;
    }
    let (fake, llm) = serve_fake(post(messages_failing_first)).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_up, url, _log) = start_up(&data, &llm, &[]);
    let (d, u) = (data.clone(), url.clone());
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        p38(
            &u,
            &d,
            &["agent", "create", "--description", "watch Tesla", "--json"],
        )
    })
    .await
    .unwrap();
    assert!(ok, "generation failed: {out}\n{err}");

    // The repair request carries what the run in the sandbox raised.
    let reqs = fake.requests.lock().unwrap().clone();
    assert_eq!(reqs.len(), 2, "one generation and one repair");
    assert!(
        reqs[1].1.to_string().contains("ran on p38-sandbox"),
        "the repair request names the dry run's error: {}",
        reqs[1].1
    );

    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let get = |path: String| {
        let (url, token) = (url.clone(), token.trim().to_string());
        async move {
            reqwest::Client::new()
                .get(format!("{url}{path}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let agents = get("/api/agents".into()).await;
    let g = get(format!(
        "/api/generations/{}",
        agents["items"][0]["generation_id"]
    ))
    .await;
    assert_eq!(g["status"], "succeeded", "{g}");
    let iterations = g["report"]["iterations"].as_array().unwrap();
    assert_eq!(iterations.len(), 2, "{g}");
    let dry_run = |i: usize| {
        iterations[i]["stages"]
            .as_array()
            .unwrap_or_else(|| panic!("no stages: {g}"))
            .iter()
            .find(|s| s["stage"] == "dry_run")
            .unwrap_or_else(|| panic!("no dry_run stage in iteration {i}: {g}"))
            .clone()
    };
    // The first answer passed every static stage and failed only there.
    for s in iterations[0]["stages"].as_array().unwrap() {
        let expected = if s["stage"] == "dry_run" {
            "failed"
        } else {
            "passed"
        };
        assert_eq!(s["status"], expected, "iteration 0: {g}");
    }
    let finding = iterations[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["severity"] == "error")
        .unwrap_or_else(|| panic!("no error finding: {g}"))
        .to_string();
    assert!(finding.contains("ran on p38-sandbox"), "{finding}");
    assert_eq!(dry_run(1)["status"], "passed", "{g}");
}

/// A generation whose process dies mid-way is not lost: once its task's
/// lease lapses, the restarted server's worker runs it again and saves the
/// agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generation_interrupted_by_a_crash_is_run_again() {
    if !p38_testkit::sandbox_available() {
        return;
    }
    let (fake, llm) = serve_fake(post(hang_once)).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [("P38_LEASE_SECONDS", "2")];

    let (mut up, url, _) = start_up(&data, &llm, &env);
    let token = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{url}/api/agents"))
        .bearer_auth(&token)
        .json(&json!({ "description": HEBREW }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while fake.requests.lock().unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the model was never called"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The server dies while the model is thinking.
    up.0.kill().unwrap();
    up.0.wait().unwrap();

    let (_up, url, log) = start_up(&data, &llm, &env);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let g = loop {
        let g: Value = http
            .get(format!("{url}/api/generations/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if g["status"] != "running" {
            break g;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the interrupted generation was never run again: {g}\n{}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(g["status"], "succeeded", "{g}");
    assert_eq!(
        fake.requests.lock().unwrap().len(),
        2,
        "run once more, not more"
    );
    let agent: Value = http
        .get(format!("{url}/api/agents/{}", g["agent_id"]))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(agent["status"], "pending_approval");
    assert_eq!(agent["generation_id"], id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpriced_model_is_refused_before_a_generation_starts() {
    let (fake, llm) = serve_fake(post(messages)).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_up, url, _log) = start_up(&data, &llm, &[("P38_LLM_MODEL", "claude-sonnet-9")]);
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{url}/api/agents"))
        .bearer_auth(token.trim())
        .json(&serde_json::json!({"description": "watch Tesla and alert me when it rises 5%"}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("claude-sonnet-9")
            && message.contains("P38_LLM_PRICE_INPUT")
            && message.contains("P38_LLM_PRICE_OUTPUT"),
        "{message}"
    );
    assert!(
        fake.requests.lock().unwrap().is_empty(),
        "no model call for an unpriced model"
    );
}

/// `p38 agent create --description ... --name X --schedule S`: what the user
/// gave wins over what the model proposed (`tesla-watch`, `every 5m`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_and_schedule_given_with_a_description_win_over_the_model() {
    if !p38_testkit::sandbox_available() {
        return;
    }
    let (_fake, llm) = serve_fake(post(messages)).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_up, url, _log) = start_up(&data, &llm, &[]);
    let (d, u) = (data.clone(), url.clone());
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        p38(
            &u,
            &d,
            &[
                "agent",
                "create",
                "--description",
                "watch tesla",
                "--name",
                "my-watch",
                "--schedule",
                "every 1h",
                "--json",
            ],
        )
    })
    .await
    .unwrap();
    assert!(ok, "generation failed: {out}\n{err}");
    let (d, u) = (data.clone(), url.clone());
    let (ok, out, err) =
        tokio::task::spawn_blocking(move || p38(&u, &d, &["agent", "show", "my-watch", "--json"]))
            .await
            .unwrap();
    assert!(ok, "the agent has the name given: {out}\n{err}");
    let agent: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(agent["name"], "my-watch");
    assert_eq!(agent["schedule"], "every 1h");
    assert_eq!(agent["status"], "pending_approval");
}

/// The first call answers with broken code holding a key; every later one
/// never answers.
async fn broken_then_hang(State(f): State<Fake>, Json(body): Json<Value>) -> Json<Value> {
    let n = {
        let mut r = f.requests.lock().unwrap();
        r.push((None, body));
        r.len()
    };
    if n > 1 {
        tokio::time::sleep(Duration::from_secs(600)).await;
    }
    Json(answer(BROKEN))
}

/// While a generation runs, it shows its tokens so far and each iteration
/// that ended (the key of the broken one masked, its finding kept); it is
/// listed by status, cancelled once (audited, then a 409), and the CLI
/// lists and cancels it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_generation_shows_its_progress_is_listed_and_is_cancelled() {
    let (fake, llm) = serve_fake(post(broken_then_hang)).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_up, url, log) = start_up(&data, &llm, &[]);
    let token = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let r = reqwest::Client::new()
        .post(format!("{url}/api/agents"))
        .bearer_auth(&token)
        .json(&json!({ "description": "watch tesla" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();

    // The second call hangs: by then the first iteration is shown.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let g = loop {
        let (_, g) = call(
            reqwest::Method::GET,
            &format!("{url}/api/generations/{id}"),
            &token,
        )
        .await;
        if fake.requests.lock().unwrap().len() >= 2
            && g["report"]["iterations"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        {
            break g;
        }
        assert!(std::time::Instant::now() < deadline, "no progress: {g}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(g["status"], "running", "{g}");
    assert_eq!(
        (g["input_tokens"].as_i64(), g["output_tokens"].as_i64()),
        (Some(1000), Some(300))
    );
    let first = &g["report"]["iterations"][0];
    let code = first["code"].as_str().unwrap();
    assert!(
        !code.contains("abcdefghijklmnopqrstuvwxyz0123456789"),
        "{code}"
    );
    assert!(code.contains("sk-a[masked]"), "{code}");
    assert!(
        first["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "hardcoded_secret"),
        "{first}"
    );

    // Listed newest first, by status; an unknown status is a 422.
    let (s, running) = call(
        reqwest::Method::GET,
        &format!("{url}/api/generations?status=running&limit=10"),
        &token,
    )
    .await;
    assert_eq!(s, 200, "{running}");
    assert_eq!(running["items"][0]["id"], id);
    assert!(
        running["items"][0]["report"].is_null(),
        "listings carry no report"
    );
    let (s, bad) = call(
        reqwest::Method::GET,
        &format!("{url}/api/generations?status=bogus"),
        &token,
    )
    .await;
    assert_eq!(s, 422, "{bad}");
    assert_eq!(bad["error"]["field"], "status");
    let (d, u) = (data.clone(), url.clone());
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        p38(&u, &d, &["generation", "list", "--status", "running"])
    })
    .await
    .unwrap();
    assert!(
        ok && out.contains("running") && out.contains(&id.to_string()),
        "{out}\n{err}"
    );

    // Cancelled through the CLI; a second cancel is a conflict.
    let (d, u, i) = (data.clone(), url.clone(), id.to_string());
    let (ok, out, err) =
        tokio::task::spawn_blocking(move || p38(&u, &d, &["generation", "cancel", &i]))
            .await
            .unwrap();
    assert!(
        ok && out.contains(&format!("cancelled generation {id}")),
        "{out}\n{err}"
    );
    let (_, g) = call(
        reqwest::Method::GET,
        &format!("{url}/api/generations/{id}"),
        &token,
    )
    .await;
    assert_eq!(g["status"], "cancelled", "{g}");
    assert_eq!(g["report"]["iterations"].as_array().map(Vec::len), Some(1));
    let (s, again) = call(
        reqwest::Method::POST,
        &format!("{url}/api/generations/{id}/cancel"),
        &token,
    )
    .await;
    assert_eq!(s, 409, "{again}");
    let (s, _) = call(
        reqwest::Method::POST,
        &format!("{url}/api/generations/999999/cancel"),
        &token,
    )
    .await;
    assert_eq!(s, 404);
    let (_, audit) = call(
        reqwest::Method::GET,
        &format!("{url}/api/audit?limit=100"),
        &token,
    )
    .await;
    assert!(audit.to_string().contains("generation.cancel"), "{audit}");
    // Cancelled for good: once the loop has stopped, nothing was saved
    // afterwards and no further call was made.
    let stopped = format!("generation={id}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !log.lock().unwrap().lines().any(|l| {
        l.contains("generation cancelled; stopping it")
            && l.split_whitespace().any(|w| w == stopped)
    }) {
        assert!(
            std::time::Instant::now() < deadline,
            "the generation's loop did not stop in 30 s:\n{}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, g) = call(
        reqwest::Method::GET,
        &format!("{url}/api/generations/{id}"),
        &token,
    )
    .await;
    assert_eq!(g["status"], "cancelled");
    assert_eq!(fake.requests.lock().unwrap().len(), 2);
}

/// A generation that runs past `P38_LLM_GENERATION_TIMEOUT` fails saying
/// so, though each call is within its own limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generation_past_its_total_time_limit_fails_saying_so() {
    let (_fake, llm) = serve_fake(post(hang_once)).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_up, url, _log) = start_up(&data, &llm, &[("P38_LLM_GENERATION_TIMEOUT", "2")]);
    let token = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let r = reqwest::Client::new()
        .post(format!("{url}/api/agents"))
        .bearer_auth(&token)
        .json(&json!({ "description": "watch tesla" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let started = std::time::Instant::now();
    let g = loop {
        let (_, g) = call(
            reqwest::Method::GET,
            &format!("{url}/api/generations/{id}"),
            &token,
        )
        .await;
        if g["status"] != "running" {
            break g;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{g}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(g["status"], "failed", "{g}");
    let error = g["error"].as_str().unwrap();
    assert!(
        error.contains("time limit of 2s") && error.contains("P38_LLM_GENERATION_TIMEOUT"),
        "{error}"
    );
    assert_eq!(g["report"]["outcome"]["cause"]["kind"], "time_limit", "{g}");
}

/// Answers with a test that imports the agent and fails, then with no test.
async fn failing_test_then_none(State(f): State<Fake>, Json(body): Json<Value>) -> Json<Value> {
    let n = {
        let mut r = f.requests.lock().unwrap();
        r.push((None, body));
        r.len()
    };
    let test = if n == 1 {
        "from agent import run\n\n\ndef test_run(ctx):\n    \"\"\"A first run at the baseline does not alert.\"\"\"\n    result = run(ctx)\n    assert result[\"alert\"] is True\n"
    } else {
        ""
    };
    let spec = json!({
        "name": "tesla-watch", "description": "Watch Tesla", "code": CLEAN,
        "schedule": "every 5m", "secrets": [], "tools": [], "network": false, "test": test,
    });
    Json(json!({
        "id": format!("msg_{n}"), "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": spec.to_string()}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 1000, "output_tokens": 300}
    }))
}

/// The real dry-run stage: a test may `from agent import run`; its failure
/// points at the test, never at the harness's own lines; without a test,
/// `run(ctx)` itself is called and what it returned is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dry_run_imports_the_agent_blames_the_right_file_and_runs_run_without_a_test() {
    if !p38_testkit::sandbox_available() {
        return;
    }
    let (fake, llm) = serve_fake(post(failing_test_then_none)).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_up, url, log) = start_up(&data, &llm, &[]);
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{url}/api/agents"))
        .bearer_auth(token.trim())
        .json(&json!({ "description": "watch tesla" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let g = loop {
        let g: Value = http
            .get(format!("{url}/api/generations/{id}"))
            .bearer_auth(token.trim())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !matches!(g["status"].as_str(), Some("queued" | "running")) {
            break g;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{g}\n{}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(g["status"], "succeeded", "{g}");
    let iterations = g["report"]["iterations"].as_array().unwrap();
    assert_eq!(iterations.len(), 2, "{g}");
    let failed: Vec<&Value> = iterations[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "dry_run_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{}", iterations[0]);
    let message = failed[0]["message"].as_str().unwrap();
    assert!(message.contains("AssertionError"), "{message}");
    assert!(
        message.contains(r#"at File "test.py", line 7: assert result["alert"] is True"#),
        "the import worked and the test failed, at its own line: {message}"
    );
    assert!(!message.contains("p38-dry-run"), "{message}");
    assert!(
        message.contains("(values: ") && message.contains("'alert': False"),
        "the failing assertion comes with its values: {message}"
    );
    let repair = fake.requests.lock().unwrap()[1].1.to_string();
    for part in [
        "previous_answer_json",
        "It failed at: dry_run",
        "'alert': False",
        "result = run(ctx)",
    ] {
        assert!(
            repair.contains(part),
            "the repair request shows {part}: {repair}"
        );
    }
    assert!(
        failed[0]["line"].is_null(),
        "the failure is in the test, not at an agent line: {}",
        failed[0]
    );
    let dry = iterations[1]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "dry_run")
        .unwrap()
        .clone();
    assert_eq!(dry["status"], "passed", "{dry}");
    let note = dry["note"].as_str().unwrap();
    assert!(
        note.starts_with("no test: run(ctx) was called") && note.contains("\"alert\":false"),
        "{note}"
    );
}

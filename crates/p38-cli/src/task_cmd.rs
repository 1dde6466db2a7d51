//! `p38 task ...`.

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::args::TaskCmd;
use crate::client::{Client, seg};
use crate::output;

/// Runs a task subcommand.
pub async fn run(cmd: TaskCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        TaskCmd::List {
            client,
            agent,
            status,
            limit,
            cursor,
        } => {
            let c = Client::new(&client)?;
            let mut q = format!("/api/agents/{}/tasks?limit={limit}", seg(&agent));
            if let Some(s) = status {
                q.push_str(&format!("&status={}", seg(&s)));
            }
            if let Some(cur) = cursor {
                q.push_str(&format!("&cursor={}", seg(&cur)));
            }
            let v = c.get(&q).await?;
            if c.json {
                output::json(&v);
            } else {
                output::table(
                    v["items"].as_array().map(Vec::as_slice).unwrap_or(&[]),
                    &[
                        ("ID", "id"),
                        ("STATUS", "status"),
                        ("TRIGGER", "trigger"),
                        ("ATTEMPT", "attempt"),
                        ("STARTED", "started_at"),
                        ("MS", "duration_ms"),
                        ("ERROR", "error"),
                    ],
                );
                output::next_page(&v);
            }
        }
        TaskCmd::Show { client, id } => {
            let c = Client::new(&client)?;
            let t = c.get(&format!("/api/tasks/{id}")).await?;
            show_task(&c, &t);
        }
        TaskCmd::Retry { client, id } => {
            let c = Client::new(&client)?;
            let t = c
                .post(&format!("/api/tasks/{id}/retry"), &json!({}))
                .await?;
            if c.json {
                output::json(&t);
            } else {
                println!(
                    "queued task {} (attempt {}) retrying task {id}",
                    t["id"], t["attempt"]
                );
            }
        }
        TaskCmd::Cancel { client, id } => {
            let c = Client::new(&client)?;
            let t = c
                .post(&format!("/api/tasks/{id}/cancel"), &json!({}))
                .await?;
            if c.json {
                output::json(&t);
            } else {
                println!("cancelled task {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a task with its result and output.
pub fn show_task(c: &Client, t: &Value) {
    if c.json {
        output::json(t);
        return;
    }
    output::fields(
        t,
        &[
            "id",
            "agent_id",
            "status",
            "trigger",
            "attempt",
            "started_at",
            "completed_at",
            "duration_ms",
            "cpu_ms",
            "peak_memory_kb",
            "exit_code",
            "signal",
        ],
    );
    if t["unsandboxed"] == true {
        println!("WARNING:       this run was NOT sandboxed");
    }
    if !t["result"].is_null() {
        println!("result:        {}", t["result"]);
    }
    if let Some(e) = t["error"].as_str() {
        println!("error:\n{e}");
    }
    if let Some(logs) = t["logs"].as_array().filter(|l| !l.is_empty()) {
        println!("logs:");
        for l in logs {
            println!(
                "  [{}] {}",
                l["level"].as_str().unwrap_or(""),
                l["message"].as_str().unwrap_or("")
            );
        }
    }
    for name in ["stdout", "stderr"] {
        if let Some(s) = t[name].as_str().filter(|s| !s.is_empty()) {
            println!("{name}:\n{}", s.trim_end());
        }
    }
}

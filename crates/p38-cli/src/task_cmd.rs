//! `p38 task ...`.

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::args::TaskCmd;
use crate::client::{Client, seg};
use crate::{output, safe_text};

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
            c.print_page(
                &format!("/api/agents/{}/tasks", seg(&agent)),
                limit,
                status.as_deref(),
                cursor.as_deref(),
                &[
                    ("ID", "id"),
                    ("STATUS", "status"),
                    ("TRIGGER", "trigger"),
                    ("ATTEMPT", "attempt"),
                    ("STARTED", "started_at"),
                    ("MS", "duration_ms"),
                    ("ERROR", "/error/text"),
                ],
            )
            .await?;
        }
        TaskCmd::Show { client, id, follow } => {
            let c = Client::new(&client)?;
            if follow {
                return crate::follow::follow(&c, id, None).await;
            }
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
    // A generation's task has no agent (yet): it names its generation.
    let target = if t.get("generation_id").is_some() {
        "generation_id"
    } else {
        "agent_id"
    };
    output::fields(
        t,
        &[
            "id",
            target,
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
        println!("result:        {}", safe_text::json_compact(&t["result"]));
    }
    if let Some(e) = t["error"].as_str() {
        output::block("error", e);
    }
    if let Some(logs) = t["logs"].as_array().filter(|l| !l.is_empty()) {
        output::logs(logs);
    }
    for name in ["stdout", "stderr"] {
        if let Some(s) = t[name].as_str().filter(|s| !s.is_empty()) {
            output::block(name, s);
        }
    }
}

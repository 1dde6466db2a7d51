//! `p38 agent ...`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::args::{AgentCmd, AgentFields};
use crate::client::{Client, seg};
use crate::confirm::Confirmation;
use crate::{output, safe_text};

const AGENT_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("NAME", "name"),
    ("STATUS", "status"),
    ("SCHEDULE", "schedule"),
    ("VERSION", "version"),
    ("UPDATED", "updated_at"),
];

/// Runs an agent subcommand.
pub async fn run(cmd: AgentCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        AgentCmd::List {
            client,
            status,
            limit,
            cursor,
        } => {
            let c = Client::new(&client)?;
            c.print_page(
                "/api/agents",
                limit,
                status.as_deref(),
                cursor.as_deref(),
                AGENT_COLUMNS,
            )
            .await?;
        }
        AgentCmd::Create { client, fields } => {
            let c = Client::new(&client)?;
            let mut body = fields_body(&fields)?;
            if !body.contains_key("code") {
                if !body.contains_key("description") {
                    bail!(
                        "give --file (the agent's Python code) and --name, or --description to have Project38 write the agent"
                    );
                }
                return crate::generate_cmd::generate(&c, &body).await;
            }
            if !body.contains_key("name") {
                bail!("--name is required");
            }
            if let Some(Value::Bool(false)) | None = body.get("network") {
                body.remove("network");
            }
            let v = c.post("/api/agents", &Value::Object(body)).await?;
            show_agent(&c, &v);
        }
        AgentCmd::Schedule {
            client,
            agent,
            schedule,
        } => {
            let c = Client::new(&client)?;
            let value = if schedule.trim() == "none" {
                Value::Null
            } else {
                Value::String(schedule)
            };
            let v = c
                .call(
                    Method::PATCH,
                    &format!("/api/agents/{}", seg(&agent)),
                    Some(&json!({ "schedule": value })),
                )
                .await?;
            show_agent(&c, &v);
        }
        AgentCmd::Pause { client, agent } => {
            let c = Client::new(&client)?;
            let v = c
                .call(
                    Method::PATCH,
                    &format!("/api/agents/{}", seg(&agent)),
                    Some(&json!({ "status": "paused" })),
                )
                .await?;
            show_agent(&c, &v);
        }
        AgentCmd::Resume { client, agent } => {
            let c = Client::new(&client)?;
            let v = c
                .call(
                    Method::PATCH,
                    &format!("/api/agents/{}", seg(&agent)),
                    Some(&json!({ "status": "active" })),
                )
                .await?;
            show_agent(&c, &v);
        }
        AgentCmd::Approve { client, agent, yes } => {
            let c = Client::new(&client)?;
            return crate::generate_cmd::approve(&c, &agent, yes).await;
        }
        AgentCmd::Reject {
            client,
            agent,
            reason,
        } => {
            let c = Client::new(&client)?;
            let v = c
                .post(
                    &format!("/api/agents/{}/reject", seg(&agent)),
                    &json!({ "reason": reason }),
                )
                .await?;
            if c.json {
                output::json(&v);
            } else {
                println!(
                    "rejected: agent {} ({}) is {}",
                    v["id"],
                    output::text(&v["name"]),
                    output::text(&v["status"])
                );
            }
        }
        AgentCmd::Show { client, agent } => {
            let c = Client::new(&client)?;
            let v = c.get(&format!("/api/agents/{}", seg(&agent))).await?;
            show_agent(&c, &v);
        }
        AgentCmd::Edit {
            client,
            agent,
            fields,
            no_schedule,
            status,
        } => {
            let c = Client::new(&client)?;
            let mut body = fields_body(&fields)?;
            if no_schedule {
                body.insert("schedule".into(), Value::Null);
            }
            if let Some(s) = status {
                body.insert("status".into(), Value::String(s));
            }
            if body.is_empty() {
                bail!(
                    "nothing to change: pass at least one of --name, --file, --description, --schedule, --no-schedule, --config, --secret, --tool, --network, --settings, --status"
                );
            }
            let v = c
                .call(
                    Method::PATCH,
                    &format!("/api/agents/{}", seg(&agent)),
                    Some(&Value::Object(body)),
                )
                .await?;
            show_agent(&c, &v);
        }
        AgentCmd::Delete {
            client,
            agent,
            yes,
            keep_workspace,
        } => {
            let c = Client::new(&client)?;
            confirm_delete(&c, &agent, yes).await?;
            let v = c
                .call(
                    Method::DELETE,
                    &format!(
                        "/api/agents/{}?keep_workspace={keep_workspace}",
                        seg(&agent)
                    ),
                    None,
                )
                .await?;
            if c.json {
                output::json(&v);
            } else {
                let ws = match v["workspace"].as_str() {
                    Some("removed") => "its workspace removed",
                    _ => "its workspace kept",
                };
                println!("deleted agent {agent}, {ws}");
            }
        }
        AgentCmd::Run {
            client,
            agent,
            wait,
            follow,
            wait_timeout,
        } => {
            let c = Client::new(&client)?;
            let task = c
                .post(&format!("/api/agents/{}/execute", seg(&agent)), &json!({}))
                .await?;
            if follow {
                let id = task["id"].as_i64().unwrap_or_default();
                if !c.json {
                    println!("following task {id} of agent {}", safe_text::line(&agent));
                }
                return crate::follow::follow(&c, id, Some(Duration::from_secs(wait_timeout)))
                    .await;
            }
            if !wait {
                if c.json {
                    output::json(&task);
                } else {
                    println!(
                        "queued task {} for agent {}",
                        task["id"],
                        safe_text::line(&agent)
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            let done = wait_for_task(
                &c,
                task["id"].as_i64().unwrap_or_default(),
                Duration::from_secs(wait_timeout),
            )
            .await?;
            crate::task_cmd::show_task(&c, &done);
            return Ok(if done["status"] == "succeeded" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        AgentCmd::Versions { client, agent } => {
            let c = Client::new(&client)?;
            let v = c
                .get(&format!("/api/agents/{}/versions", seg(&agent)))
                .await?;
            if c.json {
                output::json(&v);
            } else {
                output::table(
                    v.as_array().map(Vec::as_slice).unwrap_or(&[]),
                    &[
                        ("VERSION", "version"),
                        ("BY", "created_by"),
                        ("AT", "created_at"),
                    ],
                );
            }
        }
        AgentCmd::State { client, agent } => {
            let c = Client::new(&client)?;
            let v = c.get(&format!("/api/agents/{}/state", seg(&agent))).await?;
            if c.json {
                output::json(&v);
            } else {
                println!("runs:  {}", v["run_count"]);
                println!("state: {}", safe_text::json_pretty(&v["state"]));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks before `agent delete` (see [`crate::confirm`]): it removes the agent
/// with every version, task and its state. Without a terminal it refuses
/// before sending anything; on one it shows which agent it is first.
async fn confirm_delete(c: &Client, agent: &str, yes: bool) -> anyhow::Result<()> {
    let confirmation = Confirmation::new(
        format!("agent {} was not deleted", safe_text::line(agent)),
        format!("p38 agent delete {} --yes", safe_text::line(agent)),
    );
    if !confirmation.must_ask(yes)? {
        return Ok(());
    }
    let a = c.get(&format!("/api/agents/{}", seg(agent))).await?;
    confirmation.ask(&format!(
        "delete agent {} ({}), version {}, status {}, with its whole history (every version, task and its state)?",
        a["id"],
        output::text(&a["name"]),
        a["version"],
        output::text(&a["status"])
    ))
}

/// Waits for a task to end, a long poll of up to 20 s at a time (the
/// server answers as soon as it ends).
pub async fn wait_for_task(c: &Client, id: i64, limit: Duration) -> anyhow::Result<Value> {
    let start = Instant::now();
    loop {
        let left = limit.saturating_sub(start.elapsed()).as_secs().clamp(1, 20);
        let t = c.get(&format!("/api/tasks/{id}?wait={left}")).await?;
        let status = t["status"].as_str().unwrap_or("");
        if !matches!(status, "queued" | "running") {
            return Ok(t);
        }
        if start.elapsed() > limit {
            bail!(
                "task {id} is still {status} after {} s; see `p38 task show {id}`",
                limit.as_secs()
            );
        }
    }
}

fn fields_body(f: &AgentFields) -> anyhow::Result<Map<String, Value>> {
    let mut m = Map::new();
    if let Some(n) = &f.name {
        m.insert("name".into(), json!(n));
    }
    if let Some(p) = &f.file {
        let code =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        m.insert("code".into(), json!(code));
    }
    if let Some(d) = &f.description {
        m.insert("description".into(), json!(d));
    }
    if let Some(s) = &f.schedule {
        m.insert("schedule".into(), json!(s));
    }
    if let Some(c) = &f.config {
        let v: Value = serde_json::from_str(c).context("--config is not valid JSON")?;
        m.insert("config".into(), v);
    }
    if let Some(s) = &f.settings {
        let v: Value = serde_json::from_str(s).context("--settings is not valid JSON")?;
        m.insert("settings".into(), v);
    }
    if !f.secrets.is_empty() {
        m.insert("secrets".into(), json!(f.secrets));
    }
    if !f.tools.is_empty() {
        m.insert("tools".into(), json!(f.tools));
    }
    if let Some(n) = f.network {
        m.insert("network".into(), json!(n));
    }
    Ok(m)
}

fn show_agent(c: &Client, v: &Value) {
    if c.json {
        output::json(v);
        return;
    }
    output::fields(
        v,
        &[
            "id",
            "name",
            "status",
            "version",
            "schedule",
            "next_runs",
            "secrets",
            "tools",
            "network",
            "allow_hosts",
            "rejected_reason",
            "created_by",
            "created_at",
            "updated_at",
        ],
    );
    if let Some(d) = v["description"].as_str().filter(|d| !d.is_empty()) {
        println!("description:   {}", safe_text::line(d));
    }
    if v["config"].as_object().is_some_and(|c| !c.is_empty()) {
        println!("config:        {}", safe_text::json_compact(&v["config"]));
    }
    let g = &v["generation"];
    if g.is_object() {
        println!(
            "written by:    {} in {} iteration(s), {} + {} tokens, ${:.4} (generation {})",
            output::text(&g["model"]),
            g["iterations"],
            g["input_tokens"],
            g["output_tokens"],
            g["cost_usd"].as_f64().unwrap_or(0.0),
            g["id"]
        );
    }
}

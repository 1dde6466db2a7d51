//! `p38 agent ...`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use p38_app::dto::{AgentView, DeletedAgent};
use p38_core::agent::{AgentState, AgentVersion};
use p38_core::task::{Task, TaskStatus};
use p38_core::workspace::WorkspaceFate;
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::args::{AgentCmd, AgentFields};
use crate::client::{Answer, Client, seg};
use crate::confirm::Confirmation;
use crate::output::{self, Column};
use crate::safe_text;

const AGENT_COLUMNS: &[Column<AgentView>] = &[
    ("ID", |v| output::cell(&v.agent.id)),
    ("NAME", |v| output::cell(&v.agent.name)),
    ("STATUS", |v| output::cell(&v.agent.status)),
    ("SCHEDULE", |v| output::cell(&v.agent.schedule)),
    ("VERSION", |v| output::cell(&v.agent.version)),
    ("UPDATED", |v| output::cell(&v.agent.updated_at)),
];

const VERSION_COLUMNS: &[Column<AgentVersion>] = &[
    ("VERSION", |v| output::cell(&v.version)),
    ("BY", |v| output::cell(&v.created_by)),
    ("AT", |v| output::cell(&v.created_at)),
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
            let v = c.post_as("/api/agents", &Value::Object(body)).await?;
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
                .call_as(
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
                .call_as(
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
                .call_as(
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
                .post_as::<AgentView>(
                    &format!("/api/agents/{}/reject", seg(&agent)),
                    &json!({ "reason": reason }),
                )
                .await?;
            if c.json {
                output::json(&v.raw);
            } else {
                let a = &v.data.agent;
                println!(
                    "rejected: agent {} ({}) is {}",
                    a.id,
                    safe_text::line(&a.name),
                    output::text(&a.status)
                );
            }
        }
        AgentCmd::Show { client, agent } => {
            let c = Client::new(&client)?;
            let v = c.get_as(&format!("/api/agents/{}", seg(&agent))).await?;
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
                .call_as(
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
                .call_as::<DeletedAgent>(
                    Method::DELETE,
                    &format!(
                        "/api/agents/{}?keep_workspace={keep_workspace}",
                        seg(&agent)
                    ),
                    None,
                )
                .await?;
            if c.json {
                output::json(&v.raw);
            } else {
                let ws = match v.data.workspace {
                    WorkspaceFate::Removed => "its workspace removed",
                    WorkspaceFate::Kept => "its workspace kept",
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
                .post_as::<Task>(&format!("/api/agents/{}/execute", seg(&agent)), &json!({}))
                .await?;
            if follow {
                let id = task.data.id;
                if !c.json {
                    println!("following task {id} of agent {}", safe_text::line(&agent));
                }
                return crate::follow::follow(&c, id, Some(Duration::from_secs(wait_timeout)))
                    .await;
            }
            if !wait {
                if c.json {
                    output::json(&task.raw);
                } else {
                    println!(
                        "queued task {} for agent {}",
                        task.data.id,
                        safe_text::line(&agent)
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            let done = wait_for_task(&c, task.data.id, Duration::from_secs(wait_timeout)).await?;
            crate::task_cmd::show_task(&c, &done);
            return Ok(if done.data.status == TaskStatus::Succeeded {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        AgentCmd::Versions { client, agent } => {
            let c = Client::new(&client)?;
            let v = c
                .get_as::<Vec<AgentVersion>>(&format!("/api/agents/{}/versions", seg(&agent)))
                .await?;
            if c.json {
                output::json(&v.raw);
            } else {
                output::table(&v.data, VERSION_COLUMNS);
            }
        }
        AgentCmd::State { client, agent } => {
            let c = Client::new(&client)?;
            let v = c
                .get_as::<AgentState>(&format!("/api/agents/{}/state", seg(&agent)))
                .await?;
            if c.json {
                output::json(&v.raw);
            } else {
                println!("runs:  {}", v.data.run_count);
                println!("state: {}", safe_text::json_pretty(&v.data.state));
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
    let a = c
        .get_as::<AgentView>(&format!("/api/agents/{}", seg(agent)))
        .await?
        .data
        .agent;
    confirmation.ask(&format!(
        "delete agent {} ({}), version {}, status {}, with its whole history (every version, task and its state)?",
        a.id,
        safe_text::line(&a.name),
        a.version,
        output::text(&a.status)
    ))
}

/// Waits for a task to end, a long poll of up to 20 s at a time (the
/// server answers as soon as it ends).
pub async fn wait_for_task(c: &Client, id: i64, limit: Duration) -> anyhow::Result<Answer<Task>> {
    let start = Instant::now();
    loop {
        let left = limit.saturating_sub(start.elapsed()).as_secs().clamp(1, 20);
        let t = c
            .get_as::<Task>(&format!("/api/tasks/{id}?wait={left}"))
            .await?;
        if t.data.status.is_final() {
            return Ok(t);
        }
        if start.elapsed() > limit {
            bail!(
                "task {id} is still {} after {} s; see `p38 task show {id}`",
                t.data.status.as_str(),
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

/// Prints an agent, whichever command fetched or changed it; `--json`
/// prints it as the server sent it.
fn show_agent(c: &Client, v: &Answer<AgentView>) {
    if c.json {
        output::json(&v.raw);
        return;
    }
    let a = &v.data.agent;
    output::field("id", &a.id);
    output::field("name", &a.name);
    output::field("status", &a.status);
    output::field("version", &a.version);
    output::field("schedule", &a.schedule);
    output::field("next_runs", &v.data.next_runs);
    output::field("secrets", &a.secrets);
    output::field("tools", &a.tools);
    output::field("network", &a.network);
    output::field("allow_hosts", &a.allow_hosts);
    output::field("rejected_reason", &a.rejected_reason);
    output::field("created_by", &a.created_by);
    output::field("created_at", &a.created_at);
    output::field("updated_at", &a.updated_at);
    if !a.description.is_empty() {
        println!("description:   {}", safe_text::line(&a.description));
    }
    if a.config.as_object().is_some_and(|c| !c.is_empty()) {
        println!("config:        {}", safe_text::json_compact(&a.config));
    }
    if let Some(g) = &v.data.generation {
        println!(
            "written by:    {} in {} iteration(s), {} + {} tokens, ${:.4} (generation {})",
            safe_text::line(&g.model),
            g.iterations,
            g.input_tokens,
            g.output_tokens,
            g.cost_usd,
            g.id
        );
    }
}

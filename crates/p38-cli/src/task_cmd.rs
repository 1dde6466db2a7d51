//! `p38 task ...`.

use std::process::ExitCode;

use p38_core::task::{Task, TaskSummary, TaskTarget};
use serde_json::json;

use crate::args::TaskCmd;
use crate::client::{Answer, Client, seg};
use crate::output::{self, Column};
use crate::safe_text;

/// The columns of `p38 task list`.
const TASK_COLUMNS: &[Column<TaskSummary>] = &[
    ("ID", |t| output::cell(&t.id)),
    ("STATUS", |t| output::cell(&t.status)),
    ("TRIGGER", |t| output::cell(&t.trigger)),
    ("ATTEMPT", |t| output::cell(&t.attempt)),
    ("STARTED", |t| output::cell(&t.started_at)),
    ("MS", |t| output::cell(&t.duration_ms)),
    ("ERROR", |t| {
        output::cell(&t.error.as_ref().map(|e| &e.text))
    }),
];

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
                TASK_COLUMNS,
            )
            .await?;
        }
        TaskCmd::Show { client, id, follow } => {
            let c = Client::new(&client)?;
            if follow {
                return crate::follow::follow(&c, id, None).await;
            }
            let t = c.get_as::<Task>(&format!("/api/tasks/{id}")).await?;
            show_task(&c, &t);
        }
        TaskCmd::Retry { client, id } => {
            let c = Client::new(&client)?;
            let t = c
                .post_as::<Task>(&format!("/api/tasks/{id}/retry"), &json!({}))
                .await?;
            if c.json {
                output::json(&t.raw);
            } else {
                println!(
                    "queued task {} (attempt {}) retrying task {id}",
                    t.data.id, t.data.attempt
                );
            }
        }
        TaskCmd::Cancel { client, id } => {
            let c = Client::new(&client)?;
            let t = c
                .post_as::<Task>(&format!("/api/tasks/{id}/cancel"), &json!({}))
                .await?;
            if c.json {
                output::json(&t.raw);
            } else {
                println!("cancelled task {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a task with its result and output, whichever command fetched
/// it; `--json` prints it as the server sent it.
pub fn show_task(c: &Client, t: &Answer<Task>) {
    if c.json {
        output::json(&t.raw);
        return;
    }
    let t = &t.data;
    output::field("id", &t.id);
    // A generation's task has no agent (yet): it names its generation.
    match &t.target {
        TaskTarget::Agent { agent_id, .. } => output::field("agent_id", agent_id),
        TaskTarget::Generation { generation_id } => output::field("generation_id", generation_id),
    }
    output::field("status", &t.status);
    output::field("trigger", &t.trigger);
    output::field("attempt", &t.attempt);
    output::field("started_at", &t.started_at);
    output::field("completed_at", &t.completed_at);
    output::field("duration_ms", &t.duration_ms);
    output::field("cpu_ms", &t.cpu_ms);
    output::field("peak_memory_kb", &t.peak_memory_kb);
    output::field("exit_code", &t.exit_code);
    output::field("signal", &t.signal);
    print_result(t);
    if let Some(logs) = t
        .logs
        .as_ref()
        .and_then(|l| l.as_array())
        .filter(|l| !l.is_empty())
    {
        output::logs(logs);
    }
    for (name, text) in [("stdout", &t.stdout), ("stderr", &t.stderr)] {
        if let Some(s) = text.as_deref().filter(|s| !s.is_empty()) {
            output::block(name, s);
        }
    }
}

/// The sandbox warning, the result and the error of a task, as every view
/// of an ended task shows them.
pub fn print_result(t: &Task) {
    if t.unsandboxed {
        println!("WARNING:       this run was NOT sandboxed");
    }
    if let Some(r) = &t.result {
        println!("result:        {}", safe_text::json_compact(r));
    }
    if let Some(e) = &t.error {
        output::block("error", e);
    }
}

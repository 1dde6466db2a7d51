//! `p38 agent create --description "..."` (follow a generation live) and
//! `p38 agent approve` (show what is being approved, then approve it).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use p38_app::dto::AgentView;
use p38_core::agent::AgentStatus;
use p38_core::generation::{Generation, GenerationStatus};
use serde_json::{Map, Value, json};

use crate::client::{Answer, Client, seg};
use crate::confirm::Confirmation;
use crate::{output, safe_text};

/// Longest a generation is followed before the CLI gives up waiting (it
/// goes on on the server).
const FOLLOW_LIMIT: Duration = Duration::from_secs(900);

/// Starts a generation and shows its progress until it ends.
pub async fn generate(c: &Client, body: &Map<String, Value>) -> anyhow::Result<ExitCode> {
    let g = c
        .post_as::<Generation>("/api/agents", &Value::Object(body.clone()))
        .await?
        .data;
    let id = g.id;
    let tty = std::io::stderr().is_terminal() && !c.json;
    if !c.json {
        eprintln!("generation {id} started (model {})", output::text(&g.model));
    }
    let start = Instant::now();
    let mut last = String::new();
    let spinner = ['|', '/', '-', '\\'];
    let mut tick = 0usize;
    let done = loop {
        let answer = c
            .get_as::<Generation>(&format!("/api/generations/{id}"))
            .await?;
        let g = &answer.data;
        let line = format!(
            "{} · iteration {} · {} finding(s) · {} tokens · ${:.4}",
            output::text(&g.stage),
            g.iteration,
            g.findings,
            g.input_tokens + g.output_tokens,
            g.cost_usd
        );
        if tty {
            eprint!("\r{} {line:<70}", spinner[tick % 4]);
            let _ = std::io::stderr().flush();
            tick += 1;
        } else if line != last && !c.json {
            eprintln!("{line}");
        }
        last = line;
        if g.status != GenerationStatus::Running {
            break answer;
        }
        if start.elapsed() > FOLLOW_LIMIT {
            bail!("generation {id} is still running; follow it with GET /api/generations/{id}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    if tty {
        eprintln!();
    }
    if c.json {
        output::json(&done.raw);
    }
    let done = done.data;
    let agent_id = match (done.status, done.agent_id) {
        (GenerationStatus::Succeeded, Some(agent_id)) => agent_id,
        _ => {
            if !c.json {
                eprintln!(
                    "generation failed: {}",
                    safe_text::block(done.error.as_deref().unwrap_or("unknown reason"))
                );
                print_last_findings(&done);
            }
            return Ok(ExitCode::from(1));
        }
    };
    let agent = c
        .get_as::<AgentView>(&format!("/api/agents/{agent_id}"))
        .await?
        .data
        .agent;
    if !c.json {
        println!(
            "agent {} ({}) created: {} · {} iteration(s) · ${:.4}",
            agent.id,
            output::text(&agent.name),
            output::text(&agent.status),
            done.iteration,
            done.cost_usd
        );
        if agent.status == AgentStatus::PendingApproval {
            println!("review and approve it: p38 agent approve {}", agent.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The findings of a generation's last iteration, from its report (a JSON
/// document of the factory's, kept as it is).
fn last_iteration(g: &Generation) -> Option<&Value> {
    g.report.as_ref()?["iterations"].as_array()?.last()
}

fn print_last_findings(g: &Generation) {
    let last = last_iteration(g);
    if let Some(findings) = last.and_then(|i| i["findings"].as_array()) {
        for f in findings {
            eprintln!(
                "  [{}] line {} {}: {}",
                output::text(&f["stage"]),
                f["line"]
                    .as_u64()
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "-".into()),
                output::text(&f["rule"]),
                output::text(&f["message"])
            );
        }
    }
}

/// Shows the code, findings, permissions and cost, asks (see
/// [`crate::confirm`]), then approves the version shown.
pub async fn approve(c: &Client, agent: &str, yes: bool) -> anyhow::Result<ExitCode> {
    let view = c
        .get_as::<AgentView>(&format!("/api/agents/{}", seg(agent)))
        .await?
        .data;
    let generation = match view.agent.generation_id {
        Some(g) => Some(
            c.get_as::<Generation>(&format!("/api/generations/{g}"))
                .await?
                .data,
        ),
        None => None,
    };
    if !c.json {
        // What changed since the last approval comes first.
        print!("{}", crate::approval_diff::render(&view.approval));
        print_approval_screen(&view, generation.as_ref());
    }
    let a = &view.agent;
    let confirmation = Confirmation::new(
        format!("agent {} was not approved", a.id),
        format!("p38 agent approve {} --yes", a.id),
    );
    if confirmation.must_ask(yes)? {
        confirmation.ask("approve this agent?")?;
    }
    let v: Answer<AgentView> = c
        .post_as(
            &format!("/api/agents/{}/approve", seg(agent)),
            &json!({ "version": a.version }),
        )
        .await?;
    if c.json {
        output::json(&v.raw);
    } else {
        println!(
            "approved: agent {} is {}",
            v.data.agent.id,
            output::text(&v.data.agent.status)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What the approver sees: who wrote the agent and what it may do, its
/// findings, and its code with line numbers (the findings name lines, and
/// a numbered gutter shows where the code ends: code cannot print a fake
/// end of the code block).
fn print_approval_screen(view: &AgentView, generation: Option<&Generation>) {
    let a = &view.agent;
    println!(
        "agent {} ({}), version {}, status {}",
        a.id,
        output::text(&a.name),
        a.version,
        output::text(&a.status)
    );
    println!("description: {}", output::text(&a.description));
    println!("schedule:    {}", output::cell(&a.schedule));
    println!("secrets:     {}", output::cell(&a.secrets));
    println!("tools:       {}", output::cell(&a.tools));
    println!("network:     {}", output::cell(&a.network));
    println!("allow_hosts: {}", output::cell(&a.allow_hosts));
    println!("config:      {}", safe_text::json_compact(&a.config));
    match generation {
        Some(g) => {
            println!(
                "generated:   {} iteration(s), {} in / {} out tokens, ${:.4} ({})",
                g.iteration,
                g.input_tokens,
                g.output_tokens,
                g.cost_usd,
                output::text(&g.model)
            );
            let findings = last_iteration(g)
                .and_then(|i| i["findings"].as_array())
                .map_or(0, Vec::len);
            println!(
                "findings:    {}",
                if findings == 0 {
                    "none".to_string()
                } else {
                    findings.to_string()
                }
            );
            print_last_findings(g);
        }
        None => println!("generated:   no (hand-written)"),
    }
    println!("--- code ---");
    let code = a.code.trim_end();
    for (n, text) in code.split('\n').enumerate() {
        println!("{:>4} | {}", n + 1, safe_text::block(text));
    }
    println!("------------");
}

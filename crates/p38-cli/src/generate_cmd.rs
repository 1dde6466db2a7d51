//! `p38 agent create --description "..."` (follow a generation live) and
//! `p38 agent approve` (show what is being approved, then approve it).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{Map, Value, json};

use crate::client::{Client, seg};
use crate::confirm::Confirmation;
use crate::{output, safe_text};

/// Longest a generation is followed before the CLI gives up waiting (it
/// goes on on the server).
const FOLLOW_LIMIT: Duration = Duration::from_secs(900);

/// Starts a generation and shows its progress until it ends.
pub async fn generate(c: &Client, body: &Map<String, Value>) -> anyhow::Result<ExitCode> {
    let g = c.post("/api/agents", &Value::Object(body.clone())).await?;
    let id = g["id"].as_i64().unwrap_or_default();
    let tty = std::io::stderr().is_terminal() && !c.json;
    if !c.json {
        eprintln!(
            "generation {id} started (model {})",
            output::text(&g["model"])
        );
    }
    let start = Instant::now();
    let mut last = String::new();
    let spinner = ['|', '/', '-', '\\'];
    let mut tick = 0usize;
    let done = loop {
        let g = c.get(&format!("/api/generations/{id}")).await?;
        let line = format!(
            "{} · iteration {} · {} finding(s) · {} tokens · ${:.4}",
            output::text(&g["stage"]),
            g["iteration"],
            g["findings"],
            g["input_tokens"].as_i64().unwrap_or(0) + g["output_tokens"].as_i64().unwrap_or(0),
            g["cost_usd"].as_f64().unwrap_or(0.0)
        );
        if tty {
            eprint!("\r{} {line:<70}", spinner[tick % 4]);
            let _ = std::io::stderr().flush();
            tick += 1;
        } else if line != last && !c.json {
            eprintln!("{line}");
        }
        last = line;
        if g["status"] != "running" {
            break g;
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
        output::json(&done);
    }
    if done["status"] != "succeeded" {
        if !c.json {
            eprintln!(
                "generation failed: {}",
                safe_text::block(done["error"].as_str().unwrap_or("unknown reason"))
            );
            print_last_findings(&done);
        }
        return Ok(ExitCode::from(1));
    }
    let agent = c.get(&format!("/api/agents/{}", done["agent_id"])).await?;
    if !c.json {
        println!(
            "agent {} ({}) created: {} · {} iteration(s) · ${:.4}",
            agent["id"],
            output::text(&agent["name"]),
            output::text(&agent["status"]),
            done["iteration"],
            done["cost_usd"].as_f64().unwrap_or(0.0)
        );
        if agent["status"] == "pending_approval" {
            println!("review and approve it: p38 agent approve {}", agent["id"]);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_last_findings(g: &Value) {
    let last = g["report"]["iterations"].as_array().and_then(|i| i.last());
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
    let a = c.get(&format!("/api/agents/{}", seg(agent))).await?;
    let generation = match a["generation_id"].as_i64() {
        Some(g) => Some(c.get(&format!("/api/generations/{g}")).await?),
        None => None,
    };
    if !c.json {
        // What changed since the last approval comes first.
        print!("{}", crate::approval_diff::render(&a));
        print_approval_screen(&a, generation.as_ref());
    }
    let confirmation = Confirmation::new(
        format!("agent {} was not approved", a["id"]),
        format!("p38 agent approve {} --yes", a["id"]),
    );
    if confirmation.must_ask(yes)? {
        confirmation.ask("approve this agent?")?;
    }
    let v = c
        .post(
            &format!("/api/agents/{}/approve", seg(agent)),
            &json!({ "version": a["version"] }),
        )
        .await?;
    if c.json {
        output::json(&v);
    } else {
        println!(
            "approved: agent {} is {}",
            v["id"],
            output::text(&v["status"])
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What the approver sees: who wrote the agent and what it may do, its
/// findings, and its code with line numbers (the findings name lines, and
/// a numbered gutter shows where the code ends: code cannot print a fake
/// end of the code block).
fn print_approval_screen(a: &Value, generation: Option<&Value>) {
    println!(
        "agent {} ({}), version {}, status {}",
        a["id"],
        output::text(&a["name"]),
        a["version"],
        output::text(&a["status"])
    );
    println!("description: {}", output::text(&a["description"]));
    println!("schedule:    {}", output::cell(&a["schedule"]));
    println!("secrets:     {}", output::cell(&a["secrets"]));
    println!("tools:       {}", output::cell(&a["tools"]));
    println!("network:     {}", output::cell(&a["network"]));
    println!("allow_hosts: {}", output::cell(&a["allow_hosts"]));
    println!("config:      {}", safe_text::json_compact(&a["config"]));
    match generation {
        Some(g) => {
            println!(
                "generated:   {} iteration(s), {} in / {} out tokens, ${:.4} ({})",
                g["iteration"],
                g["input_tokens"],
                g["output_tokens"],
                g["cost_usd"].as_f64().unwrap_or(0.0),
                output::text(&g["model"])
            );
            let last = g["report"]["iterations"]
                .as_array()
                .and_then(|i| i.last())
                .cloned()
                .unwrap_or(json!({}));
            let findings = last["findings"].as_array().cloned().unwrap_or_default();
            println!(
                "findings:    {}",
                if findings.is_empty() {
                    "none".to_string()
                } else {
                    findings.len().to_string()
                }
            );
            print_last_findings(g);
        }
        None => println!("generated:   no (hand-written)"),
    }
    println!("--- code ---");
    let code = a["code"].as_str().unwrap_or("").trim_end();
    for (n, text) in code.split('\n').enumerate() {
        println!("{:>4} | {}", n + 1, safe_text::block(text));
    }
    println!("------------");
}

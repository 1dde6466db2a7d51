//! `p38 secret ...`: values come from stdin or a hidden prompt, never from
//! the command line (where other users could read them in `ps`).

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::json;

use p38_core::store::SecretMeta;

use crate::args::SecretCmd;
use crate::client::{Client, seg};
use crate::output::{self, Column};
use crate::safe_text;

/// The columns of `p38 secret list`.
const SECRET_COLUMNS: &[Column<SecretMeta>] = &[
    ("NAME", |s| output::cell(&s.name)),
    ("VERSION", |s| output::cell(&s.version)),
    ("BACKEND", |s| output::cell(&s.backend)),
    ("UPDATED", |s| output::cell(&s.updated_at)),
];

/// Runs a secret subcommand.
pub async fn run(cmd: SecretCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        SecretCmd::Set { client, name } => {
            let c = Client::new(&client)?;
            let value = read_value(&name)?;
            let v = c
                .call(
                    Method::PUT,
                    &format!("/api/secrets/{}", seg(&name)),
                    Some(&json!({ "value": value })),
                )
                .await?;
            if c.json {
                output::json(&v);
            } else {
                println!(
                    "secret {} set (version {})",
                    safe_text::line(&name),
                    v["version"]
                );
            }
        }
        SecretCmd::List { client } => {
            let c = Client::new(&client)?;
            let v = c.get_as::<Vec<SecretMeta>>("/api/secrets").await?;
            if c.json {
                output::json(&v.raw);
            } else {
                output::table(&v.data, SECRET_COLUMNS);
            }
        }
        SecretCmd::Rm { client, name } => {
            let c = Client::new(&client)?;
            c.call(
                Method::DELETE,
                &format!("/api/secrets/{}", seg(&name)),
                None,
            )
            .await?;
            if !c.json {
                println!("deleted secret {}", safe_text::line(&name));
            }
        }
        SecretCmd::Reload { client } => {
            let c = Client::new(&client)?;
            c.post("/api/secrets/reload", &json!({})).await?;
            if !c.json {
                println!("secret cache dropped; the next run reads every backend");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The value from a hidden prompt on a terminal, else all of stdin (one
/// trailing newline removed).
fn read_value(name: &str) -> anyhow::Result<String> {
    let value = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("value of {name} (input hidden): "))
            .context("reading the value")?
    } else {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the value from stdin")?;
        if s.ends_with('\n') {
            s.pop();
            if s.ends_with('\r') {
                s.pop();
            }
        }
        s
    };
    if value.is_empty() {
        bail!(
            "empty value: pipe the value on stdin (printf %s \"$VALUE\" | p38 secret set {name}) or type it at the prompt"
        );
    }
    Ok(value)
}

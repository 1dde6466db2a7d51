//! `p38 token ...`.

use std::process::ExitCode;

use reqwest::Method;
use serde_json::json;

use crate::args::TokenCmd;
use crate::client::Client;
use crate::output;

/// Runs a token subcommand.
pub async fn run(cmd: TokenCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        TokenCmd::Create {
            client,
            scope,
            name,
            expires,
        } => {
            let c = Client::new(&client)?;
            let mut body = json!({"name": name, "scope": scope});
            if let Some(d) = expires {
                body["expires_in_days"] = json!(d);
            }
            let t = c.post("/api/tokens", &body).await?;
            if c.json {
                output::json(&t);
            } else {
                println!("{}", t["token"].as_str().unwrap_or_default());
                let expiry = match t["expires_at"].as_str() {
                    Some(at) => format!(", expires {}", crate::safe_text::line(at)),
                    None => String::new(),
                };
                eprintln!(
                    "token {} ({} scope{expiry}) created; store it now, it is not shown again",
                    t["id"],
                    output::text(&t["scope"])
                );
            }
        }
        TokenCmd::List { client } => {
            let c = Client::new(&client)?;
            let v = c.get("/api/tokens").await?;
            if c.json {
                output::json(&v);
            } else {
                output::table(
                    v.as_array().map(Vec::as_slice).unwrap_or(&[]),
                    &[
                        ("ID", "id"),
                        ("NAME", "name"),
                        ("SCOPE", "scope"),
                        ("PREFIX", "prefix"),
                        ("CREATED", "created_at"),
                        ("EXPIRES", "expires_at"),
                        ("LAST USED", "last_used_at"),
                        ("REVOKED", "revoked_at"),
                    ],
                );
            }
        }
        TokenCmd::Revoke { client, id } => {
            let c = Client::new(&client)?;
            let t = c
                .call(Method::DELETE, &format!("/api/tokens/{id}"), None)
                .await?;
            if c.json {
                output::json(&t);
            } else {
                println!("revoked token {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

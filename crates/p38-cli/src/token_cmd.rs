//! `p38 token ...`.

use std::process::ExitCode;

use std::sync::Arc;

use anyhow::Context;
use reqwest::Method;
use serde_json::json;

use p38_core::auth::ApiToken;

use crate::args::TokenCmd;
use crate::client::Client;
use crate::output::{self, Column};

/// The columns of `p38 token list`.
const TOKEN_COLUMNS: &[Column<ApiToken>] = &[
    ("ID", |t| output::cell(&t.id)),
    ("NAME", |t| output::cell(&t.name)),
    ("SCOPE", |t| output::cell(&t.scope)),
    ("PREFIX", |t| output::cell(&t.prefix)),
    ("CREATED", |t| output::cell(&t.created_at)),
    ("EXPIRES", |t| output::cell(&t.expires_at)),
    ("LAST USED", |t| output::cell(&t.last_used_at)),
    ("REVOKED", |t| output::cell(&t.revoked_at)),
];

/// Runs a token subcommand.
pub async fn run(cmd: TokenCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        TokenCmd::Create {
            client,
            scope,
            name,
            expires,
            admin: true,
            database_url,
        } => {
            let _ = scope;
            let url = database_url.unwrap_or_else(|| {
                format!("sqlite://{}", client.data_dir.join("p38.db").display())
            });
            let store = p38_store::SqlStore::connect(&url, p38_store::StoreOptions::default())
                .await
                .with_context(|| {
                    format!(
                        "opening the database at {} (run this on the server host, with its data folder or P38_DATABASE_URL)",
                        p38_store::redact_url(&url)
                    )
                })?;
            let app = p38_app::App::new(
                Arc::new(store),
                Arc::new(p38_core::store::NoSignal),
                p38_app::AppConfig::default(),
            );
            let t = app
                .create_local_token(p38_app::dto::CreateToken {
                    name,
                    scope: p38_core::auth::Scope::Admin,
                    expires_in_days: expires,
                })
                .await?;
            if client.json {
                output::json(&serde_json::to_value(&t)?);
            } else {
                println!("{}", t.token);
                eprintln!(
                    "admin token {} created in the database; store it now, it is not shown again",
                    t.info.id
                );
            }
        }
        TokenCmd::Create {
            client,
            scope,
            name,
            expires,
            ..
        } => {
            let scope = scope.unwrap_or_default();
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
            let v = c.get_as::<Vec<ApiToken>>("/api/tokens").await?;
            if c.json {
                output::json(&v.raw);
            } else {
                output::table(&v.data, TOKEN_COLUMNS);
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

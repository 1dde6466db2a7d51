//! `p38 generation ...`: the generations that write agents from a
//! description (`p38 agent create --description` starts and follows one).

use std::process::ExitCode;

use serde_json::json;

use crate::args::GenerationCmd;
use crate::client::Client;
use crate::output;

/// Runs a generation subcommand.
pub async fn run(cmd: GenerationCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        GenerationCmd::List {
            client,
            status,
            limit,
            cursor,
        } => {
            let c = Client::new(&client)?;
            c.print_page(
                "/api/generations",
                limit,
                status.as_deref(),
                cursor.as_deref(),
                &[
                    ("ID", "id"),
                    ("STATUS", "status"),
                    ("STAGE", "stage"),
                    ("ITERATION", "iteration"),
                    ("TOKENS IN", "input_tokens"),
                    ("TOKENS OUT", "output_tokens"),
                    ("COST USD", "cost_usd"),
                    ("AGENT", "agent_id"),
                    ("CREATED", "created_at"),
                    ("ERROR", "error"),
                ],
            )
            .await?;
        }
        GenerationCmd::Cancel { client, id } => {
            let c = Client::new(&client)?;
            let g = c
                .post(&format!("/api/generations/{id}/cancel"), &json!({}))
                .await?;
            if c.json {
                output::json(&g);
            } else {
                println!(
                    "cancelled generation {id} at {} of iteration {}",
                    output::text(&g["stage"]),
                    g["iteration"]
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

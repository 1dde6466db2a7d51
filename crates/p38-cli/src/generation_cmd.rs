//! `p38 generation ...`: the generations that write agents from a
//! description (`p38 agent create --description` starts and follows one).

use std::process::ExitCode;

use p38_core::generation::Generation;
use serde_json::json;

use crate::args::GenerationCmd;
use crate::client::Client;
use crate::output::{self, Column};

/// The columns of `p38 generation list`.
const GENERATION_COLUMNS: &[Column<Generation>] = &[
    ("ID", |g| output::cell(&g.id)),
    ("STATUS", |g| output::cell(&g.status)),
    ("STAGE", |g| output::cell(&g.stage)),
    ("ITERATION", |g| output::cell(&g.iteration)),
    ("TOKENS IN", |g| output::cell(&g.input_tokens)),
    ("TOKENS OUT", |g| output::cell(&g.output_tokens)),
    ("COST USD", |g| output::cell(&g.cost_usd)),
    ("AGENT", |g| output::cell(&g.agent_id)),
    ("CREATED", |g| output::cell(&g.created_at)),
    ("ERROR", |g| output::cell(&g.error)),
];

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
                GENERATION_COLUMNS,
            )
            .await?;
        }
        GenerationCmd::Cancel { client, id } => {
            let c = Client::new(&client)?;
            let g = c
                .post_as::<Generation>(&format!("/api/generations/{id}/cancel"), &json!({}))
                .await?;
            if c.json {
                output::json(&g.raw);
            } else {
                println!(
                    "cancelled generation {id} at {} of iteration {}",
                    output::text(&g.data.stage),
                    g.data.iteration
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

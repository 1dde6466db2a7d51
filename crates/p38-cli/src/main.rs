//! `p38`, the one binary of Project38: `p38 up` runs the platform; the
//! other commands drive it over HTTP.

mod agent_cmd;
mod approval_diff;
mod args;
mod client;
mod confirm;
mod dry_run;
mod generate_cmd;
mod output;
mod run_cmd;
mod safe_text;
mod secret_cmd;
mod secrets_cfg;
mod server_cmd;
mod task_cmd;
mod token_cmd;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};

fn main() -> ExitCode {
    let raw: Vec<OsString> = std::env::args_os().collect();
    // The sandbox's init shim is this same binary; it must run before any
    // thread exists, because it forks.
    if raw
        .get(1)
        .is_some_and(|a| a == p38_sandbox::init::SUBCOMMAND)
    {
        p38_sandbox::init::main(&raw[2..]);
    }
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("p38: error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            // The chain may hold text from the server or a file; its own
            // lines (hints) stay, control characters do not reach the
            // terminal.
            eprintln!("p38: error: {}", safe_text::block(&format!("{e:#}")));
            ExitCode::from(1)
        }
    }
}

async fn dispatch(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Up(a) => server_cmd::up(a, true, true).await,
        Command::Serve(a) => server_cmd::up(a, true, false).await,
        Command::Worker(a) => server_cmd::up(a, false, true).await,
        Command::Run(a) => run_cmd::run(a).await,
        Command::Agent(c) => agent_cmd::run(c).await,
        Command::Task(c) => task_cmd::run(c).await,
        Command::Token(c) => token_cmd::run(c).await,
        Command::Secret(c) => secret_cmd::run(c).await,
    }
}

//! `p38`, the one binary of Project38: `p38 up` runs the platform; the
//! other commands drive it over HTTP.

mod agent_cmd;
mod approval_diff;
mod args;
mod client;
mod confirm;
mod dry_run;
mod follow;
mod generate_cmd;
mod generation_cmd;
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
    // The commands that only talk to a server end quietly on a closed
    // stdout (`p38 task list x | head`), killed by SIGPIPE like `cat`
    // (the shell's status 141). The platform's own processes keep it
    // ignored: the sandbox writes pipes whose reader may be gone, and
    // `p38 run` restores it once its run is over.
    if !matches!(
        cli.command,
        Command::Up(_) | Command::Serve(_) | Command::Worker(_) | Command::Run(_)
    ) {
        default_sigpipe();
    }
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

/// Lets a write to a closed pipe end the process quietly, as it does for
/// conventional tools, instead of failing the write (and `println!`
/// panicking).
#[allow(unsafe_code)] // one libc call, installing no handler
pub fn default_sigpipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: restoring the default disposition installs no handler code.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

async fn dispatch(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Up(a) => server_cmd::up(a, true, true).await,
        Command::Serve(a) => server_cmd::up(a, true, false).await,
        Command::Worker(a) => server_cmd::up(a, false, true).await,
        Command::Run(a) => run_cmd::run(a).await,
        Command::Agent(c) => agent_cmd::run(c).await,
        Command::Task(c) => task_cmd::run(c).await,
        Command::Generation(c) => generation_cmd::run(c).await,
        Command::Token(c) => token_cmd::run(c).await,
        Command::Secret(c) => secret_cmd::run(c).await,
    }
}

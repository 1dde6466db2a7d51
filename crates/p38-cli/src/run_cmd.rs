//! `p38 run FILE.py`: one run in the same sandbox as the platform's, with
//! nothing stored, so an author can try an agent before creating it.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use p38_core::task::{FinishedRun, TaskOutcome};
use p38_runtime::{Executor, RunOrigin, RunSpec, RuntimeConfig};

use crate::args::RunArgs;
use crate::server_cmd::build_sandbox;
use crate::{output, safe_text};

/// Runs the file and prints the outcome; exits 0 only on success.
pub async fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    let code = std::fs::read_to_string(&a.file)
        .with_context(|| format!("reading {}", a.file.display()))?;
    let parse = |what: &str, s: &Option<String>| -> anyhow::Result<serde_json::Value> {
        match s {
            None => Ok(serde_json::json!({})),
            Some(t) => {
                let v: serde_json::Value = serde_json::from_str(t)
                    .with_context(|| format!("--{what} is not valid JSON"))?;
                anyhow::ensure!(v.is_object(), "--{what} must be a JSON object");
                Ok(v)
            }
        }
    };
    let state = parse("state", &a.state)?;
    let config = parse("config", &a.config)?;
    p38_core::agent::validate_secret_names(&a.secrets)?;

    let scratch = tempfile::Builder::new()
        .prefix("p38-run-")
        .tempdir()
        .context("creating a scratch folder")?;
    let mut cfg = RuntimeConfig::new(scratch.path());
    cfg.limits.timeout = Duration::from_secs(a.timeout.max(1).into());
    let sandbox = build_sandbox(
        a.python.as_deref(),
        a.insecure_no_sandbox,
        a.cgroup_root.as_deref(),
        false,
    )?;
    let exec = Executor::new(sandbox, Arc::new(p38_secrets::EnvResolver), cfg.clone())
        .context("preparing the scratch folder")?;
    let name = a
        .file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("agent");
    let spec = RunSpec {
        secrets: a.secrets.clone(),
        network: a.network,
        config,
        state,
        ..RunSpec::one_off(RunOrigin::Try, name, &code, cfg.workspace(0))
    };
    let o = exec.run(spec).await;
    // The run is over: from here on a closed stdout ends the process
    // quietly, as for the other commands.
    crate::default_sigpipe();
    let (result, state) = match &o.outcome {
        TaskOutcome::Succeeded { result, new_state } => (result.as_ref(), new_state.as_ref()),
        _ => (None, None),
    };
    let ok = matches!(o.outcome, TaskOutcome::Succeeded { .. });
    if a.json {
        let f = &o.figures;
        let v = serde_json::json!({
            "status": o.outcome.status().as_str(),
            "result": result, "state": state, "error": o.outcome.error(),
            "stdout": f.stdout, "stderr": f.stderr, "logs": f.logs,
            "exit_code": f.exit_code, "signal": f.signal, "duration_ms": f.duration_ms,
            "cpu_ms": f.cpu_ms, "peak_memory_kb": f.peak_memory_kb, "sandboxed": !f.unsandboxed,
        });
        output::json(&v);
    } else {
        print_outcome(&o, result, state);
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_outcome(
    o: &FinishedRun,
    result: Option<&serde_json::Value>,
    state: Option<&serde_json::Value>,
) {
    let f = &o.figures;
    println!("status:   {}", o.outcome.status().as_str());
    if let Some(r) = result {
        println!("result:   {}", safe_text::json_compact(r));
    }
    if let Some(s) = state {
        println!("state:    {}", safe_text::json_compact(s));
    }
    println!(
        "time:     {} ms wall, {} ms cpu, {} KiB peak memory{}",
        f.duration_ms.unwrap_or(0),
        f.cpu_ms.unwrap_or(0),
        f.peak_memory_kb.unwrap_or(0),
        if f.unsandboxed { " (UNSANDBOXED)" } else { "" }
    );
    if let Some(e) = o.outcome.error() {
        output::block("error", &e);
    }
    if let Some(logs) = f
        .logs
        .as_ref()
        .and_then(|l| l.as_array())
        .filter(|l| !l.is_empty())
    {
        output::logs(logs);
    }
    for (name, text) in [("stdout", &f.stdout), ("stderr", &f.stderr)] {
        if let Some(t) = text.as_deref().filter(|t| !t.is_empty()) {
            output::block(name, t);
        }
    }
}

//! The factory's dry run in the real sandbox: the generated module is
//! loaded and its generated test (when there is one) is called, with no
//! network and placeholder values for the declared secrets. Lives in the
//! composition root because it joins two services (factory and runtime)
//! that do not depend on each other.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use p38_core::task::TaskOutcome;
use p38_factory::{DryRunOutcome, DryRunner};
use p38_runtime::{Executor, RunOrigin, RunSpec, RuntimeConfig};
use p38_sandbox::Sandbox;
use p38_secrets::{SecretResolver, SecretValue};

/// Hands a dry run placeholders instead of real secrets: generated code
/// never sees a real value before a human approved it.
struct Placeholders;

#[async_trait]
impl SecretResolver for Placeholders {
    async fn resolve(&self, names: &[String]) -> p38_core::Result<BTreeMap<String, SecretValue>> {
        Ok(names
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    SecretValue::new(format!("dry-run-placeholder-{n}")),
                )
            })
            .collect())
    }
}

/// Wraps the generated module and test so that the runner calls them. The
/// runner compiles what it is given as `agent.py`; the harness is only a
/// bootstrap there, and its own code is compiled as `<p38-dry-run>`, so a
/// traceback's `agent.py` lines are the agent's own (and the test's are
/// `test.py`). The agent is importable as `agent` (`from agent import
/// run` in a test works). With a test, `test_run(ctx)` is called; without
/// one, `run(ctx)` itself, with the empty state and config of a first run:
/// an empty test is no proof that the code runs.
const HARNESS: &str = r#"
import sys
import types


class DryRunFailure(Exception):
    pass


def _located(error):
    # The runner shows only agent.py's frames; say where in the agent or
    # its test the error came from, with that line's source.
    where = None
    tb = error.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name in ("agent.py", "test.py"):
            where = (name, tb.tb_lineno, tb.tb_frame)
        tb = tb.tb_next
    text = "%s: %s" % (type(error).__name__, error)
    if where is None:
        return DryRunFailure(text)
    source = (_AGENT if where[0] == "agent.py" else _TEST).splitlines()
    line = source[where[1] - 1].strip() if 0 < where[1] <= len(source) else ""
    text = '%s, at File "%s", line %d: %s' % (text, where[0], where[1], line)
    if isinstance(error, AssertionError):
        # An assert says nothing of its values: show the frame's variables.
        shown = []
        for k, v in list(where[2].f_locals.items())[:8]:
            if k.startswith("__") or callable(v) or isinstance(v, types.ModuleType):
                continue
            try:
                r = repr(v)
            except Exception:
                r = "<unprintable>"
            shown.append("%s=%s" % (k, r if len(r) <= 120 else r[:120] + "..."))
        if shown:
            text += " (values: %s)" % ", ".join(shown)
    return DryRunFailure(text)


def run(ctx):
    module = types.ModuleType("agent")
    module.__file__ = "agent.py"
    sys.modules["agent"] = module
    exec(compile(_AGENT, "agent.py", "exec"), module.__dict__)
    agent_run = getattr(module, "run", None)
    if not callable(agent_run):
        raise TypeError("the agent does not define run(ctx)")
    if not _TEST.strip():
        try:
            returned = agent_run(ctx)
        except Exception as e:
            raise _located(e) from None
        return {"called": "run(ctx)", "returned": returned}
    namespace = dict(module.__dict__)
    namespace["__name__"] = "test"
    exec(compile(_TEST, "test.py", "exec"), namespace)
    test_run = namespace.get("test_run")
    if not callable(test_run):
        raise TypeError("the test does not define test_run(ctx)")
    try:
        test_run(ctx)
    except Exception as e:
        raise _located(e) from None
    return {"called": "test_run(ctx)"}
"#;

/// The module the runner loads: the agent, its test and the harness as
/// strings, and the harness compiled under its own name.
fn bootstrap(code: &str, test: &str) -> String {
    format!(
        "_AGENT = {}\n_TEST = {}\n_HARNESS = {}\nexec(compile(_HARNESS, \"<p38-dry-run>\", \"exec\"), globals())\n",
        py_str(code),
        py_str(test),
        py_str(HARNESS)
    )
}

/// What a passing dry run did, for the stage's note: which function was
/// called and, without a test, what `run(ctx)` returned (its start).
fn summary(result: Option<&serde_json::Value>) -> String {
    let Some(r) = result else {
        return String::new();
    };
    match r.get("called").and_then(|c| c.as_str()) {
        Some("run(ctx)") => {
            let returned = r.get("returned").map(|v| v.to_string()).unwrap_or_default();
            let mut shown: String = returned.chars().take(200).collect();
            if shown.len() < returned.len() {
                shown.push_str("...");
            }
            format!(
                "no test: run(ctx) was called with an empty state and config and returned {shown}"
            )
        }
        Some(called) => format!("{called} passed"),
        None => String::new(),
    }
}

/// Dry runs in the sandbox.
pub struct SandboxDryRunner {
    exec: Executor,
    scratch: tempfile::TempDir,
}

impl SandboxDryRunner {
    /// A dry runner with its own scratch folder (workspaces are thrown away).
    pub fn new(sandbox: Sandbox) -> anyhow::Result<SandboxDryRunner> {
        let scratch = tempfile::Builder::new().prefix("p38-dry-run-").tempdir()?;
        let mut cfg = RuntimeConfig::new(scratch.path());
        cfg.limits.timeout = std::time::Duration::from_secs(30);
        let exec = Executor::new(sandbox, Arc::new(Placeholders), cfg)?;
        Ok(SandboxDryRunner { exec, scratch })
    }
}

#[async_trait]
impl DryRunner for SandboxDryRunner {
    async fn dry_run(
        &self,
        code: &str,
        test: &str,
        declared_secrets: &[String],
        _network: bool,
    ) -> DryRunOutcome {
        let start = Instant::now();
        let harness = bootstrap(code, test);
        let workspace = tempfile::tempdir_in(self.scratch.path())
            .map(|d| d.keep())
            .unwrap_or_else(|_| self.scratch.path().join("ws"));
        let spec = RunSpec {
            secrets: declared_secrets.to_vec(),
            ..RunSpec::one_off(RunOrigin::DryRun, "dry-run", &harness, workspace.clone())
        };
        let o = self.exec.run(spec).await;
        let _ = std::fs::remove_dir_all(&workspace);
        let (ok, error, result) = match o.outcome {
            TaskOutcome::Succeeded { result, .. } => (true, None, result),
            other => (
                false,
                Some(other.error().unwrap_or_else(|| "the dry run failed".into())),
                None,
            ),
        };
        let line = error.as_deref().and_then(agent_line);
        DryRunOutcome {
            ok,
            error,
            line,
            duration: start.elapsed(),
            summary: if ok {
                summary(result.as_ref())
            } else {
                String::new()
            },
        }
    }
}

/// A Python string literal holding `s` exactly (JSON strings are valid
/// Python string literals).
fn py_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "''".into())
}

/// The last `File "agent.py", line N` of a traceback.
fn agent_line(tb: &str) -> Option<u32> {
    tb.rsplit("File \"agent.py\", line ")
        .next()
        .filter(|_| tb.contains("File \"agent.py\", line "))
        .and_then(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceback_lines() {
        let tb = "Traceback:\n  File \"agent.py\", line 3, in x\n  File \"agent.py\", line 12, in run\nValueError";
        assert_eq!(agent_line(tb), Some(12));
        assert_eq!(agent_line("nothing"), None);
        assert_eq!(py_str("a\"b\n"), "\"a\\\"b\\n\"");
    }
}

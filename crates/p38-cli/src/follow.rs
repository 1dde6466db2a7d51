//! `--follow`: prints a task's output as it comes, then its outcome.
//!
//! While a task runs, the server shows the output so far (stored by the
//! worker about every second); this asks for the task with a one-second
//! long poll (`?wait=1`, answered at once when the task ends) and prints
//! what is new: each line of stdout as `[stdout] ...`, of stderr as
//! `[stderr] ...`, each log record as `[level] message`, escaped like every
//! other text an agent wrote, so no line the agent writes can pass for one
//! of the CLI's own. A line is printed once its newline arrived (the last
//! one at the end). With `--json` only the ended task is printed.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use p38_core::task::{Task, TaskStatus};

use crate::client::Client;
use crate::{output, safe_text};

/// Follows task `id` until it ends, or `limit` passes; exits 0 only when
/// it succeeded.
pub async fn follow(c: &Client, id: i64, limit: Option<Duration>) -> anyhow::Result<ExitCode> {
    let start = Instant::now();
    let mut shown = Shown::default();
    loop {
        let answer = c.get_as::<Task>(&format!("/api/tasks/{id}?wait=1")).await?;
        let t = &answer.data;
        let ended = t.status.is_final();
        if !c.json {
            shown.print_new(t, ended);
        }
        if ended {
            if c.json {
                output::json(&answer.raw);
            } else {
                outcome(t);
            }
            return Ok(if t.status == TaskStatus::Succeeded {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        if let Some(limit) = limit.filter(|l| start.elapsed() > *l) {
            bail!(
                "task {id} is still {} after {} s; see `p38 task show {id}`",
                safe_text::line(t.status.as_str()),
                limit.as_secs()
            );
        }
    }
}

/// How much of each stream was printed.
#[derive(Debug, Default)]
struct Shown {
    stdout: usize,
    stderr: usize,
    logs: usize,
}

impl Shown {
    /// Prints what `t` holds past what was printed: whole lines, and the
    /// rest too once the task `ended`.
    fn print_new(&mut self, t: &Task, ended: bool) {
        for (name, text, at) in [
            ("stdout", &t.stdout, &mut self.stdout),
            ("stderr", &t.stderr, &mut self.stderr),
        ] {
            let text = text.as_deref().unwrap_or("");
            let Some(new) = text.get(*at..) else {
                // Shorter than what was printed (a new attempt): from the start.
                *at = 0;
                continue;
            };
            let upto = if ended {
                new.len()
            } else {
                new.rfind('\n').map_or(0, |i| i + 1)
            };
            for line in new[..upto].lines() {
                println!("[{name}] {}", safe_text::block(line));
            }
            *at += upto;
        }
        let logs = t
            .logs
            .as_ref()
            .and_then(|l| l.as_array())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for l in logs.iter().skip(self.logs) {
            let message = safe_text::block(l["message"].as_str().unwrap_or("").trim_end());
            println!(
                "[{}] {}",
                output::text(&l["level"]),
                message.replace('\n', "\n    ")
            );
        }
        self.logs = self.logs.max(logs.len());
    }
}

/// The outcome of an ended task: its status line, then its result or error.
fn outcome(t: &Task) {
    output::field("status", &t.status);
    output::field("exit_code", &t.exit_code);
    output::field("signal", &t.signal);
    output::field("duration_ms", &t.duration_ms);
    crate::task_cmd::print_result(t);
}

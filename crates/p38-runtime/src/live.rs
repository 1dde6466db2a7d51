//! The output of a run while it runs: about once a second, when it grew,
//! what the run wrote so far is masked and capped like the final output
//! and stored on the task, so `GET /api/tasks/{id}` shows it before the
//! run ends.
//!
//! The cost is bounded by the caps, not by what the agent writes: each
//! look copies only what is new (one lock on the sandbox's view), the
//! reply is read once for its log lines, and each store is one statement
//! of at most the capped output. Nothing is stored when nothing changed,
//! and the more there is, the longer the pause before the next store (one
//! second, plus one per MiB stored), so a run writing at its caps costs the
//! database at most about 1 MiB a second.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use p38_core::store::Store;
use p38_core::task::TaskOutput;
use p38_sandbox::LiveOutput;
use p38_secrets::Masker;

use crate::reply::LiveLogs;

/// The shortest pause between two stores of one run's output.
pub(crate) const SAVE_EVERY: Duration = Duration::from_secs(1);
/// Bytes stored per second of extra pause.
const BYTES_PER_SECOND: usize = 1 << 20;

/// Where a run's output goes while it runs: its task.
#[derive(Clone)]
pub(crate) struct LiveSink {
    pub store: Arc<dyn Store>,
    pub task: i64,
    pub worker: String,
}

impl LiveSink {
    /// Stores `out`; returns how long to wait before the next store.
    pub(crate) async fn save(&self, out: TaskOutput) -> Duration {
        let bytes = out.stdout.len() + out.stderr.len() + out.logs.to_string().len();
        if let Err(e) = self.store.save_output(self.task, &self.worker, out).await {
            tracing::warn!(task = self.task, error = %e.report(), "storing the output so far failed; trying again later");
        }
        SAVE_EVERY + Duration::from_secs_f64(bytes as f64 / BYTES_PER_SECOND as f64)
    }
}

/// What one run wrote so far, gathered from the sandbox's live view.
pub(crate) struct Follower {
    live: LiveOutput,
    start: DateTime<Utc>,
    seen: [usize; 3],
    changes: u64,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    truncated: [bool; 2],
    logs: LiveLogs,
}

impl Follower {
    pub(crate) fn new(live: LiveOutput, start: DateTime<Utc>) -> Follower {
        Follower {
            live,
            start,
            seen: [0; 3],
            changes: 0,
            stdout: Vec::new(),
            stderr: Vec::new(),
            truncated: [false; 2],
            logs: LiveLogs::default(),
        }
    }

    /// The output so far, masked and capped with `cap` like the final one
    /// (the end of each stream held back where a secret may have been cut
    /// in two); `None` when nothing changed since the last look.
    pub(crate) fn look(&mut self, m: &Masker, cap: usize) -> Option<TaskOutput> {
        let changes = self.live.changes();
        if changes == self.changes {
            return None;
        }
        self.changes = changes;
        let [out, err, reply] = self.live.read(&mut self.seen);
        self.stdout.extend_from_slice(&out.bytes);
        self.stderr.extend_from_slice(&err.bytes);
        self.truncated = [out.truncated, err.truncated];
        self.logs.feed(&reply, self.start);
        let stream = |bytes: &[u8], truncated: bool| {
            let text = String::from_utf8_lossy(bytes);
            crate::executor::capped(&m.mask_cut(&text), cap, truncated)
        };
        Some(TaskOutput {
            stdout: stream(&self.stdout, self.truncated[0]),
            stderr: stream(&self.stderr, self.truncated[1]),
            logs: m.mask_json(&self.logs.lines()),
        })
    }
}

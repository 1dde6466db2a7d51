//! The runner's reply, checked again on the host.
//!
//! The runner writes JSON lines to fd 4: `{"log": {...}}` for each
//! `ctx.log` line as it is logged, then one reply (`{"ok": ...}`). It
//! enforces the state cap, the log cap and the reply's shape, but it runs
//! inside the agent's own process: an agent can write lines of its own to
//! fd 4 and leave with `os._exit`, so everything the runner enforces is
//! only a courtesy. This module takes nothing on trust: the sizes of the
//! result and the state, the shape and number of the log lines and their
//! levels are checked here, each line's time is when it reached the host
//! (the sandbox times the lines), and whether the run succeeded is decided
//! together with how its process ended (see `executor.rs`).

use chrono::{DateTime, Utc};
use p38_sandbox::Captured;
use serde_json::{Value, json};

/// Log lines kept per run (the runner's own cap, enforced again).
pub(crate) const MAX_LOG_LINES: usize = 1000;
/// Characters kept of one log line's message.
pub(crate) const MAX_LOG_CHARS: usize = 4000;
/// Characters kept of an error's message and traceback together.
pub(crate) const MAX_ERROR_CHARS: usize = 64 * 1024;
/// The levels `ctx.log` has; any other is recorded as `info`.
const LEVELS: [&str; 4] = ["debug", "info", "warning", "error"];

/// What a run may hand back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caps {
    /// Bytes of the result's JSON (`settings.max_result_kb`).
    pub result_bytes: usize,
    /// Bytes of the state's JSON.
    pub state_bytes: usize,
}

/// When the run went, on the host's clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    /// The time `elapsed` after the start, never past the end.
    fn at(&self, elapsed: std::time::Duration) -> DateTime<Utc> {
        let t = chrono::Duration::from_std(elapsed)
            .ok()
            .and_then(|d| self.start.checked_add_signed(d))
            .unwrap_or(self.end);
        t.min(self.end)
    }
}

/// What the reply says happened.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reported {
    /// `run(ctx)` returned this value and left this state.
    Returned { result: Value, state: Value },
    /// `run(ctx)` raised: the error text, and whether it was a MemoryError.
    Raised { error: String, memory: bool },
    /// A reply the runner does not write, or one over a cap: why it is
    /// refused, in words for the user.
    Refused(String),
}

/// Reads what the run wrote to its reply pipe. The reply is the last line
/// that is a JSON object with an `ok` field; `None` when there is none
/// (the process died before it could report), but the log lines that came
/// before are kept either way.
pub(crate) fn read(reply: &Captured, caps: Caps, window: Window) -> (Vec<Value>, Option<Reported>) {
    let mut logs = Vec::new();
    let mut dropped = 0u64;
    let mut last: Option<Value> = None;
    let mut line_start = 0usize;
    let mut times = reply.line_times.iter().peekable();
    for line in reply.bytes.split_inclusive(|b| *b == b'\n') {
        let end = line_start + line.len();
        line_start = end;
        // The host's time of this line: when its newline arrived; a line
        // past the timed ones (or without a newline) is given the end.
        while times.next_if(|(off, _)| *off < end).is_some() {}
        let at = match times.peek() {
            Some((off, elapsed)) if *off == end => window.at(*elapsed),
            _ => window.end,
        };
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            continue; // not a line the runner writes
        };
        match v.get("log") {
            Some(entry) if logs.len() < MAX_LOG_LINES => logs.push(log_line(entry, at)),
            Some(_) => dropped += 1,
            None if v.get("ok").is_some() => last = Some(v),
            None => {}
        }
    }
    let claimed = last
        .as_ref()
        .and_then(|v| v.get("logs_dropped"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let dropped = dropped.max(claimed);
    if dropped > 0 {
        logs.push(json!({
            "level": "warning",
            "message": format!("{dropped} more log lines were dropped (at most {MAX_LOG_LINES} are kept per run)"),
            "at": stamp(window.end),
        }));
    }
    (logs, last.map(|v| reported(&v, caps)))
}

/// Longest reply line read while the run goes on: a longer one is no log
/// line the runner writes (those are cut to [`MAX_LOG_CHARS`]) but the
/// reply, which only the end of the run reads.
const MAX_LIVE_LINE: usize = 256 * 1024;

/// The log lines of a run that is still going, read from its reply as it
/// grows: each byte is looked at once, and what is kept is bounded like
/// the final logs ([`MAX_LOG_LINES`] lines, a partial line of at most
/// [`MAX_LIVE_LINE`] bytes).
#[derive(Debug, Default)]
pub(crate) struct LiveLogs {
    logs: Vec<Value>,
    dropped: u64,
    /// The start of a line whose newline has not arrived.
    partial: Vec<u8>,
    /// The current line is too long to be a log line: skip to its end.
    skipping: bool,
    /// Bytes of the reply read so far.
    offset: usize,
}

impl LiveLogs {
    /// Reads what the reply gained; lines are timed as they arrived,
    /// counted from `start`.
    pub(crate) fn feed(&mut self, g: &p38_sandbox::Gained, start: DateTime<Utc>) {
        let window = Window {
            start,
            end: Utc::now(),
        };
        let mut times = g.line_times.iter().peekable();
        for piece in g.bytes.split_inclusive(|b| *b == b'\n') {
            self.offset += piece.len();
            let complete = piece.ends_with(b"\n");
            if !self.skipping {
                if self.partial.len() + piece.len() > MAX_LIVE_LINE {
                    self.skipping = true;
                    self.partial.clear();
                } else {
                    self.partial.extend_from_slice(piece);
                }
            }
            if !complete {
                continue;
            }
            if !self.skipping {
                // Both in order: one pass over the times.
                while times.next_if(|(off, _)| *off < self.offset).is_some() {}
                let at = match times.peek() {
                    Some((off, elapsed)) if *off == self.offset => window.at(*elapsed),
                    _ => window.end,
                };
                if let Ok(v) = serde_json::from_slice::<Value>(&self.partial)
                    && let Some(entry) = v.get("log")
                {
                    if self.logs.len() < MAX_LOG_LINES {
                        self.logs.push(log_line(entry, at));
                    } else {
                        self.dropped += 1;
                    }
                }
            }
            self.partial.clear();
            self.skipping = false;
        }
    }

    /// The lines so far, with the note of those dropped.
    pub(crate) fn lines(&self) -> Value {
        let mut logs = self.logs.clone();
        if self.dropped > 0 {
            logs.push(json!({
                "level": "warning",
                "message": format!("{} more log lines were dropped (at most {MAX_LOG_LINES} are kept per run)", self.dropped),
                "at": stamp(Utc::now()),
            }));
        }
        Value::Array(logs)
    }
}

fn reported(v: &Value, caps: Caps) -> Reported {
    let refused = |why: &str| Reported::Refused(format!("the agent's reply was refused: {why}"));
    let Some(obj) = v.as_object() else {
        return refused("it is not a JSON object");
    };
    match obj.get("ok") {
        Some(Value::Bool(true)) => {
            let result = obj.get("result").cloned().unwrap_or(Value::Null);
            let Some(state) = obj.get("state").filter(|s| s.is_object()).cloned() else {
                return refused("ctx.state must stay a dict");
            };
            let result_len = json_len(&result);
            if result_len > caps.result_bytes {
                return Reported::Refused(format!(
                    "run() returned {result_len} bytes of JSON; the limit is {} KiB (settings.max_result_kb): keep large data in the workspace and return a summary",
                    caps.result_bytes / 1024
                ));
            }
            let state_len = json_len(&state);
            if state_len > caps.state_bytes {
                return Reported::Refused(format!(
                    "ctx.state is {state_len} bytes; the limit is {} bytes: keep large data in the workspace",
                    caps.state_bytes
                ));
            }
            Reported::Returned { result, state }
        }
        Some(Value::Bool(false)) => {
            let e = obj.get("error").unwrap_or(&Value::Null);
            let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("");
            let head = format!(
                "{}: {}",
                Some(text("type"))
                    .filter(|t| !t.is_empty())
                    .unwrap_or("Error"),
                text("message")
            );
            // A traceback without agent frames is the head line again.
            let tb = text("traceback").trim_end();
            let tb = if tb == head { "" } else { tb };
            let error = cut(format!("{head}\n{tb}").trim_end(), MAX_ERROR_CHARS);
            Reported::Raised {
                error,
                memory: text("kind") == "memory",
            }
        }
        _ => refused("it has no \"ok\" field of true or false"),
    }
}

/// One log line as the host keeps it: a known level, a message of at
/// most [`MAX_LOG_CHARS`] characters, the host's time.
fn log_line(entry: &Value, at: DateTime<Utc>) -> Value {
    let level = entry
        .get("level")
        .and_then(Value::as_str)
        .filter(|l| LEVELS.contains(l))
        .unwrap_or("info");
    let message = match entry.get("message") {
        Some(Value::String(s)) => cut(s, MAX_LOG_CHARS),
        Some(other) => cut(&other.to_string(), MAX_LOG_CHARS),
        None => String::new(),
    };
    json!({"level": level, "message": message, "at": stamp(at)})
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}

fn json_len(v: &Value) -> usize {
    serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX)
}

/// Cuts text to `max` characters, marking the cut.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((end, _)) => format!("{}...[truncated]", &s[..end]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn window() -> Window {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        Window {
            start,
            end: start + chrono::Duration::seconds(10),
        }
    }

    const CAPS: Caps = Caps {
        result_bytes: 100,
        state_bytes: 100,
    };

    /// The lines as the sandbox would capture them, the n-th arriving n
    /// seconds after the start.
    fn captured(lines: &[Value]) -> Captured {
        let mut c = Captured::default();
        for (i, l) in lines.iter().enumerate() {
            c.bytes.extend_from_slice(l.to_string().as_bytes());
            c.bytes.push(b'\n');
            c.line_times
                .push((c.bytes.len(), Duration::from_secs(i as u64)));
        }
        c
    }

    fn reported_of(v: Value) -> Reported {
        read(&captured(&[v]), CAPS, window()).1.unwrap()
    }

    #[test]
    fn a_reply_within_the_caps_is_taken() {
        let r = reported_of(json!({"ok": true, "result": [1, 2], "state": {"n": 1}}));
        assert_eq!(
            r,
            Reported::Returned {
                result: json!([1, 2]),
                state: json!({"n": 1})
            }
        );
    }

    #[test]
    fn results_and_states_over_their_caps_are_refused() {
        let big = "x".repeat(200);
        let r = reported_of(json!({"ok": true, "result": big, "state": {}}));
        assert!(
            matches!(&r, Reported::Refused(m) if m.contains("settings.max_result_kb")),
            "{r:?}"
        );
        let r = reported_of(json!({"ok": true, "result": 1, "state": {"s": big}}));
        assert!(
            matches!(&r, Reported::Refused(m) if m.contains("ctx.state is")),
            "{r:?}"
        );
        let r = reported_of(json!({"ok": true, "result": 1, "state": [1]}));
        assert!(matches!(r, Reported::Refused(_)));
        let r = reported_of(json!({"ok": "yes"}));
        assert!(matches!(r, Reported::Refused(_)));
        let junk = Captured {
            bytes: b"not json".to_vec(),
            ..Default::default()
        };
        assert!(read(&junk, CAPS, window()).1.is_none());
    }

    #[test]
    fn the_last_reply_counts_and_logs_before_a_missing_reply_are_kept() {
        let lines = [
            json!({"ok": true, "result": 1, "state": {}}),
            json!({"log": {"level": "info", "message": "between"}}),
            json!({"ok": false, "error": {"type": "E", "message": "last"}}),
        ];
        let (logs, r) = read(&captured(&lines), CAPS, window());
        assert!(matches!(r, Some(Reported::Raised { .. })), "{r:?}");
        assert_eq!(logs.len(), 1);
        let (logs, r) = read(&captured(&lines[1..2]), CAPS, window());
        assert!(r.is_none());
        assert_eq!(logs[0]["message"], "between");
    }

    #[test]
    fn log_lines_are_capped_shaped_and_timed_by_the_host() {
        let w = window();
        let mut lines: Vec<Value> = (0..MAX_LOG_LINES + 50)
            .map(|i| json!({"log": {"level": "critical", "message": i, "at": "1999-01-01T00:00:00Z"}}))
            .collect();
        lines[1] = json!({"log": {"level": "error", "message": "m".repeat(MAX_LOG_CHARS + 10)}});
        lines.push(json!({"ok": false, "error": {}, "logs_dropped": 3}));
        let (logs, _) = read(&captured(&lines), CAPS, w);
        assert_eq!(logs.len(), MAX_LOG_LINES + 1, "capped, plus the note");
        assert_eq!(logs[0]["level"], "info", "unknown level");
        assert_eq!(logs[0]["message"], "0");
        assert_eq!(logs[1]["level"], "error");
        assert!(
            logs[1]["message"]
                .as_str()
                .unwrap()
                .ends_with("[truncated]")
        );
        let time = |l: &Value| -> DateTime<Utc> {
            DateTime::parse_from_rfc3339(l["at"].as_str().unwrap())
                .unwrap()
                .into()
        };
        assert_eq!(time(&logs[0]), w.start, "the host's time, not the claim");
        assert_eq!(time(&logs[3]), w.start + chrono::Duration::seconds(3));
        assert_eq!(time(&logs[20]), w.end, "never past the end");
        assert!(
            logs[MAX_LOG_LINES]["message"]
                .as_str()
                .unwrap()
                .starts_with("50 more log lines were dropped")
        );
    }

    #[test]
    fn live_logs_are_read_piece_by_piece_like_the_final_ones() {
        let w = window();
        let mut lines: Vec<Value> = (0..3)
            .map(|i| json!({"log": {"level": "warning", "message": format!("m{i}")}}))
            .collect();
        lines.push(json!({"ok": true, "result": "x".repeat(MAX_LIVE_LINE), "state": {}}));
        lines.push(json!({"log": {"level": "info", "message": "after"}}));
        let c = captured(&lines);
        let mut live = LiveLogs::default();
        // In pieces cut anywhere, a line split across them.
        for piece in c.bytes.chunks(7) {
            let start = live.offset;
            let g = p38_sandbox::Gained {
                bytes: piece.to_vec(),
                truncated: false,
                line_times: c
                    .line_times
                    .iter()
                    .filter(|(off, _)| *off > start && *off <= start + piece.len())
                    .copied()
                    .collect(),
            };
            live.feed(&g, w.start);
        }
        let (final_logs, _) = read(&c, CAPS, w);
        assert_eq!(live.lines(), Value::Array(final_logs));
        assert!(live.partial.is_empty());
    }

    #[test]
    fn errors_are_cut() {
        let r = reported_of(
            json!({"ok": false, "error": {"type": "ValueError", "message": "e".repeat(MAX_ERROR_CHARS * 2), "kind": "memory"}}),
        );
        match r {
            Reported::Raised { error, memory } => {
                assert!(memory);
                assert!(error.starts_with("ValueError: eee"));
                assert!(error.chars().count() < MAX_ERROR_CHARS + 20);
            }
            other => panic!("{other:?}"),
        }
    }
}

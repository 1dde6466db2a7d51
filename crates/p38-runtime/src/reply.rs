//! The runner's reply, checked again on the host.
//!
//! The runner enforces the state cap, the log cap and the reply's shape,
//! but it runs inside the agent's own process: an agent can write a reply
//! of its own to fd 4 and leave with `os._exit`, so everything the runner
//! enforces is only a courtesy. This module takes nothing on trust: the
//! sizes of the result and the state, the shape and number of the log
//! lines, their levels and their timestamps are all checked (or replaced)
//! here, and whether the run succeeded is decided together with how its
//! process ended (see `executor.rs`).

use chrono::{DateTime, Utc};
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

/// When the run went, on the host's clock: every log line's time lies
/// inside it, whatever the agent claimed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
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

/// A reply that was at least JSON.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub reported: Reported,
    /// Checked log lines: `level`, `message`, `at`.
    pub logs: Vec<Value>,
}

/// Reads the bytes the run wrote to its reply pipe; `None` when they are
/// not JSON at all (the process died before it could report).
pub(crate) fn read(bytes: &[u8], caps: Caps, window: Window) -> Option<Reply> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let logs = logs(&v, window);
    Some(Reply {
        reported: reported(&v, caps),
        logs,
    })
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

/// The log lines, as the host keeps them: at most [`MAX_LOG_LINES`] (and a
/// line saying how many more were dropped), each with a known level, a
/// message of at most [`MAX_LOG_CHARS`] characters, and a time inside the
/// run's window that never goes backwards.
fn logs(v: &Value, window: Window) -> Vec<Value> {
    let lines = v.get("logs").and_then(Value::as_array);
    let claimed_dropped = v.get("logs_dropped").and_then(Value::as_u64).unwrap_or(0);
    let Some(lines) = lines else {
        return Vec::new();
    };
    let mut last = window.start;
    let mut kept: Vec<Value> = lines
        .iter()
        .take(MAX_LOG_LINES)
        .map(|line| {
            let level = line
                .get("level")
                .and_then(Value::as_str)
                .filter(|l| LEVELS.contains(l))
                .unwrap_or("info");
            let message = match line.get("message") {
                Some(Value::String(s)) => cut(s, MAX_LOG_CHARS),
                Some(other) => cut(&other.to_string(), MAX_LOG_CHARS),
                None => String::new(),
            };
            let claimed = line
                .get("at")
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc));
            let at = claimed
                .unwrap_or(last)
                .clamp(window.start, window.end)
                .max(last);
            last = at;
            json!({"level": level, "message": message, "at": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, false)})
        })
        .collect();
    let dropped = (lines.len().saturating_sub(MAX_LOG_LINES) as u64).max(claimed_dropped);
    if dropped > 0 {
        kept.push(json!({
            "level": "warning",
            "message": format!("{dropped} more log lines were dropped (at most {MAX_LOG_LINES} are kept per run)"),
            "at": window.end.to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
        }));
    }
    kept
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

    fn read_json(v: Value) -> Reply {
        read(v.to_string().as_bytes(), CAPS, window()).unwrap()
    }

    #[test]
    fn a_reply_within_the_caps_is_taken() {
        let r = read_json(json!({"ok": true, "result": [1, 2], "state": {"n": 1}}));
        assert_eq!(
            r.reported,
            Reported::Returned {
                result: json!([1, 2]),
                state: json!({"n": 1})
            }
        );
    }

    #[test]
    fn results_and_states_over_their_caps_are_refused() {
        let big = "x".repeat(200);
        let r = read_json(json!({"ok": true, "result": big, "state": {}}));
        assert!(
            matches!(&r.reported, Reported::Refused(m) if m.contains("settings.max_result_kb")),
            "{:?}",
            r.reported
        );
        let r = read_json(json!({"ok": true, "result": 1, "state": {"s": big}}));
        assert!(
            matches!(&r.reported, Reported::Refused(m) if m.contains("ctx.state is")),
            "{:?}",
            r.reported
        );
        let r = read_json(json!({"ok": true, "result": 1, "state": [1]}));
        assert!(matches!(r.reported, Reported::Refused(_)));
        let r = read_json(json!({"ok": "yes"}));
        assert!(matches!(r.reported, Reported::Refused(_)));
        assert!(read(b"not json", CAPS, window()).is_none());
    }

    #[test]
    fn log_lines_are_capped_shaped_and_timed_by_the_host() {
        let w = window();
        let mut lines: Vec<Value> = (0..MAX_LOG_LINES + 50)
            .map(|i| json!({"level": "critical", "message": i, "at": "1999-01-01T00:00:00Z"}))
            .collect();
        lines[1] = json!({"level": "error", "message": "m".repeat(MAX_LOG_CHARS + 10), "at": "2030-01-01T00:00:00Z"});
        let r = read_json(json!({"ok": false, "error": {}, "logs": lines}));
        assert_eq!(r.logs.len(), MAX_LOG_LINES + 1, "capped, plus the note");
        assert_eq!(r.logs[0]["level"], "info", "unknown level");
        assert_eq!(r.logs[0]["message"], "0");
        assert_eq!(r.logs[1]["level"], "error");
        assert!(
            r.logs[1]["message"]
                .as_str()
                .unwrap()
                .ends_with("[truncated]")
        );
        let times: Vec<DateTime<Utc>> = r
            .logs
            .iter()
            .map(|l| {
                DateTime::parse_from_rfc3339(l["at"].as_str().unwrap())
                    .unwrap()
                    .into()
            })
            .collect();
        assert_eq!(times[0], w.start, "a time before the run is clamped");
        assert_eq!(times[1], w.end, "a time after the run is clamped");
        assert!(times.windows(2).all(|p| p[0] <= p[1]), "never backwards");
        assert!(
            r.logs[MAX_LOG_LINES]["message"]
                .as_str()
                .unwrap()
                .starts_with("50 more log lines were dropped")
        );
    }

    #[test]
    fn errors_are_cut() {
        let r = read_json(
            json!({"ok": false, "error": {"type": "ValueError", "message": "e".repeat(MAX_ERROR_CHARS * 2), "kind": "memory"}}),
        );
        match r.reported {
            Reported::Raised { error, memory } => {
                assert!(memory);
                assert!(error.starts_with("ValueError: eee"));
                assert!(error.chars().count() < MAX_ERROR_CHARS + 20);
            }
            other => panic!("{other:?}"),
        }
    }
}

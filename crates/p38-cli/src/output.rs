//! Printing: readable tables by default, JSON with `--json`. Every value
//! printed here came from the server, so it goes through [`safe_text`]
//! first: control and hidden characters are shown escaped, never acted on.

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use serde::Serialize;
use serde_json::Value;

use crate::safe_text;

/// Widest a table cell or field value is shown, in characters.
const CELL_WIDTH: usize = 60;

/// Prints a value as pretty JSON.
pub fn json(v: &Value) {
    println!("{}", safe_text::json_pretty(v));
}

/// A table column: its header, and how an item shows in it (a [`cell`]).
pub type Column<T> = (&'static str, fn(&T) -> String);

/// Prints items of an API type as a table.
pub fn table<T>(items: &[T], columns: &[Column<T>]) {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    t.set_header(columns.iter().map(|(h, _)| *h));
    for item in items {
        t.add_row(columns.iter().map(|(_, show)| show(item)));
    }
    println!("{t}");
}

/// A value as a short table cell: as the API spells it in JSON (`-` when
/// absent, a list joined by commas), on one line, escaped.
pub fn cell(v: &impl Serialize) -> String {
    safe_text::line_cut(&plain(&as_json(v)), CELL_WIDTH)
}

/// A value as the API spells it in JSON (the same serialisation the
/// server's answer had).
fn as_json(v: &impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// A JSON value as text, before escaping.
fn plain(v: &Value) -> String {
    match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(plain).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Prints a `name: value` line.
pub fn field(name: &str, v: &impl Serialize) {
    println!("{:<14} {}", format!("{name}:"), cell(v));
}

/// A value the API spells as a string (a name, a status) as one escaped
/// line (`""` when it is not a string).
pub fn text(v: &impl Serialize) -> String {
    safe_text::line(as_json(v).as_str().unwrap_or(""))
}

/// Prints a multi-line text an agent wrote (its stdout, an error with its
/// traceback) under its name, escaped but with its lines kept.
pub fn block(name: &str, text: &str) {
    println!("{name}:\n{}", safe_text::block(text.trim_end()));
}

/// Prints an agent's log records as `  [level] message`; the further lines
/// of a message are indented under it, so a log record cannot print a line
/// that looks like one of the CLI's own.
pub fn logs(records: &[Value]) {
    println!("logs:");
    for l in records {
        let message = safe_text::block(l["message"].as_str().unwrap_or("").trim_end());
        println!(
            "  [{}] {}",
            text(&l["level"]),
            message.replace('\n', "\n      ")
        );
    }
}

/// Prints the next-page hint when there is one.
pub fn next_page(next_cursor: Option<&str>) {
    if let Some(c) = next_cursor {
        println!("more: --cursor {}", safe_text::line(c));
    }
}

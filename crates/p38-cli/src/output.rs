//! Printing: readable tables by default, JSON with `--json`. Every value
//! printed here came from the server, so it goes through [`safe_text`]
//! first: control and hidden characters are shown escaped, never acted on.

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use serde_json::Value;

use crate::safe_text;

/// Widest a table cell or field value is shown, in characters.
const CELL_WIDTH: usize = 60;

/// Prints a value as pretty JSON.
pub fn json(v: &Value) {
    println!("{}", safe_text::json_pretty(v));
}

/// Prints rows as a table; each column is a JSON field of the items.
pub fn table(items: &[Value], columns: &[(&str, &str)]) {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    t.set_header(columns.iter().map(|(h, _)| *h));
    for item in items {
        // A field is a key, or a JSON pointer (`/error/text`) into the item.
        t.add_row(columns.iter().map(|(_, f)| match f.strip_prefix('/') {
            Some(_) => cell(item.pointer(f).unwrap_or(&Value::Null)),
            None => cell(&item[*f]),
        }));
    }
    println!("{t}");
}

/// A JSON value as a short table cell, on one line, escaped.
pub fn cell(v: &Value) -> String {
    safe_text::line_cut(&plain(v), CELL_WIDTH)
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

/// Prints `key: value` lines for the named fields.
pub fn fields(v: &Value, names: &[&str]) {
    for n in names {
        println!("{:<14} {}", format!("{n}:"), cell(&v[*n]));
    }
}

/// A string field of a server answer as one escaped line (`""` when absent).
pub fn text(v: &Value) -> String {
    safe_text::line(v.as_str().unwrap_or(""))
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
pub fn next_page(v: &Value) {
    if let Some(c) = v["next_cursor"].as_str() {
        println!("more: --cursor {}", safe_text::line(c));
    }
}

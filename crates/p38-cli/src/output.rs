//! Printing: readable tables by default, JSON with `--json`.

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use serde_json::Value;

/// Prints a value as pretty JSON.
pub fn json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
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

/// A JSON value as a short table cell.
pub fn cell(v: &Value) -> String {
    let s = match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    };
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(59).collect::<String>())
    } else {
        s
    }
}

/// Prints `key: value` lines for the named fields.
pub fn fields(v: &Value, names: &[&str]) {
    for n in names {
        println!("{:<14} {}", format!("{n}:"), cell(&v[*n]));
    }
}

/// Prints the next-page hint when there is one.
pub fn next_page(v: &Value) {
    if let Some(c) = v["next_cursor"].as_str() {
        println!("more: --cursor {c}");
    }
}

//! Text that agents and models wrote, made safe for the operator's terminal.
//!
//! Everything the CLI prints that it did not write itself (code,
//! descriptions, findings, task output, logs, errors from the server, names,
//! JSON) passes through here first. A terminal acts on control characters:
//! ESC `[2K` followed by `\r` erases the line it sits on (a dangerous line of
//! code vanishes from the approval screen), `\r` alone lets task output
//! write a fake `status: succeeded` over the real one, OSC 52 writes the
//! clipboard, and a right-to-left override reorders what the operator
//! reads. So every control character (C0, DEL, C1) and every bidirectional
//! control or invisible character (the set of
//! [`p38_factory::validate::rules::hidden_name`], the same one the
//! factory's `trojan_source` rule flags) is shown as a visible escape,
//! never interpreted: `\x1b`, `\r`, `\x07`, `\x7f`, `\u{85}`, `\u{202e}`.
//! Hebrew and every other ordinary non-ASCII text is left alone.
//!
//! A backslash is not escaped: code is full of them and must stay
//! readable. So `\x1b` on the screen is either an escaped ESC or the four
//! characters the agent wrote; both are harmless, and `--json` tells them
//! apart.

use std::fmt::Write;

use p38_factory::validate::rules::{control_name, hidden_name};
use serde_json::Value;

/// How much layout survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// One line: newlines and tabs are escaped too.
    Line,
    /// A multi-line text (code, output, a traceback): newlines and tabs
    /// stay as they are.
    Block,
}

/// The escape of one character, or `None` when it prints as it is.
fn escape(c: char, layout: Layout) -> Option<String> {
    match c {
        '\n' | '\t' if layout == Layout::Block => None,
        '\n' => Some("\\n".into()),
        '\t' => Some("\\t".into()),
        '\r' => Some("\\r".into()),
        '\0'..='\u{1f}' | '\u{7f}' => Some(format!("\\x{:02x}", c as u32)),
        c if control_name(c).is_some() || hidden_name(c).is_some() => {
            Some(format!("\\u{{{:x}}}", c as u32))
        }
        _ => None,
    }
}

fn escaped(s: &str, layout: Layout) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match escape(c, layout) {
            Some(e) => out.push_str(&e),
            None => out.push(c),
        }
    }
    out
}

/// A text for one line (a table cell, a `key: value` field, a name):
/// every control and hidden character escaped, newlines and tabs included.
pub fn line(s: &str) -> String {
    escaped(s, Layout::Line)
}

/// [`line`], cut to at most `max` characters (an ellipsis marks the cut);
/// an escape is never cut in half.
pub fn line_cut(s: &str, max: usize) -> String {
    let mut out = String::new();
    let mut shown = 0usize;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let piece = escape(c, Layout::Line).unwrap_or_else(|| c.to_string());
        let width = piece.chars().count();
        // Keep one place for the ellipsis unless this is the last piece.
        let room = if chars.peek().is_some() {
            max.saturating_sub(1)
        } else {
            max
        };
        if shown + width > room {
            out.push('…');
            return out;
        }
        out.push_str(&piece);
        shown += width;
    }
    out
}

/// A multi-line text (code, stdout, a traceback, an error): newlines and
/// tabs kept, every other control and hidden character escaped.
pub fn block(s: &str) -> String {
    escaped(s, Layout::Block)
}

/// A JSON value as pretty JSON. serde_json already escapes C0 controls;
/// this also writes DEL, C1 and the hidden characters as `\uXXXX`, so a
/// bidirectional override in a value cannot reorder the screen either. The
/// JSON means the same to every parser.
pub fn json_pretty(v: &Value) -> String {
    json_escape_rest(&serde_json::to_string_pretty(v).unwrap_or_default())
}

/// [`json_pretty`] on one line.
pub fn json_compact(v: &Value) -> String {
    json_escape_rest(&serde_json::to_string(v).unwrap_or_default())
}

/// Escapes what serde_json leaves raw. Outside strings, serialised JSON is
/// ASCII, so every such character is inside a string, where `\uXXXX` is
/// its exact spelling (a surrogate pair above U+FFFF).
fn json_escape_rest(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        // serde_json escapes every C0 control inside a string, so a raw one
        // here is the pretty printer's own whitespace.
        let raw_left =
            c == '\u{7f}' || ('\u{80}'..='\u{9f}').contains(&c) || hidden_name(c).is_some();
        if raw_left {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{u:04x}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_hidden_characters_are_shown_as_escapes() {
        let s = "a\u{1b}[2K\rb\u{07}\u{7f}\u{85}\u{9b}\u{202e}\u{200b}\u{feff}\u{2028}\u{e0041}\0";
        let want = r"a\x1b[2K\rb\x07\x7f\u{85}\u{9b}\u{202e}\u{200b}\u{feff}\u{2028}\u{e0041}\x00";
        assert_eq!(line(s), want);
        assert_eq!(block(s), want);
    }

    #[test]
    fn lines_escape_layout_and_blocks_keep_it() {
        assert_eq!(line("a\n\tb"), r"a\n\tb");
        assert_eq!(block("a\n\tb\r\n"), "a\n\tb\\r\n");
    }

    #[test]
    fn ordinary_text_is_untouched() {
        for s in [
            "שלום עולם",
            "naïve café",
            "日本語",
            "emoji 🎉",
            r"C:\path\x1b",
        ] {
            assert_eq!(line(s), s);
            assert_eq!(block(s), s);
        }
    }

    #[test]
    fn cutting_never_splits_an_escape() {
        assert_eq!(line_cut("abcdef", 6), "abcdef");
        assert_eq!(line_cut("abcdefg", 6), "abcde…");
        assert_eq!(line_cut("abc\u{1b}def", 6), "abc…");
        assert_eq!(line_cut("ab\u{1b}", 6), r"ab\x1b");
        assert_eq!(line_cut("שלוםשלום", 5), "שלום…");
    }

    #[test]
    fn json_escapes_what_serde_leaves_raw_and_stays_the_same_json() {
        let v = serde_json::json!({"k\u{202e}": "a\u{1b}b\u{7f}\u{85}\u{200b}\u{e0041}שלום"});
        let text = json_compact(&v);
        assert_eq!(
            text,
            r#"{"k\u202e":"a\u001bb\u007f\u0085\u200b\udb40\udc41שלום"}"#
        );
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
        assert_eq!(serde_json::from_str::<Value>(&json_pretty(&v)).unwrap(), v);
    }
}

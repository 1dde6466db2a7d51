//! ## What it does
//! Flags every line of the code that holds a character a reviewer cannot
//! see as it is: bidirectional controls (U+202A..U+202E, U+2066..U+2069,
//! U+200E, U+200F, U+061C), invisible characters (zero-width spaces and
//! joiners U+200B..U+200D, U+2060..U+2064, U+FEFF, U+180E, the tag
//! characters U+E0000..U+E007F), the line and paragraph separators U+2028
//! and U+2029, and raw control characters (C0 other than tab, newline,
//! carriage return and form feed; DEL; C1). One finding per line and
//! character, anywhere: in code, strings and comments alike.
//!
//! ## Why is this bad?
//! This is "Trojan Source" (CVE-2021-42574): a right-to-left override in a
//! comment or string makes an editor or terminal show the text in an order
//! other than the one Python reads, so the line a human approves is not the
//! line that runs; a zero-width character makes two names that look the
//! same differ. A raw escape character does the same to a terminal: ESC
//! `[2K` erases the line it sits on from the approval screen. None of them
//! is ever needed in an agent: a string that must hold one writes it as an
//! escape (`"\u202e"`, `"\x1b"`), which every reviewer can see.
//!
//! ## Example
//! ```python
//! access = "user"
//! if access != "user\u202e \u2066# admin\u2069 \u2066":   # written raw, this reads as a comment
//!     ...
//! ```

use super::{Rule, RuleContext};
use crate::validate::{Finding, Stage};

/// See the module documentation.
#[derive(Debug, Default, Clone, Copy)]
pub struct TrojanSource;

/// The Unicode name of a character that reorders or hides text: the
/// bidirectional controls, the invisible characters and the line and
/// paragraph separators. `None` for every other character, control
/// characters included (see [`control_name`]). The CLI escapes the same
/// set when it prints text an agent or a model wrote.
pub fn hidden_name(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{061C}' => "ARABIC LETTER MARK",
        '\u{180E}' => "MONGOLIAN VOWEL SEPARATOR",
        '\u{200B}' => "ZERO WIDTH SPACE",
        '\u{200C}' => "ZERO WIDTH NON-JOINER",
        '\u{200D}' => "ZERO WIDTH JOINER",
        '\u{200E}' => "LEFT-TO-RIGHT MARK",
        '\u{200F}' => "RIGHT-TO-LEFT MARK",
        '\u{2028}' => "LINE SEPARATOR",
        '\u{2029}' => "PARAGRAPH SEPARATOR",
        '\u{202A}' => "LEFT-TO-RIGHT EMBEDDING",
        '\u{202B}' => "RIGHT-TO-LEFT EMBEDDING",
        '\u{202C}' => "POP DIRECTIONAL FORMATTING",
        '\u{202D}' => "LEFT-TO-RIGHT OVERRIDE",
        '\u{202E}' => "RIGHT-TO-LEFT OVERRIDE",
        '\u{2060}' => "WORD JOINER",
        '\u{2061}' => "FUNCTION APPLICATION",
        '\u{2062}' => "INVISIBLE TIMES",
        '\u{2063}' => "INVISIBLE SEPARATOR",
        '\u{2064}' => "INVISIBLE PLUS",
        '\u{2066}' => "LEFT-TO-RIGHT ISOLATE",
        '\u{2067}' => "RIGHT-TO-LEFT ISOLATE",
        '\u{2068}' => "FIRST STRONG ISOLATE",
        '\u{2069}' => "POP DIRECTIONAL ISOLATE",
        '\u{FEFF}' => "ZERO WIDTH NO-BREAK SPACE",
        '\u{E0000}'..='\u{E007F}' => "TAG CHARACTER",
        _ => return None,
    })
}

/// The name of a control character a terminal may act on: C0 (U+0000 to
/// U+001F, tab, newline and carriage return included), DEL and C1 (U+0080
/// to U+009F). `None` for every other character.
pub fn control_name(c: char) -> Option<&'static str> {
    Some(match c {
        '\0' => "NULL",
        '\u{07}' => "BELL",
        '\u{08}' => "BACKSPACE",
        '\t' => "CHARACTER TABULATION",
        '\n' => "LINE FEED",
        '\u{0B}' => "LINE TABULATION",
        '\u{0C}' => "FORM FEED",
        '\r' => "CARRIAGE RETURN",
        '\u{1B}' => "ESCAPE",
        '\u{7F}' => "DELETE",
        '\u{85}' => "NEXT LINE",
        '\u{9B}' => "CONTROL SEQUENCE INTRODUCER",
        '\u{9D}' => "OPERATING SYSTEM COMMAND",
        '\u{00}'..='\u{1F}' | '\u{80}'..='\u{9F}' => "CONTROL CHARACTER",
        _ => return None,
    })
}

/// Why a character is flagged, for the finding's message; `None` for the
/// characters Python source may hold raw (tab, newline, carriage return and
/// form feed are whitespace to Python and harmless on a terminal).
fn why(c: char) -> Option<(&'static str, &'static str)> {
    if matches!(c, '\t' | '\n' | '\r' | '\u{0C}') {
        return None;
    }
    if let Some(name) = hidden_name(c) {
        let why = if is_bidi(c) {
            "which can reorder what a reviewer reads"
        } else {
            "which a reviewer cannot see"
        };
        return Some((name, why));
    }
    control_name(c).map(|name| (name, "which can rewrite what a terminal shows a reviewer"))
}

/// The characters that change the direction of the text around them.
fn is_bidi(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

impl Rule for TrojanSource {
    fn name(&self) -> &'static str {
        "trojan_source"
    }

    fn check(&self, ctx: &RuleContext<'_>) -> Vec<Finding> {
        let mut out = Vec::new();
        for (n, text) in ctx.source.split('\n').enumerate() {
            let mut seen: Vec<char> = Vec::new();
            for c in text.chars() {
                let Some((name, why)) = why(c) else { continue };
                if seen.contains(&c) {
                    continue;
                }
                seen.push(c);
                let line = u32::try_from(n + 1).unwrap_or(u32::MAX);
                out.push(Finding::error(
                    Stage::Rules,
                    Some(line),
                    self.name(),
                    format!(
                        "line {line} contains U+{:04X} {name}, {why}; remove it, or write it as an escape (\"\\u{{{:x}}}\") inside a string",
                        c as u32, c as u32
                    ),
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::rules::check_sample;
    use crate::validate::{RuffCommand, Stage, StageStatus, Validator, ValidatorConfig};

    #[test]
    fn flags_bidi_invisible_and_control_characters_by_line() {
        let bad = "def run(ctx):\n    access = 'user'\n    if access != 'user\u{202E} \u{2066}# admin\u{2069} \u{2066}':\n        return 1\n    is\u{200B}admin = True  # \u{1b}[2K\r\n    return 'ok\u{202E}\u{202E}'\n";
        let f = check_sample(&TrojanSource, bad, false);
        let got: Vec<(u32, &str)> = f
            .iter()
            .map(|f| (f.line.unwrap(), f.message.as_str()))
            .collect();
        assert_eq!(f.len(), 6, "{got:#?}");
        assert!(f.iter().all(|f| f.is_error() && f.rule == "trojan_source"));
        assert_eq!(
            f[0].message,
            "line 3 contains U+202E RIGHT-TO-LEFT OVERRIDE, which can reorder what a reviewer reads; remove it, or write it as an escape (\"\\u{202e}\") inside a string"
        );
        assert!(f[1].message.contains("U+2066 LEFT-TO-RIGHT ISOLATE"));
        assert!(f[2].message.contains("U+2069 POP DIRECTIONAL ISOLATE"));
        assert_eq!(f[3].line, Some(5));
        assert!(
            f[3].message
                .contains("U+200B ZERO WIDTH SPACE, which a reviewer cannot see")
        );
        assert!(f[4].message.contains("U+001B ESCAPE"), "{got:#?}");
        // Two overrides on one line are one finding.
        assert_eq!(f[5].line, Some(6));
        // No message holds the character it names.
        assert!(
            f.iter()
                .all(|f| !f.message.contains(['\u{202E}', '\u{1b}', '\u{200B}']))
        );
    }

    #[test]
    fn passes_hebrew_escapes_and_ordinary_whitespace() {
        let good = "def run(ctx):\r\n\tname = 'שלום עולם'  # Hebrew is text, not a control\r\n    \x0c\n    marker = '\\u202e\\x1b'\n    return {'greeting': name, 'marker': marker}\n";
        assert!(check_sample(&TrojanSource, good, false).is_empty());
    }

    #[tokio::test]
    async fn the_validator_runs_it_and_blocks_the_dry_run() {
        let v = Validator::new(ValidatorConfig {
            ruff: RuffCommand::Path("/nonexistent/ruff".into()),
            ..Default::default()
        });
        let r = v
            .validate("def run(ctx):\n    return 'a\u{202E}b'\n", false, "")
            .await;
        assert!(
            r.findings
                .iter()
                .any(|f| f.rule == "trojan_source" && f.line == Some(2)),
            "{r:#?}"
        );
        assert_eq!(r.stage(Stage::Rules).unwrap().status, StageStatus::Failed);
    }

    #[test]
    fn names_cover_the_escaped_ranges() {
        for c in [
            '\u{202A}',
            '\u{202E}',
            '\u{2066}',
            '\u{2069}',
            '\u{200B}',
            '\u{200F}',
            '\u{FEFF}',
            '\u{2028}',
            '\u{2029}',
            '\u{E0041}',
        ] {
            assert!(hidden_name(c).is_some(), "{c:?}");
        }
        for c in ['\0', '\u{1b}', '\u{7f}', '\u{80}', '\u{9f}'] {
            assert!(control_name(c).is_some(), "{c:?}");
        }
        for c in ['a', 'ש', ' ', '\u{A0}', '\u{2027}', '\u{202F}', '\u{2065}'] {
            assert!(
                hidden_name(c).is_none() && control_name(c).is_none(),
                "{c:?}"
            );
        }
    }
}

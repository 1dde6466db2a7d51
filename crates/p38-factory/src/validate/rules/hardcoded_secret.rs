//! ## What it does
//! Flags string literals that hold a credential:
//! - known key formats: Anthropic (`sk-ant-…`), OpenAI (`sk-…`, `sk-proj-…`),
//!   AWS access key ids (`AKIA` + 16), GitHub (`ghp_…`, `github_pat_…`),
//!   Slack (`xoxb-…`), Telegram bot tokens (`123456789:` + 35), Google API
//!   keys (`AIza…`) and PEM private keys;
//! - high-entropy tokens: the literal is split on whitespace and URL and
//!   format punctuation (`/?&=:{}`…), and a piece of 20 or more characters
//!   that mixes letters and digits is flagged when its Shannon entropy is at
//!   least 4.0 bits per character (3.0 for pure hex of 32 or more). Splitting
//!   keeps URLs, paths, format strings and identifiers like
//!   `price_threshold_2` from counting, while an `apikey=…` inside a URL is
//!   still found. UUIDs are skipped: they are identifiers, not secrets. A
//!   base64 secret with many `/` may be cut into short pieces and missed; the
//!   key formats above catch the common providers regardless.
//!
//! The finding never repeats the secret: at most its first four characters.
//! [`mask_secrets`] applies the same detection to any text (code, a model's
//! raw answer) and replaces each secret found by its first four characters
//! and `[masked]`, so the iterations a generation keeps hold the finding but
//! not the secret.
//!
//! ## Why is this bad?
//! Code is stored, versioned, shown to approvers and sent to the model for
//! repair; a key in it leaks to all of them. Agents read keys at run time
//! from `ctx.secrets["NAME"]`, for names declared in the agent's `secrets`.
//!
//! ## Example
//! ```python
//! TOKEN = "123456789:AAE..."          # use ctx.secrets["TELEGRAM_BOT_TOKEN"]
//! ```

use regex::Regex;

use super::{Rule, RuleContext, line, nodes, text};
use crate::validate::{Finding, Stage};

/// Shortest token checked for entropy.
const MIN_LEN: usize = 20;
/// Entropy threshold in bits per character for mixed tokens.
const ENTROPY: f64 = 4.0;
/// Entropy threshold for pure-hex tokens (whose maximum is 4.0).
const HEX_ENTROPY: f64 = 3.0;

/// See the module documentation.
pub struct HardcodedSecret {
    formats: Vec<(&'static str, Regex)>,
    uuid: Regex,
}

impl std::fmt::Debug for HardcodedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HardcodedSecret")
    }
}

impl Default for HardcodedSecret {
    fn default() -> Self {
        // These patterns are constants checked by the tests below, so the
        // unwraps cannot fail at run time.
        let re = |p: &str| Regex::new(p).expect("valid built-in regex");
        HardcodedSecret {
            formats: vec![
                ("an Anthropic API key", re(r"sk-ant-[A-Za-z0-9_\-]{20,}")),
                (
                    "an OpenAI API key",
                    re(r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"),
                ),
                ("an AWS access key id", re(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
                (
                    "a GitHub token",
                    re(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
                ),
                ("a Slack token", re(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}")),
                (
                    "a Telegram bot token",
                    re(r"(?:^|[^0-9])[0-9]{8,10}:[A-Za-z0-9_\-]{35}(?:$|[^A-Za-z0-9_\-])"),
                ),
                ("a Google API key", re(r"AIza[0-9A-Za-z_\-]{35}")),
                ("a private key", re(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
            ],
            uuid: re(
                r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
            ),
        }
    }
}

/// Where a literal is split into the tokens checked for entropy.
fn is_separator(c: char) -> bool {
    c.is_whitespace() || "/?&=:;,\"'()[]{}<>@#%|\\!*^$`".contains(c)
}

/// Shannon entropy of `s` in bits per character.
pub fn shannon_entropy(s: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    let mut n = 0usize;
    for c in s.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    counts
        .values()
        .map(|&k| {
            let p = k as f64 / n as f64;
            -p * p.log2()
        })
        .sum()
}

/// The detector [`mask_secrets`] uses, compiled once: a constant set of
/// patterns, shared by every caller.
static MASKER: std::sync::LazyLock<HardcodedSecret> =
    std::sync::LazyLock::new(HardcodedSecret::default);

/// Replaces every secret [`HardcodedSecret`] would flag in `text` by its
/// first four characters and `[masked]`; text without one comes back as it
/// is.
pub fn mask_secrets(text: &str) -> String {
    let spans = MASKER.secret_spans(text);
    if spans.is_empty() {
        return text.to_string();
    }
    // Overlapping spans (a key format inside a random token) become one.
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in merged {
        out.push_str(&text[at..start]);
        let shown: String = text[start..end].chars().take(4).collect();
        out.push_str(&shown);
        out.push_str("[masked]");
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

impl HardcodedSecret {
    /// Byte ranges of the secrets in `text`, sorted, that [`Self::verdict`]
    /// would flag: every match of a key format, and every high-entropy
    /// token.
    fn secret_spans(&self, text: &str) -> Vec<(usize, usize)> {
        let mut spans = Vec::new();
        for (_, re) in &self.formats {
            for m in re.find_iter(text) {
                // Trim what the pattern matched around the key (the
                // Telegram pattern's neighbouring characters).
                let s = m.as_str();
                let lead = s.len()
                    - s.trim_start_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-')
                        .len();
                let trail = s.len()
                    - s.trim_end_matches(|c: char| {
                        !c.is_ascii_alphanumeric() && c != '-' && c != '_'
                    })
                    .len();
                spans.push((m.start() + lead, m.end() - trail));
            }
        }
        let mut start = 0;
        for (i, c) in text
            .char_indices()
            .chain(std::iter::once((text.len(), ' ')))
        {
            if is_separator(c) {
                let token = &text[start..i];
                if self.random_token(token) {
                    spans.push((start, i));
                }
                start = i + c.len_utf8();
            }
        }
        spans.sort_unstable();
        spans
    }

    /// A token long and random enough to be a secret.
    fn random_token(&self, token: &str) -> bool {
        if token.chars().count() < MIN_LEN || self.uuid.is_match(token) {
            return false;
        }
        let has_digit = token.chars().any(|c| c.is_ascii_digit());
        let has_alpha = token.chars().any(|c| c.is_ascii_alphabetic());
        if !has_digit || !has_alpha {
            return false;
        }
        let hex = token.chars().all(|c| c.is_ascii_hexdigit());
        let h = shannon_entropy(token);
        (hex && token.len() >= 32 && h >= HEX_ENTROPY) || (!hex && h >= ENTROPY)
    }

    /// Why `content` looks like a secret, if it does.
    fn verdict(&self, content: &str) -> Option<String> {
        for (what, re) in &self.formats {
            if let Some(m) = re.find(content) {
                let found = m
                    .as_str()
                    .trim_start_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-');
                let shown: String = found.chars().take(4).collect();
                return Some(format!("string literal holds {what} (`{shown}…`)"));
            }
        }
        for token in content.split(is_separator) {
            if self.random_token(token) {
                let h = shannon_entropy(token);
                return Some(format!(
                    "string literal holds a random-looking token of {} characters (entropy {h:.1} bits/char), probably a secret",
                    token.chars().count()
                ));
            }
        }
        None
    }
}

impl Rule for HardcodedSecret {
    fn name(&self) -> &'static str {
        "hardcoded_secret"
    }

    fn check(&self, ctx: &RuleContext<'_>) -> Vec<Finding> {
        let mut out = Vec::new();
        for node in nodes(ctx.tree).into_iter().filter(|n| n.kind() == "string") {
            let mut cursor = node.walk();
            let content: String = node
                .children(&mut cursor)
                .filter(|c| c.kind() == "string_content")
                .map(|c| text(&c, ctx.source))
                .collect();
            if let Some(why) = self.verdict(&content) {
                out.push(Finding::error(
                    Stage::Rules,
                    line(&node),
                    self.name(),
                    format!("{why}; never hard-code keys: declare the secret (e.g. \"API_KEY\") and read ctx.secrets[\"API_KEY\"]"),
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

    #[test]
    fn flags_known_formats_and_random_tokens() {
        let keys = [
            "sk-ant-api03-Xy7pQ2rT9vW4zK8mN3bC6dF1gH5jL0sA",
            "sk-proj-abcdefghijklmnopqrstuvwx12345678",
            "AKIAIOSFODNN7EXAMPLE",
            "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
            "xoxb-123456789012-abcdefghij",
            "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawA",
            "https://api.example.com/v1/quote?symbol=TSLA&apikey=Q9x7Lm2Pz4Rt8Kw1Vb6Nc3",
            "7f9c2ba4e88f827d616045507605853ed73b8093f6efbc88",
        ];
        for key in keys {
            let code = format!("def run(ctx):\n    token = \"{key}\"\n    return token\n");
            let f = check_sample(&HardcodedSecret::default(), &code, false);
            assert_eq!(f.len(), 1, "{key}");
            assert_eq!(f[0].line, Some(2));
            assert!(
                !f[0].message.contains(&key[5..]),
                "the finding repeats the secret"
            );
        }
    }

    #[test]
    fn masks_every_secret_it_would_flag_and_nothing_else() {
        let keys = [
            "sk-ant-api03-Xy7pQ2rT9vW4zK8mN3bC6dF1gH5jL0sA",
            "AKIAIOSFODNN7EXAMPLE",
            "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawA",
            "Q9x7Lm2Pz4Rt8Kw1Vb6Nc3",
        ];
        for key in keys {
            let code = format!(
                "def run(ctx):\n    url = \"https://x.example/?apikey={key}\"\n    return url\n"
            );
            let masked = mask_secrets(&code);
            assert!(!masked.contains(&key[4..]), "{masked}");
            assert!(masked.contains("[masked]"), "{masked}");
            assert!(masked.starts_with("def run(ctx):\n    url = \"https://x.example/?apikey="));
            // The same key inside a JSON answer (escaped quotes, \n).
            let json = serde_json::json!({ "code": code }).to_string();
            assert!(!mask_secrets(&json).contains(&key[4..]), "{json}");
        }
        let plain = "URL = \"https://query1.finance.yahoo.com/v8/finance/chart/{symbol}?interval=1d\"\nname = \"price_threshold_percent_2\"\n";
        assert_eq!(mask_secrets(plain), plain);
    }

    #[test]
    fn passes_ordinary_strings() {
        let code = r#""""Watch a stock."""

URL = "https://query1.finance.yahoo.com/v8/finance/chart/{symbol}?interval=1d&range=5d"
FMT = "%Y-%m-%dT%H:%M:%S"


def run(ctx):
    """Run once."""
    key = ctx.secrets["TELEGRAM_BOT_TOKEN"]
    name = "price_threshold_percent_2"
    ident = "123e4567-e89b-12d3-a456-426614174000"
    msg = f"Tesla rose {ctx.state.get('pct', 0):.1f}% to {name}"
    return [key, URL, FMT, ident, msg, "/var/lib/project38/agents/tesla-watch/cache.json"]
"#;
        let f = check_sample(&HardcodedSecret::default(), code, false);
        assert!(f.is_empty(), "{f:#?}");
    }
}

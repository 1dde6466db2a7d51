//! Masking: every secret value an agent was given is replaced by `***` in
//! whatever it produced, in the forms a value commonly takes on its way
//! out: as is, each line of a multi-line value, base64 (standard and URL
//! alphabet, at each of the three byte offsets, so a value embedded in a
//! longer encoded string is caught), hex, URL-encoded, JSON-escaped and
//! XML-escaped. One Aho-Corasick automaton finds all of them in one pass.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

use crate::{MIN_SECRET_LEN, SecretValue};

/// What a masked value becomes.
pub const MASK: &str = "***";

/// Replaces known secret values in text.
#[derive(Clone, Default)]
pub struct Masker {
    automaton: Option<AhoCorasick>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Masker([REDACTED])")
    }
}

impl Masker {
    /// Builds a masker for these values.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a SecretValue>) -> Masker {
        let mut patterns: Vec<String> = Vec::new();
        for v in values {
            variants(v.expose(), &mut patterns);
        }
        patterns.retain(|p| p.chars().count() >= MIN_SECRET_LEN);
        patterns.sort();
        patterns.dedup();
        if patterns.is_empty() {
            return Masker::default();
        }
        // Leftmost-longest: where a value and one of its lines both match,
        // the whole value is replaced.
        let automaton = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .ok();
        Masker { automaton }
    }

    /// Whether there is anything to mask.
    pub fn is_empty(&self) -> bool {
        self.automaton.is_none()
    }

    /// The text with every occurrence replaced by [`MASK`].
    pub fn mask(&self, text: &str) -> String {
        match &self.automaton {
            None => text.to_string(),
            Some(ac) => {
                let mut out = String::with_capacity(text.len());
                ac.replace_all_with(text, &mut out, |_, _, dst| {
                    dst.push_str(MASK);
                    true
                });
                out
            }
        }
    }

    /// Masks every string inside a JSON value, keys included.
    pub fn mask_json(&self, v: &serde_json_like::Value) -> serde_json_like::Value {
        if self.is_empty() {
            return v.clone();
        }
        match v {
            serde_json_like::Value::String(s) => serde_json_like::Value::String(self.mask(s)),
            serde_json_like::Value::Array(a) => {
                serde_json_like::Value::Array(a.iter().map(|x| self.mask_json(x)).collect())
            }
            serde_json_like::Value::Object(o) => serde_json_like::Value::Object(
                o.iter()
                    .map(|(k, x)| (self.mask(k), self.mask_json(x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// Re-export so callers need no direct serde_json dependency for masking.
pub mod serde_json_like {
    pub use serde_json::Value;
}

fn variants(value: &str, out: &mut Vec<String>) {
    let push_all = |v: &str, out: &mut Vec<String>| {
        out.push(v.to_string());
        out.push(hex::encode(v.as_bytes()));
        out.push(hex::encode_upper(v.as_bytes()));
        out.push(url_encode(v));
        out.push(json_escape(v));
        out.push(xml_escape(v));
        for offset in 0..3 {
            for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
                if let Some(b) = base64_core(engine, v.as_bytes(), offset) {
                    out.push(b);
                }
            }
        }
    };
    push_all(value, out);
    if value.contains('\n') {
        for line in value.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
            push_all(line, out);
        }
    }
}

/// The base64 characters that depend only on `v` when `v` starts `offset`
/// bytes into a longer encoded buffer. Characters at either end mix bits of
/// the neighbouring bytes and are left out.
fn base64_core(engine: &base64::engine::GeneralPurpose, v: &[u8], offset: usize) -> Option<String> {
    let mut buf = vec![0u8; offset];
    buf.extend_from_slice(v);
    let enc = engine.encode(&buf);
    let start = (offset * 8).div_ceil(6);
    let end = (buf.len() * 8) / 6;
    (end > start + 3)
        .then(|| enc.get(start..end).map(str::to_string))
        .flatten()
}

fn url_encode(v: &str) -> String {
    let mut s = String::with_capacity(v.len() * 3);
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

fn json_escape(v: &str) -> String {
    let quoted = serde_json::to_string(v).unwrap_or_default();
    quoted.trim_matches('"').to_string()
}

fn xml_escape(v: &str) -> String {
    v.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    fn masker(v: &str) -> Masker {
        Masker::new([&SecretValue::new(v)])
    }

    #[test]
    fn exact_and_encoded_forms() {
        let secret = "sk-canary-5f3a/9+&x\"y";
        let m = masker(secret);
        for form in [
            secret.to_string(),
            hex::encode(secret),
            url_encode(secret),
            json_escape(secret),
            xml_escape(secret),
            STANDARD.encode(secret),
        ] {
            let text = format!("before {form} after");
            let masked = m.mask(&text);
            assert!(!masked.contains(&form), "{form} survived: {masked}");
            assert!(masked.starts_with("before ") && masked.ends_with(" after"));
        }
    }

    #[test]
    fn base64_of_a_value_embedded_mid_string_at_every_offset() {
        let secret = "tg-bot-token-123456:ABCdef";
        let m = masker(secret);
        for prefix in ["", "a", "ab", "abc", "abcd"] {
            let enc = STANDARD.encode(format!("{prefix}{secret}!!"));
            let masked = m.mask(&enc);
            assert!(
                masked.contains(MASK),
                "offset {}: {enc} -> {masked}",
                prefix.len()
            );
            // What is left cannot be decoded back to the secret.
            assert!(!masked.contains(&STANDARD_NO_PAD.encode(secret)[2..20]));
        }
    }

    #[test]
    fn multi_line_values_mask_each_line() {
        let m = masker("-----BEGIN KEY-----\nMIIEvQIBADANBg\n-----END KEY-----");
        let out = m.mask("line: MIIEvQIBADANBg");
        assert_eq!(out, "line: ***");
    }

    #[test]
    fn json_values_are_masked_deeply() {
        let m = masker("hunter2hunter2");
        let v = serde_json::json!({"a": ["x hunter2hunter2 y"], "hunter2hunter2": 1});
        let out = m.mask_json(&v).to_string();
        assert!(!out.contains("hunter2hunter2"), "{out}");
    }

    #[test]
    fn no_secrets_means_no_change() {
        let m = Masker::new([]);
        assert!(m.is_empty());
        assert_eq!(m.mask("abc"), "abc");
    }
}

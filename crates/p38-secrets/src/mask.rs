//! Masking: every secret value an agent was given is replaced by `***` in
//! whatever it produced, in the forms a value commonly takes on its way
//! out: as is, each line of a multi-line value, base64 (standard and URL
//! alphabet, at each of the three byte offsets, so a value embedded in a
//! longer encoded string is caught), hex, URL-encoded (upper- and lower-case
//! hex, and form-encoded), JSON-escaped, XML-escaped, quote-escaped the ways
//! shells and command lines do, and stripped of surrounding double quotes.
//! One Aho-Corasick automaton finds all of them in one pass.
//!
//! [`StreamMasker`] masks output that arrives in pieces, holding back just
//! enough at the end of each piece that a value split across two pieces is
//! still caught.

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
    /// The byte length of the longest pattern.
    max_len: usize,
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
        let max_len = patterns.iter().map(String::len).max().unwrap_or(0);
        let automaton = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .ok();
        Masker { automaton, max_len }
    }

    /// The text of a capture that was cut off, masked: whole values are
    /// masked first, then the last bytes, where a value may have been cut
    /// in two, are dropped, so no fragment of a value survives at the cut.
    pub fn mask_cut(&self, text: &str) -> String {
        let masked = self.mask(text);
        let mut end = masked.len().saturating_sub(self.max_len.saturating_sub(1));
        while !masked.is_char_boundary(end) {
            end -= 1;
        }
        masked[..end].to_string()
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
            // A numeric secret (a PIN, an account number) returned as a
            // number would slip past string masking.
            serde_json_like::Value::Number(n) => {
                let text = n.to_string();
                let masked = self.mask(&text);
                if masked == text {
                    v.clone()
                } else {
                    serde_json_like::Value::String(masked)
                }
            }
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

/// Masks text that arrives in pieces (a process's output read chunk by
/// chunk). Each [`push`](StreamMasker::push) returns what is safe to emit
/// now; at most (longest pattern - 1) bytes are held back, in case they
/// start a value whose rest is in the next piece. [`finish`] returns the
/// rest. The concatenated output equals [`Masker::mask`] of the
/// concatenated input.
///
/// [`finish`]: StreamMasker::finish
#[derive(Debug)]
pub struct StreamMasker {
    masker: Masker,
    pending: String,
}

impl StreamMasker {
    /// A stream masker for the values of `masker`.
    pub fn new(masker: Masker) -> Self {
        StreamMasker {
            masker,
            pending: String::new(),
        }
    }

    /// How many bytes are held back now.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Takes the next piece and returns the masked text that can be
    /// emitted now.
    pub fn push(&mut self, chunk: &str) -> String {
        let Some(ac) = &self.masker.automaton else {
            return chunk.to_string();
        };
        self.pending.push_str(chunk);
        let buf = &self.pending;
        // A match starting before `limit` lies wholly inside `buf` (no
        // pattern is longer than max_len); one starting later might go on
        // in the next piece, so everything from `limit` waits. Rounding
        // `limit` up to a character boundary is safe: matches start on
        // boundaries, so none starts inside the character it skips.
        let mut limit = buf
            .len()
            .saturating_sub(self.masker.max_len.saturating_sub(1));
        while !buf.is_char_boundary(limit) {
            limit += 1;
        }
        let mut out = String::with_capacity(buf.len());
        let mut last = 0;
        for m in ac.find_iter(buf.as_str()) {
            if m.start() >= limit {
                break;
            }
            out.push_str(&buf[last..m.start()]);
            out.push_str(MASK);
            last = m.end();
        }
        let keep_from = last.max(limit);
        out.push_str(&buf[last..keep_from]);
        self.pending.drain(..keep_from);
        out
    }

    /// Masks and returns whatever is held back; the masker can then take a
    /// new stream.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        self.masker.mask(&rest)
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
        out.push(url_encode(v).replace("%20", "+"));
        out.push(url_encode_lower(v));
        out.push(json_escape(v));
        out.push(xml_escape(v));
        // Command-line and quoting escapes (as GitHub's runner masks them).
        out.push(v.replace('"', "\\\""));
        out.push(v.replace('\'', "''"));
        out.push(v.replace('\'', "\\'"));
        out.push(v.replace('\'', "'\\''"));
        if let Some(inner) = v.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
            out.push(inner.to_string());
        }
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

fn url_encode_lower(v: &str) -> String {
    let mut s = String::with_capacity(v.len() * 3);
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02x}"));
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
    fn numbers_and_cut_captures_are_masked() {
        let m = masker("7391048265");
        let v = serde_json::json!({"pin": 7391048265u64, "other": 12});
        let out = m.mask_json(&v);
        assert_eq!(out["pin"], "***");
        assert_eq!(out["other"], 12);
        let cut = format!("log 7391048265 and then {} 73910", "x".repeat(40));
        let out = m.mask_cut(&cut);
        assert!(out.starts_with("log *** and then"), "{out}");
        assert!(!out.contains("73910"), "{out}");
    }

    #[test]
    fn no_secrets_means_no_change() {
        let m = Masker::new([]);
        assert!(m.is_empty());
        assert_eq!(m.mask("abc"), "abc");
    }

    #[test]
    fn runner_style_escapes_are_masked() {
        let secret = "p@ss w'o\"rd-42";
        let m = masker(secret);
        for form in [
            secret.replace('"', "\\\""),
            secret.replace('\'', "''"),
            secret.replace('\'', "'\\''"),
            url_encode_lower(secret),
            url_encode(secret).replace("%20", "+"),
        ] {
            let masked = m.mask(&format!("x {form} y"));
            assert_eq!(masked, "x *** y", "{form}");
        }
        let quoted = masker("\"quoted-secret\"");
        assert_eq!(quoted.mask("v=quoted-secret"), "v=***");
    }

    #[test]
    fn stream_masker_catches_a_value_split_at_every_position() {
        let secret = "sk-live-0123456789abcdef";
        let m = masker(secret);
        let text = format!("start {secret} middle {secret}end");
        let want = m.mask(&text);
        assert_eq!(want, "start *** middle ***end");
        for i in 0..=text.len() {
            for j in i..=text.len() {
                let mut s = StreamMasker::new(m.clone());
                let mut out = s.push(&text[..i]);
                out += &s.push(&text[i..j]);
                out += &s.push(&text[j..]);
                out += &s.finish();
                assert_eq!(out, want, "split at {i},{j}");
            }
        }
    }

    #[test]
    fn stream_masker_byte_by_byte_and_holds_back_little() {
        let secret = "tok\u{e9}n-\u{1F600}-secret";
        let m = masker(secret);
        let longest = m.max_len;
        let text = format!("\u{e9}\u{e9} a {secret} b {} c", hex::encode(secret));
        let want = m.mask(&text);
        let mut s = StreamMasker::new(m);
        let mut out = String::new();
        for c in text.chars() {
            out += &s.push(c.encode_utf8(&mut [0; 4]));
            assert!(s.pending_len() < longest, "held {}", s.pending_len());
            assert!(!out.contains(secret));
        }
        out += &s.finish();
        assert_eq!(out, want);
        assert!(!out.contains(secret));
    }

    #[test]
    fn stream_masker_without_secrets_passes_through() {
        let mut s = StreamMasker::new(Masker::new([]));
        assert_eq!(s.push("abc"), "abc");
        assert_eq!(s.finish(), "");
    }
}

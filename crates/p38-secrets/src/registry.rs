//! Every secret value this process has resolved, so that its own log
//! output can be masked too: the tracing writer passes each line through
//! [`SeenSecrets::mask`] before it reaches stderr.

use std::io::Write;
use std::sync::{Arc, RwLock};

use crate::{Masker, SecretValue};

/// Values seen so far and a masker over them.
#[derive(Clone, Default)]
pub struct SeenSecrets {
    inner: Arc<RwLock<(Vec<SecretValue>, Masker)>>,
}

impl std::fmt::Debug for SeenSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SeenSecrets([REDACTED])")
    }
}

impl SeenSecrets {
    /// Remembers values (new ones rebuild the masker).
    pub fn add<'a>(&self, values: impl IntoIterator<Item = &'a SecretValue>) {
        let mut g = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let mut changed = false;
        for v in values {
            if !g.0.iter().any(|k| k.expose() == v.expose()) {
                g.0.push(v.clone());
                changed = true;
            }
        }
        if changed {
            g.1 = Masker::new(g.0.iter());
        }
    }

    /// The text with every remembered value masked.
    pub fn mask(&self, text: &str) -> String {
        let g = self.inner.read().unwrap_or_else(|p| p.into_inner());
        g.1.mask(text)
    }

    /// A writer for log output that masks what passes through it.
    pub fn writer<W: Write>(&self, inner: W) -> MaskingWriter<W> {
        MaskingWriter {
            seen: self.clone(),
            inner,
            buf: Vec::new(),
        }
    }
}

/// Buffers log output to whole lines and masks each before writing it.
pub struct MaskingWriter<W: Write> {
    seen: SeenSecrets,
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> Write for MaskingWriter<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line);
            self.inner.write_all(self.seen.mask(&text).as_bytes())?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let text = String::from_utf8_lossy(&self.buf).to_string();
            self.buf.clear();
            self.inner.write_all(self.seen.mask(&text).as_bytes())?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for MaskingWriter<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_are_masked() {
        let seen = SeenSecrets::default();
        seen.add([&SecretValue::new("canary-log-value")]);
        let mut out = Vec::new();
        {
            let mut w = seen.writer(&mut out);
            w.write_all(b"error: token canary-log").unwrap();
            w.write_all(b"-value rejected\n").unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "error: token *** rejected\n");
    }
}

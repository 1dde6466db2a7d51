//! The HTTP plumbing the providers share: send a JSON body, time it, read the
//! answer, and turn transport failures and `Retry-After` headers into
//! [`ProviderError`] values with the key scrubbed out.

use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;

use super::{ApiKey, ProviderError};

/// Longest error body kept in [`ProviderError::Server`] and friends.
const MAX_ERROR_BODY: usize = 2000;

/// A non-2xx answer, handed to the provider's own classifier.
pub(crate) struct ErrorAnswer {
    /// HTTP status.
    pub status: u16,
    /// The `Retry-After` hint, if the headers carried one.
    pub retry_after: Option<Duration>,
    /// The body, already scrubbed of the key.
    pub body: String,
}

/// A 2xx answer.
pub(crate) struct OkAnswer {
    /// The body, already scrubbed of the key.
    pub body: String,
    /// Time from sending to the last byte.
    pub latency: Duration,
}

/// Sends `req` and reads the whole body; `classify` turns a non-2xx answer
/// into the provider's error.
pub(crate) async fn send(
    req: reqwest::RequestBuilder,
    key: &ApiKey,
    classify: impl FnOnce(ErrorAnswer) -> ProviderError,
) -> Result<OkAnswer, ProviderError> {
    let started = Instant::now();
    let resp = req.send().await.map_err(|e| transport_error(&e, key))?;
    let status = resp.status().as_u16();
    let retry_after = retry_after(resp.headers());
    let bytes = resp.bytes().await.map_err(|e| transport_error(&e, key))?;
    let latency = started.elapsed();
    let body = key.scrub(&String::from_utf8_lossy(&bytes));
    if (200..300).contains(&status) {
        Ok(OkAnswer { body, latency })
    } else {
        Err(classify(ErrorAnswer {
            status,
            retry_after,
            body,
        }))
    }
}

/// Maps a reqwest failure; the URL is dropped from the text (Gemini-style
/// query keys must never leak, even though we send keys as headers).
fn transport_error(e: &reqwest::Error, key: &ApiKey) -> ProviderError {
    if e.is_timeout() {
        return ProviderError::Timeout;
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    ProviderError::Network(key.scrub(&text))
}

/// Reads `retry-after-ms` (OpenAI) or `retry-after` (seconds or an HTTP date).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) = header_str(headers, "retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return secs(ms / 1000.0);
    }
    let v = header_str(headers, "retry-after")?;
    if let Ok(s) = v.parse::<f64>() {
        return secs(s);
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let wait = when.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

fn secs(s: f64) -> Option<Duration> {
    (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s.min(86_400.0)))
}

/// Shortens an error body for storage.
pub(crate) fn shorten(body: &str) -> String {
    if body.len() <= MAX_ERROR_BODY {
        return body.to_string();
    }
    let mut end = MAX_ERROR_BODY;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...[truncated]", &body[..end])
}

/// Parses a 2xx body as JSON, keeping the raw text on failure.
pub(crate) fn parse_json(body: &str) -> Result<serde_json::Value, ProviderError> {
    serde_json::from_str(body).map_err(|e| ProviderError::Malformed {
        raw: body.to_string(),
        why: format!("not JSON: {e}"),
    })
}

/// A malformed-answer error naming the missing piece.
pub(crate) fn malformed(body: &str, why: impl Into<String>) -> ProviderError {
    ProviderError::Malformed {
        raw: body.to_string(),
        why: why.into(),
    }
}

/// Reads a token count, treating a missing one as zero (some local servers
/// omit usage) but refusing a field of the wrong type.
pub(crate) fn token_count(
    v: &serde_json::Value,
    body: &str,
    path: &str,
) -> Result<u64, ProviderError> {
    match v.pointer(path) {
        None | Some(serde_json::Value::Null) => Ok(0),
        Some(n) => n
            .as_u64()
            .ok_or_else(|| malformed(body, format!("{path} is not a non-negative integer"))),
    }
}

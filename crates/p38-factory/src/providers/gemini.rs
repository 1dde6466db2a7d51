//! Google's Gemini API: `POST {base}/v1beta/models/{model}:generateContent`.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::http::{self, ErrorAnswer};
use super::{
    ApiKey, ChatRequest, ChatResponse, DEFAULT_TIMEOUT, LlmProvider, ProviderError, Role,
    StopReason, join_url,
};

/// The model asked for unless configured otherwise.
pub const DEFAULT_MODEL: &str = "gemini-2.5-flash";
/// The public endpoint.
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";

/// A client of the Gemini `generateContent` API. The key travels in the
/// `x-goog-api-key` header, never in the URL.
#[derive(Debug, Clone)]
pub struct GeminiProvider {
    client: reqwest::Client,
    key: ApiKey,
    model: String,
    base_url: String,
    timeout: Duration,
}

impl GeminiProvider {
    /// A client for `api_key` with the default model, endpoint and timeout.
    ///
    /// # Panics
    /// If the TLS backend cannot be initialised (as `reqwest::Client::new`).
    pub fn new(api_key: impl Into<String>) -> Self {
        GeminiProvider {
            client: reqwest::Client::new(),
            key: ApiKey::new(api_key),
            model: DEFAULT_MODEL.to_string(),
            base_url: DEFAULT_BASE_URL.to_string(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    super::endpoint_builders!();

    fn body(&self, req: &ChatRequest) -> Value {
        let contents: Vec<Value> = req
            .messages
            .iter()
            .map(|m| {
                let role = match m.role {
                    Role::User => "user",
                    Role::Assistant => "model",
                };
                json!({"role": role, "parts": [{"text": m.content}]})
            })
            .collect();
        let mut config = json!({"maxOutputTokens": req.max_tokens});
        if let Some(t) = req.temperature {
            config["temperature"] = json!(t);
        }
        let mut body = json!({"contents": contents, "generationConfig": config});
        if !req.system.is_empty() {
            body["systemInstruction"] = json!({"parts": [{"text": req.system}]});
        }
        body
    }
}

/// Maps a Gemini error answer:
/// `{"error":{"code":429,"message":"...","status":"RESOURCE_EXHAUSTED","details":[...]}}`.
fn classify(a: ErrorAnswer) -> ProviderError {
    let parsed: Option<Value> = serde_json::from_str(&a.body).ok();
    let err = parsed.as_ref().and_then(|v| v.get("error"));
    let status = err
        .and_then(|e| e.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let message = err
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| http::shorten(&a.body));
    let details = err
        .and_then(|e| e.get("details"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // A bad key is a 400 INVALID_ARGUMENT whose ErrorInfo says API_KEY_INVALID.
    let key_invalid = details
        .iter()
        .any(|d| d.get("reason").and_then(Value::as_str) == Some("API_KEY_INVALID"));
    match (a.status, status) {
        (401 | 403, _) | (_, "UNAUTHENTICATED" | "PERMISSION_DENIED") => {
            ProviderError::Auth(message)
        }
        _ if key_invalid => ProviderError::Auth(message),
        (429, _) | (_, "RESOURCE_EXHAUSTED") => ProviderError::RateLimited {
            retry_after: a.retry_after.or_else(|| retry_info(&details)),
        },
        (503, _) | (_, "UNAVAILABLE") => ProviderError::Overloaded(message),
        (500..=599, _) => ProviderError::Server {
            status: a.status,
            body: http::shorten(&a.body),
        },
        (s, _) => ProviderError::Request(format!("HTTP {s} {status}: {message}")),
    }
}

/// Reads `google.rpc.RetryInfo.retryDelay` ("37s" or "1.5s").
fn retry_info(details: &[Value]) -> Option<Duration> {
    details.iter().find_map(|d| {
        let s = d.get("retryDelay")?.as_str()?.strip_suffix('s')?;
        let secs: f64 = s.parse().ok()?;
        (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
    })
}

#[async_trait]
impl LlmProvider for GeminiProvider {
    fn name(&self) -> &str {
        "gemini"
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn complete(&self, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let path = format!("/v1beta/models/{}:generateContent", self.model);
        let builder = self
            .client
            .post(join_url(&self.base_url, &path))
            .header("x-goog-api-key", self.key.expose())
            .timeout(self.timeout)
            .json(&self.body(req));
        let ok = http::send(builder, &self.key, classify).await?;
        let v = http::parse_json(&ok.body)?;
        let input_tokens = http::token_count(&v, &ok.body, "/usageMetadata/promptTokenCount")?;
        // Gemini 2.5 thinks before it answers; the thinking is billed at the
        // output rate but counted apart from the answer's tokens.
        let output_tokens = http::token_count(&v, &ok.body, "/usageMetadata/candidatesTokenCount")?
            + http::token_count(&v, &ok.body, "/usageMetadata/thoughtsTokenCount")?;
        let model = v
            .get("modelVersion")
            .and_then(Value::as_str)
            .unwrap_or(&self.model)
            .to_string();
        let respond = |text: String, stop| ChatResponse {
            text,
            model: model.clone(),
            input_tokens,
            output_tokens,
            latency: ok.latency,
            stop,
        };
        let Some(candidate) = v.pointer("/candidates/0") else {
            // No candidate at all: the prompt itself was blocked (its
            // tokens were still counted), or the answer is not Gemini's.
            return match v
                .pointer("/promptFeedback/blockReason")
                .and_then(Value::as_str)
            {
                Some(reason) => {
                    tracing::warn!(reason, "Gemini blocked the prompt");
                    Ok(respond(String::new(), StopReason::Blocked))
                }
                None => Err(http::malformed(&ok.body, "no candidates[0]")),
            };
        };
        let stop = finish_reason(candidate.get("finishReason").and_then(Value::as_str));
        // Thought summaries (`"thought": true`) are not part of the answer.
        let text: String = candidate
            .pointer("/content/parts")
            .and_then(Value::as_array)
            .map(|parts| {
                parts
                    .iter()
                    .filter(|p| p.get("thought").and_then(Value::as_bool) != Some(true))
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        // `MAX_TOKENS` with no parts is an answer cut off while the model
        // was still thinking: no text, but every token was spent.
        if text.is_empty() && stop.is_complete() {
            return Err(http::malformed(&ok.body, "no text part in candidates[0]"));
        }
        Ok(respond(text, stop))
    }
}

/// Reads `finishReason`: `STOP` is a whole answer, `MAX_TOKENS` a cut-off
/// one, and the safety family (`SAFETY`, `RECITATION`, `BLOCKLIST`,
/// `PROHIBITED_CONTENT`, `SPII`, `IMAGE_SAFETY`, ...) a blocked one.
fn finish_reason(reason: Option<&str>) -> StopReason {
    match reason {
        Some("MAX_TOKENS") => StopReason::Truncated,
        Some(
            "SAFETY"
            | "RECITATION"
            | "BLOCKLIST"
            | "PROHIBITED_CONTENT"
            | "SPII"
            | "IMAGE_SAFETY"
            | "IMAGE_PROHIBITED_CONTENT"
            | "IMAGE_RECITATION",
        ) => StopReason::Blocked,
        _ => StopReason::Complete,
    }
}

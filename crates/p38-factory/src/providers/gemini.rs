//! Google's Gemini API: `POST {base}/v1beta/models/{model}:generateContent`.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::http::{self, ErrorAnswer};
use super::{
    ApiKey, ChatRequest, ChatResponse, DEFAULT_TIMEOUT, LlmProvider, ProviderError, Role, join_url,
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
        let Some(parts) = v
            .pointer("/candidates/0/content/parts")
            .and_then(Value::as_array)
        else {
            let why = match v
                .pointer("/promptFeedback/blockReason")
                .and_then(Value::as_str)
            {
                Some(reason) => format!("no candidates: the prompt was blocked ({reason})"),
                None => "no candidates[0].content.parts array".to_string(),
            };
            return Err(http::malformed(&ok.body, why));
        };
        let text: String = parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect();
        if text.is_empty() {
            return Err(http::malformed(&ok.body, "no text part in candidates[0]"));
        }
        Ok(ChatResponse {
            text,
            model: v
                .get("modelVersion")
                .and_then(Value::as_str)
                .unwrap_or(&self.model)
                .to_string(),
            input_tokens: http::token_count(&v, &ok.body, "/usageMetadata/promptTokenCount")?,
            output_tokens: http::token_count(&v, &ok.body, "/usageMetadata/candidatesTokenCount")?,
            latency: ok.latency,
        })
    }
}

//! Anthropic's Messages API: `POST {base}/v1/messages`.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::http::{self, ErrorAnswer};
use super::{
    ApiKey, ChatRequest, ChatResponse, DEFAULT_TIMEOUT, LlmProvider, ProviderError, StopReason,
    join_url,
};

/// The model asked for unless configured otherwise.
pub const DEFAULT_MODEL: &str = "claude-sonnet-4-5";
/// The public endpoint.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The API version header value this client speaks.
pub const API_VERSION: &str = "2023-06-01";

/// A client of Anthropic's Messages API.
#[derive(Debug, Clone)]
pub struct AnthropicProvider {
    client: reqwest::Client,
    key: ApiKey,
    model: String,
    base_url: String,
    timeout: Duration,
}

impl AnthropicProvider {
    /// A client for `api_key` with the default model, endpoint and timeout.
    ///
    /// # Panics
    /// If the TLS backend cannot be initialised (as `reqwest::Client::new`).
    pub fn new(api_key: impl Into<String>) -> Self {
        AnthropicProvider {
            client: reqwest::Client::new(),
            key: ApiKey::new(api_key),
            model: DEFAULT_MODEL.to_string(),
            base_url: DEFAULT_BASE_URL.to_string(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    super::endpoint_builders!();

    fn body(&self, req: &ChatRequest) -> Value {
        let messages: Vec<Value> = req
            .messages
            .iter()
            .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
            .collect();
        let mut body = json!({
            "model": self.model,
            "max_tokens": req.max_tokens,
            "system": req.system,
            "messages": messages,
        });
        if let Some(t) = req.temperature {
            body["temperature"] = json!(t);
        }
        body
    }
}

/// Maps an Anthropic error answer:
/// `{"type":"error","error":{"type":"overloaded_error","message":"..."}}`.
fn classify(a: ErrorAnswer) -> ProviderError {
    let parsed: Option<Value> = serde_json::from_str(&a.body).ok();
    let kind = parsed
        .as_ref()
        .and_then(|v| v.pointer("/error/type"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let message = parsed
        .as_ref()
        .and_then(|v| v.pointer("/error/message"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| http::shorten(&a.body));
    match (a.status, kind) {
        (_, "overloaded_error") | (529, _) => ProviderError::Overloaded(message),
        (_, "rate_limit_error") | (429, _) => ProviderError::RateLimited {
            retry_after: a.retry_after,
        },
        (_, "authentication_error" | "permission_error") | (401 | 403, _) => {
            ProviderError::Auth(message)
        }
        (500..=599, _) => ProviderError::Server {
            status: a.status,
            body: http::shorten(&a.body),
        },
        _ => ProviderError::Request(format!("HTTP {} {kind}: {message}", a.status)),
    }
}

#[async_trait]
impl LlmProvider for AnthropicProvider {
    fn name(&self) -> &str {
        "anthropic"
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn complete(&self, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let builder = self
            .client
            .post(join_url(&self.base_url, "/v1/messages"))
            .header("x-api-key", self.key.expose())
            .header("anthropic-version", API_VERSION)
            .timeout(self.timeout)
            .json(&self.body(req));
        let ok = http::send(builder, &self.key, classify).await?;
        let v = http::parse_json(&ok.body)?;
        let content = v
            .get("content")
            .and_then(Value::as_array)
            .ok_or_else(|| http::malformed(&ok.body, "no content array"))?;
        let text: String = content
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect();
        let stop = stop_reason(v.get("stop_reason").and_then(Value::as_str));
        // A refused or cut-off answer may have no text at all; it is still
        // an answer whose tokens were billed.
        if text.is_empty() && stop.is_complete() {
            return Err(http::malformed(&ok.body, "no text block in content"));
        }
        Ok(ChatResponse {
            text,
            model: v
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or(&self.model)
                .to_string(),
            input_tokens: http::token_count(&v, &ok.body, "/usage/input_tokens")?,
            output_tokens: http::token_count(&v, &ok.body, "/usage/output_tokens")?,
            latency: ok.latency,
            stop,
        })
    }
}

/// Reads `stop_reason`: `end_turn`, `stop_sequence`, `tool_use`,
/// `pause_turn`, `max_tokens`, `model_context_window_exceeded`, `refusal`.
fn stop_reason(reason: Option<&str>) -> StopReason {
    match reason {
        Some("max_tokens" | "model_context_window_exceeded") => StopReason::Truncated,
        Some("refusal") => StopReason::Refused,
        _ => StopReason::Complete,
    }
}

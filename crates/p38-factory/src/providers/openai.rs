//! OpenAI's Chat Completions API: `POST {base}/v1/chat/completions`. The
//! same client serves any OpenAI-compatible server (Ollama, llama.cpp, vLLM)
//! given its base URL; the key is then optional. The base may be given with
//! or without its `/v1` (`http://127.0.0.1:11434` or `.../v1`).
//!
//! The two differ in what they accept. OpenAI's reasoning models (the gpt-5
//! family, o1, o3, o4-mini) refuse `max_tokens` with a 400 ("Use
//! 'max_completion_tokens' instead") and refuse any `temperature` but the
//! default, while every model of the official API takes
//! `max_completion_tokens`: so the official API gets `max_completion_tokens`
//! always and `temperature` only for models that take it. Compatible servers
//! (Ollama, vLLM, llama.cpp) have long read `max_tokens`, and keep it.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::http::{self, ErrorAnswer};
use super::{
    ApiKey, ChatRequest, ChatResponse, DEFAULT_TIMEOUT, LlmProvider, ProviderError, StopReason,
    join_v1,
};

/// The model asked for unless configured otherwise.
pub const DEFAULT_MODEL: &str = "gpt-4.1";
/// The public endpoint.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com";

/// A client of the Chat Completions API.
#[derive(Debug, Clone)]
pub struct OpenAiProvider {
    client: reqwest::Client,
    key: ApiKey,
    model: String,
    base_url: String,
    timeout: Duration,
    name: String,
    /// OpenAI itself, or a compatible server: they read different fields.
    official: bool,
}

/// Whether an OpenAI model takes a `temperature` other than the default:
/// the reasoning models (o1, o3, o4-mini, ..., and the gpt-5 family except
/// the `gpt-5-chat` snapshots) answer 400 "Unsupported value: 'temperature'".
fn takes_temperature(model: &str) -> bool {
    let reasoning_o = model
        .strip_prefix('o')
        .is_some_and(|rest| rest.chars().next().is_some_and(|c| c.is_ascii_digit()));
    let gpt5 = model.starts_with("gpt-5") && !model.starts_with("gpt-5-chat");
    !(reasoning_o || gpt5)
}

impl OpenAiProvider {
    /// A client of OpenAI itself for `api_key`.
    ///
    /// # Panics
    /// If the TLS backend cannot be initialised (as `reqwest::Client::new`).
    pub fn new(api_key: impl Into<String>) -> Self {
        OpenAiProvider {
            client: reqwest::Client::new(),
            key: ApiKey::new(api_key),
            model: DEFAULT_MODEL.to_string(),
            base_url: DEFAULT_BASE_URL.to_string(),
            timeout: DEFAULT_TIMEOUT,
            name: "openai".to_string(),
            official: true,
        }
    }

    /// A client of an OpenAI-compatible server at `base_url` (for Ollama
    /// `http://127.0.0.1:11434`); `api_key` may be empty, and then no
    /// `Authorization` header is sent.
    pub fn compatible(
        base_url: impl Into<String>,
        model: impl Into<String>,
        api_key: impl Into<String>,
    ) -> Self {
        OpenAiProvider {
            name: "openai_compatible".to_string(),
            official: false,
            ..OpenAiProvider::new(api_key)
                .with_base_url(base_url)
                .with_model(model)
        }
    }

    super::endpoint_builders!();

    fn body(&self, req: &ChatRequest) -> Value {
        let mut messages = Vec::with_capacity(req.messages.len() + 1);
        if !req.system.is_empty() {
            messages.push(json!({"role": "system", "content": req.system}));
        }
        messages.extend(
            req.messages
                .iter()
                .map(|m| json!({"role": m.role.as_str(), "content": m.content})),
        );
        let mut body = json!({"model": self.model, "messages": messages});
        if self.official {
            body["max_completion_tokens"] = json!(req.max_tokens);
        } else {
            body["max_tokens"] = json!(req.max_tokens);
        }
        if let Some(t) = req.temperature
            && (!self.official || takes_temperature(&self.model))
        {
            body["temperature"] = json!(t);
        }
        body
    }
}

/// Maps an OpenAI error answer: `{"error":{"message","type","code"}}`.
fn classify(a: ErrorAnswer) -> ProviderError {
    let parsed: Option<Value> = serde_json::from_str(&a.body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.pointer(&format!("/error/{name}")))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (kind, code) = (field("type"), field("code"));
    let message = match field("message") {
        m if m.is_empty() => http::shorten(&a.body),
        m => m,
    };
    match a.status {
        401 | 403 => ProviderError::Auth(message),
        // An empty wallet is a 429 too, but waiting does not fill it.
        429 if code == "insufficient_quota" || kind == "insufficient_quota" => {
            ProviderError::Request(format!("insufficient quota: {message}"))
        }
        429 => ProviderError::RateLimited {
            retry_after: a.retry_after,
        },
        503 => ProviderError::Overloaded(message),
        500..=599 => ProviderError::Server {
            status: a.status,
            body: http::shorten(&a.body),
        },
        s => ProviderError::Request(format!("HTTP {s} {kind}: {message}")),
    }
}

#[async_trait]
impl LlmProvider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn complete(&self, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let mut builder = self
            .client
            .post(join_v1(&self.base_url, "/chat/completions"))
            .timeout(self.timeout)
            .json(&self.body(req));
        if !self.key.is_empty() {
            builder = builder.bearer_auth(self.key.expose());
        }
        let ok = http::send(builder, &self.key, classify).await?;
        let v = http::parse_json(&ok.body)?;
        let choice = v
            .pointer("/choices/0")
            .ok_or_else(|| http::malformed(&ok.body, "no choices[0]"))?;
        let refusal = choice
            .pointer("/message/refusal")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty());
        let stop = match (refusal, choice.get("finish_reason").and_then(Value::as_str)) {
            (Some(_), _) => StopReason::Refused,
            (None, Some("length")) => StopReason::Truncated,
            (None, Some("content_filter")) => StopReason::Blocked,
            _ => StopReason::Complete,
        };
        let text = match choice.pointer("/message/content").and_then(Value::as_str) {
            Some(t) => t,
            // A refusal or a filtered answer comes with `content: null`.
            None if !stop.is_complete() => refusal.unwrap_or(""),
            None => {
                return Err(http::malformed(
                    &ok.body,
                    "no choices[0].message.content string",
                ));
            }
        };
        Ok(ChatResponse {
            text: text.to_string(),
            model: v
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or(&self.model)
                .to_string(),
            input_tokens: http::token_count(&v, &ok.body, "/usage/prompt_tokens")?,
            // Reasoning tokens are part of `completion_tokens` already.
            output_tokens: http::token_count(&v, &ok.body, "/usage/completion_tokens")?,
            latency: ok.latency,
            stop,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::takes_temperature;

    #[test]
    fn reasoning_models_take_no_temperature() {
        for m in [
            "gpt-5",
            "gpt-5-mini",
            "gpt-5-nano-2025-08-07",
            "o1",
            "o3",
            "o3-mini",
            "o4-mini",
        ] {
            assert!(!takes_temperature(m), "{m}");
        }
        for m in [
            "gpt-4.1",
            "gpt-4.1-nano",
            "gpt-4o-mini",
            "gpt-5-chat-latest",
        ] {
            assert!(takes_temperature(m), "{m}");
        }
    }
}

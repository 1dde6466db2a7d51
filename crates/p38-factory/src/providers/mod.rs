//! LLM providers: one file per wire format behind the [`LlmProvider`] trait,
//! a [`RetryingProvider`] wrapper, and [`build_provider`] to pick one from a
//! [`ProviderConfig`].
//!
//! API keys are handed in as plain strings by the caller (who got them from
//! the secret resolver). A provider keeps its key in an [`ApiKey`], which
//! prints as `ApiKey(****)`, and every error text that came from the network
//! has the key scrubbed out before it is stored, so neither `Debug`, `Display`
//! nor a log line can carry it.

/// The builder methods every provider shares (each provider has `model`,
/// `base_url` and `timeout` fields): written once, expanded in each.
macro_rules! endpoint_builders {
    () => {
        /// Asks for another model.
        pub fn with_model(mut self, model: impl Into<String>) -> Self {
            self.model = model.into();
            self
        }

        /// Talks to another endpoint (a proxy, a local model server, or a
        /// loopback test server).
        pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
            self.base_url = base_url.into();
            self
        }

        /// Limits one call, body included.
        pub fn with_timeout(mut self, timeout: Duration) -> Self {
            self.timeout = timeout;
            self
        }
    };
}
pub(crate) use endpoint_builders;

mod anthropic;
mod config;
mod gemini;
mod http;
mod openai;
mod retry;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use anthropic::AnthropicProvider;
pub use config::{ProviderConfig, ProviderKind, build_provider};
pub use gemini::GeminiProvider;
pub use openai::OpenAiProvider;
pub use retry::{RetryPolicy, RetryingProvider};

/// Default time one provider call may take, body included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// A chat-style large language model.
#[async_trait]
///
/// `Debug` is required so that a built provider can be shown (in a log line,
/// a test) as what it is; every implementation keeps its key in an
/// [`ApiKey`], whose `Debug` never shows it.
pub trait LlmProvider: fmt::Debug + Send + Sync {
    /// Short provider name for logs and reports ("anthropic", "openai").
    fn name(&self) -> &str;
    /// The model this provider asks for.
    fn model(&self) -> &str;
    /// Sends one request and waits for the whole answer.
    async fn complete(&self, req: &ChatRequest) -> Result<ChatResponse, ProviderError>;
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The person (or Project38 speaking for them).
    User,
    /// The model.
    Assistant,
}

impl Role {
    /// The spelling used by the Anthropic and OpenAI wire formats.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Its author.
    pub role: Role,
    /// Its text.
    pub content: String,
}

impl ChatMessage {
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::User,
            content: content.into(),
        }
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// What is sent to a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The system prompt.
    pub system: String,
    /// The conversation, oldest first; the last one is normally the user's.
    pub messages: Vec<ChatMessage>,
    /// Upper bound on the answer's length in tokens.
    pub max_tokens: u32,
    /// Sampling temperature; `None` keeps the provider's default.
    pub temperature: Option<f32>,
}

/// What a model answered.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// The answer's text (all text parts joined).
    pub text: String,
    /// The model that answered, as the provider reports it.
    pub model: String,
    /// Prompt tokens billed.
    pub input_tokens: u64,
    /// Answer tokens billed, thinking tokens included (Gemini 2.5 reports
    /// them apart, as `thoughtsTokenCount`, and bills them as output).
    pub output_tokens: u64,
    /// Wall-clock time of the call.
    pub latency: Duration,
    /// Why the model stopped: a truncated, refused or blocked answer is not
    /// an answer to use, but its tokens were spent all the same.
    pub stop: StopReason,
}

/// Why a model stopped writing, read from the provider's `stop_reason`
/// (Anthropic), `finish_reason` (OpenAI) or `finishReason` (Gemini).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model finished its answer (or stopped at a stop sequence, or to
    /// call a tool); also any reason this client does not know.
    #[default]
    Complete,
    /// The answer hit the token limit and was cut off (Anthropic
    /// `max_tokens`, OpenAI `length`, Gemini `MAX_TOKENS`).
    Truncated,
    /// The model declined to answer (Anthropic `refusal`, an OpenAI
    /// `message.refusal`).
    Refused,
    /// The provider's safety filters blocked the answer or the prompt
    /// (OpenAI `content_filter`, Gemini `SAFETY`, `RECITATION`,
    /// `PROHIBITED_CONTENT`, a `promptFeedback.blockReason`, ...).
    Blocked,
}

impl StopReason {
    /// Whether the answer is whole and can be used.
    pub fn is_complete(self) -> bool {
        self == StopReason::Complete
    }

    /// The reason in words, for findings and errors.
    pub fn describe(self) -> &'static str {
        match self {
            StopReason::Complete => "complete",
            StopReason::Truncated => "truncated at the token limit",
            StopReason::Refused => "refused by the model",
            StopReason::Blocked => "blocked by the provider's safety filters",
        }
    }
}

/// Why a provider call failed. No variant ever holds the API key: texts that
/// came from the network are scrubbed first.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// The key was refused (401, 403, or a provider's "invalid key" answer).
    #[error("the provider refused the API key: {0}")]
    Auth(String),
    /// Too many requests (429); `retry_after` is the provider's hint.
    #[error("rate limited by the provider{}", retry_hint(.retry_after))]
    RateLimited {
        /// How long the provider asked us to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// The provider is overloaded (Anthropic 529, 503 elsewhere).
    #[error("the provider is overloaded: {0}")]
    Overloaded(String),
    /// Another 5xx answer.
    #[error("the provider failed with HTTP {status}: {body}")]
    Server {
        /// HTTP status.
        status: u16,
        /// The answer's body, shortened.
        body: String,
    },
    /// No complete answer within the time limit.
    #[error("the provider did not answer in time")]
    Timeout,
    /// A 2xx answer that is not the expected JSON; `raw` keeps its text.
    #[error("the provider's answer is malformed: {why}")]
    Malformed {
        /// The body as received.
        raw: String,
        /// What is wrong with it.
        why: String,
    },
    /// The request was refused as invalid (400, 404, 413, ...).
    #[error("the provider refused the request: {0}")]
    Request(String),
    /// The connection failed.
    #[error("network error talking to the provider: {0}")]
    Network(String),
}

fn retry_hint(d: &Option<Duration>) -> String {
    match d {
        Some(d) => format!(" (retry after {:.1}s)", d.as_secs_f64()),
        None => String::new(),
    }
}

impl ProviderError {
    /// Whether trying the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::RateLimited { .. }
                | ProviderError::Overloaded(_)
                | ProviderError::Server { .. }
                | ProviderError::Timeout
                | ProviderError::Network(_)
        )
    }

    /// The variant as a plain, serialisable kind.
    pub fn kind(&self) -> ProviderErrorKind {
        match self {
            ProviderError::Auth(_) => ProviderErrorKind::Auth,
            ProviderError::RateLimited { .. } => ProviderErrorKind::RateLimited,
            ProviderError::Overloaded(_) => ProviderErrorKind::Overloaded,
            ProviderError::Server { .. } => ProviderErrorKind::Server,
            ProviderError::Timeout => ProviderErrorKind::Timeout,
            ProviderError::Malformed { .. } => ProviderErrorKind::Malformed,
            ProviderError::Request(_) => ProviderErrorKind::Request,
            ProviderError::Network(_) => ProviderErrorKind::Network,
        }
    }
}

/// The kind of a [`ProviderError`], without its details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderErrorKind {
    /// See [`ProviderError::Auth`].
    Auth,
    /// See [`ProviderError::RateLimited`].
    RateLimited,
    /// See [`ProviderError::Overloaded`].
    Overloaded,
    /// See [`ProviderError::Server`].
    Server,
    /// See [`ProviderError::Timeout`].
    Timeout,
    /// See [`ProviderError::Malformed`].
    Malformed,
    /// See [`ProviderError::Request`].
    Request,
    /// See [`ProviderError::Network`].
    Network,
}

/// An API key that never prints. `expose` is called only where the key is
/// put into a request header.
#[derive(Clone, Default)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// The key itself, for the request header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no key was given (local OpenAI-compatible servers).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Replaces every occurrence of the key in `text` with `[REDACTED]`.
    pub fn scrub(&self, text: &str) -> String {
        if self.0.len() < 4 {
            return text.to_string();
        }
        text.replace(&self.0, "[REDACTED]")
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("ApiKey(none)")
        } else {
            f.write_str("ApiKey(****)")
        }
    }
}

/// Joins a base URL and a path without doubling the slash.
pub(crate) fn join_url(base: &str, path: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), path)
}

/// Joins a base URL and a `/v1/...` path, whether or not the base already
/// ends in `/v1` (Ollama's and vLLM's documentation, and OpenAI's own SDKs,
/// give the base as `http://host:11434/v1`): never `/v1/v1/`.
pub(crate) fn join_v1(base: &str, path_after_v1: &str) -> String {
    let base = base.trim_end_matches('/');
    match base.strip_suffix("/v1") {
        Some(b) => format!("{b}/v1{path_after_v1}"),
        None => format!("{base}/v1{path_after_v1}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_is_never_doubled() {
        for base in [
            "http://h:11434",
            "http://h:11434/",
            "http://h:11434/v1",
            "http://h:11434/v1/",
        ] {
            assert_eq!(
                join_v1(base, "/chat/completions"),
                "http://h:11434/v1/chat/completions",
                "{base}"
            );
        }
        // A proxy path before /v1 is kept.
        assert_eq!(
            join_v1("https://proxy/openai/v1", "/chat/completions"),
            "https://proxy/openai/v1/chat/completions"
        );
    }
}

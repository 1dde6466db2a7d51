//! Choosing a provider from configuration.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{
    AnthropicProvider, GeminiProvider, LlmProvider, OpenAiProvider, RetryPolicy, RetryingProvider,
};

/// Which wire format to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// Anthropic's Messages API.
    Anthropic,
    /// OpenAI's Chat Completions API.
    #[serde(rename = "openai")]
    OpenAi,
    /// Google's Gemini API.
    Gemini,
    /// Any server speaking Chat Completions (Ollama, llama.cpp, vLLM).
    #[serde(rename = "openai_compatible")]
    OpenAiCompatible,
}

/// Where the factory's model lives. `Debug` shows whether a key is set, never
/// the key; there is deliberately no `Serialize`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Wire format.
    pub kind: ProviderKind,
    /// Model name; `None` takes the kind's default.
    #[serde(default)]
    pub model: Option<String>,
    /// Endpoint; `None` takes the kind's public endpoint (for
    /// `openai_compatible`, Ollama's `http://127.0.0.1:11434`).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The API key as resolved by the caller; `None` for keyless local servers.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Time limit of one call in seconds (default 120).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Attempts per call, the first included (default 4; 1 disables retries).
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("kind", &self.kind)
            .field("model", &self.model)
            .field("base_url", &self.base_url)
            .field(
                "api_key",
                &match &self.api_key {
                    Some(k) if !k.is_empty() => "****",
                    _ => "none",
                },
            )
            .field("timeout_secs", &self.timeout_secs)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

impl ProviderConfig {
    /// A configuration of `kind` with every option at its default.
    pub fn new(kind: ProviderKind) -> Self {
        ProviderConfig {
            kind,
            model: None,
            base_url: None,
            api_key: None,
            timeout_secs: None,
            max_attempts: None,
        }
    }
}

/// Default endpoint of an OpenAI-compatible server: a local Ollama.
pub const OLLAMA_BASE_URL: &str = "http://127.0.0.1:11434";

/// Builds the provider `cfg` describes, wrapped in a [`RetryingProvider`].
///
/// # Panics
/// If the TLS backend cannot be initialised (as `reqwest::Client::new`).
pub fn build_provider(cfg: &ProviderConfig) -> Arc<dyn LlmProvider> {
    let key = cfg.api_key.clone().unwrap_or_default();
    let timeout = Duration::from_secs(cfg.timeout_secs.unwrap_or(120).max(1));
    let inner: Arc<dyn LlmProvider> = match cfg.kind {
        ProviderKind::Anthropic => {
            let mut p = AnthropicProvider::new(key).with_timeout(timeout);
            if let Some(m) = &cfg.model {
                p = p.with_model(m);
            }
            if let Some(b) = &cfg.base_url {
                p = p.with_base_url(b);
            }
            Arc::new(p)
        }
        ProviderKind::OpenAi => {
            let mut p = OpenAiProvider::new(key).with_timeout(timeout);
            if let Some(m) = &cfg.model {
                p = p.with_model(m);
            }
            if let Some(b) = &cfg.base_url {
                p = p.with_base_url(b);
            }
            Arc::new(p)
        }
        ProviderKind::OpenAiCompatible => {
            let base = cfg.base_url.as_deref().unwrap_or(OLLAMA_BASE_URL);
            let model = cfg.model.as_deref().unwrap_or("llama3.1");
            Arc::new(OpenAiProvider::compatible(base, model, key).with_timeout(timeout))
        }
        ProviderKind::Gemini => {
            let mut p = GeminiProvider::new(key).with_timeout(timeout);
            if let Some(m) = &cfg.model {
                p = p.with_model(m);
            }
            if let Some(b) = &cfg.base_url {
                p = p.with_base_url(b);
            }
            Arc::new(p)
        }
    };
    let policy = RetryPolicy {
        max_attempts: cfg.max_attempts.unwrap_or(4).max(1),
        ..RetryPolicy::default()
    };
    Arc::new(RetryingProvider::new(inner, policy))
}

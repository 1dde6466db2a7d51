//! Keys never appear in `Debug` output, errors or logs.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{Canned, fast_retries, serve};
use p38_factory::{
    AnthropicProvider, ChatMessage, ChatRequest, GeminiProvider, LlmProvider, OpenAiProvider,
    ProviderConfig, ProviderKind, RetryingProvider, build_provider,
};

const CANARY: &str = "sk-ant-CANARY-7f3a9c2e1b5d4f6a8e0c";

fn request() -> ChatRequest {
    ChatRequest {
        system: "s".into(),
        messages: vec![ChatMessage::user("u")],
        max_tokens: 16,
        temperature: None,
    }
}

/// Collects log output in memory.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn debug_output_hides_the_key() {
    let retrying = RetryingProvider::new(Arc::new(AnthropicProvider::new(CANARY)), fast_retries());
    let mut texts = vec![
        format!("{:?}", AnthropicProvider::new(CANARY)),
        format!("{:?}", OpenAiProvider::new(CANARY)),
        format!(
            "{:?}",
            OpenAiProvider::compatible("http://127.0.0.1:1", "m", CANARY)
        ),
        format!("{:?}", GeminiProvider::new(CANARY)),
        format!("{retrying:?}"),
    ];
    // The providers as the server builds them, one of each kind: their
    // Debug goes down to the key's own (`ApiKey(****)`), so a key that
    // printed itself would show here.
    for kind in [
        ProviderKind::Anthropic,
        ProviderKind::OpenAi,
        ProviderKind::OpenAiCompatible,
        ProviderKind::Gemini,
    ] {
        let mut cfg = ProviderConfig::new(kind);
        cfg.api_key = Some(CANARY.into());
        let built = build_provider(&cfg);
        let text = format!("{built:?}");
        assert!(
            text.contains("ApiKey(****)"),
            "the key's own Debug is reached: {text}"
        );
        texts.push(text);
        texts.push(format!("{cfg:?}"));
    }
    for t in texts {
        assert!(!t.contains(CANARY), "{t}");
        assert!(!t.contains("CANARY"), "{t}");
    }
}

#[tokio::test]
async fn errors_and_logs_hide_the_key_even_when_the_server_echoes_it() {
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let echo = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {CANARY}","type":"invalid_request_error","code":"invalid_api_key"}}}}"#
    );
    let server = serve(vec![
        // A 500 echoing the key is retried and logged, then a 401 echoing it.
        Canned::json(500, echo.clone()),
        Canned::json(401, echo.clone()),
    ])
    .await;
    let providers: Vec<Arc<dyn LlmProvider>> = vec![Arc::new(
        OpenAiProvider::new(CANARY).with_base_url(&server.base_url),
    )];
    let mut seen = Vec::new();
    for p in providers {
        let p = RetryingProvider::new(p, fast_retries());
        let e = p.complete(&request()).await.unwrap_err();
        seen.push(format!("{e} {e:?}"));
    }
    // A malformed 200 echoing the key: the raw text is kept, scrubbed.
    for base in [serve(vec![Canned::json(200, format!("not json {CANARY}"))])
        .await
        .base_url]
    {
        for p in [
            Arc::new(AnthropicProvider::new(CANARY).with_base_url(&base)) as Arc<dyn LlmProvider>,
            Arc::new(GeminiProvider::new(CANARY).with_base_url(&base)),
        ] {
            let e = p.complete(&request()).await.unwrap_err();
            seen.push(format!("{e} {e:?}"));
        }
    }
    // A connection failure.
    let p = AnthropicProvider::new(CANARY).with_base_url("http://127.0.0.1:9");
    let e = p.complete(&request()).await.unwrap_err();
    seen.push(format!("{e} {e:?}"));

    let logs = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("retrying"), "the retry was logged: {logs}");
    assert!(seen.iter().any(|s| s.contains("[REDACTED]")), "{seen:?}");
    for text in seen.iter().chain(std::iter::once(&logs)) {
        assert!(!text.contains(CANARY), "{text}");
    }
}

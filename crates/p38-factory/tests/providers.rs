//! Each provider against a loopback server answering in that provider's real
//! wire format, errors included.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Canned, MockServer, anthropic_message, fast_retries, serve};
use p38_factory::{
    AnthropicProvider, ChatMessage, ChatRequest, GeminiProvider, LlmProvider, OpenAiProvider,
    ProviderError, RetryingProvider,
};
use serde_json::{Value, json};

const KEY: &str = "test-key-0123456789";

/// How one provider speaks.
struct Wire {
    make: fn(&str, Duration) -> Arc<dyn LlmProvider>,
    path: &'static str,
    key_header: (&'static str, &'static str),
    ok: fn(&str) -> String,
    rate_limited: fn() -> Canned,
    overloaded: fn() -> Canned,
    auth: fn() -> Canned,
    check_body: fn(&Value),
}

fn request() -> ChatRequest {
    ChatRequest {
        system: "You write agents.".into(),
        messages: vec![
            ChatMessage::user("watch Tesla"),
            ChatMessage::assistant("{}"),
            ChatMessage::user("again"),
        ],
        max_tokens: 1024,
        temperature: Some(0.2),
    }
}

fn retrying(p: Arc<dyn LlmProvider>) -> RetryingProvider {
    RetryingProvider::new(p, fast_retries())
}

async fn success(w: &Wire) {
    let server = serve(vec![Canned::json(200, (w.ok)("Hello from the model"))]).await;
    let p = (w.make)(&server.base_url, Duration::from_secs(5));
    let resp = p.complete(&request()).await.unwrap();
    assert_eq!(resp.text, "Hello from the model");
    assert!(resp.input_tokens > 0 && resp.output_tokens > 0);
    assert!(!resp.model.is_empty());
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, w.path);
    assert_eq!(r.header(w.key_header.0).as_deref(), Some(w.key_header.1));
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    (w.check_body)(&r.json());
}

async fn rate_limited_then_ok(w: &Wire) {
    let server = serve(vec![(w.rate_limited)(), Canned::json(200, (w.ok)("ok"))]).await;
    let p = retrying((w.make)(&server.base_url, Duration::from_secs(5)));
    let started = Instant::now();
    let resp = p.complete(&request()).await.unwrap();
    assert_eq!(resp.text, "ok");
    assert_eq!(server.requests().len(), 2);
    // The server asked for one second; the policy's own backoff is 10 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

async fn overloaded_retried(w: &Wire) {
    let server = serve(vec![
        (w.overloaded)(),
        (w.overloaded)(),
        Canned::json(200, (w.ok)("ok")),
    ])
    .await;
    let bare = (w.make)(&server.base_url, Duration::from_secs(5));
    let e = bare.complete(&request()).await.unwrap_err();
    assert!(matches!(e, ProviderError::Overloaded(_)), "{e:?}");
    let p = retrying(bare);
    assert_eq!(p.complete(&request()).await.unwrap().text, "ok");
    assert_eq!(server.requests().len(), 3);
}

async fn auth_not_retried(w: &Wire) {
    let server = serve(vec![(w.auth)(), Canned::json(200, (w.ok)("never"))]).await;
    let p = retrying((w.make)(&server.base_url, Duration::from_secs(5)));
    let e = p.complete(&request()).await.unwrap_err();
    assert!(matches!(e, ProviderError::Auth(_)), "{e:?}");
    assert!(!e.is_retryable());
    assert_eq!(server.requests().len(), 1, "Auth must not be retried");
}

async fn malformed_keeps_raw(w: &Wire) {
    let raw = r#"{"id": "x", "content": [{"type": "te"#;
    let server: MockServer = serve(vec![Canned::json(200, raw)]).await;
    let p = retrying((w.make)(&server.base_url, Duration::from_secs(5)));
    match p.complete(&request()).await.unwrap_err() {
        ProviderError::Malformed { raw: got, why } => {
            assert_eq!(got, raw);
            assert!(why.contains("not JSON"), "{why}");
        }
        e => panic!("expected Malformed, got {e:?}"),
    }
    assert_eq!(server.requests().len(), 1, "Malformed must not be retried");
    // Valid JSON of the wrong shape is malformed too.
    let server = serve(vec![Canned::json(200, r#"{"unexpected": true}"#)]).await;
    let p = (w.make)(&server.base_url, Duration::from_secs(5));
    let e = p.complete(&request()).await.unwrap_err();
    assert!(
        matches!(e, ProviderError::Malformed { ref raw, .. } if raw.contains("unexpected")),
        "{e:?}"
    );
}

async fn timeout(w: &Wire) {
    let slow = Canned::json(200, (w.ok)("late")).delayed(Duration::from_secs(3));
    let server = serve(vec![slow]).await;
    let p = (w.make)(&server.base_url, Duration::from_millis(300));
    let started = Instant::now();
    let e = p.complete(&request()).await.unwrap_err();
    assert_eq!(e, ProviderError::Timeout);
    assert!(started.elapsed() < Duration::from_secs(2));
}

// ---- Anthropic ------------------------------------------------------------

const ANTHROPIC: Wire = Wire {
    make: |base, t| {
        Arc::new(
            AnthropicProvider::new(KEY)
                .with_base_url(base)
                .with_timeout(t),
        )
    },
    path: "/v1/messages",
    key_header: ("x-api-key", KEY),
    ok: |text| anthropic_message(text, 25, 7),
    rate_limited: || {
        Canned::json(429, r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#)
            .header("retry-after", "1")
    },
    overloaded: || {
        Canned::json(
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        )
    },
    auth: || {
        Canned::json(
            401,
            r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
        )
    },
    check_body: |b| {
        assert_eq!(b["model"], "claude-sonnet-4-5");
        assert_eq!(b["max_tokens"], 1024);
        assert_eq!(b["system"], "You write agents.");
        assert_eq!(
            b["messages"][0],
            json!({"role": "user", "content": "watch Tesla"})
        );
        assert_eq!(b["messages"][1]["role"], "assistant");
        assert_eq!(b["messages"].as_array().unwrap().len(), 3);
    },
};

#[tokio::test]
async fn anthropic_success_and_request_shape() {
    success(&ANTHROPIC).await;
    let server = serve(vec![Canned::json(200, anthropic_message("x", 1, 1))]).await;
    let p = AnthropicProvider::new(KEY).with_base_url(&server.base_url);
    p.complete(&request()).await.unwrap();
    assert_eq!(
        server.requests()[0].header("anthropic-version").as_deref(),
        Some("2023-06-01")
    );
}

#[tokio::test]
async fn anthropic_429_retry_after_then_success() {
    rate_limited_then_ok(&ANTHROPIC).await;
}

#[tokio::test]
async fn anthropic_529_overloaded_retried() {
    overloaded_retried(&ANTHROPIC).await;
}

#[tokio::test]
async fn anthropic_401_auth_not_retried() {
    auth_not_retried(&ANTHROPIC).await;
}

#[tokio::test]
async fn anthropic_malformed_keeps_raw_text() {
    malformed_keeps_raw(&ANTHROPIC).await;
}

#[tokio::test]
async fn anthropic_timeout() {
    timeout(&ANTHROPIC).await;
}

#[tokio::test]
async fn anthropic_400_is_request_error_not_retried() {
    let server = serve(vec![Canned::json(400, r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#)]).await;
    let p = retrying((ANTHROPIC.make)(&server.base_url, Duration::from_secs(5)));
    let e = p.complete(&request()).await.unwrap_err();
    assert!(
        matches!(e, ProviderError::Request(ref m) if m.contains("max_tokens: Field required")),
        "{e:?}"
    );
    assert_eq!(server.requests().len(), 1);
}

// ---- OpenAI ---------------------------------------------------------------

fn openai_completion(text: &str) -> String {
    json!({
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "created": 1741569952,
        "model": "gpt-4.1-2025-04-14",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29},
        "service_tier": "default",
        "system_fingerprint": null
    })
    .to_string()
}

const OPENAI: Wire = Wire {
    make: |base, t| Arc::new(OpenAiProvider::new(KEY).with_base_url(base).with_timeout(t)),
    path: "/v1/chat/completions",
    key_header: ("authorization", "Bearer test-key-0123456789"),
    ok: openai_completion,
    rate_limited: || {
        Canned::json(429, r#"{"error":{"message":"Rate limit reached for gpt-4.1 in organization org-x on requests per min (RPM): Limit 3, Used 3, Requested 1.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#)
            .header("retry-after", "1")
    },
    overloaded: || {
        Canned::json(
            503,
            r#"{"error":{"message":"The engine is currently overloaded, please try again later","type":"server_error","param":null,"code":null}}"#,
        )
    },
    auth: || {
        Canned::json(
            401,
            r#"{"error":{"message":"Incorrect API key provided: test-key****6789. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
        )
    },
    check_body: |b| {
        assert_eq!(b["model"], "gpt-4.1");
        assert_eq!(b["max_tokens"], 1024);
        assert_eq!(
            b["messages"][0],
            json!({"role": "system", "content": "You write agents."})
        );
        assert_eq!(
            b["messages"][1],
            json!({"role": "user", "content": "watch Tesla"})
        );
        assert_eq!(b["messages"].as_array().unwrap().len(), 4);
    },
};

#[tokio::test]
async fn openai_success_and_request_shape() {
    success(&OPENAI).await;
}

#[tokio::test]
async fn openai_429_retry_after_then_success() {
    rate_limited_then_ok(&OPENAI).await;
}

#[tokio::test]
async fn openai_503_overloaded_retried() {
    overloaded_retried(&OPENAI).await;
}

#[tokio::test]
async fn openai_401_auth_not_retried() {
    auth_not_retried(&OPENAI).await;
}

#[tokio::test]
async fn openai_malformed_keeps_raw_text() {
    malformed_keeps_raw(&OPENAI).await;
}

#[tokio::test]
async fn openai_timeout() {
    timeout(&OPENAI).await;
}

#[tokio::test]
async fn openai_insufficient_quota_is_not_retried() {
    let body = r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
    let server = serve(vec![Canned::json(429, body)]).await;
    let p = retrying((OPENAI.make)(&server.base_url, Duration::from_secs(5)));
    let e = p.complete(&request()).await.unwrap_err();
    assert!(matches!(e, ProviderError::Request(_)), "{e:?}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn openai_compatible_without_key_sends_no_authorization() {
    let server = serve(vec![Canned::json(200, openai_completion("local"))]).await;
    let p = OpenAiProvider::compatible(&server.base_url, "llama3.1", "");
    assert_eq!(p.name(), "openai_compatible");
    assert_eq!(p.complete(&request()).await.unwrap().text, "local");
    let r = &server.requests()[0];
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.header("authorization"), None);
    assert_eq!(r.json()["model"], "llama3.1");
}

// ---- Gemini ---------------------------------------------------------------

fn gemini_content(text: &str) -> String {
    json!({
        "candidates": [{
            "content": {"parts": [{"text": text}], "role": "model"},
            "finishReason": "STOP",
            "index": 0
        }],
        "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 3, "totalTokenCount": 11},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "mAitaLmkHPPlz7IPvtfUqQk"
    })
    .to_string()
}

const GEMINI: Wire = Wire {
    make: |base, t| Arc::new(GeminiProvider::new(KEY).with_base_url(base).with_timeout(t)),
    path: "/v1beta/models/gemini-2.5-flash:generateContent",
    key_header: ("x-goog-api-key", KEY),
    ok: gemini_content,
    // Gemini states the wait in the body's RetryInfo, not in a header.
    rate_limited: || {
        Canned::json(
            429,
            r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1s"}]}}"#,
        )
    },
    overloaded: || {
        Canned::json(
            503,
            r#"{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}"#,
        )
    },
    auth: || {
        Canned::json(
            401,
            r#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}"#,
        )
    },
    check_body: |b| {
        assert_eq!(
            b["systemInstruction"],
            json!({"parts": [{"text": "You write agents."}]})
        );
        assert_eq!(
            b["contents"][0],
            json!({"role": "user", "parts": [{"text": "watch Tesla"}]})
        );
        assert_eq!(b["contents"][1]["role"], "model");
        assert_eq!(b["generationConfig"]["maxOutputTokens"], 1024);
        assert!(b.get("model").is_none(), "the model is in the path");
    },
};

#[tokio::test]
async fn gemini_success_and_request_shape() {
    success(&GEMINI).await;
}

#[tokio::test]
async fn gemini_429_retry_info_then_success() {
    rate_limited_then_ok(&GEMINI).await;
}

#[tokio::test]
async fn gemini_503_overloaded_retried() {
    overloaded_retried(&GEMINI).await;
}

#[tokio::test]
async fn gemini_401_auth_not_retried() {
    auth_not_retried(&GEMINI).await;
}

#[tokio::test]
async fn gemini_invalid_key_400_is_auth() {
    let body = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}}]}}"#;
    let server = serve(vec![Canned::json(400, body)]).await;
    let p = retrying((GEMINI.make)(&server.base_url, Duration::from_secs(5)));
    let e = p.complete(&request()).await.unwrap_err();
    assert!(
        matches!(e, ProviderError::Auth(ref m) if m.contains("API key not valid")),
        "{e:?}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn gemini_malformed_keeps_raw_text() {
    malformed_keeps_raw(&GEMINI).await;
}

#[tokio::test]
async fn gemini_timeout() {
    timeout(&GEMINI).await;
}

// ---- Retrying -------------------------------------------------------------

#[tokio::test]
async fn retrying_gives_up_after_max_attempts() {
    let server = serve(vec![Canned::json(
        500,
        r#"{"type":"error","error":{"type":"api_error","message":"Internal server error"}}"#,
    )])
    .await;
    let p = retrying((ANTHROPIC.make)(&server.base_url, Duration::from_secs(5)));
    let e = p.complete(&request()).await.unwrap_err();
    assert!(
        matches!(e, ProviderError::Server { status: 500, .. }),
        "{e:?}"
    );
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test]
async fn network_error_is_retried_then_reported() {
    // Nothing listens on port 9 of loopback: the connection is refused.
    let p = retrying(Arc::new(
        AnthropicProvider::new(KEY).with_base_url("http://127.0.0.1:9"),
    ));
    let e = p.complete(&request()).await.unwrap_err();
    assert!(matches!(e, ProviderError::Network(_)), "{e:?}");
}

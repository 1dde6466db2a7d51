//! Each provider against a loopback server answering in that provider's real
//! wire format, errors included.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    Canned, MockServer, Recorded, anthropic_message, anthropic_stopped, fast_retries,
    gemini_thought_answer, gemini_truncated_while_thinking, serve, serve_with,
};
use p38_factory::{
    AnthropicProvider, ChatMessage, ChatRequest, GeminiProvider, LlmProvider, OpenAiProvider,
    ProviderError, RetryingProvider, StopReason,
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
        // The official API gets max_completion_tokens (which every model
        // takes); gpt-4.1 takes a temperature.
        assert_eq!(b["max_completion_tokens"], 1024);
        assert!(b.get("max_tokens").is_none(), "{b}");
        assert_eq!(b["temperature"], json!(0.2f32));
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
    // A loopback server that accepts each connection and closes it at once,
    // before any answer: every attempt is a network failure, and counted.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(sock);
        }
    });
    let p = retrying(Arc::new(AnthropicProvider::new(KEY).with_base_url(&base)));
    let e = p.complete(&request()).await.unwrap_err();
    assert!(matches!(e, ProviderError::Network(_)), "{e:?}");
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        fast_retries().max_attempts as usize,
        "every attempt reached the server"
    );
}

// ---- OpenAI's reasoning models -------------------------------------------

/// The 400 a real OpenAI reasoning model (gpt-5, o1, o3, o4-mini) answers
/// to `max_tokens`, byte for byte.
const MAX_TOKENS_UNSUPPORTED: &str = r#"{"error":{"message":"Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.","type":"invalid_request_error","param":"max_tokens","code":"unsupported_parameter"}}"#;

/// A loopback OpenAI serving a reasoning model: it refuses `max_tokens` and
/// any temperature but the default as the real API does, and answers with
/// reasoning tokens inside `completion_tokens`.
fn reasoning_model(r: &Recorded) -> Canned {
    let b = r.json();
    if b.get("max_tokens").is_some() {
        return Canned::json(400, MAX_TOKENS_UNSUPPORTED);
    }
    if let Some(t) = b.get("temperature")
        && t.as_f64() != Some(1.0)
    {
        return Canned::json(
            400,
            format!(
                r#"{{"error":{{"message":"Unsupported value: 'temperature' does not support {t} with this model. Only the default (1) value is supported.","type":"invalid_request_error","param":"temperature","code":"unsupported_value"}}}}"#
            ),
        );
    }
    let model = b["model"].as_str().unwrap_or_default();
    Canned::json(
        200,
        json!({
            "id": "chatcmpl-C3rE0x3kMz5o4Ff1T1a2b3c4d5e6f",
            "object": "chat.completion",
            "created": 1754900000,
            "model": format!("{model}-2025-08-07"),
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": "thought it over", "refusal": null, "annotations": []},
                "finish_reason": "stop"
            }],
            "usage": {
                "prompt_tokens": 19,
                "completion_tokens": 330,
                "total_tokens": 349,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 320, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
            },
            "service_tier": "default"
        })
        .to_string(),
    )
}

#[tokio::test]
async fn openai_reasoning_models_get_max_completion_tokens_and_no_temperature() {
    let server = serve_with(reasoning_model).await;
    for model in [
        "gpt-5",
        "gpt-5-mini",
        "gpt-5-nano",
        "o1",
        "o3",
        "o3-mini",
        "o4-mini",
    ] {
        let p = OpenAiProvider::new(KEY)
            .with_base_url(&server.base_url)
            .with_model(model);
        // request() asks for temperature 0.2, which these models refuse.
        let resp = p
            .complete(&request())
            .await
            .unwrap_or_else(|e| panic!("{model}: {e}"));
        assert_eq!(resp.text, "thought it over");
        assert_eq!(resp.output_tokens, 330, "reasoning tokens are billed");
        assert_eq!(resp.stop, StopReason::Complete);
        let b = server.requests().last().unwrap().json();
        assert_eq!(b["max_completion_tokens"], 1024, "{model}");
        assert!(b.get("max_tokens").is_none(), "{model}: {b}");
        assert!(b.get("temperature").is_none(), "{model}: {b}");
    }
}

#[tokio::test]
async fn openai_reasoning_model_refuses_max_tokens_with_the_real_400() {
    // What the old request shape (and any OpenAI-compatible client) gets
    // from a reasoning model: a refusal, not retried, with OpenAI's words.
    let server = serve_with(reasoning_model).await;
    let p = retrying(Arc::new(OpenAiProvider::compatible(
        &server.base_url,
        "o4-mini",
        KEY,
    )));
    let e = p.complete(&request()).await.unwrap_err();
    assert!(
        matches!(e, ProviderError::Request(ref m)
            if m.contains("HTTP 400 invalid_request_error")
            && m.contains("Use 'max_completion_tokens' instead")),
        "{e:?}"
    );
    assert_eq!(server.requests().len(), 1, "a 400 is not retried");
    assert_eq!(server.requests()[0].json()["max_tokens"], 1024);
}

#[tokio::test]
async fn openai_compatible_keeps_max_tokens_and_temperature() {
    let server = serve(vec![Canned::json(200, openai_completion("local"))]).await;
    let p = OpenAiProvider::compatible(&server.base_url, "qwen3:8b", "");
    p.complete(&request()).await.unwrap();
    let b = server.requests()[0].json();
    assert_eq!(b["max_tokens"], 1024);
    assert!(b.get("max_completion_tokens").is_none(), "{b}");
    assert_eq!(b["temperature"], json!(0.2f32));
}

#[tokio::test]
async fn openai_compatible_base_url_with_or_without_v1() {
    let server = serve(vec![Canned::json(200, openai_completion("local"))]).await;
    for base in [
        server.base_url.clone(),
        format!("{}/", server.base_url),
        format!("{}/v1", server.base_url),
        format!("{}/v1/", server.base_url),
    ] {
        let p = OpenAiProvider::compatible(&base, "llama3.1", "");
        p.complete(&request()).await.unwrap();
        assert_eq!(
            server.requests().last().unwrap().path,
            "/v1/chat/completions",
            "{base}"
        );
    }
    let p = OpenAiProvider::new(KEY).with_base_url(format!("{}/v1", server.base_url));
    p.complete(&request()).await.unwrap();
    assert_eq!(
        server.requests().last().unwrap().path,
        "/v1/chat/completions"
    );
}

// ---- Stop reasons -----------------------------------------------------------

async fn one(
    canned: Canned,
    make: fn(&str, Duration) -> Arc<dyn LlmProvider>,
) -> Result<p38_factory::ChatResponse, ProviderError> {
    let server = serve(vec![canned]).await;
    make(&server.base_url, Duration::from_secs(5))
        .complete(&request())
        .await
}

#[tokio::test]
async fn anthropic_stop_reasons_are_reported() {
    let r = one(
        Canned::json(
            200,
            anthropic_stopped("{\"name\": \"tesla", "max_tokens", 900, 1024),
        ),
        ANTHROPIC.make,
    )
    .await
    .unwrap();
    assert_eq!(r.stop, StopReason::Truncated);
    assert_eq!(r.text, "{\"name\": \"tesla");
    assert_eq!((r.input_tokens, r.output_tokens), (900, 1024));
    // A refusal may come with no text at all; its tokens were billed.
    let r = one(
        Canned::json(200, anthropic_stopped("", "refusal", 40, 3)),
        ANTHROPIC.make,
    )
    .await
    .unwrap();
    assert_eq!(r.stop, StopReason::Refused);
    assert_eq!((r.input_tokens, r.output_tokens), (40, 3));
    for end in ["end_turn", "stop_sequence"] {
        let r = one(
            Canned::json(200, anthropic_stopped("ok", end, 1, 1)),
            ANTHROPIC.make,
        )
        .await
        .unwrap();
        assert_eq!(r.stop, StopReason::Complete, "{end}");
    }
    // An empty answer that claims to be whole is still malformed.
    let e = one(
        Canned::json(200, anthropic_stopped("", "end_turn", 1, 1)),
        ANTHROPIC.make,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ProviderError::Malformed { .. }), "{e:?}");
}

fn openai_finished(message: Value, finish_reason: &str) -> Canned {
    let mut v: Value = serde_json::from_str(&openai_completion("x")).unwrap();
    v["choices"][0]["message"] = message;
    v["choices"][0]["finish_reason"] = json!(finish_reason);
    Canned::json(200, v.to_string())
}

#[tokio::test]
async fn openai_finish_reasons_are_reported() {
    let r = one(
        openai_finished(
            json!({"role": "assistant", "content": "{\"name\": \"te", "refusal": null}),
            "length",
        ),
        OPENAI.make,
    )
    .await
    .unwrap();
    assert_eq!(r.stop, StopReason::Truncated);
    assert_eq!(r.text, "{\"name\": \"te");
    let r = one(
        openai_finished(
            json!({"role": "assistant", "content": null, "refusal": null}),
            "content_filter",
        ),
        OPENAI.make,
    )
    .await
    .unwrap();
    assert_eq!(r.stop, StopReason::Blocked);
    assert_eq!(r.output_tokens, 10, "a filtered answer's tokens are billed");
    let r = one(
        openai_finished(
            json!({"role": "assistant", "content": null, "refusal": "I'm sorry, I can't help with that."}),
            "stop",
        ),
        OPENAI.make,
    )
    .await
    .unwrap();
    assert_eq!(r.stop, StopReason::Refused);
    assert_eq!(r.text, "I'm sorry, I can't help with that.");
    let r = one(Canned::json(200, openai_completion("fine")), OPENAI.make)
        .await
        .unwrap();
    assert_eq!(r.stop, StopReason::Complete);
}

#[tokio::test]
async fn gemini_thinking_tokens_are_billed_as_output() {
    let r = one(
        Canned::json(200, gemini_thought_answer("done", 8, 3, 1200)),
        GEMINI.make,
    )
    .await
    .unwrap();
    assert_eq!(r.text, "done");
    assert_eq!((r.input_tokens, r.output_tokens), (8, 1203));
    assert_eq!(r.stop, StopReason::Complete);
}

#[tokio::test]
async fn gemini_max_tokens_without_parts_is_truncated_and_its_tokens_counted() {
    let r = one(
        Canned::json(200, gemini_truncated_while_thinking(12, 1023)),
        GEMINI.make,
    )
    .await
    .unwrap();
    assert_eq!(r.stop, StopReason::Truncated);
    assert_eq!(r.text, "");
    assert_eq!((r.input_tokens, r.output_tokens), (12, 1023));
}

#[tokio::test]
async fn gemini_safety_and_blocked_prompts_are_reported() {
    let safety = json!({
        "candidates": [{
            "content": {"role": "model"},
            "finishReason": "SAFETY",
            "index": 0,
            "safetyRatings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true}]
        }],
        "usageMetadata": {"promptTokenCount": 30, "totalTokenCount": 30},
        "modelVersion": "gemini-2.5-flash"
    });
    let r = one(Canned::json(200, safety.to_string()), GEMINI.make)
        .await
        .unwrap();
    assert_eq!(r.stop, StopReason::Blocked);
    let blocked = json!({
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 41, "totalTokenCount": 41},
        "modelVersion": "gemini-2.5-flash"
    });
    let r = one(Canned::json(200, blocked.to_string()), GEMINI.make)
        .await
        .unwrap();
    assert_eq!(r.stop, StopReason::Blocked);
    assert_eq!(
        r.input_tokens, 41,
        "the blocked prompt's tokens are counted"
    );
}

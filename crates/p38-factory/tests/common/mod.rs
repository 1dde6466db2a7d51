//! A scripted loopback HTTP server standing in for an LLM provider: it
//! answers each request with the next canned answer (repeating the last one
//! when the script runs out) and records what it received.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One canned answer.
#[derive(Clone, Debug)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Canned {
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Canned {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn delayed(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("request body is JSON")
    }
}

/// Answers a request from what it holds (a server that checks the body
/// as the real service does).
pub type Responder = Arc<dyn Fn(&Recorded) -> Canned + Send + Sync>;

#[derive(Clone)]
struct Shared {
    responder: Option<Responder>,
    script: Arc<Mutex<Vec<Canned>>>,
    served: Arc<Mutex<usize>>,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

pub struct MockServer {
    pub base_url: String,
    shared: Shared,
}

impl MockServer {
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }
}

async fn answer(
    State(s): State<Shared>,
    method: axum::http::Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let recorded = Recorded {
        method: method.to_string(),
        path: uri.path().to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    s.requests.lock().unwrap().push(recorded.clone());
    let canned = if let Some(r) = &s.responder {
        r(&recorded)
    } else {
        let script = s.script.lock().unwrap();
        let mut served = s.served.lock().unwrap();
        let c = script[(*served).min(script.len() - 1)].clone();
        *served += 1;
        c
    };
    if !canned.delay.is_zero() {
        tokio::time::sleep(canned.delay).await;
    }
    let mut resp = (StatusCode::from_u16(canned.status).unwrap(), canned.body).into_response();
    for (k, v) in canned.headers {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

/// Starts a server on 127.0.0.1 with a fresh port.
pub async fn serve(script: Vec<Canned>) -> MockServer {
    assert!(!script.is_empty());
    start(None, script).await
}

/// Starts a server that answers each request with `responder`'s answer.
pub async fn serve_with(
    responder: impl Fn(&Recorded) -> Canned + Send + Sync + 'static,
) -> MockServer {
    start(Some(Arc::new(responder)), Vec::new()).await
}

async fn start(responder: Option<Responder>, script: Vec<Canned>) -> MockServer {
    let shared = Shared {
        responder,
        script: Arc::new(Mutex::new(script)),
        served: Arc::new(Mutex::new(0)),
        requests: Arc::new(Mutex::new(Vec::new())),
    };
    let app = Router::new().fallback(answer).with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    MockServer {
        base_url: format!("http://{addr}"),
        shared,
    }
}

/// Anthropic's success body carrying `text`.
pub fn anthropic_message(text: &str, input: u64, output: u64) -> String {
    serde_json::json!({
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {"input_tokens": input, "output_tokens": output}
    })
    .to_string()
}

/// An Anthropic success body with its `stop_reason` (`end_turn`,
/// `max_tokens`, `refusal`, ...).
pub fn anthropic_stopped(text: &str, stop_reason: &str, input: u64, output: u64) -> String {
    let content: Vec<serde_json::Value> = if text.is_empty() {
        Vec::new()
    } else {
        vec![serde_json::json!({"type": "text", "text": text})]
    };
    serde_json::json!({
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": {"input_tokens": input, "output_tokens": output}
    })
    .to_string()
}

/// Gemini 2.5's answer cut off while it was still thinking: `MAX_TOKENS`,
/// a content with no parts, and only `thoughtsTokenCount` for the output.
pub fn gemini_truncated_while_thinking(prompt: u64, thoughts: u64) -> String {
    serde_json::json!({
        "candidates": [{
            "content": {"role": "model"},
            "finishReason": "MAX_TOKENS",
            "index": 0
        }],
        "usageMetadata": {
            "promptTokenCount": prompt,
            "totalTokenCount": prompt + thoughts,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
            "thoughtsTokenCount": thoughts
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "mAitaLmkHPPlz7IPvtfUqQk"
    })
    .to_string()
}

/// Gemini 2.5's whole answer, with its thinking counted apart.
pub fn gemini_thought_answer(text: &str, prompt: u64, answer: u64, thoughts: u64) -> String {
    serde_json::json!({
        "candidates": [{
            "content": {"parts": [{"text": text}], "role": "model"},
            "finishReason": "STOP",
            "index": 0
        }],
        "usageMetadata": {
            "promptTokenCount": prompt,
            "candidatesTokenCount": answer,
            "totalTokenCount": prompt + answer + thoughts,
            "thoughtsTokenCount": thoughts
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "mAitaLmkHPPlz7IPvtfUqQk"
    })
    .to_string()
}

/// A retry policy that keeps tests fast.
pub fn fast_retries() -> p38_factory::RetryPolicy {
    p38_factory::RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
    }
}

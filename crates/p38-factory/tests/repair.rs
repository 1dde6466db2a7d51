//! The generate-test-fix loop end to end against a scripted loopback
//! Anthropic server.

mod common;

use std::sync::{Arc, Mutex};

use common::{
    Canned, anthropic_message, anthropic_stopped, fast_retries, gemini_thought_answer,
    gemini_truncated_while_thinking, serve,
};
use p38_factory::providers::ProviderErrorKind;
use p38_factory::{
    AnthropicProvider, Factory, FactoryError, FailureCause, GeminiProvider, Outcome, Price,
    Progress, ProgressStage, RetryingProvider, Stage, StopReason, Validator,
};
use serde_json::json;

const HEBREW: &str = "צור לי סוכן שעוקב אחרי מניות של טסלה ומתריע כשהמחיר עולה ב-5%";
const LEAKED: &str = "sk-ant-api03-Xy7pQ2rT9vW4zK8mN3bC6dF1gH5jL0sA";

const BAD_CODE: &str = r#""""Watch Tesla."""

API_KEY = "sk-ant-api03-Xy7pQ2rT9vW4zK8mN3bC6dF1gH5jL0sA"


def run(ctx):
    """Run."""
    price = ctx.state.get("price", 0
    return {"price": price, "key": API_KEY}
"#;

const GOOD_CODE: &str = r#""""Watch Tesla's share price and alert on Telegram when it rises 5%."""

import json
import urllib.parse
import urllib.request

QUOTE_URL = "https://query1.finance.yahoo.com/v8/finance/chart/TSLA?interval=1d&range=1d"


def fetch_price():
    """Return the latest TSLA price in USD."""
    with urllib.request.urlopen(QUOTE_URL, timeout=10) as resp:
        data = json.loads(resp.read().decode("utf-8"))
    return float(data["chart"]["result"][0]["meta"]["regularMarketPrice"])


def notify(ctx, text):
    """Send text to the user's Telegram chat."""
    token = ctx.secrets["TELEGRAM_BOT_TOKEN"]
    url = "https://api.telegram.org/bot" + token + "/sendMessage"
    query = {"chat_id": ctx.config["chat_id"], "text": text}
    body = urllib.parse.urlencode(query).encode()
    with urllib.request.urlopen(url, data=body, timeout=10) as resp:
        return resp.status == 200


def run(ctx):
    """Alert when the price is 5% above the last one seen."""
    price = fetch_price()
    last = ctx.state.get("last_price")
    ctx.state["last_price"] = price
    if last and price >= last * 1.05:
        notify(ctx, f"Tesla rose {100 * (price / last - 1):.1f}% to ${price:.2f}")
        return {"alerted": True, "price": price}
    return {"alerted": False, "price": price}
"#;

fn answer(code: &str) -> String {
    json!({
        "name": "tesla-watch",
        "description": "עוקב אחרי מחיר מניית טסלה ומתריע בטלגרם כשהמחיר עולה ב-5%",
        "code": code,
        "schedule": "every 15m",
        "secrets": ["TELEGRAM_BOT_TOKEN"],
        "tools": [],
        "network": true,
        "test": ""
    })
    .to_string()
}

fn factory(base_url: &str) -> Factory {
    let provider = AnthropicProvider::new("test-key").with_base_url(base_url);
    Factory::new(
        Arc::new(RetryingProvider::new(Arc::new(provider), fast_retries())),
        Validator::default(),
    )
}

fn recorder() -> (Arc<Mutex<Vec<Progress>>>, impl Fn(Progress) + Send + Sync) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    (seen, move |p| s.lock().unwrap().push(p))
}

#[tokio::test]
async fn hebrew_request_repaired_in_two_iterations() {
    let server = serve(vec![
        Canned::json(
            200,
            anthropic_message(&format!("```json\n{}\n```", answer(BAD_CODE)), 1200, 400),
        ),
        Canned::json(200, anthropic_message(&answer(GOOD_CODE), 1800, 500)),
    ])
    .await;
    let (seen, progress) = recorder();
    let g = factory(&server.base_url)
        .generate(HEBREW, &progress)
        .await
        .unwrap();

    let Outcome::Succeeded { spec, .. } = &g.outcome else {
        panic!("expected success: {g:#?}");
    };
    assert_eq!(spec.name, "tesla-watch");
    assert_eq!(spec.code, GOOD_CODE);
    assert_eq!(spec.secrets, vec!["TELEGRAM_BOT_TOKEN"]);
    assert!(spec.network);

    // Both iterations are kept, with their own findings, tokens and costs.
    assert_eq!(g.iterations.len(), 2);
    let (first, second) = (&g.iterations[0], &g.iterations[1]);
    assert_eq!((first.n, second.n), (1, 2));
    // The iteration keeps its code with the key masked, and the finding.
    assert!(!first.code.contains(&LEAKED[4..]), "{}", first.code);
    assert_eq!(
        first.code,
        BAD_CODE.replace(LEAKED, &format!("{}[masked]", &LEAKED[..4]))
    );
    let syntax = first
        .findings
        .iter()
        .find(|f| f.stage == Stage::Syntax)
        .expect("syntax finding");
    assert_eq!(syntax.line, Some(8));
    let secret = first
        .findings
        .iter()
        .find(|f| f.rule == "hardcoded_secret")
        .expect("secret finding");
    assert_eq!(secret.line, Some(3));
    assert!(
        !second.findings.iter().any(|f| f.is_error()),
        "{:#?}",
        second.findings
    );
    assert_eq!((first.input_tokens, first.output_tokens), (1200, 400));
    assert_eq!(g.total_input_tokens, 3000);
    assert_eq!(g.total_output_tokens, 900);
    // claude-sonnet-4-5 at $3 / $15 per million tokens.
    assert!((first.cost_usd - 0.0096).abs() < 1e-9, "{}", first.cost_usd);
    assert!(
        (g.total_cost_usd - (0.0096 + 0.0129)).abs() < 1e-9,
        "{}",
        g.total_cost_usd
    );

    // The first request carries the Hebrew description; the repair request
    // carries the previous code and the findings.
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    let first_user = reqs[0].json()["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(first_user.contains(HEBREW));
    assert!(
        reqs[0].json()["system"]
            .as_str()
            .unwrap()
            .contains("def run(ctx)")
    );
    let repair = reqs[1].json()["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(repair.contains(HEBREW));
    assert!(repair.contains("<previous_answer_json>"));
    assert!(repair.contains("[error] syntax, line 8"), "{repair}");
    assert!(
        repair.contains("[error] rules, line 3, hardcoded_secret"),
        "{repair}"
    );
    // The finding itself does not repeat the key (only the echoed code does).
    assert!(!secret.message.contains(&LEAKED[8..]));

    let seen = seen.lock().unwrap();
    let stages: Vec<ProgressStage> = seen.iter().map(|p| p.stage).collect();
    assert_eq!(stages.first(), Some(&ProgressStage::Generating));
    assert!(stages.contains(&ProgressStage::Repairing));
    assert_eq!(stages.last(), Some(&ProgressStage::Done));
    // While the loop runs, the reports carry the tokens so far and each
    // ended round once, masked, before the next call.
    let repairing = seen
        .iter()
        .position(|p| p.stage == ProgressStage::Repairing)
        .unwrap();
    assert_eq!(
        (seen[repairing].input_tokens, seen[repairing].output_tokens),
        (1200, 400)
    );
    let ended: Vec<&p38_factory::Iteration> =
        seen.iter().filter_map(|p| p.finished.as_ref()).collect();
    assert_eq!(ended.len(), 2);
    assert_eq!(ended[0], first);
    assert!(seen[..repairing].iter().any(|p| p.finished.is_some()));
    assert_eq!(
        (
            seen.last().unwrap().input_tokens,
            seen.last().unwrap().output_tokens
        ),
        (3000, 900)
    );
}

#[tokio::test]
async fn latency_counts_the_whole_call_with_its_retries() {
    let server = serve(vec![
        Canned::json(
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#,
        )
        .delayed(std::time::Duration::from_millis(400)),
        Canned::json(200, anthropic_message(&answer(GOOD_CODE), 1800, 500)),
    ])
    .await;
    let g = factory(&server.base_url)
        .generate("watch Tesla", &|_| {})
        .await
        .unwrap();
    assert_eq!(server.requests().len(), 2);
    assert!(
        g.iterations[0].latency_ms >= 400,
        "{}",
        g.iterations[0].latency_ms
    );
}

#[tokio::test]
async fn the_time_limit_ends_a_generation_and_keeps_the_rounds_that_ended() {
    let server = serve(vec![
        Canned::json(200, anthropic_message(&answer(BAD_CODE), 1200, 400)),
        Canned::json(200, anthropic_message(&answer(GOOD_CODE), 1800, 500))
            .delayed(std::time::Duration::from_secs(30)),
    ])
    .await;
    let mut f = factory(&server.base_url);
    f.time_limit = Some(std::time::Duration::from_secs(3));
    let started = std::time::Instant::now();
    let g = f.generate("watch Tesla", &|_| {}).await.unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let Outcome::Failed { reason, cause } = &g.outcome else {
        panic!("expected a failure: {g:#?}");
    };
    assert_eq!(*cause, FailureCause::TimeLimit { seconds: 3 });
    assert!(reason.contains("time limit of 3s"), "{reason}");
    assert!(reason.contains("iteration 2"), "{reason}");
    assert_eq!(g.iterations.len(), 1);
    assert!(!g.iterations[0].code.contains(&LEAKED[4..]));
    assert_eq!((g.total_input_tokens, g.total_output_tokens), (1200, 400));
}

#[tokio::test]
async fn a_raw_answer_kept_after_a_parse_failure_has_its_secrets_masked() {
    let server = serve(vec![Canned::json(
        200,
        anthropic_message(&format!("here is your key: {LEAKED} and no JSON"), 100, 50),
    )])
    .await;
    let mut f = factory(&server.base_url);
    f.max_iterations = 1;
    let g = f.generate("watch Tesla", &|_| {}).await.unwrap();
    let raw = g.iterations[0]
        .raw_answer_on_parse_failure
        .as_deref()
        .unwrap();
    assert!(!raw.contains(&LEAKED[4..]), "{raw}");
    assert!(raw.contains("sk-a[masked]"), "{raw}");
    let stored = serde_json::to_string(&g).unwrap();
    assert!(!stored.contains(&LEAKED[4..]), "{stored}");
}

#[tokio::test]
async fn budget_exhaustion_stops_the_loop() {
    let server = serve(vec![Canned::json(
        200,
        anthropic_message(&answer(BAD_CODE), 1200, 400),
    )])
    .await;
    let mut f = factory(&server.base_url);
    // 1600 tokens at $500 per million: $0.80 a call against a $1.00 budget.
    f.prices.set("claude-sonnet-4-5", Price::new(500.0, 500.0));
    let g = f.generate("watch Tesla", &|_| {}).await.unwrap();
    match &g.outcome {
        Outcome::Failed { reason, cause } => {
            assert_eq!(*cause, FailureCause::BudgetExhausted);
            assert!(reason.contains("budget"), "{reason}");
        }
        o => panic!("expected failure, got {o:?}"),
    }
    assert_eq!(g.iterations.len(), 1);
    assert_eq!(
        server.requests().len(),
        1,
        "the second call was estimated over budget"
    );
    assert!((g.total_cost_usd - 0.8).abs() < 1e-9);
}

#[tokio::test]
async fn max_iterations_stop_the_loop_and_malformed_answers_are_repaired() {
    let server = serve(vec![
        Canned::json(
            200,
            anthropic_message("Sure! Here is your agent: it watches Tesla.", 100, 20),
        ),
        Canned::json(200, anthropic_message(&answer(BAD_CODE), 100, 20)),
    ])
    .await;
    let mut f = factory(&server.base_url);
    f.max_iterations = 2;
    let g = f.generate("watch Tesla", &|_| {}).await.unwrap();
    match &g.outcome {
        Outcome::Failed { reason, cause } => {
            assert_eq!(*cause, FailureCause::MaxIterations);
            assert!(reason.contains("2 iteration"), "{reason}");
        }
        o => panic!("expected failure, got {o:?}"),
    }
    assert_eq!(g.iterations.len(), 2);
    let first = &g.iterations[0];
    assert_eq!(
        first.raw_answer_on_parse_failure.as_deref(),
        Some("Sure! Here is your agent: it watches Tesla.")
    );
    assert_eq!(first.findings[0].stage, Stage::Answer);
    assert!(first.code.is_empty());
    let repair = server.requests()[1].json()["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        repair.contains("<previous_answer>\nSure! Here is your agent"),
        "{repair}"
    );
    assert!(g.iterations[1].findings.iter().any(|f| f.is_error()));
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn provider_refusal_ends_the_loop_with_its_kind() {
    let server = serve(vec![Canned::json(
        401,
        r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
    )])
    .await;
    let g = factory(&server.base_url)
        .generate("watch Tesla", &|_| {})
        .await
        .unwrap();
    assert_eq!(
        g.outcome,
        Outcome::Failed {
            reason:
                "the model provider failed: the provider refused the API key: invalid x-api-key"
                    .into(),
            cause: FailureCause::Provider {
                error: ProviderErrorKind::Auth
            },
        }
    );
    assert!(g.iterations.is_empty());
}

#[tokio::test]
async fn empty_description_is_refused() {
    let f = factory("http://127.0.0.1:9");
    assert!(f.generate("   ", &|_| {}).await.is_err());
}

#[tokio::test]
async fn truncated_answer_is_reported_and_the_next_call_gets_more_room() {
    let cut = answer(GOOD_CODE);
    let cut = &cut[..cut.len() / 2];
    let server = serve(vec![
        Canned::json(200, anthropic_stopped(cut, "max_tokens", 1200, 8192)),
        Canned::json(200, anthropic_message(&answer(GOOD_CODE), 1800, 500)),
    ])
    .await;
    let g = factory(&server.base_url)
        .generate("watch Tesla", &|_| {})
        .await
        .unwrap();
    assert!(matches!(g.outcome, Outcome::Succeeded { .. }), "{g:#?}");
    let first = &g.iterations[0];
    assert_eq!(first.stop, StopReason::Truncated);
    assert_eq!(first.max_tokens, 8192);
    let finding = &first.findings[0];
    assert_eq!(
        (finding.stage, finding.rule.as_str()),
        (Stage::Answer, "truncated_answer")
    );
    assert!(
        finding.message.contains("truncated") && finding.message.contains("8192"),
        "{}",
        finding.message
    );
    assert_eq!(first.raw_answer_on_parse_failure.as_deref(), Some(cut));
    // The cut-off answer's tokens were spent: 1200 * $3 + 8192 * $15 per million.
    let spent = (1200.0 * 3.0 + 8192.0 * 15.0) / 1e6;
    assert!((first.cost_usd - spent).abs() < 1e-9, "{}", first.cost_usd);
    assert_eq!(g.total_output_tokens, 8192 + 500);
    assert_eq!(g.iterations[1].max_tokens, 16384);
    let reqs = server.requests();
    assert_eq!(reqs[0].json()["max_tokens"], 8192);
    assert_eq!(
        reqs[1].json()["max_tokens"],
        16384,
        "more room after a truncation"
    );
    let repair = reqs[1].json()["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        repair.contains("Your previous answer was truncated"),
        "{repair}"
    );
    assert!(repair.contains(cut), "{repair}");
}

#[tokio::test]
async fn refused_answer_ends_the_loop_and_says_so() {
    let server = serve(vec![
        Canned::json(200, anthropic_stopped("", "refusal", 300, 2)),
        Canned::json(200, anthropic_message(&answer(GOOD_CODE), 1, 1)),
    ])
    .await;
    let g = factory(&server.base_url)
        .generate("watch Tesla", &|_| {})
        .await
        .unwrap();
    match &g.outcome {
        Outcome::Failed { reason, cause } => {
            assert_eq!(
                *cause,
                FailureCause::AnswerStopped {
                    reason: StopReason::Refused
                }
            );
            assert!(reason.contains("refused"), "{reason}");
        }
        o => panic!("expected failure, got {o:?}"),
    }
    assert_eq!(server.requests().len(), 1, "a refusal is not asked again");
    assert_eq!(g.iterations.len(), 1);
    assert_eq!(g.iterations[0].stop, StopReason::Refused);
    assert_eq!(g.iterations[0].findings[0].rule, "refused_answer");
    assert!(g.total_cost_usd > 0.0, "the refusal's tokens are counted");
    let json = serde_json::to_value(&g.outcome).unwrap();
    assert_eq!(
        json["cause"],
        json!({"kind": "answer_stopped", "reason": "refused"})
    );
}

#[tokio::test]
async fn gemini_thinking_and_a_truncated_thought_are_billed() {
    let server = serve(vec![
        Canned::json(200, gemini_truncated_while_thinking(1500, 8000)),
        Canned::json(
            200,
            gemini_thought_answer(&answer(GOOD_CODE), 2000, 700, 3000),
        ),
    ])
    .await;
    let provider = GeminiProvider::new("test-key").with_base_url(&server.base_url);
    let f = Factory::new(
        Arc::new(RetryingProvider::new(Arc::new(provider), fast_retries())),
        Validator::default(),
    );
    let g = f.generate("watch Tesla", &|_| {}).await.unwrap();
    assert!(matches!(g.outcome, Outcome::Succeeded { .. }), "{g:#?}");
    // gemini-2.5-flash: $0.30 in, $2.50 out (thinking included) per million.
    let (a, b) = (&g.iterations[0], &g.iterations[1]);
    assert_eq!(a.stop, StopReason::Truncated);
    assert_eq!(a.output_tokens, 8000);
    assert!(
        (a.cost_usd - (1500.0 * 0.30 + 8000.0 * 2.50) / 1e6).abs() < 1e-9,
        "{}",
        a.cost_usd
    );
    assert_eq!(b.output_tokens, 3700);
    assert!(
        (b.cost_usd - (2000.0 * 0.30 + 3700.0 * 2.50) / 1e6).abs() < 1e-9,
        "{}",
        b.cost_usd
    );
    assert_eq!(
        server.requests()[1].json()["generationConfig"]["maxOutputTokens"],
        16384
    );
}

#[tokio::test]
async fn unpriced_model_is_refused_before_any_call() {
    let server = serve(vec![Canned::json(
        200,
        anthropic_message(&answer(GOOD_CODE), 1, 1),
    )])
    .await;
    let provider = AnthropicProvider::new("test-key")
        .with_base_url(&server.base_url)
        .with_model("claude-sonnet-9");
    let mut f = Factory::new(Arc::new(provider), Validator::default());
    let e = f.generate("watch Tesla", &|_| {}).await.unwrap_err();
    assert!(
        matches!(e, FactoryError::UnpricedModel { ref model } if model == "claude-sonnet-9"),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("P38_LLM_PRICE_INPUT") && msg.contains("P38_LLM_PRICE_OUTPUT"),
        "{msg}"
    );
    assert!(server.requests().is_empty(), "no call was made");
    // With a price set, it runs (the answer names a dated snapshot of the
    // table's claude-sonnet-4-5; that price is used).
    f.prices.set("claude-sonnet-9", Price::new(1.0, 1.0));
    let g = f.generate("watch Tesla", &|_| {}).await.unwrap();
    assert!(matches!(g.outcome, Outcome::Succeeded { .. }), "{g:#?}");
}

/// GOOD_CODE with one warning only (E501, a line over 88 characters).
fn with_long_line() -> String {
    GOOD_CODE.replace(
        "    query = {\"chat_id\": ctx.config[\"chat_id\"], \"text\": text}\n    body = urllib.parse.urlencode(query).encode()\n",
        "    body = urllib.parse.urlencode({\"chat_id\": ctx.config[\"chat_id\"], \"text\": text}).encode()\n",
    )
}

#[tokio::test]
async fn warnings_go_back_to_the_model_once_it_is_otherwise_clean() {
    if !ruff_installed() {
        return p38_testkit::missing("ruff is not installed (scripts/setup.sh installs it)");
    }
    let server = serve(vec![
        Canned::json(
            200,
            anthropic_message(&answer(&with_long_line()), 1000, 300),
        ),
        Canned::json(200, anthropic_message(&answer(GOOD_CODE), 1000, 300)),
    ])
    .await;
    let (_, progress) = recorder();
    let g = factory(&server.base_url)
        .generate("watch tesla", &progress)
        .await
        .unwrap();
    let Outcome::Succeeded { spec, warnings } = &g.outcome else {
        panic!("expected success: {g:#?}");
    };
    assert_eq!(g.iterations.len(), 2, "{g:#?}");
    assert_eq!(spec.code, GOOD_CODE);
    assert!(warnings.is_empty(), "{warnings:?}");
    let repair = server.requests()[1].json()["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        repair.contains("[warning] lint") && repair.contains("E501"),
        "{repair}"
    );
}

#[tokio::test]
async fn a_clean_agent_stands_when_the_answer_to_its_warnings_breaks_it() {
    if !ruff_installed() {
        return p38_testkit::missing("ruff is not installed (scripts/setup.sh installs it)");
    }
    let server = serve(vec![
        Canned::json(
            200,
            anthropic_message(&answer(&with_long_line()), 1000, 300),
        ),
        Canned::json(200, anthropic_message(&answer(BAD_CODE), 1000, 300)),
    ])
    .await;
    let (_, progress) = recorder();
    let g = factory(&server.base_url)
        .generate("watch tesla", &progress)
        .await
        .unwrap();
    let Outcome::Succeeded { spec, warnings } = &g.outcome else {
        panic!("expected the first, clean agent: {g:#?}");
    };
    assert_eq!(spec.code, with_long_line());
    assert_eq!(g.iterations.len(), 2, "both rounds are kept");
    assert!(
        warnings.iter().any(|w| w.rule == "E501"),
        "the report says which warnings remain: {warnings:?}"
    );
    assert_eq!(server.requests().len(), 2, "no repair of the repair");
}

#[tokio::test]
async fn warnings_do_not_cost_a_round_past_the_iteration_limit() {
    if !ruff_installed() {
        return p38_testkit::missing("ruff is not installed (scripts/setup.sh installs it)");
    }
    let server = serve(vec![Canned::json(
        200,
        anthropic_message(&answer(&with_long_line()), 1000, 300),
    )])
    .await;
    let (_, progress) = recorder();
    let mut f = factory(&server.base_url);
    f.max_iterations = 1;
    let g = f.generate("watch tesla", &progress).await.unwrap();
    let Outcome::Succeeded { warnings, .. } = &g.outcome else {
        panic!("{g:#?}");
    };
    assert_eq!(server.requests().len(), 1);
    assert!(warnings.iter().any(|w| w.rule == "E501"), "{warnings:?}");
}

fn ruff_installed() -> bool {
    std::process::Command::new("ruff")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

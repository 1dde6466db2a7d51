//! Times N validations of a realistic 80-line agent: syntax, ruff and rules
//! (the dry run is excluded: it belongs to the sandbox). Prints the mean and
//! the 95th percentile; the target is under 300 ms per validation.
//!
//! Run with `cargo bench -p p38-factory --bench validate`.

use std::time::{Duration, Instant};

use p38_factory::{Stage, StageStatus, Validator};

const N: usize = 50;

const AGENT: &str = r#""""Watch a stock and alert on Telegram when it moves past a threshold.

The agent polls a public quote endpoint, keeps the last price and the time of
the last alert in ctx.state, and sends at most one alert per hour.
"""

import datetime
import json
import urllib.parse
import urllib.request

QUOTE_URL = "https://query1.finance.yahoo.com/v8/finance/chart/{symbol}?interval=1d&range=1d"
TELEGRAM_URL = "https://api.telegram.org/bot{token}/sendMessage"
ALERT_COOLDOWN = datetime.timedelta(hours=1)


def fetch_price(symbol):
    """Return the latest price of symbol in its currency."""
    url = QUOTE_URL.format(symbol=urllib.parse.quote(symbol))
    request = urllib.request.Request(url, headers={"User-Agent": "project38-agent"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        data = json.loads(resp.read().decode("utf-8"))
    result = data.get("chart", {}).get("result") or []
    if not result:
        raise ValueError(f"no quote for {symbol}")
    return float(result[0]["meta"]["regularMarketPrice"])


def send_telegram(ctx, text):
    """Send text to the configured Telegram chat; return True on success."""
    token = ctx.secrets["TELEGRAM_BOT_TOKEN"]
    chat_id = ctx.config.get("chat_id")
    if not chat_id:
        ctx.log.warning("no chat_id configured; alert not sent")
        return False
    body = urllib.parse.urlencode({"chat_id": chat_id, "text": text}).encode()
    with urllib.request.urlopen(TELEGRAM_URL.format(token=token), data=body, timeout=10) as resp:
        return resp.status == 200


def change_percent(old, new):
    """Return the relative change from old to new in percent."""
    if not old:
        return 0.0
    return 100.0 * (new - old) / old


def cooled_down(ctx, now):
    """Tell whether enough time passed since the last alert."""
    last = ctx.state.get("last_alert_at")
    if not last:
        return True
    return now - datetime.datetime.fromisoformat(last) >= ALERT_COOLDOWN


def run(ctx):
    """Check the price once and alert when it rose past the threshold."""
    symbol = ctx.config.get("symbol", "TSLA")
    threshold = float(ctx.config.get("threshold_percent", 5))
    now = datetime.datetime.now(datetime.timezone.utc)
    try:
        price = fetch_price(symbol)
    except (OSError, ValueError) as exc:
        ctx.log.error("quote failed: %s", exc)
        return {"ok": False, "error": str(exc)}
    baseline = ctx.state.get("baseline")
    if baseline is None:
        ctx.state["baseline"] = price
        return {"ok": True, "price": price, "baseline": price}
    change = change_percent(baseline, price)
    alerted = False
    if change >= threshold and cooled_down(ctx, now):
        alerted = send_telegram(ctx, f"{symbol} rose {change:.1f}% to {price:.2f}")
        ctx.state["last_alert_at"] = now.isoformat()
        ctx.state["baseline"] = price
    ctx.log.info("%s at %.2f (%.1f%%)", symbol, price, change)
    return {"ok": True, "price": price, "change": round(change, 2), "alerted": alerted}
"#;

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let validator = Validator::default();
    let lines = AGENT.lines().count();
    // One warm-up run resolves ruff and fills the page cache.
    let first = rt.block_on(validator.validate(AGENT, true, ""));
    let lint = first.stage(Stage::Lint).map(|s| (s.status, s.note.clone()));
    assert!(
        !first.has_errors(),
        "the benchmark agent must be clean: {first:#?}"
    );
    let mut times: Vec<Duration> = (0..N)
        .map(|_| {
            let started = Instant::now();
            let report = rt.block_on(validator.validate(AGENT, true, ""));
            std::hint::black_box(report);
            started.elapsed()
        })
        .collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = times.iter().map(|d| ms(*d)).sum::<f64>() / N as f64;
    let p95 = ms(times[(N * 95).div_ceil(100) - 1]);
    println!("validate: {N} runs of a {lines}-line agent (syntax + ruff + rules, no dry run)");
    match lint {
        Some((StageStatus::Skipped, note)) => {
            println!("  note: lint stage skipped ({note}); numbers exclude ruff")
        }
        _ => println!("  lint stage ran (ruff)"),
    }
    println!(
        "  mean {mean:.1} ms, p95 {p95:.1} ms, min {:.1} ms, max {:.1} ms",
        ms(times[0]),
        ms(times[N - 1])
    );
    println!(
        "  target < 300 ms: {}",
        if p95 < 300.0 { "met" } else { "MISSED" }
    );
}

//! Strict parsing of the model's answer into an [`AgentSpec`].
//!
//! The answer must be one JSON object, optionally inside one ```json (or
//! bare ```) fence; prose before or after it is refused rather than guessed
//! around, because a model that adds prose is also the one that sends two
//! objects. Unknown fields are refused too. Beyond types, the name, secret
//! names, tools and schedule are checked with Project38's own rules so that
//! an accepted spec can be stored as it is.

use serde::{Deserialize, Serialize};

/// An agent as the factory proposes it, awaiting human approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSpec {
    /// Kebab-case name.
    pub name: String,
    /// What it does, in the user's language.
    pub description: String,
    /// The Python module.
    pub code: String,
    /// Cron expression or `every N{s,m,h,d}`; none for on-demand agents.
    pub schedule: Option<String>,
    /// Declared secret names.
    pub secrets: Vec<String>,
    /// Declared tools.
    pub tools: Vec<String>,
    /// Whether it needs the network.
    pub network: bool,
    /// Python defining `test_run(ctx)`, or empty.
    pub test: String,
}

/// The wire shape of the answer; `schedule` and `test` may be left out.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    name: String,
    description: String,
    code: String,
    #[serde(default)]
    schedule: Option<String>,
    secrets: Vec<String>,
    tools: Vec<String>,
    network: bool,
    #[serde(default)]
    test: Option<String>,
}

/// An answer that is not a usable agent; `raw` is the answer as received.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the model's answer is not a valid agent: {why}")]
pub struct ParseError {
    /// The answer as received.
    pub raw: String,
    /// What is wrong with it.
    pub why: String,
}

/// Parses an answer.
pub fn parse_answer(raw: &str) -> Result<AgentSpec, ParseError> {
    let fail = |why: String| ParseError {
        raw: raw.to_string(),
        why,
    };
    let body = unfence(raw.trim()).map_err(|w| fail(w.to_string()))?;
    if !body.starts_with('{') {
        return Err(fail(
            "the answer must be a single JSON object and nothing else".into(),
        ));
    }
    let a: Answer =
        serde_json::from_str(body).map_err(|e| fail(format!("invalid JSON object: {e}")))?;
    let schedule = a
        .schedule
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let spec = AgentSpec {
        name: a.name.trim().to_string(),
        description: a.description.trim().to_string(),
        code: a.code,
        schedule,
        secrets: a.secrets,
        tools: a.tools,
        network: a.network,
        test: a.test.unwrap_or_default(),
    };
    check(&spec).map_err(fail)?;
    Ok(spec)
}

/// Strips one surrounding fence, if there is one.
fn unfence(s: &str) -> Result<&str, &'static str> {
    let Some(rest) = s.strip_prefix("```") else {
        return Ok(s);
    };
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    let Some(rest) = rest
        .strip_prefix('\n')
        .or_else(|| rest.strip_prefix("\r\n"))
    else {
        return Err("a ``` fence must be followed by `json` and a new line");
    };
    let inner = rest
        .trim_end()
        .strip_suffix("```")
        .ok_or("the ``` fence is not closed at the end of the answer")?;
    if inner.contains("```") {
        return Err("the answer holds more than one fenced block");
    }
    Ok(inner.trim())
}

/// Checks the fields beyond their types.
fn check(spec: &AgentSpec) -> Result<(), String> {
    let kebab = !spec.name.is_empty()
        && spec.name.len() <= 64
        && spec.name.starts_with(|c: char| c.is_ascii_lowercase())
        && !spec.name.ends_with('-')
        && spec
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !kebab {
        return Err(format!(
            "\"name\" {:?} must be kebab-case: lower-case ASCII letters, digits and '-', starting with a letter",
            spec.name
        ));
    }
    if spec.description.is_empty() {
        return Err("\"description\" is empty".into());
    }
    if spec.code.trim().is_empty() {
        return Err("\"code\" is empty".into());
    }
    p38_core::agent::validate_secret_names(&spec.secrets)
        .map_err(|e| format!("\"secrets\": {e}"))?;
    p38_core::agent::validate_tools(&spec.tools).map_err(|e| format!("\"tools\": {e}"))?;
    if let Some(s) = &spec.schedule {
        p38_core::schedule::Schedule::parse(s).map_err(|e| format!("\"schedule\": {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"{"name": "tesla-watch", "description": "Watches TSLA.", "code": "def run(ctx):\n    return 1\n", "schedule": "every 15m", "secrets": ["TELEGRAM_BOT_TOKEN"], "tools": ["telegram"], "network": true, "test": ""}"#;

    #[test]
    fn accepts_plain_and_fenced() {
        let s = parse_answer(OK).unwrap();
        assert_eq!(s.name, "tesla-watch");
        assert_eq!(s.schedule.as_deref(), Some("every 15m"));
        let fenced = format!("```json\n{OK}\n```\n");
        assert_eq!(parse_answer(&fenced).unwrap(), s);
        let bare = format!("```\n{OK}\n```");
        assert_eq!(parse_answer(&bare).unwrap(), s);
        let null_schedule = OK.replace("\"every 15m\"", "null");
        assert_eq!(parse_answer(&null_schedule).unwrap().schedule, None);
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            format!("Here is your agent:\n{OK}"),
            format!("```json\n{OK}\n```\nHope this helps!"),
            format!("```json\n{OK}"),
            OK.replace("\"network\": true", "\"network\": \"yes\""),
            OK.replace("\"test\": \"\"", "\"test\": \"\", \"notes\": 1"),
            OK.replace("tesla-watch", "Tesla Watch"),
            OK.replace("TELEGRAM_BOT_TOKEN", "telegram token"),
            OK.replace("[\"telegram\"]", "[\"laser\"]"),
            OK.replace("every 15m", "sometimes"),
            OK.replace(", \"secrets\": [\"TELEGRAM_BOT_TOKEN\"]", ""),
            "[1, 2]".to_string(),
        ] {
            let e = parse_answer(&bad).unwrap_err();
            assert_eq!(e.raw, bad, "keeps the raw text");
            assert!(!e.why.is_empty());
        }
    }
}

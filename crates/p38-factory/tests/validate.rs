//! The validator's stages over real samples.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use p38_factory::{
    DryRunOutcome, DryRunner, RuffCommand, Stage, StageStatus, Validator, ValidatorConfig,
};

const CLEAN: &str = r#""""Report the day of the week."""

import datetime


def run(ctx):
    """Return today's weekday and count the runs."""
    ctx.state["runs"] = ctx.state.get("runs", 0) + 1
    ctx.log.info("run %d", ctx.state["runs"])
    return {"weekday": datetime.date.today().strftime("%A")}
"#;

fn ruff_installed() -> bool {
    std::process::Command::new("ruff")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn clean_code_passes_every_stage_that_runs() {
    let r = Validator::default().validate(CLEAN, false, "").await;
    assert!(!r.has_errors(), "{r:#?}");
    assert_eq!(r.stage(Stage::Syntax).unwrap().status, StageStatus::Passed);
    assert_eq!(r.stage(Stage::Rules).unwrap().status, StageStatus::Passed);
    let dry = r.stage(Stage::DryRun).unwrap();
    assert_eq!(dry.status, StageStatus::Skipped);
    assert_eq!(dry.note, "no dry runner configured");
}

#[tokio::test]
async fn syntax_error_reported_with_line() {
    let code = CLEAN.replace(
        "ctx.state.get(\"runs\", 0) + 1",
        "ctx.state.get(\"runs\", 0 + 1",
    );
    let r = Validator::default().validate(&code, false, "").await;
    assert_eq!(r.stage(Stage::Syntax).unwrap().status, StageStatus::Failed);
    let f = r
        .findings
        .iter()
        .find(|f| f.stage == Stage::Syntax)
        .unwrap();
    assert!(matches!(f.line, Some(8) | Some(9)), "{f:?}");
    // Ruff's own syntax errors would repeat the same thing: they are dropped.
    assert!(
        !r.findings.iter().any(|f| f.rule == "invalid-syntax"),
        "{r:#?}"
    );
}

#[tokio::test]
async fn syntax_error_in_test_code_is_reported() {
    let r = Validator::default()
        .validate(CLEAN, false, "def test_run(ctx:\n    pass\n")
        .await;
    let f = r
        .findings
        .iter()
        .find(|f| f.stage == Stage::Syntax)
        .unwrap();
    assert!(f.message.starts_with("in the test code"), "{f:?}");
}

#[tokio::test]
async fn ruff_reports_findings_when_installed() {
    let code = format!("{CLEAN}\n\ndef helper(x):\n    return x + undefined_name\n");
    let r = Validator::default().validate(&code, false, "").await;
    let lint = r.stage(Stage::Lint).unwrap();
    if !ruff_installed() {
        assert_eq!(lint.status, StageStatus::Skipped);
        assert!(lint.note.contains("ruff not installed"), "{lint:?}");
        return p38_testkit::missing("ruff is not installed (scripts/setup.sh installs it)");
    }
    assert_eq!(lint.status, StageStatus::Failed, "{r:#?}");
    let rules: Vec<&str> = r
        .findings
        .iter()
        .filter(|f| f.stage == Stage::Lint)
        .map(|f| f.rule.as_str())
        .collect();
    assert!(rules.contains(&"F821"), "undefined name: {rules:?}");
    assert!(rules.contains(&"D103"), "missing docstring: {rules:?}");
    let f821 = r.findings.iter().find(|f| f.rule == "F821").unwrap();
    assert_eq!(f821.line, Some(14));
    assert!(f821.is_error());
}

#[tokio::test]
async fn ruff_warnings_do_not_fail_the_stage() {
    if !ruff_installed() {
        return p38_testkit::missing("ruff is not installed (scripts/setup.sh installs it)");
    }
    let code = CLEAN.replace("import datetime\n", "import datetime\nimport json\n");
    let r = Validator::default().validate(&code, false, "").await;
    let f401 = r
        .findings
        .iter()
        .find(|f| f.rule == "F401")
        .expect("unused import found");
    assert!(!f401.is_error());
    assert_eq!(r.stage(Stage::Lint).unwrap().status, StageStatus::Passed);
}

#[tokio::test]
async fn missing_ruff_is_skipped_not_passed() {
    let cfg = ValidatorConfig {
        ruff: RuffCommand::Path(PathBuf::from("/nonexistent/bin/ruff")),
        ..Default::default()
    };
    let r = Validator::new(cfg).validate(CLEAN, false, "").await;
    let lint = r.stage(Stage::Lint).unwrap();
    assert_eq!(lint.status, StageStatus::Skipped);
    assert!(lint.note.contains("ruff not installed"), "{}", lint.note);
    assert!(!r.has_errors());
}

#[tokio::test]
async fn each_rule_fails_a_bad_sample_and_passes_a_good_one() {
    let v = Validator::new(ValidatorConfig {
        ruff: RuffCommand::Path(PathBuf::from("/nonexistent/ruff")),
        ..Default::default()
    });
    let cases: &[(&str, &str, bool, &str)] = &[
        (
            "hardcoded_secret",
            "def run(ctx):\n    return {'key': 'sk-ant-api03-Xy7pQ2rT9vW4zK8mN3bC6dF1gH5jL0sA'}\n",
            false,
            "def run(ctx):\n    return {'key': ctx.secrets['ANTHROPIC_API_KEY']}\n",
        ),
        (
            "forbidden_call",
            "import os\n\n\ndef run(ctx):\n    return os.popen('date').read()\n",
            false,
            "import datetime\n\n\ndef run(ctx):\n    return datetime.datetime.now().isoformat()\n",
        ),
        (
            "network_without_permission",
            "import urllib.request\n\n\ndef run(ctx):\n    return urllib.request.urlopen('https://example.com', timeout=5).status\n",
            false,
            "import urllib.request\n\n\ndef run(ctx):\n    return urllib.request.urlopen('https://example.com', timeout=5).status\n",
        ),
        (
            "run_signature",
            "def run(ctx, extra):\n    return 1\n",
            false,
            "def run(ctx):\n    return 1\n",
        ),
    ];
    for (rule, bad, network, good) in cases {
        let r = v.validate(bad, *network, "").await;
        assert!(
            r.findings.iter().any(|f| f.rule == *rule && f.is_error()),
            "{rule}: {r:#?}"
        );
        assert_eq!(r.stage(Stage::Rules).unwrap().status, StageStatus::Failed);
        // The good sample of network_without_permission is the same code with network declared.
        let good_network = *rule == "network_without_permission";
        let r = v.validate(good, good_network, "").await;
        assert!(
            !r.findings.iter().any(|f| f.rule == *rule),
            "{rule}: {r:#?}"
        );
    }
}

/// A dry runner that records its calls and answers as told.
struct FakeRunner {
    outcome: DryRunOutcome,
    calls: Mutex<Vec<(String, Vec<String>, bool)>>,
}

#[async_trait]
impl DryRunner for FakeRunner {
    async fn dry_run(
        &self,
        _code: &str,
        test: &str,
        secrets: &[String],
        network: bool,
    ) -> DryRunOutcome {
        self.calls
            .lock()
            .unwrap()
            .push((test.to_string(), secrets.to_vec(), network));
        self.outcome.clone()
    }
}

#[tokio::test]
async fn dry_run_runs_after_clean_syntax_and_rules_and_maps_failures() {
    let runner = Arc::new(FakeRunner {
        outcome: DryRunOutcome {
            ok: false,
            error: Some("KeyError: 'runs'".into()),
            line: Some(7),
            duration: Duration::from_millis(40),
            summary: String::new(),
        },
        calls: Mutex::new(Vec::new()),
    });
    let v = Validator::default().with_dry_runner(runner.clone());
    let secrets = vec!["TELEGRAM_BOT_TOKEN".to_string()];
    let r = v
        .validate_with_secrets(CLEAN, true, "def test_run(ctx):\n    pass\n", &secrets)
        .await;
    assert_eq!(r.stage(Stage::DryRun).unwrap().status, StageStatus::Failed);
    let f = r
        .findings
        .iter()
        .find(|f| f.stage == Stage::DryRun)
        .unwrap();
    assert_eq!((f.rule.as_str(), f.line), ("dry_run_failed", Some(7)));
    assert_eq!(runner.calls.lock().unwrap()[0].1, secrets);
    assert!(runner.calls.lock().unwrap()[0].2);

    // Not run when the syntax fails, nor when a rule finds an error.
    let broken = CLEAN.replace("def run(ctx):", "def run(ctx:");
    let r = v.validate(&broken, false, "").await;
    assert_eq!(r.stage(Stage::DryRun).unwrap().status, StageStatus::Skipped);
    let r = v
        .validate(
            &CLEAN.replace("import datetime", "import datetime\nimport subprocess"),
            false,
            "",
        )
        .await;
    assert_eq!(r.stage(Stage::DryRun).unwrap().note, "rule errors");
    assert_eq!(runner.calls.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn stages_run_in_order() {
    let r = Validator::default().validate(CLEAN, false, "").await;
    let order: Vec<Stage> = r.stages.iter().map(|s| s.stage).collect();
    assert_eq!(
        order,
        vec![Stage::Syntax, Stage::Lint, Stage::Rules, Stage::DryRun]
    );
}

/// The system prompt's example agent is what it teaches: it parses as an
/// answer and passes every static stage with no finding at all, warnings
/// included (ruff when installed).
#[tokio::test]
async fn the_system_prompts_example_passes_every_stage_without_a_finding() {
    let answer = p38_factory::prompt::example_answer();
    let spec = p38_factory::parse_answer(&answer.to_string()).expect("the example parses");
    let r = Validator::default()
        .validate(&spec.code, spec.network, &spec.test)
        .await;
    assert!(r.findings.is_empty(), "{r:#?}");
    assert_eq!(r.stage(Stage::Syntax).unwrap().status, StageStatus::Passed);
    assert_eq!(r.stage(Stage::Rules).unwrap().status, StageStatus::Passed);
}

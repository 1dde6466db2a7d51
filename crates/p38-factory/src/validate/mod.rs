//! Validation of generated agent code, in stages: syntax (tree-sitter),
//! lint (ruff, when installed), Project38's own rules, and a dry run in the
//! sandbox (through the [`DryRunner`] trait the caller implements).
//!
//! Every stage reports [`Finding`]s; the [`Report`] also says for each stage
//! whether it passed, failed or was skipped, and why it was skipped: a
//! missing ruff is reported as `skipped`, never as `passed`.

mod dry_run;
mod lint;
pub mod rules;
mod static_checks;
mod syntax;

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use dry_run::{DryRunOutcome, DryRunner};
pub use lint::{DEFAULT_LINT_ERROR_CODES, RuffCommand};
pub use static_checks::StaticChecks;

/// A validation stage, in the order they run. `Answer` is not run by the
/// [`Validator`]: the repair loop uses it for a model answer that is not the
/// JSON object asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The model's answer itself could not be parsed.
    Answer,
    /// Does the code parse?
    Syntax,
    /// What does ruff say?
    Lint,
    /// Project38's own rules.
    Rules,
    /// Does it run in the sandbox against its test?
    DryRun,
}

impl Stage {
    /// The serialised spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Answer => "answer",
            Stage::Syntax => "syntax",
            Stage::Lint => "lint",
            Stage::Rules => "rules",
            Stage::DryRun => "dry_run",
        }
    }
}

/// How bad a finding is. Only errors block an agent; warnings are shown to
/// the approver and to the model, but do not trigger a repair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Must be fixed.
    Error,
    /// Worth a look.
    Warning,
}

/// One problem found in the code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The stage that found it.
    pub stage: Stage,
    /// 1-based line in the agent's code, when known.
    pub line: Option<u32>,
    /// The rule: a ruff code (`S307`), a Project38 rule (`forbidden_call`),
    /// or `syntax_error` / `missing_token` / `dry_run_failed`.
    pub rule: String,
    /// What is wrong, for a person and for the model. Never holds a secret.
    pub message: String,
    /// How bad it is.
    pub severity: Severity,
}

impl Finding {
    /// An error finding.
    pub fn error(stage: Stage, line: Option<u32>, rule: &str, message: impl Into<String>) -> Self {
        Finding {
            stage,
            line,
            rule: rule.to_string(),
            message: message.into(),
            severity: Severity::Error,
        }
    }

    /// A warning finding.
    pub fn warning(
        stage: Stage,
        line: Option<u32>,
        rule: &str,
        message: impl Into<String>,
    ) -> Self {
        Finding {
            severity: Severity::Warning,
            ..Finding::error(stage, line, rule, message)
        }
    }

    /// Whether it blocks the agent.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// What came of one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    /// Ran and found no error (warnings allowed).
    Passed,
    /// Ran and found at least one error.
    Failed,
    /// Did not run; the note says why.
    Skipped,
}

/// One stage's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageReport {
    /// The stage.
    pub stage: Stage,
    /// Its result.
    pub status: StageStatus,
    /// How long it took.
    pub duration_ms: u64,
    /// Why it was skipped, or counts; empty when there is nothing to say.
    pub note: String,
}

/// The result of validating one piece of code.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Everything found, stage by stage.
    pub findings: Vec<Finding>,
    /// One entry per stage, in order.
    pub stages: Vec<StageReport>,
}

impl Report {
    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(Finding::is_error)
    }

    /// The error findings.
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.is_error())
    }

    /// The summary of `stage`, if it is in the report.
    pub fn stage(&self, stage: Stage) -> Option<&StageReport> {
        self.stages.iter().find(|s| s.stage == stage)
    }

    fn push_stage(&mut self, stage: Stage, started: Instant, findings: Vec<Finding>, note: String) {
        let status = if findings.iter().any(Finding::is_error) {
            StageStatus::Failed
        } else {
            StageStatus::Passed
        };
        let note = match (note.is_empty(), findings.len()) {
            (true, 0) => String::new(),
            (true, n) => format!("{n} finding(s)"),
            (false, _) => note,
        };
        self.findings.extend(findings);
        self.stages.push(StageReport {
            stage,
            status,
            duration_ms: started.elapsed().as_millis() as u64,
            note,
        });
    }

    fn skip(&mut self, stage: Stage, note: impl Into<String>) {
        self.stages.push(StageReport {
            stage,
            status: StageStatus::Skipped,
            duration_ms: 0,
            note: note.into(),
        });
    }
}

/// Settings of a [`Validator`].
#[derive(Debug, Clone)]
pub struct ValidatorConfig {
    /// How to run ruff.
    pub ruff: RuffCommand,
    /// Ruff codes (or code prefixes) reported as errors; every other ruff
    /// finding is a warning. Defaults to [`DEFAULT_LINT_ERROR_CODES`].
    pub lint_error_codes: Vec<String>,
    /// Time limit of one ruff run.
    pub ruff_timeout: std::time::Duration,
}

impl Default for ValidatorConfig {
    fn default() -> Self {
        ValidatorConfig {
            ruff: RuffCommand::Auto,
            lint_error_codes: DEFAULT_LINT_ERROR_CODES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ruff_timeout: std::time::Duration::from_secs(20),
        }
    }
}

/// Runs the stages over a piece of code.
pub struct Validator {
    config: ValidatorConfig,
    rules: rules::RuleSet,
    ruff: lint::Ruff,
    dry_runner: Option<Arc<dyn DryRunner>>,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator")
            .field("config", &self.config)
            .field("dry_runner", &self.dry_runner.is_some())
            .finish()
    }
}

impl Default for Validator {
    fn default() -> Self {
        Validator::new(ValidatorConfig::default())
    }
}

impl Validator {
    /// A validator without a dry runner (that stage is then skipped).
    pub fn new(config: ValidatorConfig) -> Self {
        Validator {
            ruff: lint::Ruff::new(config.ruff.clone()),
            rules: rules::RuleSet::default(),
            config,
            dry_runner: None,
        }
    }

    /// Adds the sandbox dry run.
    pub fn with_dry_runner(mut self, runner: Arc<dyn DryRunner>) -> Self {
        self.dry_runner = Some(runner);
        self
    }

    /// Validates `code` with no declared secrets.
    pub async fn validate(&self, code: &str, network: bool, test: &str) -> Report {
        self.validate_with_secrets(code, network, test, &[]).await
    }

    /// Validates `code`, passing `declared_secrets` on to the dry run.
    ///
    /// Order: syntax, lint, rules, then the dry run only if the syntax passed
    /// and no rule found an error. Lint and rules run even when the syntax
    /// failed: tree-sitter recovers from errors, so a hard-coded key is still
    /// reported in code that does not parse, and the model can fix both in
    /// one repair.
    pub async fn validate_with_secrets(
        &self,
        code: &str,
        network: bool,
        test: &str,
        declared_secrets: &[String],
    ) -> Report {
        let mut report = Report::default();

        let started = Instant::now();
        let parsed = syntax::parse(code);
        let mut syntax_findings = syntax::findings(&parsed, code, None);
        if !test.trim().is_empty() {
            syntax_findings.extend(syntax::findings(&syntax::parse(test), test, Some("test")));
        }
        let syntax_ok = !syntax_findings.iter().any(Finding::is_error);
        report.push_stage(Stage::Syntax, started, syntax_findings, String::new());

        let started = Instant::now();
        match self.ruff.check(code, self.config.ruff_timeout).await {
            Ok(diags) => {
                let findings = lint::findings(diags, &self.config.lint_error_codes, syntax_ok);
                report.push_stage(Stage::Lint, started, findings, String::new());
            }
            Err(note) => report.skip(Stage::Lint, note),
        }

        let started = Instant::now();
        let rule_findings = match &parsed {
            Some(tree) => self.rules.check(&rules::RuleContext {
                source: code,
                tree,
                network,
            }),
            None => Vec::new(),
        };
        let rules_ok = !rule_findings.iter().any(Finding::is_error);
        report.push_stage(Stage::Rules, started, rule_findings, String::new());

        match &self.dry_runner {
            None => report.skip(Stage::DryRun, "no dry runner configured"),
            Some(_) if !syntax_ok => report.skip(Stage::DryRun, "syntax errors"),
            Some(_) if !rules_ok => report.skip(Stage::DryRun, "rule errors"),
            Some(runner) => {
                let started = Instant::now();
                let outcome = runner.dry_run(code, test, declared_secrets, network).await;
                let findings = dry_run::findings(&outcome);
                report.push_stage(Stage::DryRun, started, findings, outcome.summary.clone());
            }
        }
        report
    }
}

//! The static stages (syntax, ruff when installed, Project38's rules) for
//! code a user writes, behind p38-core's [`CodeChecker`]: the services run
//! them on every code given through the API, so code that cannot work is
//! refused when it is given, not when it first runs.
//!
//! Hand-written code is held to what makes it work and safe, not to the
//! factory's house style: the module and function docstrings the factory
//! asks of the model (ruff `D100`, `D103`) are warnings here.

use p38_core::finding::{CheckStage, CodeChecker, CodeFinding, FindingSeverity};

use super::{DEFAULT_LINT_ERROR_CODES, Finding, Severity, Stage, Validator, ValidatorConfig};

/// Ruff codes that are errors for generated code only.
const STYLE_ONLY: &[&str] = &["D100", "D103"];

/// The static checks of hand-written agent code.
#[derive(Debug)]
pub struct StaticChecks {
    validator: Validator,
}

impl Default for StaticChecks {
    fn default() -> Self {
        StaticChecks::new(ValidatorConfig::default())
    }
}

impl StaticChecks {
    /// Checks with `config` (its ruff command and timeout), the docstring
    /// codes taken out of the errors.
    pub fn new(mut config: ValidatorConfig) -> Self {
        if config
            .lint_error_codes
            .iter()
            .map(String::as_str)
            .eq(DEFAULT_LINT_ERROR_CODES.iter().copied())
        {
            config
                .lint_error_codes
                .retain(|c| !STYLE_ONLY.contains(&c.as_str()));
        }
        StaticChecks {
            validator: Validator::new(config),
        }
    }
}

fn convert(f: Finding) -> Option<CodeFinding> {
    let stage = match f.stage {
        Stage::Syntax => CheckStage::Syntax,
        Stage::Lint => CheckStage::Lint,
        Stage::Rules => CheckStage::Rules,
        Stage::Answer | Stage::DryRun => return None,
    };
    Some(CodeFinding {
        stage,
        line: f.line,
        rule: f.rule,
        message: f.message,
        severity: match f.severity {
            Severity::Error => FindingSeverity::Error,
            Severity::Warning => FindingSeverity::Warning,
        },
    })
}

#[async_trait::async_trait]
impl CodeChecker for StaticChecks {
    async fn check(&self, code: &str, network: bool) -> Vec<CodeFinding> {
        let report = self.validator.validate(code, network, "").await;
        report.findings.into_iter().filter_map(convert).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn syntax_errors_are_errors_and_docstrings_are_not() {
        let checks = StaticChecks::default();
        let bad = checks.check("def run(ctx) return\n", false).await;
        assert!(
            bad.iter()
                .any(|f| f.is_error() && f.stage == CheckStage::Syntax && f.line == Some(1)),
            "{bad:?}"
        );
        let ok = checks.check("def run(ctx):\n    return {}\n", false).await;
        assert!(!ok.iter().any(CodeFinding::is_error), "{ok:?}");
        let eval = checks
            .check("def run(ctx):\n    return eval('1')\n", false)
            .await;
        assert!(
            eval.iter().any(|f| f.is_error() && f.line == Some(2)),
            "{eval:?}"
        );
    }
}

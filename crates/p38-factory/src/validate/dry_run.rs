//! The dry-run stage: the caller runs the code in the real sandbox; this
//! module only defines the seam and maps its outcome.

use std::time::Duration;

use async_trait::async_trait;

use super::{Finding, Stage};

/// What a dry run found.
#[derive(Debug, Clone, PartialEq)]
pub struct DryRunOutcome {
    /// Whether the agent loaded and its test (or `run`) passed.
    pub ok: bool,
    /// The error, when it failed (exception type, message, traceback tail).
    pub error: Option<String>,
    /// The agent line the error points at, when known.
    pub line: Option<u32>,
    /// How long the run took.
    pub duration: Duration,
    /// What a passing run did (e.g. which function was called and what it
    /// returned), kept as the stage's note; empty when there is nothing to
    /// say.
    pub summary: String,
}

/// Runs generated code once in the sandbox with stub secrets, against its
/// test when it has one. Implemented by the caller on top of `p38-sandbox`.
#[async_trait]
pub trait DryRunner: Send + Sync {
    /// Runs `code` (and `test`, which defines `test_run(ctx)`, when not
    /// empty) with placeholder values for `declared_secrets`, with or without
    /// network.
    async fn dry_run(
        &self,
        code: &str,
        test: &str,
        declared_secrets: &[String],
        network: bool,
    ) -> DryRunOutcome;
}

/// A failed run is one error finding.
pub(crate) fn findings(outcome: &DryRunOutcome) -> Vec<Finding> {
    if outcome.ok {
        return Vec::new();
    }
    vec![Finding::error(
        Stage::DryRun,
        outcome.line,
        "dry_run_failed",
        outcome
            .error
            .clone()
            .unwrap_or_else(|| "the dry run failed without an error message".to_string()),
    )]
}

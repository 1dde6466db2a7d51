//! What the static checks of agent code report: the same stages the factory
//! runs on generated code (syntax, ruff, Project38's own rules), applied to
//! code a user gives through the API.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The static stage that found something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckStage {
    /// The code does not parse.
    Syntax,
    /// Ruff's verdict (only when ruff is installed on the server).
    Lint,
    /// Project38's own rules (secrets in code, forbidden calls, network use
    /// without the permission, `run(ctx)`, hidden characters).
    Rules,
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FindingSeverity {
    /// The code is refused until it is fixed.
    Error,
    /// Worth a look; the code is accepted.
    Warning,
}

/// One finding in an agent's code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CodeFinding {
    /// The stage that found it.
    pub stage: CheckStage,
    /// 1-based line in the code, when known.
    pub line: Option<u32>,
    /// The rule: a ruff code (`F821`), a Project38 rule (`forbidden_call`),
    /// or `syntax_error` / `missing_token`.
    pub rule: String,
    /// What is wrong.
    pub message: String,
    /// Whether it blocks the code.
    pub severity: FindingSeverity,
}

impl CodeFinding {
    /// Whether the code is refused for it.
    pub fn is_error(&self) -> bool {
        self.severity == FindingSeverity::Error
    }
}

/// Runs the static checks over agent code. The factory implements it; the
/// services call it on every code a user gives (create and change).
#[async_trait::async_trait]
pub trait CodeChecker: Send + Sync {
    /// The findings of `code`, for an agent with (`network`) or without the
    /// network permission.
    async fn check(&self, code: &str, network: bool) -> Vec<CodeFinding>;
}

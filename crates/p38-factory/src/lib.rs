/*!
The agent factory of Project38: turns a plain-language description ("watch
Tesla and alert me on Telegram when it rises 5%", in English, Hebrew or any
other language) into a Python agent program, validates it, and repairs it in
a generate-test-fix loop under a cost budget. The result is an
[`AgentSpec`] that the caller stores for human approval; nothing here runs
an agent or stores anything.

# Overview

- [`providers`]: one file per LLM wire format (Anthropic, OpenAI and
  OpenAI-compatible servers, Gemini) behind [`LlmProvider`], a
  [`RetryingProvider`] for transient failures, and [`build_provider`] to
  choose one from a [`ProviderConfig`]. Keys never print.
- [`pricing`]: what a call costs, from a per-model price table.
- [`prompt`] and the templates under `prompts/`: the agent contract taught to
  the model, and the repair request.
- [`parse`]: the strict reading of the model's JSON answer.
- [`validate`]: syntax (tree-sitter), lint (ruff), Project38's rules (one
  file each) and a dry run through the caller's [`DryRunner`].
- [`repair`]: the loop, [`Factory::generate`].

```no_run
use std::sync::Arc;
use p38_factory::{Factory, ProviderConfig, ProviderKind, Validator, build_provider};

# async fn demo() -> Result<(), p38_factory::FactoryError> {
let mut cfg = ProviderConfig::new(ProviderKind::Anthropic);
cfg.api_key = Some("key from the secret resolver".into());
let factory = Factory::new(build_provider(&cfg), Validator::default());
let generation = factory
    .generate("watch Tesla and alert me on Telegram when it rises 5%", &|p| {
        println!("{:?} {}", p.stage, p.iteration)
    })
    .await?;
println!("{:?} for ${:.4}", generation.outcome, generation.total_cost_usd);
# Ok(()) }
```
*/
#![deny(missing_docs)]

pub mod error;
pub mod parse;
pub mod pricing;
pub mod prompt;
pub mod providers;
pub mod repair;
pub mod validate;

pub use error::FactoryError;
pub use parse::{AgentSpec, ParseError, parse_answer};
pub use pricing::{Price, Prices};
pub use providers::{
    AnthropicProvider, ChatMessage, ChatRequest, ChatResponse, GeminiProvider, LlmProvider,
    OpenAiProvider, ProviderConfig, ProviderError, ProviderKind, RetryPolicy, RetryingProvider,
    Role, StopReason, build_provider,
};
pub use repair::{Factory, FailureCause, Generation, Iteration, Outcome, Progress, ProgressStage};
pub use validate::{
    DryRunOutcome, DryRunner, Finding, Report, RuffCommand, Severity, Stage, StageReport,
    StageStatus, StaticChecks, Validator, ValidatorConfig,
};

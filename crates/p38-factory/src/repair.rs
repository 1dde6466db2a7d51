//! The generate-test-fix loop: ask the model for an agent, parse and
//! validate its answer, feed the findings back, and stop at the first clean
//! agent, or when the iterations or the budget run out.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::FactoryError;
use crate::parse::{AgentSpec, parse_answer};
use crate::pricing::Prices;
use crate::prompt::{Previous, Prompts};
use crate::providers::{ChatMessage, ChatRequest, LlmProvider, ProviderErrorKind, StopReason};
use crate::validate::{Finding, Stage, StageReport, Validator};

/// Longest description accepted, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;

/// One round of the loop, kept whether it succeeded or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Iteration {
    /// 1-based round number.
    pub n: u32,
    /// The code proposed (empty when the answer could not be parsed).
    pub code: String,
    /// What validation (or answer parsing) found.
    pub findings: Vec<Finding>,
    /// The validation stages' summaries (empty on a parse failure).
    pub stages: Vec<StageReport>,
    /// Prompt tokens of this round's call.
    pub input_tokens: u64,
    /// Answer tokens of this round's call.
    pub output_tokens: u64,
    /// Cost of this round's call in USD.
    pub cost_usd: f64,
    /// Duration of this round's call.
    pub latency_ms: u64,
    /// The model's answer as received, when it was not a usable agent.
    pub raw_answer_on_parse_failure: Option<String>,
    /// Why the model stopped: a truncated, refused or blocked answer is
    /// reported here and as a finding of stage `answer`.
    #[serde(default)]
    pub stop: StopReason,
    /// The token limit this round's call was given (0 in records made
    /// before it was kept).
    #[serde(default)]
    pub max_tokens: u32,
}

/// Why a generation failed, as a machine-readable kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum FailureCause {
    /// The next call would have exceeded the budget, or the last one did.
    BudgetExhausted,
    /// `max_iterations` rounds ran without a clean agent.
    MaxIterations,
    /// The provider failed for good (after its own retries).
    Provider {
        /// What kind of provider failure.
        error: ProviderErrorKind,
    },
    /// The model refused to answer, or the provider's safety filters
    /// blocked the answer: asking again would cost as much and end the same.
    AnswerStopped {
        /// [`StopReason::Refused`] or [`StopReason::Blocked`].
        reason: StopReason,
    },
}

/// How a generation ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Outcome {
    /// A clean agent, ready for human approval.
    Succeeded {
        /// The agent.
        spec: AgentSpec,
    },
    /// No clean agent.
    Failed {
        /// What happened, for a person.
        reason: String,
        /// What happened, for a program.
        cause: FailureCause,
    },
}

/// The result of [`Factory::generate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// How it ended.
    pub outcome: Outcome,
    /// Every round, in order.
    pub iterations: Vec<Iteration>,
    /// Sum of the rounds' costs in USD.
    pub total_cost_usd: f64,
    /// Sum of the rounds' prompt tokens.
    pub total_input_tokens: u64,
    /// Sum of the rounds' answer tokens.
    pub total_output_tokens: u64,
}

/// Where the loop is, for progress displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressStage {
    /// Waiting for the first answer.
    Generating,
    /// Checking an answer.
    Validating,
    /// Waiting for a repaired answer.
    Repairing,
    /// Finished with a clean agent.
    Done,
    /// Finished without one.
    Failed,
}

/// A progress report, sent at each step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The step.
    pub stage: ProgressStage,
    /// The current round (1-based).
    pub iteration: u32,
    /// Error findings of the last validated answer.
    pub findings: usize,
    /// USD spent so far.
    pub cost_so_far: f64,
}

/// The agent factory.
pub struct Factory {
    /// The model.
    pub provider: Arc<dyn LlmProvider>,
    /// The checks.
    pub validator: Validator,
    /// The price table for cost accounting.
    pub prices: Prices,
    /// Most rounds, the first included (default 5).
    pub max_iterations: u32,
    /// Most USD one generation may spend (default 1.0).
    pub budget_usd: f64,
    /// `max_tokens` of the first call (default 8192). After an answer cut
    /// off at the limit, the next call gets twice as much, up to
    /// `max_tokens_ceiling`.
    pub max_tokens: u32,
    /// The most `max_tokens` grows to after truncated answers (default
    /// 16384, which every built-in model but claude-3-5-haiku accepts).
    pub max_tokens_ceiling: u32,
    /// Sampling temperature (default 0.2).
    pub temperature: Option<f32>,
    prompts: Prompts,
}

impl std::fmt::Debug for Factory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Factory")
            .field("provider", &self.provider.name())
            .field("model", &self.provider.model())
            .field("max_iterations", &self.max_iterations)
            .field("budget_usd", &self.budget_usd)
            .finish_non_exhaustive()
    }
}

/// A running tally of the loop.
#[derive(Default)]
struct Tally {
    iterations: Vec<Iteration>,
    cost: f64,
    input: u64,
    output: u64,
}

impl Tally {
    fn finish(self, outcome: Outcome) -> Generation {
        Generation {
            outcome,
            iterations: self.iterations,
            total_cost_usd: self.cost,
            total_input_tokens: self.input,
            total_output_tokens: self.output,
        }
    }
}

impl Factory {
    /// A factory with default prices, 5 iterations and a 1 USD budget.
    pub fn new(provider: Arc<dyn LlmProvider>, validator: Validator) -> Self {
        Factory {
            provider,
            validator,
            prices: Prices::default(),
            max_iterations: 5,
            budget_usd: 1.0,
            max_tokens: 8192,
            max_tokens_ceiling: 16384,
            temperature: Some(0.2),
            // The templates are compiled in and rendered by the unit tests,
            // so they are known to parse.
            prompts: Prompts::new().expect("built-in prompt templates parse"),
        }
    }

    /// Refuses a model without a price: its calls would count as free, and
    /// the budget would never stop the loop. Callers check this before they
    /// record a generation; [`Factory::generate`] checks it too.
    pub fn check_priced(&self) -> Result<(), FactoryError> {
        let model = self.provider.model();
        match self.prices.get(model) {
            Some(_) => Ok(()),
            None => Err(FactoryError::UnpricedModel {
                model: model.to_string(),
            }),
        }
    }

    /// Turns a description into a validated agent, or explains why not.
    pub async fn generate(
        &self,
        description: &str,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<Generation, FactoryError> {
        let description = description.trim();
        if description.is_empty() {
            return Err(FactoryError::InvalidDescription(
                "the description is empty; say what the agent should do".into(),
            ));
        }
        if description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(FactoryError::InvalidDescription(format!(
                "the description is longer than {MAX_DESCRIPTION_CHARS} characters"
            )));
        }
        self.check_priced()?;
        let system = self.prompts.system()?;
        let mut user = self.prompts.generate(description)?;
        let mut max_tokens = self.max_tokens.max(1);
        let mut t = Tally::default();
        let mut last_cost = 0.0;
        let report = |stage, iteration, findings, cost| {
            progress(Progress {
                stage,
                iteration,
                findings,
                cost_so_far: cost,
            });
        };

        for n in 1..=self.max_iterations.max(1) {
            if t.cost >= self.budget_usd || t.cost + last_cost > self.budget_usd {
                let reason = format!(
                    "budget of ${:.4} exhausted: spent ${:.4}, the next call is estimated at ${last_cost:.4}",
                    self.budget_usd, t.cost
                );
                report(ProgressStage::Failed, n, 0, t.cost);
                return Ok(t.finish(Outcome::Failed {
                    reason,
                    cause: FailureCause::BudgetExhausted,
                }));
            }
            let stage = if n == 1 {
                ProgressStage::Generating
            } else {
                ProgressStage::Repairing
            };
            report(stage, n, 0, t.cost);
            let req = ChatRequest {
                system: system.clone(),
                messages: vec![ChatMessage::user(user.clone())],
                max_tokens,
                temperature: self.temperature,
            };
            let resp = match self.provider.complete(&req).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(provider = self.provider.name(), iteration = n, error = %e, "factory call failed");
                    report(ProgressStage::Failed, n, 0, t.cost);
                    let reason = format!("the model provider failed: {e}");
                    return Ok(t.finish(Outcome::Failed {
                        reason,
                        cause: FailureCause::Provider { error: e.kind() },
                    }));
                }
            };
            // The model that answered (a dated snapshot) if it has a price,
            // else the configured one, which has (checked above).
            let cost = self
                .prices
                .cost(&resp.model, resp.input_tokens, resp.output_tokens)
                .or_else(|| {
                    self.prices
                        .cost(self.provider.model(), resp.input_tokens, resp.output_tokens)
                })
                .unwrap_or(0.0);
            last_cost = cost;
            t.cost += cost;
            t.input += resp.input_tokens;
            t.output += resp.output_tokens;
            let mut it = Iteration {
                n,
                code: String::new(),
                findings: Vec::new(),
                stages: Vec::new(),
                input_tokens: resp.input_tokens,
                output_tokens: resp.output_tokens,
                cost_usd: cost,
                latency_ms: resp.latency.as_millis() as u64,
                raw_answer_on_parse_failure: None,
                stop: resp.stop,
                max_tokens,
            };

            report(ProgressStage::Validating, n, 0, t.cost);
            match resp.stop {
                StopReason::Complete => {}
                StopReason::Truncated => {
                    let next = max_tokens
                        .saturating_mul(2)
                        .min(self.max_tokens_ceiling.max(max_tokens));
                    let room = if next > max_tokens {
                        format!("the next answer may be up to {next} tokens, but write it shorter")
                    } else {
                        "write a shorter answer".to_string()
                    };
                    let message = format!(
                        "your answer was truncated: it was cut off at the limit of {max_tokens} tokens before it was complete; {room}"
                    );
                    tracing::info!(
                        iteration = n,
                        max_tokens,
                        next,
                        "the model's answer was truncated"
                    );
                    it.findings = vec![Finding::error(
                        Stage::Answer,
                        None,
                        "truncated_answer",
                        message,
                    )];
                    user = self.prompts.repair(
                        description,
                        Previous::Truncated(&resp.text),
                        &it.findings,
                    )?;
                    it.raw_answer_on_parse_failure = Some(resp.text);
                    max_tokens = next;
                    t.iterations.push(it);
                    report(ProgressStage::Validating, n, 1, t.cost);
                    if t.cost >= self.budget_usd {
                        let reason = format!(
                            "budget of ${:.4} exhausted after {n} iteration(s): spent ${:.4}",
                            self.budget_usd, t.cost
                        );
                        report(ProgressStage::Failed, n, 1, t.cost);
                        return Ok(t.finish(Outcome::Failed {
                            reason,
                            cause: FailureCause::BudgetExhausted,
                        }));
                    }
                    continue;
                }
                stop @ (StopReason::Refused | StopReason::Blocked) => {
                    let rule = if stop == StopReason::Refused {
                        "refused_answer"
                    } else {
                        "blocked_answer"
                    };
                    let reason = format!(
                        "the model's answer was {}; the description may ask for something the model or the provider will not write",
                        stop.describe()
                    );
                    tracing::warn!(
                        provider = self.provider.name(),
                        iteration = n,
                        ?stop,
                        "the model gave no usable answer"
                    );
                    it.findings = vec![Finding::error(Stage::Answer, None, rule, reason.clone())];
                    it.raw_answer_on_parse_failure = Some(resp.text);
                    t.iterations.push(it);
                    report(ProgressStage::Failed, n, 1, t.cost);
                    return Ok(t.finish(Outcome::Failed {
                        reason,
                        cause: FailureCause::AnswerStopped { reason: stop },
                    }));
                }
            }
            match parse_answer(&resp.text) {
                Err(e) => {
                    it.findings = vec![Finding::error(
                        Stage::Answer,
                        None,
                        "malformed_answer",
                        e.why.clone(),
                    )];
                    user = self.prompts.repair(
                        description,
                        Previous::RawAnswer(&e.raw),
                        &it.findings,
                    )?;
                    it.raw_answer_on_parse_failure = Some(e.raw);
                }
                Ok(spec) => {
                    let r = self
                        .validator
                        .validate_with_secrets(&spec.code, spec.network, &spec.test, &spec.secrets)
                        .await;
                    it.code = spec.code.clone();
                    it.findings = r.findings.clone();
                    it.stages = r.stages.clone();
                    if !r.has_errors() {
                        tracing::info!(
                            iteration = n,
                            cost_usd = t.cost,
                            "factory produced a clean agent"
                        );
                        t.iterations.push(it);
                        report(ProgressStage::Done, n, 0, t.cost);
                        return Ok(t.finish(Outcome::Succeeded { spec }));
                    }
                    user = self.prompts.repair(
                        description,
                        Previous::Code(&spec.code),
                        &r.findings,
                    )?;
                }
            }
            let errors = it.findings.iter().filter(|f| f.is_error()).count();
            tracing::info!(
                iteration = n,
                errors,
                cost_usd = t.cost,
                "factory answer needs repair"
            );
            t.iterations.push(it);
            report(ProgressStage::Validating, n, errors, t.cost);
            if t.cost >= self.budget_usd {
                let reason = format!(
                    "budget of ${:.4} exhausted after {n} iteration(s): spent ${:.4}",
                    self.budget_usd, t.cost
                );
                report(ProgressStage::Failed, n, errors, t.cost);
                return Ok(t.finish(Outcome::Failed {
                    reason,
                    cause: FailureCause::BudgetExhausted,
                }));
            }
        }
        let n = self.max_iterations.max(1);
        let errors = t
            .iterations
            .last()
            .map_or(0, |i| i.findings.iter().filter(|f| f.is_error()).count());
        report(ProgressStage::Failed, n, errors, t.cost);
        let reason = format!(
            "no clean agent after the maximum of {n} iteration(s); {errors} error(s) remain"
        );
        Ok(t.finish(Outcome::Failed {
            reason,
            cause: FailureCause::MaxIterations,
        }))
    }
}

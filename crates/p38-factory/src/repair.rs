//! The generate-test-fix loop: ask the model for an agent, parse and
//! validate its answer, feed the findings back, and stop at the first clean
//! agent, or when the iterations or the budget run out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::FactoryError;
use crate::parse::{AgentSpec, parse_answer};
use crate::pricing::Prices;
use crate::prompt::{Previous, Prompts};
use crate::providers::{ChatMessage, ChatRequest, LlmProvider, ProviderErrorKind, StopReason};
use crate::validate::rules::mask_secrets;
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
    /// Duration of this round's call, its retries and their pauses
    /// included.
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
    /// The generation's total time limit ([`Factory::time_limit`]) was
    /// reached.
    TimeLimit {
        /// The limit, seconds.
        seconds: u64,
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
        /// The warnings it still has (the model was shown them once, when
        /// iterations and budget allowed).
        #[serde(default)]
        warnings: Vec<Finding>,
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The step.
    pub stage: ProgressStage,
    /// The current round (1-based).
    pub iteration: u32,
    /// Error findings of the last validated answer.
    pub findings: usize,
    /// USD spent so far.
    pub cost_so_far: f64,
    /// Prompt tokens so far.
    pub input_tokens: u64,
    /// Answer tokens so far.
    pub output_tokens: u64,
    /// The round that has just ended (its secrets masked), in the first
    /// report after it ended; `None` in every other report.
    pub finished: Option<Iteration>,
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
    /// The most time the whole generation may take, every call,
    /// validation and repair included (default none); when it is reached
    /// the generation fails with [`FailureCause::TimeLimit`], keeping the
    /// rounds that ended.
    pub time_limit: Option<Duration>,
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
    /// A clean answer whose warnings went back to the model: what the
    /// generation ends with if the model's next answer is not clean.
    clean: Option<(AgentSpec, Vec<Finding>)>,
}

impl Tally {
    /// Keeps a round, with the secrets of its code and answer masked: the
    /// finding stays, the key does not.
    fn push(&mut self, mut it: Iteration) {
        it.code = mask_secrets(&it.code);
        it.raw_answer_on_parse_failure =
            it.raw_answer_on_parse_failure.as_deref().map(mask_secrets);
        self.iterations.push(it);
    }

    fn finish(self, outcome: Outcome) -> Generation {
        // A clean answer in hand outlives a failed attempt to improve it.
        let outcome = match (outcome, self.clean) {
            (Outcome::Failed { .. }, Some((spec, warnings))) => {
                Outcome::Succeeded { spec, warnings }
            }
            (outcome, _) => outcome,
        };
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
            time_limit: None,
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
        let started = Instant::now();
        // `ended`: a round has just been kept; the report carries it.
        let report = |stage, iteration, findings, t: &Tally, ended: bool| {
            progress(Progress {
                stage,
                iteration,
                findings,
                cost_so_far: t.cost,
                input_tokens: t.input,
                output_tokens: t.output,
                finished: if ended {
                    t.iterations.last().cloned()
                } else {
                    None
                },
            });
        };
        let left = || self.time_limit.map(|l| l.saturating_sub(started.elapsed()));
        let out_of_time = |t: Tally, n: u32, while_: &str| {
            let limit = self.time_limit.unwrap_or_default();
            let seconds = limit.as_secs();
            let errors = t
                .iterations
                .last()
                .map_or(0, |i| i.findings.iter().filter(|f| f.is_error()).count());
            report(ProgressStage::Failed, n, errors, &t, false);
            tracing::warn!(iteration = n, seconds, "generation time limit reached");
            t.finish(Outcome::Failed {
                reason: format!(
                    "the generation's time limit of {limit:?} was reached in iteration {n}, {while_}; {} iteration(s) ended before it",
                    if n > 0 { n - 1 } else { 0 }
                ),
                cause: FailureCause::TimeLimit { seconds },
            })
        };

        for n in 1..=self.max_iterations.max(1) {
            if t.cost >= self.budget_usd || t.cost + last_cost > self.budget_usd {
                let reason = format!(
                    "budget of ${:.4} exhausted: spent ${:.4}, the next call is estimated at ${last_cost:.4}",
                    self.budget_usd, t.cost
                );
                report(ProgressStage::Failed, n, 0, &t, false);
                return Ok(t.finish(Outcome::Failed {
                    reason,
                    cause: FailureCause::BudgetExhausted,
                }));
            }
            if left() == Some(Duration::ZERO) {
                return Ok(out_of_time(t, n, "before the model was asked"));
            }
            let stage = if n == 1 {
                ProgressStage::Generating
            } else {
                ProgressStage::Repairing
            };
            report(stage, n, 0, &t, false);
            let req = ChatRequest {
                system: system.clone(),
                messages: vec![ChatMessage::user(user.clone())],
                max_tokens,
                temperature: self.temperature,
            };
            // The whole call: the provider's retries and their pauses too.
            let call_started = Instant::now();
            let Some(answer) = within(left(), self.provider.complete(&req)).await else {
                return Ok(out_of_time(t, n, "while waiting for the model"));
            };
            let latency = call_started.elapsed();
            let resp = match answer {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(provider = self.provider.name(), iteration = n, error = %e, "factory call failed");
                    report(ProgressStage::Failed, n, 0, &t, false);
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
                latency_ms: latency.as_millis() as u64,
                raw_answer_on_parse_failure: None,
                stop: resp.stop,
                max_tokens,
            };

            report(ProgressStage::Validating, n, 0, &t, false);
            match resp.stop {
                StopReason::Complete => {}
                StopReason::Truncated => {
                    // Never past what the model accepts (a larger
                    // max_tokens is a 400, not a longer answer).
                    let ceiling = crate::pricing::max_output_tokens(self.provider.model())
                        .map_or(self.max_tokens_ceiling, |l| l.min(self.max_tokens_ceiling));
                    let next = max_tokens.saturating_mul(2).min(ceiling.max(max_tokens));
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
                    t.push(it);
                    report(ProgressStage::Validating, n, 1, &t, true);
                    if t.cost >= self.budget_usd {
                        let reason = format!(
                            "budget of ${:.4} exhausted after {n} iteration(s): spent ${:.4}",
                            self.budget_usd, t.cost
                        );
                        report(ProgressStage::Failed, n, 1, &t, false);
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
                    t.push(it);
                    report(ProgressStage::Failed, n, 1, &t, true);
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
                    let checks = self.validator.validate_with_secrets(
                        &spec.code,
                        spec.network,
                        &spec.test,
                        &spec.secrets,
                    );
                    let Some(r) = within(left(), checks).await else {
                        it.code = spec.code.clone();
                        t.push(it);
                        return Ok(out_of_time(t, n, "while its answer was being validated"));
                    };
                    it.code = spec.code.clone();
                    it.findings = r.findings.clone();
                    it.stages = r.stages.clone();
                    if !r.has_errors() {
                        let warnings = r.findings.clone();
                        // Warnings go back to the model once, when another
                        // round fits the iterations, the budget and the time.
                        let another_fits = n < self.max_iterations
                            && t.cost + last_cost <= self.budget_usd
                            && left() != Some(Duration::ZERO);
                        if warnings.is_empty() || t.clean.is_some() || !another_fits {
                            tracing::info!(
                                iteration = n,
                                cost_usd = t.cost,
                                warnings = warnings.len(),
                                "factory produced a clean agent"
                            );
                            t.push(it);
                            t.clean = None;
                            report(ProgressStage::Done, n, 0, &t, true);
                            return Ok(t.finish(Outcome::Succeeded { spec, warnings }));
                        }
                        tracing::info!(
                            iteration = n,
                            warnings = warnings.len(),
                            "clean agent; its warnings go back to the model once"
                        );
                        user = self.prompts.repair(
                            description,
                            Previous::Answer(&spec),
                            &r.findings,
                        )?;
                        t.clean = Some((spec, warnings));
                        t.push(it);
                        report(ProgressStage::Validating, n, 0, &t, true);
                        continue;
                    }
                    if t.clean.is_some() {
                        // The answer to the warnings broke something: keep
                        // the clean one rather than spend more on repairs.
                        tracing::info!(
                            iteration = n,
                            "the answer to the warnings has errors; the earlier clean agent stands"
                        );
                        t.push(it);
                        report(ProgressStage::Done, n, 0, &t, true);
                        let (spec, warnings) = t.clean.take().expect("checked above");
                        return Ok(t.finish(Outcome::Succeeded { spec, warnings }));
                    }
                    user =
                        self.prompts
                            .repair(description, Previous::Answer(&spec), &r.findings)?;
                }
            }
            let errors = it.findings.iter().filter(|f| f.is_error()).count();
            tracing::info!(
                iteration = n,
                errors,
                cost_usd = t.cost,
                "factory answer needs repair"
            );
            t.push(it);
            report(ProgressStage::Validating, n, errors, &t, true);
            if t.cost >= self.budget_usd {
                let reason = format!(
                    "budget of ${:.4} exhausted after {n} iteration(s): spent ${:.4}",
                    self.budget_usd, t.cost
                );
                report(ProgressStage::Failed, n, errors, &t, false);
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
        report(ProgressStage::Failed, n, errors, &t, false);
        let reason = format!(
            "no clean agent after the maximum of {n} iteration(s); {errors} error(s) remain"
        );
        Ok(t.finish(Outcome::Failed {
            reason,
            cause: FailureCause::MaxIterations,
        }))
    }
}

/// `fut`'s output, or `None` when `left` (none: no limit) ran out first.
async fn within<T>(left: Option<Duration>, fut: impl std::future::Future<Output = T>) -> Option<T> {
    match left {
        None => Some(fut.await),
        Some(d) => tokio::time::timeout(d, fut).await.ok(),
    }
}

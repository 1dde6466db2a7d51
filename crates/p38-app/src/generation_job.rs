//! A generation's job: what the worker holding a generation's task runs.
//! The repair loop reports progress as it goes, the agent is saved when an
//! answer is clean, and the end is recorded on the generation, all only
//! while that worker still holds the task: its lease is the generation's,
//! so when the worker stops (a crash, a deploy) another worker claims the
//! task and runs the generation again from the start, within what is left
//! of the budget, up to [`p38_core::generation::GENERATION_ATTEMPTS`].

use async_trait::async_trait;

use p38_core::agent::{AgentStatus, NewAgent};
use p38_core::generation::{
    Generation, GenerationFinish, GenerationOverrides, GenerationProgress, GenerationStage,
    GenerationStatus,
};
use p38_core::job::{GenerationEnd, GenerationJob, GenerationRunner, StopSignal};
use p38_core::schedule::Schedule;
use p38_core::{Error, Result};
use p38_factory::{Factory, Outcome, ProgressStage};

use crate::App;

#[async_trait]
impl GenerationRunner for App {
    async fn run(&self, job: GenerationJob, stop: StopSignal) -> GenerationEnd {
        let id = job.generation_id;
        let g = match self.store.get_generation(id).await {
            Ok(Some(g)) => g,
            Ok(None) => return GenerationEnd::Failed(format!("generation {id} does not exist")),
            Err(e) => {
                // The database is away: the task's lease lapses and a
                // worker runs the generation once it is back.
                tracing::warn!(generation = id, error = %e.report(), "loading a generation failed; leaving it to its lease");
                return GenerationEnd::Lost;
            }
        };
        // Ended already (a worker recorded its end, then stopped before
        // recording the task's): the task ends the same way.
        if g.status != GenerationStatus::Running {
            return ended(&g);
        }
        if job.attempt > 1 {
            tracing::warn!(
                generation = id,
                attempt = job.attempt,
                "taking over a generation whose worker stopped; running it again"
            );
        }
        let mut factory = match self.generation_factory().await {
            Ok(f) => f,
            Err(e) => {
                let error = if job.attempt > 1 {
                    format!("could not run it again after an interruption: {e}")
                } else {
                    e.to_string()
                };
                let end = GenerationFinish::Failed {
                    report: serde_json::json!({}),
                    error,
                };
                return self.finish(&job, end).await;
            }
        };
        // The budget is per agent: earlier attempts spent part of it.
        factory.budget_usd = (factory.budget_usd - g.cost_usd).max(0.0);
        let spent = Spent {
            cost_usd: g.cost_usd,
            input_tokens: g.input_tokens,
            output_tokens: g.output_tokens,
        };
        tokio::select! {
            end = self.run_generation_loop(&job, factory, g, spent) => end,
            () = stop.stopped() => {
                // Cancelled, or no longer this worker's (handed back at
                // shutdown, or taken over after a lapsed lease).
                match self.store.get_generation(id).await {
                    Ok(Some(g)) if g.status == GenerationStatus::Cancelled => {
                        tracing::info!(generation = id, "generation cancelled; stopping it");
                        GenerationEnd::Cancelled
                    }
                    _ => {
                        tracing::warn!(generation = id, "this generation's task is no longer this worker's; stopping here");
                        GenerationEnd::Lost
                    }
                }
            }
        }
    }
}

/// The task's end for a generation that has ended.
fn ended(g: &Generation) -> GenerationEnd {
    match (g.status, g.agent_id) {
        (GenerationStatus::Succeeded, Some(agent_id)) => GenerationEnd::Succeeded { agent_id },
        (GenerationStatus::Cancelled, _) => GenerationEnd::Cancelled,
        _ => GenerationEnd::Failed(
            g.error
                .clone()
                .unwrap_or_else(|| format!("generation {} ended", g.id)),
        ),
    }
}

impl App {
    /// The factory of this node's generator settings.
    async fn generation_factory(&self) -> Result<Factory> {
        let generator = self.generator.clone().ok_or_else(|| {
            Error::unavailable(
                "agent generation is not configured on this worker (P38_LLM_PROVIDER)",
            )
        })?;
        generator.factory().await
    }

    /// Records the end, while `job`'s worker holds the task.
    async fn finish(&self, job: &GenerationJob, end: GenerationFinish) -> GenerationEnd {
        let id = job.generation_id;
        match self
            .store
            .finish_generation(job.task_id, &job.worker, &end)
            .await
        {
            Ok(true) => match end {
                GenerationFinish::Succeeded { agent_id, .. } => {
                    GenerationEnd::Succeeded { agent_id }
                }
                GenerationFinish::Failed { error, .. } => GenerationEnd::Failed(error),
            },
            Ok(false) => {
                tracing::warn!(
                    generation = id,
                    "the generation was cancelled or taken over before its end was recorded"
                );
                GenerationEnd::Lost
            }
            Err(e) => {
                // Its task's lease lapses, and the worker that claims it
                // again records an end.
                tracing::error!(generation = id, error = %e.report(), "recording the end of a generation failed");
                GenerationEnd::Lost
            }
        }
    }

    async fn run_generation_loop(
        &self,
        job: &GenerationJob,
        factory: Factory,
        g: Generation,
        spent: Spent,
    ) -> GenerationEnd {
        let id = job.generation_id;
        // The loop reports progress synchronously; a task writes it to the
        // store so a slow database never slows the loop.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<p38_factory::Progress>();
        let (store, task, worker) = (self.store.clone(), job.task_id, job.worker.clone());
        let writer = tokio::spawn(async move {
            // The iterations that ended, as the report shows them while
            // the loop runs (the final report replaces them).
            let mut ended: Vec<serde_json::Value> = Vec::new();
            while let Some(p) = rx.recv().await {
                let report = p.finished.as_ref().map(|it| {
                    ended.push(serde_json::to_value(it).unwrap_or_default());
                    serde_json::json!({ "iterations": ended })
                });
                let stage = match p.stage {
                    ProgressStage::Generating => GenerationStage::Generating,
                    ProgressStage::Validating => GenerationStage::Validating,
                    ProgressStage::Repairing => GenerationStage::Repairing,
                    ProgressStage::Done => GenerationStage::Saving,
                    ProgressStage::Failed => GenerationStage::Failing,
                };
                let gp = GenerationProgress {
                    stage,
                    iteration: i64::from(p.iteration),
                    findings: p.findings as i64,
                    cost_usd: spent.cost_usd + p.cost_so_far,
                    input_tokens: spent.input_tokens + p.input_tokens as i64,
                    output_tokens: spent.output_tokens + p.output_tokens as i64,
                    report,
                };
                let _ = store.generation_progress(task, &worker, &gp).await;
            }
        });
        let progress = move |p: p38_factory::Progress| {
            let _ = tx.send(p);
        };
        let result = factory.generate(&g.description, &progress).await;
        drop(progress);
        let _ = writer.await;
        let generated = match result {
            Err(e) => {
                let end = GenerationFinish::Failed {
                    report: serde_json::json!({}),
                    error: e.to_string(),
                };
                return self.finish(job, end).await;
            }
            Ok(generated) => generated,
        };
        let report = serde_json::to_value(&generated).unwrap_or_default();
        let totals = GenerationProgress {
            stage: GenerationStage::Saving,
            iteration: generated.iterations.len() as i64,
            findings: generated
                .iterations
                .last()
                .map(|i| i.findings.len() as i64)
                .unwrap_or(0),
            cost_usd: spent.cost_usd + generated.total_cost_usd,
            input_tokens: spent.input_tokens + generated.total_input_tokens as i64,
            output_tokens: spent.output_tokens + generated.total_output_tokens as i64,
            report: None,
        };
        // Still this worker's? One stalled past its lease may have been
        // taken over; then the other one records (and saves) the result.
        match self
            .store
            .generation_progress(job.task_id, &job.worker, &totals)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(
                    generation = id,
                    "generation cancelled or taken over by another worker; this result is discarded"
                );
                return GenerationEnd::Lost;
            }
            Err(e) => {
                // Not knowing whether it is still ours, do not save: the
                // lease lapses and a worker that can reach the database
                // runs it again.
                tracing::warn!(generation = id, error = %e.report(), "checking a generation's task failed; leaving it to be taken over");
                return GenerationEnd::Lost;
            }
        }
        let end = match &generated.outcome {
            Outcome::Failed {
                reason,
                cause: p38_factory::FailureCause::TimeLimit { .. },
            } => GenerationFinish::Failed {
                report,
                error: format!("{reason} (P38_LLM_GENERATION_TIMEOUT)"),
            },
            Outcome::Failed { reason, .. } => GenerationFinish::Failed {
                report,
                error: reason.clone(),
            },
            Outcome::Succeeded { spec, .. } => {
                let clean = generated
                    .iterations
                    .last()
                    .is_some_and(|i| i.findings.is_empty());
                match self
                    .save_generated(id, spec, &g.overrides, &g.description, &g.created_by, clean)
                    .await
                {
                    Ok(agent_id) => GenerationFinish::Succeeded { report, agent_id },
                    Err(e) => GenerationFinish::Failed {
                        report,
                        error: format!("saving the agent failed: {e}"),
                    },
                }
            }
        };
        self.finish(job, end).await
    }

    /// Saves a generated agent: waiting for approval, or active when the
    /// opt-in auto-approval applies (no findings at all, no network, secret
    /// or tool permissions).
    async fn save_generated(
        &self,
        generation: i64,
        spec: &p38_factory::AgentSpec,
        overrides: &GenerationOverrides,
        description: &str,
        actor: &str,
        clean: bool,
    ) -> Result<i64> {
        // What the user gave wins over what the model proposed.
        let schedule = match &overrides.schedule {
            Some(s) => Some(s.clone()),
            None => spec
                .schedule
                .clone()
                .filter(|s| Schedule::parse_new(s).is_ok()),
        };
        let harmless = !spec.network && spec.secrets.is_empty() && spec.tools.is_empty();
        let auto = self.config.auto_approve && clean && harmless;
        let status = if auto {
            AgentStatus::Active
        } else {
            AgentStatus::PendingApproval
        };
        let settings = overrides.settings.clone().unwrap_or_default();
        let config = overrides
            .config
            .clone()
            .unwrap_or_else(|| serde_json::json!({}));
        // The one rule of a first firing (none while it waits for approval).
        let parsed = schedule.as_deref().and_then(|s| Schedule::parse(s).ok());
        let next_fire_at = p38_core::schedule::first_firing(
            parsed.as_ref(),
            status,
            settings.tz(),
            p38_core::time::now(),
        );
        let description = if spec.description.trim().is_empty() {
            description.to_string()
        } else {
            spec.description.clone()
        };
        // A name the model picked may be taken: add a number. A name the
        // user gave is kept as it is (taken since: the generation fails).
        let tries = if overrides.name.is_some() { 1 } else { 99 };
        let base = overrides.name.clone().unwrap_or_else(|| spec.name.clone());
        for n in 1..=tries {
            let name = if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            let new = NewAgent {
                name: name.clone(),
                description: description.clone(),
                code: spec.code.clone(),
                status,
                schedule: schedule.clone(),
                config: config.clone(),
                secrets: spec.secrets.clone(),
                tools: spec.tools.clone(),
                network: spec.network,
                allow_hosts: Vec::new(),
                settings: settings.clone(),
                created_by: actor.to_string(),
                next_fire_at,
                approved_by: auto
                    .then(|| p38_core::agent::ApprovalChange::AUTO_APPROVER.to_string()),
                generation_id: Some(generation),
            };
            let detail =
                serde_json::json!({"name": name, "generation": generation, "auto_approved": auto});
            let a = p38_core::audit::NewAudit {
                actor: actor.to_string(),
                action: "agent.create".into(),
                target: String::new(),
                detail: Some(detail),
            };
            match self.store.create_agent(new, a).await {
                Ok(agent) => {
                    self.signal.schedule_changed();
                    return Ok(agent.id);
                }
                Err(Error::Conflict { .. }) if tries > 1 => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::conflict(
            "name",
            format!("no free name near {base:?}"),
        ))
    }
}

/// What earlier, interrupted attempts of a generation already cost; a
/// generation run again includes it in its totals.
#[derive(Debug, Clone, Copy, Default)]
struct Spent {
    cost_usd: f64,
    input_tokens: i64,
    output_tokens: i64,
}

//! Generation: a plain-language description becomes a validated agent that
//! waits for approval. The repair loop runs in the background; its progress
//! and every iteration are stored, so any interface can follow it.

use std::sync::Arc;

use p38_core::agent::{AgentSettings, AgentStatus, NewAgent, validate_name};
use p38_core::auth::{Principal, Scope};
use p38_core::generation::{
    Generation, GenerationOverrides, GenerationProgress, GenerationStage, GenerationStatus,
};
use p38_core::page::{Page, PageRequest};
use p38_core::schedule::Schedule;
use p38_core::{Error, Result};
use p38_factory::{
    DryRunner, Factory, Outcome, ProgressStage, ProviderConfig, ProviderKind, Validator,
    ValidatorConfig,
};
use p38_secrets::SecretResolver;

use crate::App;
use crate::agents::audit;
use crate::dto::CreateAgent;

/// How agents are generated.
#[derive(Clone)]
pub struct GeneratorConfig {
    /// Wire format of the model provider.
    pub kind: ProviderKind,
    /// Model (`None`: the provider's default).
    pub model: Option<String>,
    /// Endpoint (`None`: the provider's public one).
    pub base_url: Option<String>,
    /// Time limit of one model call, seconds.
    pub timeout_secs: u64,
    /// Time limit of a whole generation, seconds (every call, validation
    /// and repair); 0: none.
    pub generation_timeout_secs: u64,
    /// Repair-loop iterations (default 5).
    pub max_iterations: u32,
    /// Cost budget per agent in USD (default 1).
    pub budget_usd: f64,
    /// Price of the configured model, USD per million input and output
    /// tokens, when the built-in table does not know it (or is out of date).
    pub price: Option<(f64, f64)>,
}

/// What generation needs besides the store.
#[derive(Clone)]
pub struct Generator {
    /// Settings.
    pub config: GeneratorConfig,
    /// Where provider keys come from (the same chain as agents' secrets).
    pub keys: Arc<dyn SecretResolver>,
    /// Runs generated code in the sandbox.
    pub dry_runner: Arc<dyn DryRunner>,
}

impl GeneratorConfig {
    /// The secret holding the provider's key.
    fn key_name(&self) -> Option<&'static str> {
        match self.kind {
            ProviderKind::Anthropic => Some("ANTHROPIC_API_KEY"),
            ProviderKind::OpenAi => Some("OPENAI_API_KEY"),
            ProviderKind::Gemini => Some("GEMINI_API_KEY"),
            ProviderKind::OpenAiCompatible => None,
        }
    }
}

impl Generator {
    /// The key: from the secret chain, else the plain environment variable
    /// of the same name (where providers' own tools look for it).
    async fn api_key(&self) -> Result<Option<String>> {
        let Some(name) = self.config.key_name() else {
            return Ok(std::env::var("OPENAI_API_KEY").ok());
        };
        if let Some(v) = self
            .keys
            .resolve(&[name.to_string()])
            .await
            .ok()
            .and_then(|mut found| found.remove(name))
        {
            return Ok(Some(v.expose().to_string()));
        }
        match std::env::var(name) {
            Ok(v) if !v.is_empty() => Ok(Some(v)),
            _ => Err(Error::unavailable(format!(
                "no key for the model provider on the server: the server reads {name} from its secrets (p38 secret set {name}) or from its own environment (where p38 up or p38 serve runs), not from the CLI's"
            ))),
        }
    }

    async fn factory(&self) -> Result<Factory> {
        let cfg = ProviderConfig {
            kind: self.config.kind,
            model: self.config.model.clone(),
            base_url: self.config.base_url.clone(),
            api_key: self.api_key().await?,
            timeout_secs: Some(self.config.timeout_secs),
            max_attempts: None,
        };
        let provider = p38_factory::build_provider(&cfg);
        let validator =
            Validator::new(ValidatorConfig::default()).with_dry_runner(self.dry_runner.clone());
        let mut f = Factory::new(provider, validator);
        f.max_iterations = self.config.max_iterations.max(1);
        f.budget_usd = self.config.budget_usd;
        f.time_limit = (self.config.generation_timeout_secs > 0)
            .then(|| std::time::Duration::from_secs(self.config.generation_timeout_secs));
        if let Some((input, output)) = self.config.price {
            let model = f.provider.model().to_string();
            f.prices.set(
                model,
                p38_factory::Price {
                    input_per_mtok: input,
                    output_per_mtok: output,
                },
            );
        }
        // A model without a price would make every call free and the
        // budget meaningless: refuse before anything is recorded.
        f.check_priced()?;
        Ok(f)
    }
}

impl App {
    /// Starts generating an agent from `req.description` (author or admin);
    /// returns at once with the generation to follow. Every other field is
    /// checked first, before a model key is looked for: `name`, `schedule`,
    /// `config` and `settings` win over what the model proposes; the
    /// permissions (`secrets`, `tools`, `network`) and `status` are the
    /// model's to propose and a human's to approve, so they are refused here.
    pub async fn start_generation(&self, who: &Principal, req: CreateAgent) -> Result<Generation> {
        who.require(Scope::Author)?;
        let overrides = self.generation_overrides(&req).await?;
        let description = req.description.trim();
        if description.is_empty() {
            return Err(Error::validation(
                "description",
                "describe the agent: what should it do, and when?",
            ));
        }
        self.check_description(description)?;
        let chars = description.chars().count();
        if chars > p38_factory::repair::MAX_DESCRIPTION_CHARS {
            return Err(Error::validation(
                "description",
                format!(
                    "the description has {chars} characters; the factory takes at most {}",
                    p38_factory::repair::MAX_DESCRIPTION_CHARS
                ),
            ));
        }
        let generator = self.generator.clone().ok_or_else(|| {
            Error::unavailable(
                "agent generation is not configured on this server (P38_LLM_PROVIDER)",
            )
        })?;
        let factory = generator.factory().await?;
        let model = factory.provider.model().to_string();
        let g = self
            .store
            .create_generation(
                description,
                &overrides,
                &model,
                &who.actor(),
                // Held through a lease from the start, so that if this
                // process dies before the loop ends another one runs it.
                &self.config.instance_id,
                self.config.generation_lease,
                audit(who, "generation.start", "", None),
            )
            .await?;
        let app = self.clone();
        let (id, desc, actor) = (g.id, description.to_string(), who.actor());
        tokio::spawn(async move {
            app.run_generation(id, factory, desc, overrides, actor, Spent::default())
                .await
        });
        Ok(g)
    }

    /// Checks the fields given along with a description and keeps those
    /// that override the model's proposal.
    async fn generation_overrides(&self, req: &CreateAgent) -> Result<GenerationOverrides> {
        let refuse = |field: &str| {
            Err(Error::validation(
                field,
                format!(
                    "{field} cannot be given with a description alone: the model proposes the permissions and a human approves them; change {field} after the agent is written (PATCH /api/agents/{{id}})"
                ),
            ))
        };
        if !req.secrets.is_empty() {
            return refuse("secrets");
        }
        if !req.tools.is_empty() {
            return refuse("tools");
        }
        if req.network {
            return refuse("network");
        }
        if req.status.is_some() {
            return Err(Error::validation(
                "status",
                "a written agent always waits for approval; leave status out",
            ));
        }
        let name = match req.name.as_str() {
            "" => None,
            n => {
                validate_name(n)?;
                if self.store.get_agent_by_name(n).await?.is_some() {
                    return Err(Error::conflict(
                        "name",
                        format!("an agent named {n:?} exists already"),
                    ));
                }
                Some(n.to_string())
            }
        };
        let schedule = crate::agents::normalise_schedule(req.schedule.clone())?;
        if let Some(c) = &req.config {
            self.check_config(c)?;
        }
        req.settings.validate()?;
        Ok(GenerationOverrides {
            name,
            schedule,
            config: req.config.clone(),
            settings: (req.settings != AgentSettings::default()).then(|| req.settings.clone()),
        })
    }

    /// Takes over the generations whose process died (their lease lapsed)
    /// and runs them again, from the start, up to 3 attempts in all. Each
    /// API process calls this now and then; the store's compare-and-set
    /// hands each lapsed generation to one of them.
    pub async fn take_over_generations(&self) -> Result<usize> {
        let Some(generator) = self.generator.clone() else {
            return Ok(0);
        };
        let mut taken = 0;
        while let Some(g) = self
            .store
            .take_over_generation(&self.config.instance_id, self.config.generation_lease, 3)
            .await?
        {
            tracing::warn!(
                generation = g.id,
                "taking over a generation whose process stopped; running it again"
            );
            let mut factory = match generator.factory().await {
                Ok(f) => f,
                Err(e) => {
                    let msg = format!("could not run it again after an interruption: {e}");
                    self.store
                        .finish_generation(
                            g.id,
                            &self.config.instance_id,
                            GenerationStatus::Failed,
                            &serde_json::json!({}),
                            Some(&msg),
                            None,
                        )
                        .await?;
                    continue;
                }
            };
            // The budget is per agent: earlier attempts spent part of it.
            factory.budget_usd = (factory.budget_usd - g.cost_usd).max(0.0);
            let spent = Spent {
                cost_usd: g.cost_usd,
                input_tokens: g.input_tokens,
                output_tokens: g.output_tokens,
            };
            let app = self.clone();
            tokio::spawn(async move {
                app.run_generation(
                    g.id,
                    factory,
                    g.description,
                    g.overrides,
                    g.created_by,
                    spent,
                )
                .await
            });
            taken += 1;
        }
        Ok(taken)
    }

    /// One generation with its progress and report.
    pub async fn get_generation(&self, who: &Principal, id: i64) -> Result<Generation> {
        who.require(Scope::Viewer)?;
        self.store
            .get_generation(id)
            .await?
            .ok_or_else(|| Error::not_found("generation", id))
    }

    /// Generations newest first, optionally of one status, each without
    /// its report.
    pub async fn list_generations(
        &self,
        who: &Principal,
        status: Option<GenerationStatus>,
        page: PageRequest,
    ) -> Result<Page<Generation>> {
        who.require(Scope::Viewer)?;
        self.store.list_generations(status, page).await
    }

    /// Stops a running generation (operator): it becomes `cancelled`,
    /// audited, keeping the iterations that ended. This process stops its
    /// loop at once; another process running it stops at its next lease
    /// renewal, which the cancel makes fail.
    pub async fn cancel_generation(&self, who: &Principal, id: i64) -> Result<Generation> {
        who.require(Scope::Operator)?;
        let g = self
            .store
            .cancel_generation(
                id,
                &format!("cancelled by {}", who.actor()),
                audit(who, "generation.cancel", &format!("generation:{id}"), None),
            )
            .await?;
        if let Some(stop) = self.running_generations.lock().unwrap().get(&id) {
            stop.notify_one();
        }
        Ok(g)
    }

    async fn run_generation(
        &self,
        id: i64,
        factory: Factory,
        description: String,
        overrides: GenerationOverrides,
        actor: String,
        spent: Spent,
    ) {
        // Renew the lease while the loop runs; it lapses when this process
        // dies, and another process runs the generation again. When the
        // lease is lost (this process stalled past it and another took the
        // generation over), the loop here stops: only one runs it.
        let lease = self.config.generation_lease;
        let (store, owner) = (self.store.clone(), self.config.instance_id.clone());
        let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
        let renewer = AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 4).await;
                match store.renew_generation(id, &owner, lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        let _ = lost_tx.send(());
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(generation = id, error = %e.report(), "renewing a generation's lease failed")
                    }
                }
            }
        }));
        let cancel = Arc::new(tokio::sync::Notify::new());
        self.running_generations
            .lock()
            .unwrap()
            .insert(id, cancel.clone());
        tokio::select! {
            () = self.run_generation_loop(id, factory, description, overrides, actor, spent) => {}
            () = cancel.notified() => tracing::info!(generation = id, "generation cancelled; stopping it"),
            Ok(()) = lost_rx => tracing::warn!(generation = id, "this generation was cancelled or taken over by another process; stopping here"),
        }
        self.running_generations.lock().unwrap().remove(&id);
        drop(renewer);
    }

    async fn run_generation_loop(
        &self,
        id: i64,
        factory: Factory,
        description: String,
        overrides: GenerationOverrides,
        actor: String,
        spent: Spent,
    ) {
        // The loop reports progress synchronously; a task writes it to the
        // store so a slow database never slows the loop.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<p38_factory::Progress>();
        let (store, owner) = (self.store.clone(), self.config.instance_id.clone());
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
                let _ = store.generation_progress(id, &owner, &gp).await;
            }
        });
        let progress = move |p: p38_factory::Progress| {
            let _ = tx.send(p);
        };
        let result = factory.generate(&description, &progress).await;
        drop(progress);
        let _ = writer.await;
        // Still ours? A process stalled past its lease may have been taken
        // over; then the other one records (and saves) the result.
        match self
            .store
            .renew_generation(id, &self.config.instance_id, self.config.generation_lease)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(
                    generation = id,
                    "generation taken over by another process; this result is discarded"
                );
                return;
            }
            Err(e) => {
                // Not knowing whether it is still ours, do not save: the
                // lease lapses and a process that can reach the database
                // runs it again.
                tracing::warn!(generation = id, error = %e.report(), "checking a generation's lease failed; leaving it to be taken over");
                return;
            }
        }
        let (status, report, error, agent) = match result {
            Err(e) => (
                GenerationStatus::Failed,
                serde_json::json!({}),
                Some(e.to_string()),
                None,
            ),
            Ok(g) => {
                let report = serde_json::to_value(&g).unwrap_or_default();
                let totals = GenerationProgress {
                    stage: GenerationStage::Saving,
                    iteration: g.iterations.len() as i64,
                    findings: g
                        .iterations
                        .last()
                        .map(|i| i.findings.len() as i64)
                        .unwrap_or(0),
                    cost_usd: spent.cost_usd + g.total_cost_usd,
                    input_tokens: spent.input_tokens + g.total_input_tokens as i64,
                    output_tokens: spent.output_tokens + g.total_output_tokens as i64,
                    report: None,
                };
                let _ = self
                    .store
                    .generation_progress(id, &self.config.instance_id, &totals)
                    .await;
                match &g.outcome {
                    Outcome::Failed {
                        reason,
                        cause: p38_factory::FailureCause::TimeLimit { .. },
                    } => (
                        GenerationStatus::Failed,
                        report,
                        Some(format!("{reason} (P38_LLM_GENERATION_TIMEOUT)")),
                        None,
                    ),
                    Outcome::Failed { reason, .. } => {
                        (GenerationStatus::Failed, report, Some(reason.clone()), None)
                    }
                    Outcome::Succeeded { spec, .. } => {
                        let clean = g.iterations.last().is_some_and(|i| i.findings.is_empty());
                        match self
                            .save_generated(id, spec, &overrides, &description, &actor, clean)
                            .await
                        {
                            Ok(agent_id) => {
                                (GenerationStatus::Succeeded, report, None, Some(agent_id))
                            }
                            Err(e) => (
                                GenerationStatus::Failed,
                                report,
                                Some(format!("saving the agent failed: {e}")),
                                None,
                            ),
                        }
                    }
                }
            }
        };
        match self
            .store
            .finish_generation(
                id,
                &self.config.instance_id,
                status,
                &report,
                error.as_deref(),
                agent,
            )
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                generation = id,
                "the generation was taken over before its end was recorded"
            ),
            Err(e) => {
                tracing::error!(generation = id, error = %e.report(), "recording the end of a generation failed")
            }
        }
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
        let next_fire_at = if auto {
            schedule
                .as_deref()
                .and_then(|s| Schedule::parse(s).ok())
                .and_then(|s| s.next_after(p38_core::time::now(), settings.tz()))
        } else {
            None
        };
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
/// taken-over generation's totals include it.
#[derive(Debug, Clone, Copy, Default)]
struct Spent {
    cost_usd: f64,
    input_tokens: i64,
    output_tokens: i64,
}

/// Aborts a background task when dropped, also when the code holding it
/// panics or its future is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

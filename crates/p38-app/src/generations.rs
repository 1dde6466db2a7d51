//! Generation: a plain-language description becomes a validated agent that
//! waits for approval. Starting one queues its task; a worker runs it
//! (`generation_job.rs`), storing its progress and every iteration, so any
//! interface can follow it.

use std::sync::Arc;

use p38_core::agent::{AgentSettings, validate_name};
use p38_core::auth::{Principal, Scope};
use p38_core::generation::{Generation, GenerationOverrides, GenerationStatus};
use p38_core::page::{Page, PageRequest};
use p38_core::{Error, Result};
use p38_factory::{DryRunner, Factory, ProviderConfig, ProviderKind, Validator, ValidatorConfig};
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
                "no key for the model provider on the server: the server reads {name} from its secrets (p38 secret set {name}, shared by every node on the database) or from its own environment (of each p38 up, p38 serve and p38 worker process, since workers run generations), not from the CLI's"
            ))),
        }
    }

    pub(crate) async fn factory(&self) -> Result<Factory> {
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
                audit(who, "generation.start", "", None),
            )
            .await?;
        // A worker with a free generation slot runs it; its task's lease
        // keeps it alive across a worker that stops.
        self.signal.task_queued();
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
    /// audited, keeping the iterations that ended, and so does its task. A
    /// worker of this process stops its loop at once; one elsewhere at its
    /// next heartbeat, which the cancel makes fail.
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
        self.signal.task_stopped();
        Ok(g)
    }
}

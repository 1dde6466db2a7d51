//! Agent services: create, read, change, delete, run.

use p38_core::agent::{
    Agent, AgentChange, AgentState, AgentStatus, AgentVersion, ApprovalChange, NewAgent,
    validate_allow_hosts, validate_name, validate_secret_names, validate_tools,
};
use p38_core::approval::{Approval, Covered};
use p38_core::audit::NewAudit;
use p38_core::auth::{Principal, Scope};
use p38_core::finding::CodeFinding;
use p38_core::page::{Page, PageRequest};
use p38_core::runnable::NotRunnable;
use p38_core::schedule::{Schedule, first_firing};
use p38_core::task::{NewTask, Task, TaskKind, Trigger};
use p38_core::time::now;
use p38_core::{Error, Result};

use crate::App;
use crate::dto::{AgentView, CreateAgent, DeletedAgent, GenerationCost, RejectAgent, UpdateAgent};
use p38_core::workspace::WorkspaceFate;

/// How many upcoming firings an agent view lists.
const NEXT_RUNS_SHOWN: usize = 5;

impl App {
    /// Creates an agent from hand-written code.
    pub async fn create_agent(&self, who: &Principal, req: CreateAgent) -> Result<AgentView> {
        who.require(Scope::Author)?;
        validate_name(&req.name)?;
        let code = req.code.ok_or_else(|| {
            Error::validation(
                "code",
                "give the agent's code, or only a description to have Project38 write it",
            )
        })?;
        self.check_code(&code)?;
        self.check_description(&req.description)?;
        let schedule = given_schedule(req.schedule)?;
        let config = req.config.unwrap_or_else(|| serde_json::json!({}));
        self.check_config(&config)?;
        validate_secret_names(&req.secrets)?;
        validate_tools(&req.tools)?;
        validate_allow_hosts(&req.allow_hosts)?;
        req.settings.validate()?;
        // Last, as the costliest: the factory's static stages.
        let warnings = self.static_checks(&code, req.network).await?;
        let status = self.initial_status(who, req.status)?;
        let next_fire_at = first_firing(
            schedule.as_ref().map(|s| &s.parsed),
            status,
            req.settings.tz(),
            now(),
        );
        let new = NewAgent {
            next_fire_at,
            name: req.name,
            description: req.description,
            code,
            status,
            schedule: schedule.map(|s| s.text),
            config,
            secrets: req.secrets,
            tools: req.tools,
            network: req.network,
            allow_hosts: req.allow_hosts,
            settings: req.settings,
            created_by: who.actor(),
            // An admin who posts code and makes it runnable approves it
            // (never an author, nor anyone under four eyes: see initial_status).
            approved_by: status.can_run().then(|| who.actor()),
            generation_id: None,
        };
        let detail = serde_json::json!({"name": new.name, "secrets": new.secrets, "tools": new.tools, "network": new.network, "allow_hosts": new.allow_hosts});
        let agent = self
            .store
            .create_agent(new, audit(who, "agent.create", "", Some(detail)))
            .await?;
        self.signal.schedule_changed();
        Ok(with_warnings(view(agent), warnings))
    }

    /// Runs the static checks (when configured) over code given through
    /// the API: errors refuse it, warnings are returned.
    async fn static_checks(&self, code: &str, network: bool) -> Result<Vec<CodeFinding>> {
        let Some(checker) = &self.code_checker else {
            return Ok(Vec::new());
        };
        let findings = checker.check(code, network).await;
        if findings.iter().any(CodeFinding::is_error) {
            return Err(Error::CodeRejected { findings });
        }
        Ok(findings)
    }

    /// Finds an agent by id or by name.
    pub async fn find_agent(&self, who: &Principal, id_or_name: &str) -> Result<Agent> {
        who.require(Scope::Viewer)?;
        let found = match id_or_name.parse::<i64>() {
            Ok(id) => self.store.get_agent(id).await?,
            // No name holds a NUL (names are checked on the way in), and
            // PostgreSQL refuses the character in a query.
            Err(_) if id_or_name.contains('\0') => None,
            Err(_) => self.store.get_agent_by_name(id_or_name).await?,
        };
        found.ok_or_else(|| Error::not_found("agent", id_or_name))
    }

    /// One agent with its next firings and, when Project38 wrote it, what
    /// writing it cost.
    pub async fn get_agent(&self, who: &Principal, id_or_name: &str) -> Result<AgentView> {
        let agent = self.find_agent(who, id_or_name).await?;
        let generation = match agent.generation_id {
            Some(g) => self.store.get_generation(g).await?.map(|g| GenerationCost {
                id: g.id,
                model: g.model,
                iterations: g.iteration,
                input_tokens: g.input_tokens,
                output_tokens: g.output_tokens,
                cost_usd: g.cost_usd,
            }),
            None => None,
        };
        Ok(AgentView {
            generation,
            ..view(agent)
        })
    }

    /// Agents, newest first.
    pub async fn list_agents(
        &self,
        who: &Principal,
        status: Option<AgentStatus>,
        page: PageRequest,
    ) -> Result<Page<AgentView>> {
        who.require(Scope::Viewer)?;
        Ok(self.store.list_agents(status, page).await?.map(view))
    }

    /// Applies a partial change. Authors and admins may change anything;
    /// operators may only pause and resume (a change of `status` alone).
    pub async fn update_agent(
        &self,
        who: &Principal,
        id_or_name: &str,
        req: UpdateAgent,
    ) -> Result<AgentView> {
        let only_status = req.status.is_some()
            && req.name.is_none()
            && req.description.is_none()
            && req.code.is_none()
            && req.schedule.is_none()
            && req.config.is_none()
            && req.secrets.is_none()
            && req.tools.is_none()
            && req.network.is_none()
            && req.allow_hosts.is_none()
            && req.settings.is_none();
        who.require(if only_status {
            Scope::Operator
        } else {
            Scope::Author
        })?;
        let agent = self.find_agent(who, id_or_name).await?;
        if let Some(n) = &req.name {
            validate_name(n)?;
        }
        if let Some(c) = &req.code {
            self.check_code(c)?;
        }
        if let Some(d) = &req.description {
            self.check_description(d)?;
        }
        if let Some(c) = &req.config {
            self.check_config(c)?;
        }
        if let Some(s) = &req.secrets {
            validate_secret_names(s)?;
        }
        if let Some(t) = &req.tools {
            validate_tools(t)?;
        }
        if let Some(h) = &req.allow_hosts {
            validate_allow_hosts(h)?;
        }
        if let Some(s) = &req.settings {
            s.validate()?;
        }
        if req.status == Some(AgentStatus::Rejected) {
            return Err(Error::validation(
                "status",
                format!(
                    "an agent is rejected with POST /api/agents/{}/reject and a reason (p38 agent reject {} --reason TEXT)",
                    agent.id, agent.id
                ),
            ));
        }
        let after = changed_agent(&agent, &req);
        let schedule = match req.schedule {
            None => None,
            Some(s) => Some(given_schedule(s)?),
        };
        // New code, or a new network permission for the old code, passes
        // the static checks again (network use is judged against it).
        let warnings = if req.code.is_some() || req.network.is_some() {
            let code = req.code.as_deref().unwrap_or(&agent.code);
            self.static_checks(code, req.network.unwrap_or(agent.network))
                .await?
        } else {
            Vec::new()
        };
        // A change of what the approval covers withdraws the approval: the
        // agent waits for a human again (or is approved at once when the
        // opt-in auto-approval applies: no network, hosts, secrets or tools).
        // A rejected agent so changed goes back to approval.
        let covered_changed = Covered::of(&after) != Covered::of(&agent);
        let approved = agent.approved_by.is_some() && !covered_changed;
        let mut status = req.status;
        let mut approval = ApprovalChange::Keep;
        let mut rejected_reason = None;
        let mut changed_by = None;
        if covered_changed {
            changed_by = Some(who.actor());
            let harmless = !after.network
                && after.secrets.is_empty()
                && after.tools.is_empty()
                && after.allow_hosts.is_empty();
            if self.config.auto_approve && harmless && agent.status != AgentStatus::Rejected {
                approval = ApprovalChange::GrantAutomatically;
            } else {
                approval = ApprovalChange::Withdraw;
                if agent.status.can_run()
                    || agent.status == AgentStatus::Rejected
                    || status.is_some_and(AgentStatus::can_run)
                {
                    status = Some(AgentStatus::PendingApproval);
                }
            }
            if agent.status == AgentStatus::Rejected {
                rejected_reason = Some(None);
            }
        } else if agent.status == AgentStatus::Rejected
            && status.is_some_and(|s| s != AgentStatus::Disabled && s != AgentStatus::Rejected)
        {
            return Err(Error::conflict(
                "status",
                format!(
                    "agent {} was rejected; change what the approval covers ({}) to send it back to approval",
                    agent.name,
                    p38_core::approval::COVERED_FIELDS.join(", ")
                ),
            ));
        }
        if status.is_some_and(AgentStatus::can_run)
            && !approved
            && approval != ApprovalChange::GrantAutomatically
        {
            return Err(Error::conflict(
                "status",
                format!(
                    "agent {} is not approved: approve it with POST /api/agents/{}/approve (p38 agent approve {})",
                    agent.name, agent.id, agent.id
                ),
            ));
        }
        let timing_changed = schedule.is_some() || status.is_some() || req.settings.is_some();
        let next_fire_at = timing_changed.then(|| {
            let stored;
            let sched = match &schedule {
                Some(s) => s.as_ref().map(|s| &s.parsed),
                None => {
                    stored = stored_schedule(&agent);
                    stored.as_ref()
                }
            };
            first_firing(
                sched,
                status.unwrap_or(agent.status),
                req.settings.as_ref().unwrap_or(&agent.settings).tz(),
                now(),
            )
        });
        let change = AgentChange {
            expect_updated_at: Some(agent.updated_at),
            expect_version: None,
            next_fire_at,
            approval,
            changed_by,
            rejected_reason,
            allow_hosts: req.allow_hosts,
            name: req.name,
            description: req.description,
            code: req.code,
            status,
            schedule: schedule.map(|s| s.map(|s| s.text)),
            config: req.config,
            secrets: req.secrets,
            tools: req.tools,
            network: req.network,
            settings: req.settings,
        };
        if change.is_empty() {
            return Err(Error::Validation {
                field: None,
                message: "nothing to change: the body names no field".into(),
            });
        }
        let fields = changed_fields(&change);
        let a = audit(
            who,
            "agent.update",
            &format!("agent:{}", agent.id),
            Some(serde_json::json!({ "fields": fields })),
        );
        let updated = self
            .store
            .update_agent(agent.id, change, &who.actor(), a)
            .await?;
        if timing_changed {
            self.signal.schedule_changed();
        }
        Ok(with_warnings(view(updated), warnings))
    }

    /// Approves an agent waiting for approval (operator): it becomes active
    /// and its schedule starts.
    pub async fn approve_agent(
        &self,
        who: &Principal,
        id_or_name: &str,
        version: Option<i64>,
    ) -> Result<AgentView> {
        who.require_approver()?;
        let agent = self.find_agent(who, id_or_name).await?;
        ensure_waiting(&agent, "approved")?;
        if agent.network && who.scope != Scope::Admin {
            return Err(Error::Forbidden(format!(
                "agent {} has the host network (network: true): approving it needs an admin token; yours has the {} scope",
                agent.name,
                who.scope.as_str()
            )));
        }
        self.check_four_eyes(who, &agent, "approve")?;
        let detail = serde_json::json!({
            "version": agent.version, "secrets": agent.secrets, "tools": agent.tools, "network": agent.network,
            "allow_hosts": agent.allow_hosts,
            "changes": Approval::of(&agent).changes.iter().map(|c| c.field.as_str()).collect::<Vec<_>>(),
        });
        if let Some(v) = version.filter(|v| *v != agent.version) {
            return Err(Error::conflict(
                "version",
                format!(
                    "you reviewed version {v}, but agent {} is now at version {}: review it again",
                    agent.name, agent.version
                ),
            ));
        }
        let change = AgentChange {
            expect_updated_at: Some(agent.updated_at),
            expect_version: Some(version.unwrap_or(agent.version)),
            status: Some(AgentStatus::Active),
            approval: ApprovalChange::GrantBy(who.actor()),
            next_fire_at: Some(first_firing(
                stored_schedule(&agent).as_ref(),
                AgentStatus::Active,
                agent.settings.tz(),
                now(),
            )),
            ..Default::default()
        };
        self.decide(who, &agent, change, "agent.approve", detail)
            .await
    }

    /// Rejects an agent waiting for approval (operator): it never runs
    /// until a change of what the approval covers sends it back to
    /// approval. Audited with the reason.
    pub async fn reject_agent(
        &self,
        who: &Principal,
        id_or_name: &str,
        req: RejectAgent,
    ) -> Result<AgentView> {
        who.require_approver()?;
        let reason = req.reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
            return Err(Error::validation(
                "reason",
                format!("reason must be 1 to {MAX_REASON_CHARS} characters, saying why"),
            ));
        }
        let agent = self.find_agent(who, id_or_name).await?;
        ensure_waiting(&agent, "rejected")?;
        self.check_four_eyes(who, &agent, "reject")?;
        let change = AgentChange {
            expect_updated_at: Some(agent.updated_at),
            status: Some(AgentStatus::Rejected),
            approval: ApprovalChange::Withdraw,
            rejected_reason: Some(Some(reason.to_string())),
            next_fire_at: Some(None),
            ..Default::default()
        };
        let detail = serde_json::json!({"version": agent.version, "reason": reason});
        self.decide(who, &agent, change, "agent.reject", detail)
            .await
    }

    /// Records an approval decision (approve or reject): the change, its
    /// audit entry, and the scheduler told, since the schedule starts or
    /// stops with it.
    async fn decide(
        &self,
        who: &Principal,
        agent: &Agent,
        change: AgentChange,
        action: &str,
        detail: serde_json::Value,
    ) -> Result<AgentView> {
        let a = audit(who, action, &format!("agent:{}", agent.id), Some(detail));
        let updated = self
            .store
            .update_agent(agent.id, change, &who.actor(), a)
            .await?;
        self.signal.schedule_changed();
        Ok(view(updated))
    }

    /// The status a new agent starts in: runnable (so approved by its
    /// creator) only when an admin creates it and four eyes are off.
    fn initial_status(&self, who: &Principal, asked: Option<AgentStatus>) -> Result<AgentStatus> {
        let may_approve = who.scope == Scope::Admin && !self.config.approval_four_eyes;
        match asked {
            Some(AgentStatus::Rejected) => Err(Error::validation(
                "status",
                "a new agent cannot start rejected; leave status out, or use pending_approval or draft",
            )),
            Some(s) if s.can_run() && !may_approve => {
                Err(Error::Forbidden(if self.config.approval_four_eyes {
                    format!(
                        "four-eyes approval is on (P38_APPROVAL_FOUR_EYES): the token that creates an agent cannot approve it, so it cannot start {}; leave status out (pending_approval) and have another token approve it",
                        s.as_str()
                    )
                } else {
                    format!(
                        "a token with the {} scope cannot approve, so its agents cannot start {}; leave status out (pending_approval) and have an operator or admin approve it",
                        who.scope.as_str(),
                        s.as_str()
                    )
                }))
            }
            Some(s) => Ok(s),
            None if may_approve => Ok(AgentStatus::Active),
            None => Ok(AgentStatus::PendingApproval),
        }
    }

    /// Under four eyes, the token that created the agent or last changed
    /// what its approval covers may neither approve nor reject it.
    fn check_four_eyes(&self, who: &Principal, agent: &Agent, verb: &str) -> Result<()> {
        let me = who.actor();
        if self.config.approval_four_eyes && (agent.created_by == me || agent.changed_by == me) {
            return Err(Error::Forbidden(format!(
                "four-eyes approval is on (P38_APPROVAL_FOUR_EYES): {me} created or last changed agent {}, so another token must {verb} it",
                agent.name
            )));
        }
        Ok(())
    }

    /// Deletes an agent with its history.
    /// Its running tasks are cancelled; its workspace is removed from this
    /// host unless `keep_workspace` (or this process has no workspaces).
    pub async fn delete_agent(
        &self,
        who: &Principal,
        id_or_name: &str,
        keep_workspace: bool,
    ) -> Result<DeletedAgent> {
        who.require(Scope::Admin)?;
        let agent = self.find_agent(who, id_or_name).await?;
        let detail = serde_json::json!({"name": agent.name, "keep_workspace": keep_workspace});
        self.store
            .delete_agent(
                agent.id,
                audit(
                    who,
                    "agent.delete",
                    &format!("agent:{}", agent.id),
                    Some(detail),
                ),
            )
            .await?;
        self.signal.task_stopped();
        self.signal.schedule_changed();
        let workspace = match (&self.workspaces, keep_workspace) {
            (Some(remover), false) => {
                remover.remove(agent.id).await?;
                WorkspaceFate::Removed
            }
            _ => WorkspaceFate::Kept,
        };
        Ok(DeletedAgent {
            deleted: agent.id,
            workspace,
        })
    }

    /// Every kept code version, newest first.
    pub async fn agent_versions(
        &self,
        who: &Principal,
        id_or_name: &str,
    ) -> Result<Vec<AgentVersion>> {
        let agent = self.find_agent(who, id_or_name).await?;
        self.store.list_versions(agent.id).await
    }

    /// The state carried between runs (empty before the first success).
    pub async fn agent_state(&self, who: &Principal, id_or_name: &str) -> Result<AgentState> {
        let agent = self.find_agent(who, id_or_name).await?;
        Ok(self.store.get_state(agent.id).await?.unwrap_or(AgentState {
            agent_id: agent.id,
            state: serde_json::json!({}),
            run_count: 0,
            updated_at: agent.created_at,
        }))
    }

    /// Queues a manual run and wakes the workers.
    pub async fn execute_agent(&self, who: &Principal, id_or_name: &str) -> Result<Task> {
        who.require(Scope::Operator)?;
        let agent = self.find_agent(who, id_or_name).await?;
        ensure_runnable(&agent)?;
        let new = NewTask {
            agent_id: agent.id,
            agent_version: agent.version,
            trigger: Trigger::Manual,
            kind: TaskKind::Agent,
            attempt: 1,
            retry_of: None,
            scheduled_at: now(),
        };
        let detail = serde_json::json!({"agent_id": agent.id});
        let task = self
            .store
            .enqueue(new, Some(audit(who, "agent.execute", "", Some(detail))))
            .await?;
        self.signal.task_queued();
        Ok(task)
    }

    fn check_code(&self, code: &str) -> Result<()> {
        if code.len() > self.config.max_code_bytes {
            return Err(Error::TooLarge {
                field: Some("code".into()),
                message: format!(
                    "code is {} bytes; the limit is {} bytes",
                    code.len(),
                    self.config.max_code_bytes
                ),
            });
        }
        if code.trim().is_empty() {
            return Err(Error::validation(
                "code",
                "code is empty; an agent is a Python module defining run(ctx)",
            ));
        }
        if !code.contains("def run(") {
            return Err(Error::validation(
                "code",
                "code must define a function run(ctx)",
            ));
        }
        Ok(())
    }

    pub(crate) fn check_description(&self, d: &str) -> Result<()> {
        if d.len() > self.config.max_description_bytes {
            return Err(Error::TooLarge {
                field: Some("description".into()),
                message: format!(
                    "description is longer than {} bytes",
                    self.config.max_description_bytes
                ),
            });
        }
        Ok(())
    }

    pub(crate) fn check_config(&self, c: &serde_json::Value) -> Result<()> {
        if !c.is_object() {
            return Err(Error::validation("config", "config must be a JSON object"));
        }
        if c.to_string().len() > self.config.max_config_bytes {
            return Err(Error::TooLarge {
                field: Some("config".into()),
                message: format!(
                    "config is larger than {} bytes",
                    self.config.max_config_bytes
                ),
            });
        }
        Ok(())
    }
}

/// A schedule a user gave: the trimmed text that is stored, and what it
/// parsed to, so that nothing parses it again.
struct GivenSchedule {
    text: String,
    parsed: Schedule,
}

/// Checks a schedule (one that never fires is refused) and keeps it
/// trimmed; empty strings mean "none".
fn given_schedule(s: Option<String>) -> Result<Option<GivenSchedule>> {
    match s.map(|s| s.trim().to_string()) {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(text) => Ok(Some(GivenSchedule {
            parsed: Schedule::parse_new(&text)?,
            text,
        })),
    }
}

/// [`given_schedule`], as the text to store.
pub(crate) fn normalise_schedule(s: Option<String>) -> Result<Option<String>> {
    Ok(given_schedule(s)?.map(|s| s.text))
}

/// A stored agent's schedule, parsed; none when it has none, or when its
/// text no longer parses (it then does not fire).
fn stored_schedule(agent: &Agent) -> Option<Schedule> {
    Schedule::parse(agent.schedule.as_deref()?).ok()
}

/// The longest rejection reason, in characters.
const MAX_REASON_CHARS: usize = 1000;

/// Only agents waiting for approval are approved or rejected.
fn ensure_waiting(agent: &Agent, done: &str) -> Result<()> {
    if matches!(
        agent.status,
        AgentStatus::PendingApproval | AgentStatus::Draft
    ) {
        return Ok(());
    }
    let hint = if agent.status == AgentStatus::Rejected {
        "; change what the approval covers to send it back to approval"
    } else {
        ""
    };
    Err(Error::conflict(
        "status",
        format!(
            "agent {} is {}; only agents waiting for approval can be {done}{hint}",
            agent.name,
            agent.status.as_str()
        ),
    ))
}

/// The agent as `req` would leave its covered fields.
fn changed_agent(agent: &Agent, req: &UpdateAgent) -> Agent {
    let mut a = agent.clone();
    if let Some(v) = &req.code {
        a.code.clone_from(v);
    }
    if let Some(v) = &req.config {
        a.config.clone_from(v);
    }
    if let Some(v) = &req.secrets {
        a.secrets.clone_from(v);
    }
    if let Some(v) = &req.tools {
        a.tools.clone_from(v);
    }
    if let Some(v) = req.network {
        a.network = v;
    }
    if let Some(v) = &req.allow_hosts {
        a.allow_hosts.clone_from(v);
    }
    if let Some(v) = &req.settings {
        a.settings.clone_from(v);
    }
    a
}

fn changed_fields(c: &AgentChange) -> Vec<&'static str> {
    let mut f = Vec::new();
    for (name, set) in [
        ("name", c.name.is_some()),
        ("description", c.description.is_some()),
        ("code", c.code.is_some()),
        ("status", c.status.is_some()),
        ("schedule", c.schedule.is_some()),
        ("config", c.config.is_some()),
        ("secrets", c.secrets.is_some()),
        ("tools", c.tools.is_some()),
        ("network", c.network.is_some()),
        ("allow_hosts", c.allow_hosts.is_some()),
        ("settings", c.settings.is_some()),
    ] {
        if set {
            f.push(name);
        }
    }
    f
}

/// Adds the derived fields to an agent.
pub fn view(agent: Agent) -> AgentView {
    let next_runs = match (&agent.schedule, agent.next_fire_at) {
        (Some(_), Some(first)) => {
            let mut runs = vec![first];
            if let Some(sched) = stored_schedule(&agent) {
                runs.extend(sched.upcoming(first, agent.settings.tz(), NEXT_RUNS_SHOWN - 1));
            }
            runs
        }
        _ => Vec::new(),
    };
    AgentView {
        approval: Approval::of(&agent),
        agent,
        next_runs,
        generation: None,
        warnings: None,
    }
}

/// The view with the warnings of the static checks of the code just given.
fn with_warnings(v: AgentView, warnings: Vec<CodeFinding>) -> AgentView {
    AgentView {
        warnings: (!warnings.is_empty()).then_some(warnings),
        ..v
    }
}

/// Only agents that may run ([`Agent::may_run`]) run; anything else is a
/// conflict that says what to do.
pub(crate) fn ensure_runnable(agent: &Agent) -> Result<()> {
    let status = match agent.may_run() {
        Ok(()) => return Ok(()),
        Err(NotRunnable::Status { status, .. }) => status,
        Err(NotRunnable::NotApproved { status }) => {
            return Err(Error::conflict(
                "status",
                format!(
                    "agent {} is {} but its code and permissions are not approved; a change of what the approval covers sends it back to approval",
                    agent.name,
                    status.as_str()
                ),
            ));
        }
    };
    let hint = match status {
        AgentStatus::PendingApproval => {
            format!(": approve it first (p38 agent approve {})", agent.id)
        }
        AgentStatus::Rejected => format!(
            ": it was rejected ({}); a change of what the approval covers sends it back to approval",
            agent
                .rejected_reason
                .as_deref()
                .unwrap_or("no reason given")
        ),
        _ => String::new(),
    };
    Err(Error::conflict(
        "status",
        format!(
            "agent {} is {}; only active or paused agents run{hint}",
            agent.name,
            status.as_str()
        ),
    ))
}

pub(crate) fn audit(
    who: &Principal,
    action: &str,
    target: &str,
    detail: Option<serde_json::Value>,
) -> NewAudit {
    NewAudit {
        actor: who.actor(),
        action: action.into(),
        target: target.into(),
        detail,
    }
}

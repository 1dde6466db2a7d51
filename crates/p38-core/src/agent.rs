//! Agents: a named Python program with a schedule, the permissions it
//! declared and the limits it runs under.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Error, Result};
use chrono::{DateTime, Utc};

/// An agent's numeric identifier.
pub type AgentId = i64;

/// Where an agent is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Being written; never runs.
    Draft,
    /// Waiting for a human to approve its code and permissions; never runs.
    PendingApproval,
    /// Approved: runs on its schedule and on demand.
    Active,
    /// Approved but its schedule is stopped; manual runs still work.
    Paused,
    /// Switched off; never runs.
    Disabled,
    /// Refused by an approver; never runs until a change of what the
    /// approval covers sends it back to approval.
    Rejected,
}

impl AgentStatus {
    /// Every status, for parsing and help texts.
    pub const ALL: [AgentStatus; 6] = [
        AgentStatus::Draft,
        AgentStatus::PendingApproval,
        AgentStatus::Active,
        AgentStatus::Paused,
        AgentStatus::Disabled,
        AgentStatus::Rejected,
    ];

    /// The stored and serialised spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Draft => "draft",
            AgentStatus::PendingApproval => "pending_approval",
            AgentStatus::Active => "active",
            AgentStatus::Paused => "paused",
            AgentStatus::Disabled => "disabled",
            AgentStatus::Rejected => "rejected",
        }
    }

    /// Whether the status lets runs start: active or paused. An agent
    /// also needs an approval; [`Agent::may_run`] is the whole rule.
    pub fn can_run(self) -> bool {
        matches!(self, AgentStatus::Active | AgentStatus::Paused)
    }

    /// Whether the agent's schedule fires: active only (a paused agent
    /// runs on demand). The scheduler's queries select
    /// `status = 'active'`: this rule, as a column test.
    pub fn fires_on_schedule(self) -> bool {
        self == AgentStatus::Active
    }
}

impl std::str::FromStr for AgentStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        AgentStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                Error::validation(
                    "status",
                    format!(
                        "unknown agent status {s:?}; expected one of draft, pending_approval, active, paused, disabled, rejected"
                    ),
                )
            })
    }
}

/// The tools an agent may declare; the gateway refuses any other.
pub const KNOWN_TOOLS: [&str; 4] = ["browser", "filesystem", "telegram", "webhook"];

/// The largest `settings.max_result_kb` (16 MiB): the sandbox's reply pipe
/// holds the result, the state and the logs, and is capped above that.
pub const MAX_RESULT_KB: u32 = 16 * 1024;

/// The result cap when an agent sets none (1 MiB, like its state).
pub const DEFAULT_RESULT_KB: u32 = 1024;

/// Per-agent runtime settings; every field is optional and falls back to the
/// server's default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    /// Wall-clock limit of one run, in seconds (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 86400)]
    pub timeout_seconds: Option<u32>,
    /// CPU time limit of one run, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 86400)]
    pub cpu_seconds: Option<u32>,
    /// Address-space limit of the agent process, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 16, maximum = 65536)]
    pub memory_mb: Option<u32>,
    /// Largest file the agent may write, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 65536)]
    pub max_file_mb: Option<u32>,
    /// Quota of the agent's workspace, in MiB of disk over all its files
    /// (default 1024); a run that grows it past the quota is stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1048576)]
    pub workspace_mb: Option<u32>,
    /// Largest value `run(ctx)` may return, in KiB of JSON (default 1024);
    /// a larger one fails the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 16384)]
    pub max_result_kb: Option<u32>,
    /// Open file descriptors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 16, maximum = 65536)]
    pub open_files: Option<u32>,
    /// Processes and threads the agent may have at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 4096)]
    pub processes: Option<u32>,
    /// IANA time zone for cron schedules (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Retries after a failed or timed-out run (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 20)]
    pub max_retries: Option<u32>,
    /// First retry delay in seconds; doubles each attempt (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 3600)]
    pub retry_base_seconds: Option<u32>,
    /// Runs of this agent that may go at once, across all workers (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 16)]
    pub concurrency: Option<u32>,
    /// What a schedule does after downtime: run once to catch up (default) or skip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub misfire: Option<MisfirePolicy>,
    /// What a firing does while the previous run is still going: skip (default) or queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<OverlapPolicy>,
    /// Limits on the agent's tool calls (an object; covered by the
    /// approval: changing it sends the agent back to approval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub tool_limits: Option<serde_json::Map<String, serde_json::Value>>,
}

/// What a schedule does when it was due while nothing could fire it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MisfirePolicy {
    /// Run once for all the missed firings, then go on with the schedule.
    RunOnce,
    /// Drop the missed firings; wait for the next one.
    Skip,
}

/// What a firing does while a run of the same agent is queued or running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OverlapPolicy {
    /// Drop this firing.
    Skip,
    /// Queue it to run after the current one.
    Queue,
}

impl AgentSettings {
    /// Retries after a failure (default 3).
    pub fn retries(&self) -> u32 {
        self.max_retries.unwrap_or(3)
    }

    /// Delay before retry number `n` (1-based): base, 2×base, 4×base, ...
    /// (default base 2 s: 2 s, 4 s, 8 s).
    pub fn retry_delay(&self, n: u32) -> std::time::Duration {
        let base = u64::from(self.retry_base_seconds.unwrap_or(2));
        std::time::Duration::from_secs(base.saturating_mul(1u64 << n.saturating_sub(1).min(20)))
    }

    /// The schedule's time zone (default UTC).
    pub fn tz(&self) -> chrono_tz::Tz {
        self.timezone
            .as_deref()
            .and_then(|t| t.parse().ok())
            .unwrap_or(chrono_tz::UTC)
    }
}

impl AgentSettings {
    /// Checks ranges; the error names the offending field.
    pub fn validate(&self) -> Result<()> {
        fn range(field: &str, v: Option<u32>, lo: u32, hi: u32) -> Result<()> {
            match v {
                Some(v) if v < lo || v > hi => Err(Error::validation(
                    format!("settings.{field}"),
                    format!("{field} must be between {lo} and {hi}, got {v}"),
                )),
                _ => Ok(()),
            }
        }
        range("timeout_seconds", self.timeout_seconds, 1, 86_400)?;
        range("cpu_seconds", self.cpu_seconds, 1, 86_400)?;
        range("memory_mb", self.memory_mb, 16, 65_536)?;
        range("max_file_mb", self.max_file_mb, 1, 65_536)?;
        range("workspace_mb", self.workspace_mb, 1, 1_048_576)?;
        range("max_result_kb", self.max_result_kb, 1, MAX_RESULT_KB)?;
        range("open_files", self.open_files, 16, 65_536)?;
        range("processes", self.processes, 1, 4_096)?;
        range("max_retries", self.max_retries, 0, 20)?;
        range("retry_base_seconds", self.retry_base_seconds, 1, 3_600)?;
        range("concurrency", self.concurrency, 1, 16)?;
        if let Some(limits) = &self.tool_limits {
            let len = serde_json::Value::Object(limits.clone()).to_string().len();
            if len > 16 * 1024 {
                return Err(Error::validation(
                    "settings.tool_limits",
                    format!("tool_limits must be at most 16384 bytes of JSON, got {len}"),
                ));
            }
        }
        if let Some(tz) = &self.timezone {
            tz.parse::<chrono_tz::Tz>().map_err(|_| {
                Error::validation(
                    "settings.timezone",
                    format!("unknown time zone {tz:?}; use an IANA name such as Europe/Berlin"),
                )
            })?;
        }
        Ok(())
    }
}

/// A secret name as the schema states it (the check is
/// [`validate_secret_names`]).
#[derive(ToSchema)]
#[schema(pattern = "^[A-Z][A-Z0-9_]{0,63}$")]
pub struct SecretName(pub String);

/// A tool name as the schema states it (the check is [`validate_tools`]).
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ToolName {
    /// A headless browser.
    Browser,
    /// Files in the workspace.
    Filesystem,
    /// Telegram messages.
    Telegram,
    /// Outgoing webhooks.
    Webhook,
}

/// The pattern of agent names in the schema (the check is [`validate_name`]).
pub const NAME_PATTERN: &str = "^(?![0-9]+$)[A-Za-z0-9][A-Za-z0-9._-]{0,63}$";

/// Every time zone `settings.timezone` accepts (IANA names).
pub fn time_zone_names() -> impl Iterator<Item = &'static str> {
    chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())
}

/// A stored agent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Agent {
    /// Identifier.
    pub id: AgentId,
    /// Unique name.
    pub name: String,
    /// What the agent does, in the user's words.
    pub description: String,
    /// The Python source defining `run(ctx)`.
    pub code: String,
    /// Lifecycle status.
    pub status: AgentStatus,
    /// Cron expression or `every N{s,m,h,d}`; none for on-demand agents.
    pub schedule: Option<String>,
    /// Free-form configuration handed to the agent as `ctx.config`.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    /// Names of the secrets the agent may read.
    pub secrets: Vec<String>,
    /// Tools the agent may call through the gateway.
    pub tools: Vec<String>,
    /// Whether the agent may use the network (the host's network).
    pub network: bool,
    /// Host names the agent may reach (empty: none named).
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    /// Runtime limits and retry policy.
    pub settings: AgentSettings,
    /// Version number, incremented on every change.
    pub version: i64,
    /// Who created it.
    pub created_by: String,
    /// Who last changed what the approval covers (the creator until then).
    #[serde(default)]
    pub changed_by: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When the schedule fires next (none when unscheduled or not active).
    pub next_fire_at: Option<DateTime<Utc>>,
    /// Who approved the current code and permissions (none: not approved).
    pub approved_by: Option<String>,
    /// When.
    pub approved_at: Option<DateTime<Utc>>,
    /// The generation that wrote it, if one did.
    pub generation_id: Option<i64>,
    /// Why an approver rejected it (status `rejected`).
    #[serde(default)]
    pub rejected_reason: Option<String>,
    /// The code version last approved (kept when the approval is withdrawn,
    /// so a diff can show what changed since).
    #[serde(skip)]
    pub approved_version: Option<i64>,
    /// What was last approved (see [`crate::approval`]).
    #[serde(skip)]
    pub approved_snapshot: Option<crate::approval::Covered>,
}

#[cfg(test)]
impl Agent {
    /// An agent for tests: id 0, active, no schedule, no approval.
    pub(crate) fn sample() -> Agent {
        let now = crate::time::now();
        Agent {
            id: 0,
            name: "a".to_string(),
            description: String::new(),
            code: "def run(ctx):\n    pass\n".to_string(),
            status: AgentStatus::Active,
            schedule: None,
            config: serde_json::json!({}),
            secrets: Vec::new(),
            tools: Vec::new(),
            network: false,
            allow_hosts: Vec::new(),
            settings: AgentSettings::default(),
            version: 1,
            created_by: "test".into(),
            changed_by: "test".into(),
            created_at: now,
            updated_at: now,
            next_fire_at: None,
            approved_by: None,
            approved_at: None,
            generation_id: None,
            rejected_reason: None,
            approved_version: None,
            approved_snapshot: None,
        }
    }
}

/// What is needed to create an agent.
#[derive(Debug, Clone)]
pub struct NewAgent {
    /// Unique name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Python source.
    pub code: String,
    /// Initial status.
    pub status: AgentStatus,
    /// Schedule, already validated.
    pub schedule: Option<String>,
    /// Configuration object.
    pub config: serde_json::Value,
    /// Declared secrets.
    pub secrets: Vec<String>,
    /// Declared tools.
    pub tools: Vec<String>,
    /// Network permission.
    pub network: bool,
    /// Hosts the agent may reach.
    pub allow_hosts: Vec<String>,
    /// Runtime settings.
    pub settings: AgentSettings,
    /// Creator.
    pub created_by: String,
    /// When the schedule fires next (none when not scheduled or not active).
    pub next_fire_at: Option<DateTime<Utc>>,
    /// Who approved it at creation (an admin posting code approves it).
    pub approved_by: Option<String>,
    /// The generation that wrote it.
    pub generation_id: Option<i64>,
}

/// A change to an agent; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AgentChange {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New code (recorded as a new version).
    pub code: Option<String>,
    /// New status.
    pub status: Option<AgentStatus>,
    /// New schedule; `Some(None)` removes it.
    pub schedule: Option<Option<String>>,
    /// New configuration.
    pub config: Option<serde_json::Value>,
    /// New secrets list.
    pub secrets: Option<Vec<String>>,
    /// New tools list.
    pub tools: Option<Vec<String>>,
    /// New network permission.
    pub network: Option<bool>,
    /// New allowed hosts.
    pub allow_hosts: Option<Vec<String>>,
    /// Who changed what the approval covers (set with such a change).
    pub changed_by: Option<String>,
    /// New rejection: `Some(Some(reason))` rejects, `Some(None)` clears it.
    pub rejected_reason: Option<Option<String>>,
    /// New settings (replaces the whole object).
    pub settings: Option<AgentSettings>,
    /// New next firing; `Some(None)` stops the schedule.
    pub next_fire_at: Option<Option<DateTime<Utc>>>,
    /// What the change does to the approval.
    pub approval: ApprovalChange,
    /// Apply only if the agent is still as it was when the change was
    /// decided (its `updated_at`): a change or an approval decided on a
    /// stale read is a conflict, never applied to what someone else wrote.
    pub expect_updated_at: Option<DateTime<Utc>>,
    /// Apply only if the code is still this version (what an approver saw).
    pub expect_version: Option<i64>,
}

impl AgentChange {
    /// Whether the change touches nothing.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.description.is_none()
            && self.code.is_none()
            && self.status.is_none()
            && self.schedule.is_none()
            && self.config.is_none()
            && self.secrets.is_none()
            && self.tools.is_none()
            && self.network.is_none()
            && self.allow_hosts.is_none()
            && self.rejected_reason.is_none()
            && self.settings.is_none()
            && self.next_fire_at.is_none()
            && self.approval == ApprovalChange::Keep
    }
}

/// What a change does to an agent's approval.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ApprovalChange {
    /// The approval stays as it is.
    #[default]
    Keep,
    /// The approval is withdrawn: the agent waits for a human.
    Withdraw,
    /// A person approves now (the token's actor).
    GrantBy(String),
    /// The opt-in auto-approval approves now; recorded as
    /// [`ApprovalChange::AUTO_APPROVER`].
    GrantAutomatically,
}

impl ApprovalChange {
    /// Who `approved_by` names when the auto-approval approved.
    pub const AUTO_APPROVER: &'static str = "auto-approval";

    /// Whether the change approves now.
    pub fn grants(&self) -> bool {
        matches!(
            self,
            ApprovalChange::GrantBy(_) | ApprovalChange::GrantAutomatically
        )
    }

    /// The `approved_by` the change leaves: `None` keeps the stored one,
    /// `Some(None)` clears it, `Some(Some(who))` sets it.
    pub fn approved_by(&self) -> Option<Option<String>> {
        match self {
            ApprovalChange::Keep => None,
            ApprovalChange::Withdraw => Some(None),
            ApprovalChange::GrantBy(who) => Some(Some(who.clone())),
            ApprovalChange::GrantAutomatically => Some(Some(Self::AUTO_APPROVER.to_string())),
        }
    }
}

/// One kept version of an agent's code.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentVersion {
    /// The agent.
    pub agent_id: AgentId,
    /// Version number.
    pub version: i64,
    /// The code at that version.
    pub code: String,
    /// Who made the change.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// What an agent carries from one run to the next.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentState {
    /// The agent.
    pub agent_id: AgentId,
    /// The state object returned by the last successful run.
    #[schema(value_type = Object)]
    pub state: serde_json::Value,
    /// Successful runs so far.
    pub run_count: i64,
    /// Last update.
    pub updated_at: DateTime<Utc>,
}

/// Checks an agent name: 1 to 64 characters of letters, digits, `.`, `_`
/// and `-`, starting with a letter or digit, and not all digits (so a path
/// segment is either an id or a name, never both).
pub fn validate_name(name: &str) -> Result<()> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > 64 || !ok_chars || !first_ok {
        return Err(Error::validation(
            "name",
            "name must be 1 to 64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit",
        ));
    }
    if name.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::validation(
            "name",
            "name must not be all digits (numbers are agent ids)",
        ));
    }
    Ok(())
}

/// Checks declared secret names: upper-case letters, digits and `_`,
/// starting with a letter, at most 64 characters, no duplicates.
pub fn validate_secret_names(names: &[String]) -> Result<()> {
    for (i, n) in names.iter().enumerate() {
        let ok = !n.is_empty()
            && n.len() <= 64
            && n.starts_with(|c: char| c.is_ascii_uppercase())
            && n.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !ok {
            return Err(Error::validation(
                format!("secrets[{i}]"),
                format!(
                    "secret name {n:?} must be upper-case letters, digits and '_', starting with a letter (e.g. TELEGRAM_BOT_TOKEN)"
                ),
            ));
        }
        if names[..i].contains(n) {
            return Err(Error::validation(
                format!("secrets[{i}]"),
                format!("secret {n:?} is declared twice"),
            ));
        }
    }
    Ok(())
}

/// Checks declared tools against [`KNOWN_TOOLS`].
pub fn validate_tools(tools: &[String]) -> Result<()> {
    for (i, t) in tools.iter().enumerate() {
        if !KNOWN_TOOLS.contains(&t.as_str()) {
            return Err(Error::validation(
                format!("tools[{i}]"),
                format!(
                    "unknown tool {t:?}; known tools: {}",
                    KNOWN_TOOLS.join(", ")
                ),
            ));
        }
        if tools[..i].contains(t) {
            return Err(Error::validation(
                format!("tools[{i}]"),
                format!("tool {t:?} is declared twice"),
            ));
        }
    }
    Ok(())
}

/// At most this many hosts in `allow_hosts`.
pub const MAX_ALLOW_HOSTS: usize = 64;

/// Checks `allow_hosts`: host names (letters, digits, `-` and `.`, labels
/// of 1 to 63 characters, at most 253 in all), optionally with a leading
/// `*.` for every subdomain; lower case, no duplicates, at most
/// [`MAX_ALLOW_HOSTS`].
pub fn validate_allow_hosts(hosts: &[String]) -> Result<()> {
    if hosts.len() > MAX_ALLOW_HOSTS {
        return Err(Error::validation(
            "allow_hosts",
            format!("at most {MAX_ALLOW_HOSTS} hosts, got {}", hosts.len()),
        ));
    }
    for (i, h) in hosts.iter().enumerate() {
        let name = h.strip_prefix("*.").unwrap_or(h);
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
            return Err(Error::validation(
                format!("allow_hosts[{i}]"),
                format!(
                    "{h:?} is not a host name: lower-case letters, digits, '-' and '.' (e.g. api.example.com, or *.example.com for its subdomains)"
                ),
            ));
        }
        if hosts[..i].contains(h) {
            return Err(Error::validation(
                format!("allow_hosts[{i}]"),
                format!("host {h:?} is listed twice"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_hosts() {
        assert!(validate_allow_hosts(&["api.example.com".into(), "*.x.org".into()]).is_ok());
        for bad in ["", "Exa.com", "a..b", "-a.com", "a b", "http://x", "*."] {
            assert_eq!(
                validate_allow_hosts(&["ok.com".into(), bad.into()])
                    .unwrap_err()
                    .field(),
                Some("allow_hosts[1]"),
                "{bad:?}"
            );
        }
        assert!(validate_allow_hosts(&["a.com".into(), "a.com".into()]).is_err());
    }

    #[test]
    fn names() {
        assert!(validate_name("tesla-watch_2.v1").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("123").is_err());
        assert!(validate_name("-x").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn secrets_and_tools() {
        assert!(validate_secret_names(&["TELEGRAM_BOT_TOKEN".into()]).is_ok());
        let e = validate_secret_names(&["A".into(), "lower".into()]).unwrap_err();
        assert_eq!(e.field(), Some("secrets[1]"));
        assert!(validate_secret_names(&["A".into(), "A".into()]).is_err());
        assert!(validate_tools(&["browser".into()]).is_ok());
        assert_eq!(
            validate_tools(&["laser".into()]).unwrap_err().field(),
            Some("tools[0]")
        );
    }

    #[test]
    fn settings_ranges() {
        let s = AgentSettings {
            timeout_seconds: Some(0),
            ..Default::default()
        };
        assert_eq!(
            s.validate().unwrap_err().field(),
            Some("settings.timeout_seconds")
        );
        let s = AgentSettings {
            timezone: Some("Mars/Olympus".into()),
            ..Default::default()
        };
        assert_eq!(s.validate().unwrap_err().field(), Some("settings.timezone"));
    }
}

//! Command-line arguments. Every setting is a flag and a `P38_*`
//! environment variable (clap's `env`), documented in README.md.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Project38: describe an agent, approve it, run it around the clock in a sandbox.
#[derive(Debug, Parser)]
#[command(name = "p38", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the platform in one process: API, workers (embedded SQLite by default).
    Up(ServerArgs),
    /// Run only the HTTP API (for multi-node setups).
    Serve(ServerArgs),
    /// Run only a worker (for multi-node setups).
    Worker(ServerArgs),
    /// Run an agent file once in the sandbox, storing nothing.
    Run(RunArgs),
    /// Manage agents.
    #[command(subcommand)]
    Agent(AgentCmd),
    /// Inspect and control tasks (runs).
    #[command(subcommand)]
    Task(TaskCmd),
    /// Follow and stop the generations that write agents from a description.
    #[command(subcommand)]
    Generation(GenerationCmd),
    /// Manage API tokens (admin).
    #[command(subcommand)]
    Token(TokenCmd),
    /// Manage secrets (admin). Values are read from stdin or a hidden prompt, never from arguments.
    #[command(subcommand)]
    Secret(SecretCmd),
}

/// `p38 secret ...`.
#[derive(Debug, Subcommand)]
pub enum SecretCmd {
    /// Set a secret; the value is read from stdin (or a hidden prompt on a terminal).
    Set {
        #[command(flatten)]
        client: ClientArgs,
        /// Secret name (upper case, e.g. TELEGRAM_BOT_TOKEN).
        name: String,
    },
    /// List secrets (names, versions, times; never values).
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a secret.
    Rm {
        #[command(flatten)]
        client: ClientArgs,
        /// Secret name.
        name: String,
    },
    /// Drop the secret cache so the next run reads every backend again.
    Reload {
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Settings of the server and worker processes.
#[derive(Debug, Args, Clone)]
pub struct ServerArgs {
    /// Address the API listens on.
    #[arg(long, env = "P38_BIND", default_value = "127.0.0.1:3838")]
    pub bind: String,
    /// Data folder: the SQLite database, the admin token, agent workspaces.
    #[arg(long, env = "P38_DATA_DIR", default_value = "p38-data")]
    pub data_dir: PathBuf,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB (default: sqlite in the data folder).
    #[arg(long, env = "P38_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Tasks a worker runs at once.
    #[arg(long, env = "P38_CONCURRENCY", default_value_t = 5,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub concurrency: usize,
    /// Generations a worker runs at once, in slots of their own besides
    /// `--concurrency` (0: this worker writes no agents).
    #[arg(long, env = "P38_GENERATION_CONCURRENCY", default_value_t = 2)]
    pub generation_concurrency: usize,
    /// Python interpreter for agents (default /usr/bin/python3, else python3 on PATH).
    #[arg(long, env = "P38_PYTHON")]
    pub python: Option<PathBuf>,
    /// Run agents WITHOUT the sandbox. Dangerous; warned about and recorded on every task.
    #[arg(long, env = "P38_INSECURE_NO_SANDBOX", default_value_t = false)]
    pub insecure_no_sandbox: bool,
    /// A delegated cgroup to create each run's memory and pids group in
    /// (default: a `p38` subtree of this process's own cgroup).
    #[arg(long, env = "P38_CGROUP_ROOT")]
    pub cgroup_root: Option<PathBuf>,
    /// Default wall-clock limit of a run, in seconds.
    #[arg(long, env = "P38_RUN_TIMEOUT", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub run_timeout: u64,
    /// Default memory limit of a run, in MiB.
    #[arg(long, env = "P38_RUN_MEMORY_MB", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub run_memory_mb: u64,
    /// Default quota of an agent's workspace, in MiB (disk used by all its files).
    #[arg(long, env = "P38_RUN_WORKSPACE_MB", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub run_workspace_mb: u64,
    /// How workspace quotas are kept: `image` (each workspace its own ext4
    /// image, loop-mounted; needs root and loop devices, else falls back to
    /// `walk` with a warning) or `walk` (a plain folder, measured by walking it).
    #[arg(long, env = "P38_WORKSPACE_QUOTA", value_enum, default_value_t = WorkspaceQuota::Image)]
    pub workspace_quota: WorkspaceQuota,
    /// Whether an agent's workspace is carried between hosts (saved in the
    /// database after each run that changed it, restored where the next
    /// run lands): `auto` (on PostgreSQL, where workers on several hosts
    /// share the queue; not on SQLite, which is one host), `on` or `off`.
    #[arg(long, env = "P38_WORKSPACE_CARRY", value_enum, default_value_t = WorkspaceCarry::Auto)]
    pub workspace_carry: WorkspaceCarry,
    /// Four eyes: the token that created or last changed what an agent's
    /// approval covers cannot approve or reject it.
    #[arg(long, env = "P38_APPROVAL_FOUR_EYES", default_value_t = false)]
    pub approval_four_eyes: bool,
    /// Largest request body, in bytes.
    #[arg(long, env = "P38_MAX_BODY_BYTES", default_value_t = 1024 * 1024,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_body_bytes: usize,
    /// Largest agent source, in bytes.
    #[arg(long, env = "P38_MAX_CODE_BYTES", default_value_t = 256 * 1024,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_code_bytes: usize,
    /// Seconds given to running tasks to finish on shutdown.
    #[arg(long, env = "P38_SHUTDOWN_GRACE", default_value_t = 30)]
    pub shutdown_grace: u64,
    /// First unprivileged uid agents run as when Project38 runs as root.
    #[arg(long, env = "P38_SANDBOX_UID_BASE", default_value_t = 200_000,
          value_parser = clap::value_parser!(u32).range(1000..=4_000_000_000))]
    pub sandbox_uid_base: u32,
    /// Seconds a claimed task stays with its worker without a heartbeat;
    /// after that another worker runs it again.
    #[arg(long, env = "P38_LEASE_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub lease_seconds: u64,
    /// Name recorded on tasks this worker runs (default hostname:pid).
    #[arg(long, env = "P38_WORKER_ID")]
    pub worker_id: Option<String>,
    /// Log filter (tracing syntax), e.g. info or p38=debug.
    #[arg(long, env = "P38_LOG", default_value = "info")]
    pub log: String,
    /// Log format.
    #[arg(long, env = "P38_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Where secrets come from.
    #[command(flatten)]
    pub secrets: SecretArgs,
    /// How agents are generated from descriptions.
    #[command(flatten)]
    pub llm: LlmArgs,
}

/// The language model that writes agents.
#[derive(Debug, Args, Clone)]
pub struct LlmArgs {
    /// The model provider's wire format (openai_compatible: Ollama,
    /// llama.cpp, vLLM).
    #[arg(long, env = "P38_LLM_PROVIDER", value_enum, default_value_t = LlmProvider::Anthropic)]
    pub llm_provider: LlmProvider,
    /// Model (default: the provider's current default, e.g. claude-sonnet-4-5).
    #[arg(long, env = "P38_LLM_MODEL")]
    pub llm_model: Option<String>,
    /// Endpoint (default: the provider's public API; Ollama at 127.0.0.1:11434 for openai_compatible).
    #[arg(long, env = "P38_LLM_BASE_URL")]
    pub llm_base_url: Option<String>,
    /// Seconds one model call may take.
    #[arg(long, env = "P38_LLM_TIMEOUT", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub llm_timeout: u64,
    /// Seconds a whole generation may take, every call, validation and repair included (0: no limit).
    #[arg(long, env = "P38_LLM_GENERATION_TIMEOUT", default_value_t = 600)]
    pub llm_generation_timeout: u64,
    /// Generate, validate, repair: at most this many iterations.
    #[arg(long, env = "P38_LLM_MAX_ITERATIONS", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub llm_max_iterations: u32,
    /// Cost budget per generated agent, USD.
    #[arg(long, env = "P38_LLM_BUDGET_USD", default_value_t = 1.0,
          value_parser = parse_budget_usd)]
    pub llm_budget_usd: f64,
    /// Price of the model in USD per million input tokens (overrides the built-in table; give both).
    #[arg(long, env = "P38_LLM_PRICE_INPUT", requires = "llm_price_output")]
    pub llm_price_input: Option<f64>,
    /// Price of the model in USD per million output tokens.
    #[arg(long, env = "P38_LLM_PRICE_OUTPUT", requires = "llm_price_input")]
    pub llm_price_output: Option<f64>,
    /// Approve agents with no findings and no network, secret or tool permissions without a human.
    #[arg(long, env = "P38_AUTO_APPROVE", default_value_t = false)]
    pub auto_approve: bool,
}

/// Secret backends, asked in order.
#[derive(Debug, Args, Clone)]
pub struct SecretArgs {
    /// Backends to ask, in order (comma-separated).
    #[arg(long, env = "P38_SECRET_BACKENDS", value_enum, value_delimiter = ',',
          default_values_t = [SecretBackend::Local, SecretBackend::Env])]
    pub secret_backends: Vec<SecretBackend>,
    /// Master key of the local backend (base64 of 32 bytes); default: DATA_DIR/master.key, created on first start.
    #[arg(long, env = "P38_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// Seconds a resolved secret is cached (0: no cache).
    #[arg(long, env = "P38_SECRET_CACHE_SECONDS", default_value_t = 300)]
    pub secret_cache_seconds: u64,
    /// Google Cloud project of Secret Manager (backend gcp).
    #[arg(long, env = "P38_GCP_PROJECT")]
    pub gcp_project: Option<String>,
    /// Service-account key or external-account (WIF) JSON file (backend gcp).
    #[arg(long, env = "P38_GCP_CREDENTIALS_FILE")]
    pub gcp_credentials_file: Option<PathBuf>,
    /// Secret Manager endpoint (tests point it elsewhere).
    #[arg(
        long,
        env = "P38_GCP_SECRETMANAGER_URL",
        default_value = "https://secretmanager.googleapis.com"
    )]
    pub gcp_secretmanager_url: String,
    /// Vault or OpenBao address (backend vault).
    #[arg(long, env = "P38_VAULT_ADDR")]
    pub vault_addr: Option<String>,
    /// Vault token (prefer the environment variable over the flag).
    #[arg(long, env = "P38_VAULT_TOKEN", hide_env_values = true)]
    pub vault_token: Option<String>,
    /// Vault AppRole role id.
    #[arg(long, env = "P38_VAULT_ROLE_ID")]
    pub vault_role_id: Option<String>,
    /// Vault AppRole secret id (prefer the environment variable).
    #[arg(long, env = "P38_VAULT_SECRET_ID", hide_env_values = true)]
    pub vault_secret_id: Option<String>,
    /// KV mount (version 2 or 1).
    #[arg(long, env = "P38_VAULT_MOUNT", default_value = "secret")]
    pub vault_mount: String,
    /// KV version of the mount, 1 or 2 (default: asked of Vault).
    #[arg(long, env = "P38_VAULT_KV_VERSION",
          value_parser = clap::value_parser!(u8).range(1..=2))]
    pub vault_kv_version: Option<u8>,
    /// Where the AppRole auth method is mounted.
    #[arg(long, env = "P38_VAULT_APPROLE_MOUNT", default_value = "approle")]
    pub vault_approle_mount: String,
    /// Path prefix under the mount: secret NAME is read from MOUNT/PREFIX/NAME, key `value`.
    #[arg(long, env = "P38_VAULT_PREFIX", default_value = "p38")]
    pub vault_prefix: String,
    /// Vault Enterprise namespace.
    #[arg(long, env = "P38_VAULT_NAMESPACE")]
    pub vault_namespace: Option<String>,
}

/// `p38 run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The agent file (a Python module defining run(ctx)).
    pub file: PathBuf,
    /// Initial ctx.state, as JSON.
    #[arg(long)]
    pub state: Option<String>,
    /// ctx.config, as JSON.
    #[arg(long)]
    pub config: Option<String>,
    /// Declare a secret (read from P38_SECRET_<NAME>); repeatable.
    #[arg(long = "secret")]
    pub secrets: Vec<String>,
    /// Give the agent network access.
    #[arg(long)]
    pub network: bool,
    /// Wall-clock limit in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u32,
    /// Print the whole outcome as JSON.
    #[arg(long)]
    pub json: bool,
    /// Python interpreter.
    #[arg(long, env = "P38_PYTHON")]
    pub python: Option<PathBuf>,
    /// Run without the sandbox (dangerous).
    #[arg(long, env = "P38_INSECURE_NO_SANDBOX", default_value_t = false)]
    pub insecure_no_sandbox: bool,
    /// A delegated cgroup for the run's memory and pids group.
    #[arg(long, env = "P38_CGROUP_ROOT")]
    pub cgroup_root: Option<PathBuf>,
}

/// How the CLI reaches the server.
#[derive(Debug, Args, Clone)]
pub struct ClientArgs {
    /// Server URL.
    #[arg(
        long,
        env = "P38_URL",
        default_value = "http://127.0.0.1:3838",
        global = true
    )]
    pub url: String,
    /// API token (default: the admin token in the data folder).
    #[arg(long, env = "P38_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Data folder holding admin.token.
    #[arg(long, env = "P38_DATA_DIR", default_value = "p38-data", global = true)]
    pub data_dir: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `p38 agent ...`.
#[derive(Debug, Subcommand)]
pub enum AgentCmd {
    /// List agents.
    List {
        #[command(flatten)]
        client: ClientArgs,
        /// Only agents with this status.
        #[arg(long)]
        status: Option<String>,
        /// Page size.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Cursor of the page to show.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Create an agent from a Python file.
    Create {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        fields: AgentFields,
    },
    /// Show one agent (by id or name).
    Show {
        #[command(flatten)]
        client: ClientArgs,
        /// Agent id or name.
        agent: String,
    },
    /// Change an agent.
    Edit {
        #[command(flatten)]
        client: ClientArgs,
        /// Agent id or name.
        agent: String,
        #[command(flatten)]
        fields: AgentFields,
        /// Remove the schedule.
        #[arg(long, conflicts_with = "schedule")]
        no_schedule: bool,
        /// New status: active, paused, disabled, draft.
        #[arg(long)]
        status: Option<String>,
    },
    /// Delete an agent with its history and (on the server's host) its workspace (asks on a terminal; without one, needs --yes).
    Delete {
        #[command(flatten)]
        client: ClientArgs,
        /// Agent id or name.
        agent: String,
        /// Delete without asking (needed when stdin is not a terminal).
        #[arg(long, short)]
        yes: bool,
        /// Leave the agent's workspace (its files) on disk.
        #[arg(long)]
        keep_workspace: bool,
    },
    /// Run an agent now.
    Run {
        #[command(flatten)]
        client: ClientArgs,
        /// Agent id or name.
        agent: String,
        /// Wait for the run to end and print its result and output.
        #[arg(long)]
        wait: bool,
        /// Print the run's output as it comes, then its outcome; exits 0
        /// only when it succeeded.
        #[arg(long, short)]
        follow: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 600)]
        wait_timeout: u64,
    },
    /// Set an agent's schedule: a cron expression ("0 * * * *", 6 fields with seconds) or "every 30s"; "none" removes it.
    Schedule {
        #[command(flatten)]
        client: ClientArgs,
        /// Agent id or name.
        agent: String,
        /// The schedule, or "none".
        schedule: String,
    },
    /// Pause an agent's schedule (manual runs still work).
    Pause {
        #[command(flatten)]
        client: ClientArgs,
        /// Agent id or name.
        agent: String,
    },
    /// Resume a paused agent's schedule.
    Resume {
        #[command(flatten)]
        client: ClientArgs,
        /// Agent id or name.
        agent: String,
    },
    /// Show an agent's code, findings, permissions and cost, then approve it
    /// (asks on a terminal; without one, needs --yes).
    Approve {
        #[command(flatten)]
        client: ClientArgs,
        /// Agent id or name.
        agent: String,
        /// Approve without asking (needed when stdin is not a terminal).
        #[arg(long, short)]
        yes: bool,
    },
    /// Reject an agent waiting for approval: it never runs until a change of
    /// what the approval covers sends it back to approval.
    Reject {
        #[command(flatten)]
        client: ClientArgs,
        /// Agent id or name.
        agent: String,
        /// Why (shown to its author and kept in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// List an agent's code versions.
    Versions {
        #[command(flatten)]
        client: ClientArgs,
        /// Agent id or name.
        agent: String,
    },
    /// Show the state an agent carries between runs.
    State {
        #[command(flatten)]
        client: ClientArgs,
        /// Agent id or name.
        agent: String,
    },
}

/// Fields shared by create and edit.
#[derive(Debug, Args, Clone, Default)]
pub struct AgentFields {
    /// Agent name.
    #[arg(long)]
    pub name: Option<String>,
    /// Python file with the agent's code.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// What the agent does.
    #[arg(long)]
    pub description: Option<String>,
    /// Cron expression or "every 30s".
    #[arg(long)]
    pub schedule: Option<String>,
    /// ctx.config, as a JSON object.
    #[arg(long)]
    pub config: Option<String>,
    /// Secret the agent may read; repeatable.
    #[arg(long = "secret")]
    pub secrets: Vec<String>,
    /// Tool the agent may use; repeatable.
    #[arg(long = "tool")]
    pub tools: Vec<String>,
    /// Network permission (true or false).
    #[arg(long)]
    pub network: Option<bool>,
    /// Runtime settings as a JSON object (timeout_seconds, memory_mb, ...).
    #[arg(long)]
    pub settings: Option<String>,
}

/// `p38 task ...`.
#[derive(Debug, Subcommand)]
pub enum TaskCmd {
    /// List an agent's tasks, newest first.
    List {
        #[command(flatten)]
        client: ClientArgs,
        /// Agent id or name.
        agent: String,
        /// Only tasks with this status.
        #[arg(long)]
        status: Option<String>,
        /// Page size.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Cursor of the page to show.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one task with its output.
    Show {
        #[command(flatten)]
        client: ClientArgs,
        /// Task id.
        id: i64,
        /// Print the task's output as it comes until it ends, then its
        /// outcome; exits 0 only when it succeeded.
        #[arg(long, short)]
        follow: bool,
    },
    /// Queue a new attempt of a finished task.
    Retry {
        #[command(flatten)]
        client: ClientArgs,
        /// Task id.
        id: i64,
    },
    /// Cancel a queued or running task.
    Cancel {
        #[command(flatten)]
        client: ClientArgs,
        /// Task id.
        id: i64,
    },
}

/// `p38 generation ...`.
#[derive(Debug, Subcommand)]
pub enum GenerationCmd {
    /// List generations, newest first.
    List {
        #[command(flatten)]
        client: ClientArgs,
        /// Only generations with this status (running, succeeded, failed, cancelled).
        #[arg(long)]
        status: Option<String>,
        /// Page size.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Cursor of the page to show.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Stop a running generation.
    Cancel {
        #[command(flatten)]
        client: ClientArgs,
        /// Generation id.
        id: i64,
    },
}

/// `p38 token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create a token and print it once.
    Create {
        #[command(flatten)]
        client: ClientArgs,
        /// admin, author, operator or viewer.
        #[arg(long, required_unless_present = "admin")]
        scope: Option<String>,
        /// Create an admin token directly in the server's database, without
        /// an API token (run on the server host, with access to its data
        /// folder or P38_DATABASE_URL): the way back in when every admin
        /// token is lost.
        #[arg(long, conflicts_with = "scope")]
        admin: bool,
        /// Database of `--admin` (default: sqlite in the data folder).
        #[arg(long, env = "P38_DATABASE_URL", requires = "admin")]
        database_url: Option<String>,
        /// A label for the token.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Expire after this many days: `30d` or `30` (1 to 3650; default: never).
        #[arg(long, value_parser = parse_days)]
        expires: Option<i64>,
    },
    /// List tokens (never the tokens themselves).
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke a token.
    Revoke {
        #[command(flatten)]
        client: ClientArgs,
        /// Token id.
        id: i64,
    },
}

/// How the server logs (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for a collector.
    Json,
}

/// The model provider (`--llm-provider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LlmProvider {
    /// Anthropic's Messages API.
    Anthropic,
    /// OpenAI's Chat Completions API.
    #[value(name = "openai")]
    OpenAi,
    /// Google's Gemini API.
    Gemini,
    /// A server speaking OpenAI's format (Ollama, llama.cpp, vLLM).
    #[value(name = "openai_compatible")]
    OpenAiCompatible,
}

/// A secret backend (`--secret-backends`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SecretBackend {
    /// Encrypted in Project38's own database.
    Local,
    /// `P38_SECRET_<NAME>` and plain environment variables.
    Env,
    /// Google Cloud Secret Manager.
    Gcp,
    /// HashiCorp Vault (KV).
    Vault,
}

/// How workspace quotas are kept (`--workspace-quota`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WorkspaceQuota {
    /// Each workspace is its own ext4 image file, loop-mounted.
    Image,
    /// A plain folder, measured by walking it.
    Walk,
}

/// Whether workspaces are carried between hosts (`--workspace-carry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WorkspaceCarry {
    /// Carried on PostgreSQL, host-local on SQLite.
    Auto,
    /// Always carried.
    On,
    /// Kept on the host that ran the agent.
    Off,
}

impl WorkspaceCarry {
    /// Where workspaces live with a store of `backend` ("sqlite" or
    /// "postgres"): only PostgreSQL is shared by several hosts.
    pub fn home(self, backend: &str) -> p38_runtime::WorkspaceHome {
        use p38_runtime::WorkspaceHome::{Carried, Host};
        match (self, backend) {
            (WorkspaceCarry::On, _) | (WorkspaceCarry::Auto, "postgres") => Carried,
            (WorkspaceCarry::Off, _) | (WorkspaceCarry::Auto, _) => Host,
        }
    }
}

/// `--expires 30d` (or `30`): whole days, 1 to 3650.
fn parse_days(s: &str) -> Result<i64, String> {
    let digits = s.strip_suffix('d').unwrap_or(s);
    match digits.parse::<i64>() {
        Ok(d) if (1..=3650).contains(&d) => Ok(d),
        _ => Err(format!(
            "{s:?} is not a number of days from 1 to 3650 (e.g. 30d)"
        )),
    }
}

/// A cost budget: a finite number of US dollars above zero (`0.5`, `2`).
fn parse_budget_usd(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a budget: give US dollars above zero, such as 0.5 or 2"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::{WorkspaceCarry, parse_budget_usd};
    use p38_runtime::WorkspaceHome;

    #[test]
    fn a_budget_is_dollars_above_zero() {
        assert_eq!(parse_budget_usd("0.5"), Ok(0.5));
        for bad in ["0", "-1", "NaN", "inf", "one"] {
            let e = parse_budget_usd(bad).unwrap_err();
            assert!(e.contains("above zero"), "{bad}: {e}");
        }
    }

    #[test]
    fn auto_carries_workspaces_on_postgres_only() {
        assert_eq!(
            WorkspaceCarry::Auto.home("postgres"),
            WorkspaceHome::Carried
        );
        assert_eq!(WorkspaceCarry::Auto.home("sqlite"), WorkspaceHome::Host);
        assert_eq!(WorkspaceCarry::On.home("sqlite"), WorkspaceHome::Carried);
        assert_eq!(WorkspaceCarry::Off.home("postgres"), WorkspaceHome::Host);
    }
}

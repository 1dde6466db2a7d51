//! `p38 up`, `p38 serve`, `p38 worker`: one process with the API, the
//! worker, or both.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::watch;

use p38_app::generations::{Generator, GeneratorConfig};
use p38_app::secrets::SecretsAdmin;
use p38_app::{App, AppConfig};
use p38_core::store::{NoSignal, QueueSignal, Store};
use p38_factory::ProviderKind;
use p38_runtime::{Executor, LocalSignal, RuntimeConfig, Scheduler, Worker};
use p38_server::HttpConfig;
use p38_store::{SqlStore, StoreOptions, redact_url};

use crate::args::{LlmProvider, LogFormat, ServerArgs};

/// Runs the API and/or a worker until SIGINT or SIGTERM.
pub async fn up(a: ServerArgs, api: bool, worker: bool) -> anyhow::Result<ExitCode> {
    let seen = p38_secrets::SeenSecrets::default();
    init_logging(&a.log, a.log_format, seen.clone())?;
    std::fs::create_dir_all(&a.data_dir)
        .with_context(|| format!("creating the data folder {}", a.data_dir.display()))?;
    let url = a
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", a.data_dir.join("p38.db").display()));
    // Each running task holds a connection only briefly, but completions of
    // many short tasks arrive together: size the pool to the concurrency.
    let pool = ((a.concurrency + a.generation_concurrency) as u32 + 4).max(8);
    let store = SqlStore::connect(
        &url,
        StoreOptions {
            max_connections: Some(pool),
            ..Default::default()
        },
    )
    .await?;
    let store: Arc<dyn Store> = Arc::new(store);
    tracing::info!(database = %redact_url(&url), "database ready");

    let secrets = crate::secrets_cfg::build(&a.secrets, &a.data_dir, store.clone(), seen)?;
    follow_secret_changes(&*store, secrets.chain.clone()).await;
    let wake = LocalSignal::default();
    let executor = if worker {
        let home = a.workspace_carry.home(store.backend());
        Some(Arc::new(build_executor(
            &a,
            &a.data_dir,
            secrets.chain.clone(),
            home,
        )?))
    } else {
        None
    };
    if let Some(e) = &executor {
        // What holds on this host, before any agent runs.
        eprintln!("sandbox: {}", e.sandbox_layers());
        if let Some(hint) = e.sandbox_layers().tuning_hint() {
            eprintln!("sandbox: hint: {hint}");
        }
    }
    // The API wakes the scheduler and the workers of this process; workers
    // elsewhere are woken by the database's notifications.
    let signal: Arc<dyn QueueSignal> = if api || worker {
        Arc::new(wake.clone())
    } else {
        Arc::new(NoSignal)
    };
    let app = App::new(
        store.clone(),
        signal,
        AppConfig {
            max_code_bytes: a.max_code_bytes,
            auto_approve: a.llm.auto_approve,
            approval_four_eyes: a.approval_four_eyes,
            ..AppConfig::default()
        },
    )
    .with_secrets(SecretsAdmin {
        cipher: secrets.cipher.clone(),
        chain: secrets.chain.clone(),
    })
    // Code given through the API passes the factory's static stages.
    .with_code_checker(Arc::new(p38_factory::StaticChecks::default()));
    // The API checks a generation's settings before queueing it; workers
    // run it (and need the provider key too).
    let app = app.with_generator(build_generator(&a, secrets.chain.clone())?);
    let app = if api {
        // Workspaces live in this host's data folder; a worker on another
        // host keeps its own copy (see README).
        app.with_workspaces(Arc::new(p38_runtime::LocalWorkspaces::new(&a.data_dir)))
    } else {
        app
    };
    // This process's workers tell its API when a run ends, so a request
    // waiting for it (`GET /api/tasks/{id}?wait=`) answers at once.
    let task_finished = Arc::new(tokio::sync::Notify::new());
    let app = app.with_task_finished(task_finished.clone());

    let (stop_tx, stop_rx) = watch::channel(false);
    let grace = Duration::from_secs(a.shutdown_grace);
    let mut jobs = tokio::task::JoinSet::new();

    if api {
        if let Some(path) = app.ensure_admin_token(&a.data_dir).await? {
            eprintln!(
                "Created the first admin token in {} (mode 0600).",
                path.display()
            );
        }
        let listener = tokio::net::TcpListener::bind(&a.bind)
            .await
            .with_context(|| format!("cannot listen on {} (set P38_BIND or --bind)", a.bind))?;
        let addr = listener.local_addr()?;
        let router = p38_server::router(
            app.clone(),
            &HttpConfig {
                max_body_bytes: a.max_body_bytes,
            },
        );
        eprintln!("Project38 API listening on http://{addr}");
        eprintln!(
            "API token: {} (or set P38_TOKEN)",
            a.data_dir.join("admin.token").display()
        );
        let mut rx = stop_rx.clone();
        jobs.spawn(async move {
            let shutdown = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = p38_server::serve(listener, router, shutdown, grace).await {
                tracing::error!(error = %e, "the API server stopped");
            }
        });
    }
    if api {
        let holder = format!(
            "{}:scheduler",
            a.worker_id
                .clone()
                .unwrap_or_else(|| RuntimeConfig::new(&a.data_dir).worker_id)
        );
        let sched = Scheduler::new(
            store.clone(),
            Arc::new(wake.clone()),
            wake.schedules.clone(),
            holder,
        );
        let rx = stop_rx.clone();
        jobs.spawn(async move { sched.run(rx).await });
    }
    if let Some(exec) = executor {
        // Generations are tasks too: this worker writes agents in slots of
        // their own, through the application's generation job.
        let w = Worker::new(store.clone(), exec, wake.tasks.clone())
            .with_stops(wake.stops.clone())
            .with_finished(task_finished.clone())
            .with_generations(Arc::new(app.clone()), a.generation_concurrency);
        let rx = stop_rx.clone();
        jobs.spawn(async move { w.run(rx, grace).await });
    }

    wait_for_signal().await;
    eprintln!(
        "Shutting down: no new work is taken; running tasks get {} s to finish.",
        a.shutdown_grace
    );
    let _ = stop_tx.send(true);
    while jobs.join_next().await.is_some() {}
    Ok(ExitCode::SUCCESS)
}

/// A secret changed through another process on the same database (a
/// write, a delete, `p38 secret reload`): this process drops its cache at
/// once, instead of serving the old value until the cache's TTL.
async fn follow_secret_changes(store: &dyn Store, chain: Arc<p38_secrets::ChainResolver>) {
    let changed = Arc::new(tokio::sync::Notify::new());
    match store.listen_secrets(changed.clone()).await {
        Ok(()) => {
            tokio::spawn(async move {
                loop {
                    changed.notified().await;
                    chain.reload();
                }
            });
        }
        Err(e) => tracing::warn!(
            error = %e.report(),
            "no secret-change notifications from the database; other processes' changes arrive after the cache TTL"
        ),
    }
}

/// The generator of agents: provider settings, keys from the secret chain,
/// and a dry runner in the sandbox (skipped, with a warning, when the
/// sandbox is not available on this node).
fn build_generator(
    a: &ServerArgs,
    keys: Arc<dyn p38_secrets::SecretResolver>,
) -> anyhow::Result<Generator> {
    let kind = match a.llm.llm_provider {
        LlmProvider::Anthropic => ProviderKind::Anthropic,
        LlmProvider::OpenAi => ProviderKind::OpenAi,
        LlmProvider::Gemini => ProviderKind::Gemini,
        LlmProvider::OpenAiCompatible => ProviderKind::OpenAiCompatible,
    };
    let dry_runner: Arc<dyn p38_factory::DryRunner> = match build_sandbox(
        a.python.as_deref(),
        a.insecure_no_sandbox,
        a.cgroup_root.as_deref(),
        false,
    )
    .and_then(crate::dry_run::SandboxDryRunner::new)
    {
        Ok(d) => Arc::new(d),
        Err(e) => {
            tracing::warn!(error = %e, "no sandbox for dry runs of generated agents; that validation stage will fail");
            Arc::new(NoDryRun(e.to_string()))
        }
    };
    Ok(Generator {
        config: GeneratorConfig {
            kind,
            model: a.llm.llm_model.clone(),
            base_url: a.llm.llm_base_url.clone(),
            timeout_secs: a.llm.llm_timeout,
            generation_timeout_secs: a.llm.llm_generation_timeout,
            max_iterations: a.llm.llm_max_iterations,
            budget_usd: a.llm.llm_budget_usd,
            price: a.llm.llm_price_input.zip(a.llm.llm_price_output),
        },
        keys,
        dry_runner,
    })
}

/// Reports that dry runs cannot happen here, so generated agents are never
/// saved as if they had passed one.
struct NoDryRun(String);

#[async_trait::async_trait]
impl p38_factory::DryRunner for NoDryRun {
    async fn dry_run(&self, _: &str, _: &str, _: &[String], _: bool) -> p38_factory::DryRunOutcome {
        p38_factory::DryRunOutcome {
            ok: false,
            error: Some(format!(
                "no sandbox on the API node for the dry run: {}",
                self.0
            )),
            line: None,
            duration: Duration::ZERO,
            summary: String::new(),
        }
    }
}

/// Builds the sandbox (probing the host) and the executor.
pub fn build_executor(
    a: &ServerArgs,
    data_dir: &Path,
    secrets: Arc<dyn p38_secrets::SecretResolver>,
    workspace_home: p38_runtime::WorkspaceHome,
) -> anyhow::Result<Executor> {
    let mut cfg = RuntimeConfig::new(data_dir);
    cfg.workspace_home = workspace_home;
    cfg.concurrency = a.concurrency.max(1);
    cfg.limits.timeout = Duration::from_secs(a.run_timeout.max(1));
    cfg.limits.memory_mb = a.run_memory_mb.max(16);
    cfg.limits.workspace_mb = a.run_workspace_mb;
    cfg.uid_base = a.sandbox_uid_base;
    cfg.lease = Duration::from_secs(a.lease_seconds.max(1));
    cfg.heartbeat = (cfg.lease / 3).min(Duration::from_secs(2));
    if let Some(id) = &a.worker_id {
        cfg.worker_id = id.clone();
    }
    let images = a.workspace_quota == crate::args::WorkspaceQuota::Image;
    let sandbox = build_sandbox(
        a.python.as_deref(),
        a.insecure_no_sandbox,
        a.cgroup_root.as_deref(),
        images,
    )?;
    Ok(Executor::new(sandbox, secrets, cfg)
        .context("preparing the runtime folder")?
        .precompile_runner())
}

/// The sandbox's init shim: `p38-init` beside this binary when it was built
/// from the same sources (it starts several milliseconds faster per run
/// than this whole binary), else this binary as `p38 __sandbox-init`.
fn init_program() -> anyhow::Result<Vec<std::ffi::OsString>> {
    let exe = std::env::current_exe().context("finding the p38 binary for the sandbox's init")?;
    let small = exe.with_file_name("p38-init");
    let same_build = std::process::Command::new(&small)
        .arg(p38_sandbox::init::BUILD_ID_ARG)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout).trim() == p38_sandbox::init::BUILD_ID
        });
    if same_build {
        return Ok(vec![small.into_os_string()]);
    }
    if small.exists() {
        tracing::warn!(
            path = %small.display(),
            "p38-init beside p38 is from another build; using p38 itself as the sandbox's init (install both from one build)"
        );
    }
    Ok(vec![
        exe.into_os_string(),
        p38_sandbox::init::SUBCOMMAND.into(),
    ])
}

/// Probes the sandbox; without it agents do not run, unless the operator
/// explicitly chose to run them unsandboxed.
/// `images`: workspaces as ext4 images (only the workers' workspaces, which
/// stay; a dry run's or `p38 run`'s are plain folders).
pub fn build_sandbox(
    python: Option<&Path>,
    insecure: bool,
    cgroup_root: Option<&Path>,
    images: bool,
) -> anyhow::Result<p38_sandbox::Sandbox> {
    let (python, prefix) = p38_runtime::resolve_python(python).map_err(anyhow::Error::msg)?;
    let mut cfg = p38_sandbox::SandboxConfig::new(python, init_program()?);
    cfg.python_prefix = prefix;
    cfg.insecure_no_sandbox = insecure;
    cfg.cgroup_root = cgroup_root.map(Path::to_path_buf);
    cfg.workspace_images = images;
    if insecure {
        eprintln!(
            "WARNING: --insecure-no-sandbox: agents run WITHOUT namespaces, landlock or seccomp. Every task records this."
        );
    }
    match p38_sandbox::Sandbox::new(cfg) {
        Ok(s) => Ok(s),
        Err(e) => bail!(
            "the sandbox is not available, so agents cannot run: {e}\nhint: fix what is named above (e.g. `apt-get install bubblewrap`), or start with --insecure-no-sandbox to run agents unsandboxed (not recommended)"
        ),
    }
}

/// Logs go to stderr through a writer that masks every secret value this
/// process has resolved.
fn init_logging(
    filter: &str,
    format: LogFormat,
    seen: p38_secrets::SeenSecrets,
) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .with_context(|| format!("invalid log filter {filter:?} (P38_LOG)"))?;
    let writer = move || seen.writer(std::io::stderr());
    // Colours only on a terminal: a log file or a collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    let r = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    r.map_err(|e| anyhow::anyhow!("logging: {e}"))
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

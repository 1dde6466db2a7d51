//! Workspaces carried with their agent between hosts
//! ([`WorkspaceHome::Carried`]): before a run, the workspace on this host
//! is brought to the latest version stored in the database; after it,
//! what the run left is stored as the next version, when it changed.
//!
//! Beside each carried workspace, in the root-owned folder of the
//! workspaces (out of the agent's reach), this host keeps:
//! - `{id}.carried`: the version the workspace was last brought to or
//!   saved as, and the [`Manifest`] it had then. A run that changed
//!   nothing (same manifest) costs a walk of the folder, not an archive
//!   or a database write.
//! - `{id}.carry-lock`: held shared by every run of the agent on this
//!   host (of any process) from restore to save, and exclusively to
//!   restore, so a workspace is never replaced under a running run (with
//!   `concurrency` above 1, a run that finds another one running keeps
//!   the workspace as it is).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use p38_core::agent::{Agent, AgentId};
use p38_core::store::Store;
use p38_core::task::{TaskId, TaskOutcome};
use p38_sandbox::{Limits, Sandbox};

use crate::config::{RuntimeConfig, WORKSPACE_ENTRIES, WorkspaceHome};
use crate::workspace_archive::{self as archive, Manifest, Packed};

/// What this host knows of its copy of a carried workspace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Marker {
    /// The stored version the workspace is; none before the first.
    version: Option<i64>,
    /// Its manifest then.
    manifest: Option<String>,
}

/// A run's hold on its carried workspace, from [`restore`] to [`save`].
pub(crate) enum Carried {
    /// The workspace stays on this host: nothing to save.
    HostLocal,
    /// The workspace matched `marker` when the run started.
    Carried { marker: Marker, _lock: Flock<File> },
}

/// The files of one agent's carried workspace on this host.
struct Paths {
    workspace: PathBuf,
    marker: PathBuf,
    lock: PathBuf,
}

impl Paths {
    fn of(cfg: &RuntimeConfig, agent: i64) -> Paths {
        let dir = cfg.workspaces_dir();
        Paths {
            workspace: cfg.workspace(agent),
            marker: dir.join(format!("{agent}.carried")),
            lock: dir.join(format!("{agent}.carry-lock")),
        }
    }
}

/// Forgets this host's record of a carried workspace (its agent was
/// deleted); `Ok` also when there was none.
pub(crate) fn forget(cfg: &RuntimeConfig, agent: i64) -> io::Result<()> {
    let p = Paths::of(cfg, agent);
    for f in [p.marker, p.lock] {
        if let Err(e) = std::fs::remove_file(&f)
            && e.kind() != io::ErrorKind::NotFound
        {
            return Err(e);
        }
    }
    Ok(())
}

fn read_marker(path: &Path) -> Marker {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Replaces the marker at once (written beside it, then renamed).
fn write_marker(path: &Path, m: &Marker) -> io::Result<()> {
    let tmp = path.with_extension(format!("carried.{}.tmp", rand::random::<u64>()));
    std::fs::write(&tmp, serde_json::to_vec(m)?)?;
    std::fs::rename(&tmp, path)
}

/// Takes the run's lock: exclusive (`true`) when no other run of the
/// agent on this host holds it, else shared.
fn lock(path: &Path) -> io::Result<(Flock<File>, bool)> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok((l, true)),
        Err((f, nix::errno::Errno::EWOULDBLOCK)) => Flock::lock(f, FlockArg::LockShared)
            .map(|l| (l, false))
            .map_err(|(_, e)| e.into()),
        Err((_, e)) => Err(e.into()),
    }
}

/// The limits that size the workspace (its image, when it is one).
fn workspace_limits(cfg: &RuntimeConfig, agent: &Agent) -> Limits {
    Limits {
        workspace_bytes: cfg.limits.workspace_bytes(&agent.settings),
        workspace_entries: WORKSPACE_ENTRIES,
        ..Limits::default()
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
}

/// Before a run: brings the workspace on this host to the agent's latest
/// stored version, when it is not that version already (emptied, then
/// unpacked, then handed to the agent's uid). `Err` says why the run
/// cannot start.
pub(crate) async fn restore(
    store: &Arc<dyn Store>,
    sandbox: &Sandbox,
    cfg: &RuntimeConfig,
    agent: &Agent,
) -> Result<Carried, String> {
    if cfg.workspace_home == WorkspaceHome::Host {
        return Ok(Carried::HostLocal);
    }
    let fail = |e: &dyn std::fmt::Display| format!("restoring the agent's workspace failed: {e}");
    let paths = Paths::of(cfg, agent.id);
    let latest = store
        .latest_workspace_archive(agent.id)
        .await
        .map_err(|e| fail(&e))?;
    let lock_path = paths.lock.clone();
    let (lock, alone) = blocking(move || lock(&lock_path))
        .await
        .map_err(|e| fail(&e))?;
    let marker = read_marker(&paths.marker);
    let Some(latest) = latest.filter(|l| alone && marker.version != Some(l.version)) else {
        // Current, or nothing stored yet (the files here are the first
        // version), or another run here uses the workspace.
        lock.relock(FlockArg::LockShared).map_err(|e| fail(&e))?;
        return Ok(Carried::Carried {
            marker,
            _lock: lock,
        });
    };
    let bytes = store
        .workspace_archive_bytes(agent.id, latest.version)
        .await
        .map_err(|e| fail(&e))?
        .ok_or_else(|| fail(&"its latest version was replaced meanwhile; the run is retried"))?;
    if archive::digest(&bytes) != latest.sha256 {
        return Err(fail(&format!(
            "version {} in the database does not match its checksum",
            latest.version
        )));
    }
    let (sandbox, limits) = (sandbox.clone(), workspace_limits(cfg, agent));
    let run_as = Some(cfg.agent_ids(agent.id));
    let ws = paths.workspace.clone();
    let manifest = blocking(move || {
        sandbox
            .open_workspace(&ws, &limits, run_as)
            .map_err(io::Error::other)?;
        archive::empty(&ws)?;
        archive::unpack(&ws, &bytes, limits.workspace_bytes)?;
        sandbox
            .hand_over_workspace(&ws, run_as)
            .map_err(io::Error::other)?;
        archive::manifest(&ws)
    })
    .await
    .map_err(|e| fail(&e))?;
    let marker = Marker {
        version: Some(latest.version),
        manifest: Some(manifest.hash),
    };
    write_marker(&paths.marker, &marker).map_err(|e| fail(&e))?;
    tracing::info!(
        agent = agent.id,
        version = latest.version,
        bytes = latest.size_bytes,
        "restored the agent's carried workspace"
    );
    lock.relock(FlockArg::LockShared).map_err(|e| fail(&e))?;
    Ok(Carried::Carried {
        marker,
        _lock: lock,
    })
}

/// What [`save`] found to do.
enum Change {
    /// The workspace is as it was.
    None,
    /// Empty, and nothing stored yet: nothing worth a version.
    StillEmpty(Manifest),
    /// Packed.
    Packed(Manifest, Packed),
}

/// After a run that started: stores the workspace as the agent's next
/// version when the run changed it. An archive larger than the agent's
/// workspace quota is not stored, and the run fails for exceeding it;
/// other failures are logged (the next run on this host saves again).
pub(crate) async fn save(
    store: &Arc<dyn Store>,
    cfg: &RuntimeConfig,
    agent_id: AgentId,
    limit: u64,
    task: TaskId,
    carried: Carried,
    outcome: &mut TaskOutcome,
) {
    let Carried::Carried { marker, _lock } = carried else {
        return;
    };
    let paths = Paths::of(cfg, agent_id);
    let (ws, known) = (paths.workspace.clone(), marker.clone());
    let change = blocking(move || {
        let m = archive::manifest(&ws)?;
        if known.manifest.as_deref() == Some(m.hash.as_str()) {
            return Ok(Change::None);
        }
        if m.entries == 0 && known.version.is_none() {
            return Ok(Change::StillEmpty(m));
        }
        let packed = archive::pack(&ws, limit)?;
        Ok(Change::Packed(m, packed))
    })
    .await;
    let warn = |e: &dyn std::fmt::Display| {
        tracing::warn!(agent = agent_id, task, error = %e, "saving the agent's carried workspace failed; the next run on this host tries again");
    };
    let (manifest, bytes) = match change {
        Ok(Change::None) => return,
        Ok(Change::StillEmpty(m)) => {
            let still = Marker {
                version: None,
                manifest: Some(m.hash),
            };
            if let Err(e) = write_marker(&paths.marker, &still) {
                warn(&e);
            }
            return;
        }
        Ok(Change::Packed(_, Packed::TooLarge)) => {
            exceeded_quota(outcome, limit);
            return;
        }
        Ok(Change::Packed(m, Packed::Archive(bytes))) => (m, bytes),
        Err(e) => return warn(&e),
    };
    let sha = archive::digest(&bytes);
    let size = bytes.len();
    match store
        .save_workspace_archive(agent_id, &sha, bytes, Some(task))
        .await
    {
        Ok(saved) => {
            let version = saved.archive().version;
            tracing::debug!(
                agent = agent_id,
                task,
                version,
                size,
                "saved the agent's carried workspace"
            );
            let now = Marker {
                version: Some(version),
                manifest: Some(manifest.hash),
            };
            if let Err(e) = write_marker(&paths.marker, &now) {
                warn(&e);
            }
        }
        // Deleted while it ran: there is nothing to carry it to.
        Err(p38_core::Error::NotFound { .. }) => {}
        Err(e) => warn(&e),
    }
}

/// The run left more than its quota to carry: it fails, as a run that
/// outgrows its workspace does (the sandbox's own check may have failed it
/// already, saying so).
fn exceeded_quota(outcome: &mut TaskOutcome, limit: u64) {
    let mb = limit / (1024 * 1024);
    let already = outcome
        .error()
        .is_some_and(|e| e.starts_with("workspace quota exceeded"));
    if !already {
        *outcome = TaskOutcome::failed(format!(
            "workspace quota exceeded: the agent's workspace holds more than its quota of {mb} MiB, so it was not saved for the hosts of its next runs (they see the version saved before this run); delete what the agent no longer needs or raise settings.workspace_mb"
        ));
    }
}

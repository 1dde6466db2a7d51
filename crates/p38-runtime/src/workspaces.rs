//! Removing deleted agents' workspaces from this host's data folder.

use std::path::PathBuf;

use async_trait::async_trait;
use p38_core::agent::AgentId;
use p38_core::workspace::WorkspaceRemover;
use p38_core::{Error, Result};

use crate::config::RuntimeConfig;

/// The workspaces under one data folder (`DATA_DIR/workspaces/{id}`, and
/// `{id}.img` when it is an image). Every process of a host that shares
/// the data folder (`p38 up`, or `p38 serve` beside `p38 worker`) removes
/// the same folder; a worker on another host keeps its own copy.
#[derive(Debug, Clone)]
pub struct LocalWorkspaces {
    cfg: RuntimeConfig,
}

impl LocalWorkspaces {
    /// The workspaces of the data folder `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> LocalWorkspaces {
        LocalWorkspaces {
            cfg: RuntimeConfig::new(data_dir),
        }
    }
}

#[async_trait]
impl WorkspaceRemover for LocalWorkspaces {
    async fn remove(&self, agent: AgentId) -> Result<()> {
        let path = self.cfg.workspace(agent);
        let shown = path.display().to_string();
        tokio::task::spawn_blocking(move || p38_sandbox::remove_workspace(&path))
            .await
            .map_err(|e| Error::internal_source("removing a workspace", e))?
            .map_err(|e| Error::internal_source(format!("removing the workspace {shown}"), e))?;
        // The database's copies go with the agent's rows.
        crate::workspace_carry::forget(&self.cfg, agent).map_err(|e| {
            Error::internal_source(format!("removing the record of the workspace {shown}"), e)
        })?;
        Ok(())
    }
}

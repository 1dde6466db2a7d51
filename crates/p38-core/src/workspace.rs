//! Removing an agent's workspace when the agent is deleted.
//!
//! The services (`p38-app`) decide when; the runtime, which knows where
//! workspaces live and how they are stored (a folder, or an ext4 image
//! mounted at it), does it. A small trait keeps the app from calling up
//! into the runtime.

use async_trait::async_trait;

use crate::Result;
use crate::agent::AgentId;

/// What happened to a deleted agent's workspace.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceFate {
    /// Deleted from this host (with its image, if it had one).
    Removed,
    /// Left on disk, as asked (`keep_workspace=true`), or because this
    /// process has no workspaces to remove (an API node of its own).
    Kept,
}

/// Deletes agents' workspaces on this host.
#[async_trait]
pub trait WorkspaceRemover: Send + Sync {
    /// Removes the workspace of `agent` (unmounting its image first); `Ok`
    /// also when it had none. Runs still using it keep their view of it
    /// until they end.
    async fn remove(&self, agent: AgentId) -> Result<()>;
}

/// One stored version of an agent's workspace, carried between hosts (see
/// [`crate::store::WorkspaceArchiveStore`]): its metadata, never its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceArchive {
    /// The agent.
    pub agent_id: AgentId,
    /// 1, 2, 3...: counts the agent's saved versions.
    pub version: i64,
    /// SHA-256 of the archive's bytes, hex.
    pub sha256: String,
    /// Length of the archive, bytes (compressed).
    pub size_bytes: i64,
    /// The task whose run left the workspace in this state.
    pub saved_by_task: Option<crate::task::TaskId>,
    /// When it was stored.
    pub created_at: crate::time::Timestamp,
}

/// What saving a workspace archive did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveSave {
    /// Stored as a new version.
    Stored(WorkspaceArchive),
    /// The latest version already has these bytes: nothing was written.
    Unchanged(WorkspaceArchive),
}

impl ArchiveSave {
    /// The version the workspace now corresponds to.
    pub fn archive(&self) -> &WorkspaceArchive {
        match self {
            ArchiveSave::Stored(a) | ArchiveSave::Unchanged(a) => a,
        }
    }
}

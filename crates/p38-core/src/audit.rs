//! The audit log: who changed what, when.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use chrono::{DateTime, Utc};

/// One audit record.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// Identifier, increasing.
    pub id: i64,
    /// Who did it (`token:NAME#ID`, or `system`).
    pub actor: String,
    /// What was done (`agent.create`, `task.cancel`, ...).
    pub action: String,
    /// What it was done to (`agent:3`, `token:7`).
    pub target: String,
    /// Extra facts (names of changed fields; never secret values).
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
    /// When.
    pub at: DateTime<Utc>,
}

/// An audit record to append.
#[derive(Debug, Clone)]
pub struct NewAudit {
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// To what.
    pub target: String,
    /// Extra facts.
    pub detail: Option<serde_json::Value>,
}

//! Route handlers, one module per resource. Each handler parses, calls one
//! service function and returns its result; nothing else.

pub(crate) mod agents;
pub(crate) mod audit;
pub(crate) mod generations;
pub(crate) mod health;
pub(crate) mod secrets;
pub(crate) mod tasks;
pub(crate) mod tokens;

use serde::Deserialize;
use utoipa::IntoParams;

/// Cursor pagination parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// Opaque cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// Cursor pagination of agents, with an optional status.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AgentPageQuery {
    /// Opaque cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Only agents with this status.
    #[param(value_type = Option<p38_core::agent::AgentStatus>)]
    pub status: Option<String>,
}

/// Cursor pagination of tasks, with an optional status.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct TaskPageQuery {
    /// Opaque cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Only tasks with this status.
    #[param(value_type = Option<p38_core::task::TaskStatus>)]
    pub status: Option<String>,
}

/// Cursor pagination of generations, with an optional status.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct GenerationPageQuery {
    /// Opaque cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Only generations with this status.
    #[param(value_type = Option<p38_core::generation::GenerationStatus>)]
    pub status: Option<String>,
}

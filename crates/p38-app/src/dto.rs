//! Request and response bodies shared by every interface. Requests reject
//! unknown fields, so a typo (`"shedule"`) is an error, not a silent no-op.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use p38_core::agent::{Agent, AgentSettings, AgentStatus};
use p38_core::auth::{ApiToken, Scope};

/// `POST /api/agents`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgent {
    /// Unique name: 1 to 64 letters, digits, `.`, `_`, `-`, starting with a
    /// letter or digit, not all digits (generated agents name themselves
    /// when it is left out or empty).
    #[serde(default)]
    #[schema(pattern = "^$|^(?![0-9]+$)[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub name: String,
    /// What the agent does.
    #[serde(default)]
    pub description: String,
    /// Python source defining `run(ctx)`. Leave it out and give a
    /// `description` to have Project38 write the agent (202 with a generation).
    #[serde(default)]
    pub code: Option<String>,
    /// Cron expression (`"0 * * * *"`, 6 fields with seconds) or `"every 30s"`.
    #[serde(default)]
    pub schedule: Option<String>,
    /// Configuration object handed to the agent as `ctx.config`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Value>,
    /// Secret names the agent may read (each once).
    #[serde(default)]
    #[schema(value_type = Vec<p38_core::agent::SecretName>)]
    pub secrets: Vec<String>,
    /// Tools the agent may call (each once).
    #[serde(default)]
    #[schema(value_type = Vec<p38_core::agent::ToolName>)]
    pub tools: Vec<String>,
    /// Network permission: `true` (also spelt `"host"`) shares the host's
    /// network; `false` (`"none"`, the default) gives the agent none.
    #[serde(default, deserialize_with = "network_flag")]
    pub network: bool,
    /// Host names the agent may reach (e.g. `api.example.com`, `*.example.com`).
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    /// Runtime limits and retry policy.
    #[serde(default)]
    pub settings: AgentSettings,
    /// Initial status (default `active`: the admin who posts the code approves it).
    #[serde(default)]
    pub status: Option<AgentStatus>,
}

/// `PATCH /api/agents/{id}`: every field optional; `"schedule": null`
/// removes the schedule.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAgent {
    /// New name (see `CreateAgent.name`).
    #[serde(default)]
    #[schema(pattern = "^(?![0-9]+$)[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub name: Option<String>,
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New code (kept as a new version).
    #[serde(default)]
    pub code: Option<String>,
    /// New schedule, or null to remove it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub schedule: Option<Option<String>>,
    /// New configuration object.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Value>,
    /// New secret names (each once).
    #[serde(default)]
    #[schema(value_type = Option<Vec<p38_core::agent::SecretName>>)]
    pub secrets: Option<Vec<String>>,
    /// New tools (each once).
    #[serde(default)]
    #[schema(value_type = Option<Vec<p38_core::agent::ToolName>>)]
    pub tools: Option<Vec<String>>,
    /// New network permission (`true` or `"host"`, `false` or `"none"`).
    #[serde(default, deserialize_with = "some_network_flag")]
    #[schema(value_type = Option<bool>)]
    pub network: Option<bool>,
    /// New allowed hosts.
    #[serde(default)]
    pub allow_hosts: Option<Vec<String>>,
    /// New settings (replaces the object).
    #[serde(default)]
    pub settings: Option<AgentSettings>,
    /// New status (`paused` stops the schedule, `active` resumes it).
    #[serde(default)]
    pub status: Option<AgentStatus>,
}

/// The network permission as a boolean, or by name: `"host"` (the host's
/// network, `true`) or `"none"` (`false`).
fn network_flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Name(String),
    }
    match Flag::deserialize(d) {
        Ok(Flag::Bool(b)) => Ok(b),
        Ok(Flag::Name(n)) if n == "host" => Ok(true),
        Ok(Flag::Name(n)) if n == "none" => Ok(false),
        _ => Err(serde::de::Error::custom(
            "network must be true or \"host\" (the host's network), or false or \"none\"",
        )),
    }
}

fn some_network_flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    network_flag(d).map(Some)
}

/// Distinguishes a field that is present but null (`Some(None)`) from an
/// absent one (`None`, via `#[serde(default)]`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// An agent with what is derived from it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentView {
    /// The stored agent.
    #[serde(flatten)]
    pub agent: Agent,
    /// The next times its schedule fires (empty when it has none or is not active).
    pub next_runs: Vec<DateTime<Utc>>,
    /// The code version last approved and what the approval covers that
    /// changed since (see README, "What an approval covers").
    pub approval: p38_core::approval::Approval,
    /// What writing it cost, for an agent Project38 wrote (only in
    /// `GET /api/agents/{id}`; listings leave it out to stay one query).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<GenerationCost>,
    /// Warnings of the static checks over the code just given (only in the
    /// answer to the create or change that gave it; errors refuse the code).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warnings: Option<Vec<p38_core::finding::CodeFinding>>,
}

/// The answer to deleting an agent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeletedAgent {
    /// The deleted agent's id.
    pub deleted: p38_core::agent::AgentId,
    /// Whether its workspace was removed from this host or kept.
    pub workspace: p38_core::workspace::WorkspaceFate,
}

/// The language-model cost of the generation that wrote an agent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GenerationCost {
    /// The generation (`GET /api/generations/{id}`).
    pub id: i64,
    /// The model that wrote it.
    pub model: String,
    /// Iterations of the repair loop.
    pub iterations: i64,
    /// Input tokens over every call.
    pub input_tokens: i64,
    /// Output tokens over every call.
    pub output_tokens: i64,
    /// Total cost, USD.
    pub cost_usd: f64,
}

/// `POST /api/tokens`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A label (who or what uses it): 1 to 64 characters, not only spaces.
    #[schema(min_length = 1, max_length = 64, pattern = "\\S")]
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// Days until it expires, 1 to 3650 (default: never).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<i64>,
}

/// `POST /api/agents/{id}/reject`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectAgent {
    /// Why, for the author (1 to 1000 characters; audited).
    #[schema(min_length = 1, max_length = 1000)]
    pub reason: String,
}

/// A new token: the only time the token itself is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// The token's metadata.
    #[serde(flatten)]
    pub info: ApiToken,
    /// The bearer token. Store it now: only its hash is kept.
    pub token: String,
}

/// `GET /health`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` or `degraded`.
    pub status: String,
    /// Project38 version.
    pub version: String,
    /// `sqlite` or `postgres`.
    pub database: String,
    /// Whether the database answered.
    pub database_reachable: bool,
}

/// `GET /`: what this server is and where to go next.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiRoot {
    /// Always `Project38`.
    pub name: String,
    /// Project38 version.
    pub version: String,
    /// The OpenAPI 3.1 document (`/openapi.json`).
    pub openapi: String,
    /// Liveness and database reachability (`/health`).
    pub health: String,
    /// Where the authenticated API starts (`/api`).
    pub api: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_tells_null_from_absent() {
        let u: UpdateAgent = serde_json::from_str(r#"{"schedule": null}"#).unwrap();
        assert_eq!(u.schedule, Some(None));
        let u: UpdateAgent = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(u.schedule, None);
        let u: UpdateAgent = serde_json::from_str(r#"{"schedule": "every 5m"}"#).unwrap();
        assert_eq!(u.schedule, Some(Some("every 5m".into())));
        assert!(serde_json::from_str::<UpdateAgent>(r#"{"shedule": "x"}"#).is_err());
    }

    #[test]
    fn network_is_a_flag_or_its_name() {
        let c: CreateAgent = serde_json::from_str(r#"{"network": "host"}"#).unwrap();
        assert!(c.network);
        let c: CreateAgent = serde_json::from_str(r#"{"network": false}"#).unwrap();
        assert!(!c.network);
        let u: UpdateAgent = serde_json::from_str(r#"{"network": "none"}"#).unwrap();
        assert_eq!(u.network, Some(false));
        let u: UpdateAgent = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(u.network, None);
        assert!(serde_json::from_str::<UpdateAgent>(r#"{"network": "lan"}"#).is_err());
        assert!(serde_json::from_str::<UpdateAgent>(r#"{"network": null}"#).is_err());
    }
}

//! What an approval covers: the one definition, used by every change of an
//! agent, by the diff an approver is shown, and by the README.
//!
//! A human approves an agent's code and what it may reach: `code`,
//! `config`, `secrets`, `tools`, `network`, `allow_hosts` and
//! `settings.tool_limits`. A change of any of them withdraws the approval
//! (the agent waits for a human again); a change of its schedule, its
//! status or its run limits does not.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::agent::{Agent, NewAgent};

/// The covered fields, in the API's words, in the order a diff lists them.
pub const COVERED_FIELDS: [&str; 7] = [
    "code",
    "config",
    "secrets",
    "tools",
    "network",
    "allow_hosts",
    "settings.tool_limits",
];

/// The covered fields of an agent at one moment: what an approver approved
/// (kept with the agent), or what the agent is now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Covered {
    /// The Python source.
    pub code: String,
    /// `ctx.config`.
    pub config: serde_json::Value,
    /// Names of the secrets it may read (never their values).
    pub secrets: Vec<String>,
    /// Tools it may call.
    pub tools: Vec<String>,
    /// The host network.
    pub network: bool,
    /// Hosts it may reach.
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    /// `settings.tool_limits`.
    #[serde(default)]
    pub tool_limits: Option<serde_json::Value>,
}

impl Covered {
    /// The covered fields of `agent` as it is.
    pub fn of(agent: &Agent) -> Covered {
        Covered {
            code: agent.code.clone(),
            config: agent.config.clone(),
            secrets: agent.secrets.clone(),
            tools: agent.tools.clone(),
            network: agent.network,
            allow_hosts: agent.allow_hosts.clone(),
            tool_limits: agent
                .settings
                .tool_limits
                .clone()
                .map(serde_json::Value::Object),
        }
    }

    /// The covered fields of an agent about to be created.
    pub fn of_new(new: &NewAgent) -> Covered {
        Covered {
            code: new.code.clone(),
            config: new.config.clone(),
            secrets: new.secrets.clone(),
            tools: new.tools.clone(),
            network: new.network,
            allow_hosts: new.allow_hosts.clone(),
            tool_limits: new
                .settings
                .tool_limits
                .clone()
                .map(serde_json::Value::Object),
        }
    }

    /// Each covered field, named as in [`COVERED_FIELDS`], with its value.
    fn fields(&self) -> [(&'static str, serde_json::Value); 7] {
        use serde_json::json;
        [
            ("code", json!(self.code)),
            ("config", self.config.clone()),
            ("secrets", json!(self.secrets)),
            ("tools", json!(self.tools)),
            ("network", json!(self.network)),
            ("allow_hosts", json!(self.allow_hosts)),
            (
                "settings.tool_limits",
                self.tool_limits.clone().unwrap_or(serde_json::Value::Null),
            ),
        ]
    }

    /// What differs from `before` to `self`, field by field. With no
    /// `before` (never approved), every field that is set is a change from
    /// `null`.
    pub fn changes_since(&self, before: Option<&Covered>) -> Vec<FieldChange> {
        let after = self.fields();
        let before = before.map(Covered::fields);
        after
            .into_iter()
            .enumerate()
            .filter_map(|(i, (field, after))| {
                let before = match &before {
                    Some(b) => b[i].1.clone(),
                    None => serde_json::Value::Null,
                };
                (before != after && !(before.is_null() && is_empty(&after))).then(|| FieldChange {
                    field: field.to_string(),
                    before,
                    after,
                })
            })
            .collect()
    }
}

/// `false`, `[]`, `{}`, `""`: nothing to approve when first set.
fn is_empty(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => true,
        serde_json::Value::Bool(b) => !b,
        serde_json::Value::String(s) => s.is_empty(),
        serde_json::Value::Array(a) => a.is_empty(),
        serde_json::Value::Object(o) => o.is_empty(),
        serde_json::Value::Number(_) => false,
    }
}

/// One covered field that changed since the last approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FieldChange {
    /// The field, in the API's words (`code`, `settings.tool_limits`, ...).
    pub field: String,
    /// Its approved value (`null` when the agent was never approved): any
    /// JSON value, as the field has it.
    pub before: serde_json::Value,
    /// Its value now.
    pub after: serde_json::Value,
}

/// An agent's approval as an approver sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Approval {
    /// The code version last approved; `null` when the agent was never
    /// approved.
    pub approved_version: Option<i64>,
    /// The covered fields that changed since that approval (empty when
    /// nothing did). For an agent never approved, every covered field that
    /// is set, with `before: null`.
    pub changes: Vec<FieldChange>,
}

impl Approval {
    /// The approval of `agent`: what it is now against what was approved.
    pub fn of(agent: &Agent) -> Approval {
        Approval {
            approved_version: agent.approved_version,
            changes: Covered::of(agent).changes_since(agent.approved_snapshot.as_ref()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> Agent {
        Agent::sample()
    }

    #[test]
    fn never_approved_lists_what_is_set() {
        let a = agent();
        let ch = Covered::of(&a).changes_since(None);
        let fields: Vec<_> = ch.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["code"]);
    }

    #[test]
    fn each_covered_field_is_a_change() {
        let a = agent();
        let approved = Covered::of(&a);
        let mut b = a.clone();
        b.config = serde_json::json!({"url": "https://x"});
        b.secrets = vec!["TOKEN".into()];
        b.tools = vec!["browser".into()];
        b.network = true;
        b.allow_hosts = vec!["example.com".into()];
        b.settings.tool_limits = Some(serde_json::Map::from_iter([(
            "browser".to_string(),
            serde_json::json!(3),
        )]));
        b.code.push_str("# x\n");
        let ch = Covered::of(&b).changes_since(Some(&approved));
        let fields: Vec<_> = ch.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, COVERED_FIELDS);
        // Run limits and the schedule are not covered.
        let mut c = a.clone();
        c.schedule = Some("every 5m".into());
        c.settings.timeout_seconds = Some(9);
        assert!(Covered::of(&c).changes_since(Some(&approved)).is_empty());
    }
}

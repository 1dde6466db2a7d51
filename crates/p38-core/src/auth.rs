//! API tokens and their scopes. Only a token's SHA-256 hash is stored; the
//! token itself is shown once, when it is created.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Error, Result};
use chrono::{DateTime, Utc};

/// What a token may do. Scopes are ordered: each includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read everything except tokens and the audit log.
    Viewer,
    /// Also run, retry and cancel tasks, approve, pause and resume agents.
    Operator,
    /// Everything: agents, tokens, secrets, the audit log.
    Admin,
}

impl Scope {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Viewer => "viewer",
            Scope::Operator => "operator",
            Scope::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "viewer" => Ok(Scope::Viewer),
            "operator" => Ok(Scope::Operator),
            "admin" => Ok(Scope::Admin),
            _ => Err(Error::validation(
                "scope",
                format!("unknown scope {s:?}; expected admin, operator or viewer"),
            )),
        }
    }
}

/// A token's metadata (never the token or its hash).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiToken {
    /// Identifier.
    pub id: i64,
    /// A label chosen at creation.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// The first characters of the token, to tell tokens apart.
    pub prefix: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Who is making a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Token id.
    pub token_id: i64,
    /// Token name, used as the actor in the audit log.
    pub name: String,
    /// Its scope.
    pub scope: Scope,
}

impl Principal {
    /// The actor string written to the audit log.
    pub fn actor(&self) -> String {
        format!("token:{}#{}", self.name, self.token_id)
    }

    /// Fails with 403 unless the principal has at least `needed`.
    pub fn require(&self, needed: Scope) -> Result<()> {
        if self.scope >= needed {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "this needs a token with the {} scope; yours has {}",
                needed.as_str(),
                self.scope.as_str()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_ordered() {
        let p = Principal {
            token_id: 1,
            name: "x".into(),
            scope: Scope::Operator,
        };
        assert!(p.require(Scope::Viewer).is_ok());
        assert!(p.require(Scope::Operator).is_ok());
        assert!(matches!(p.require(Scope::Admin), Err(Error::Forbidden(_))));
    }
}

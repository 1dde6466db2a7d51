//! API tokens and their scopes. Only a token's SHA-256 hash is stored; the
//! token itself is shown once, when it is created.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Error, Result};
use chrono::{DateTime, Utc};

/// What a token may do. `viewer` reads; `operator` also runs, retries,
/// cancels, pauses, resumes, approves and rejects; `author` also runs,
/// retries, cancels, pauses and resumes, and creates and changes agents,
/// but never approves or rejects; `admin` does everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read everything except tokens, secrets and the audit log.
    Viewer,
    /// Also run, retry and cancel tasks, approve, reject, pause and resume agents.
    Operator,
    /// Also create and change agents; never approve or reject them (the
    /// scope for scripts and MCP clients).
    Author,
    /// Everything: agents, tokens, secrets, the audit log.
    Admin,
}

impl Scope {
    /// Every scope, for help texts.
    pub const ALL: [Scope; 4] = [Scope::Viewer, Scope::Operator, Scope::Author, Scope::Admin];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Viewer => "viewer",
            Scope::Operator => "operator",
            Scope::Author => "author",
            Scope::Admin => "admin",
        }
    }

    /// Whether a token of this scope may do what `needed` may. Not a total
    /// order: `author` includes what `operator` may do except approving
    /// (see [`Principal::require_approver`]), and `operator` cannot author.
    pub fn includes(self, needed: Scope) -> bool {
        match (self, needed) {
            (Scope::Admin, _) | (_, Scope::Viewer) => true,
            (Scope::Author, Scope::Operator) => true,
            (have, needed) => have == needed,
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Scope::ALL
            .into_iter()
            .find(|sc| sc.as_str() == s)
            .ok_or_else(|| {
                Error::validation(
                    "scope",
                    format!("unknown scope {s:?}; expected admin, author, operator or viewer"),
                )
            })
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
    /// When it expires (none: never).
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was last used to authenticate, to the minute (none: never).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// An unrevoked token found by its hash, with what authentication checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenLookup {
    /// Who it is.
    pub principal: Principal,
    /// When it expires (none: never).
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was last recorded as used.
    pub last_used_at: Option<DateTime<Utc>>,
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
        if self.scope.includes(needed) {
            Ok(())
        } else {
            let who = match needed {
                Scope::Admin => "the admin scope".to_string(),
                Scope::Operator => "the operator, author or admin scope".to_string(),
                other => format!("the {} or admin scope", other.as_str()),
            };
            Err(Error::Forbidden(format!(
                "this needs a token with {who}; yours has {}",
                self.scope.as_str()
            )))
        }
    }
}

impl Principal {
    /// Fails with 403 unless the principal may approve or reject agents:
    /// operator or admin, never author.
    pub fn require_approver(&self) -> Result<()> {
        match self.scope {
            Scope::Operator | Scope::Admin => Ok(()),
            Scope::Author => Err(Error::Forbidden(
                "an author token may create, change and run agents but never approve or reject them; ask an operator or admin".into(),
            )),
            Scope::Viewer => self.require(Scope::Operator),
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
        assert!(p.require(Scope::Author).is_err());
        assert!(p.require_approver().is_ok());
    }

    #[test]
    fn authors_author_and_run_but_never_approve() {
        let p = Principal {
            token_id: 2,
            name: "script".into(),
            scope: Scope::Author,
        };
        assert!(p.require(Scope::Viewer).is_ok());
        assert!(p.require(Scope::Operator).is_ok());
        assert!(p.require(Scope::Author).is_ok());
        assert!(p.require(Scope::Admin).is_err());
        assert!(
            matches!(p.require_approver(), Err(Error::Forbidden(m)) if m.contains("never approve"))
        );
        assert_eq!("author".parse::<Scope>().unwrap(), Scope::Author);
    }
}

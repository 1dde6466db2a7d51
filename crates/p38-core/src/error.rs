//! The one error type of Project38. Each variant maps to one HTTP status and
//! one CLI exit message; the message is written for the user and says what to
//! do, the internal detail is logged but never sent to a client.

/// Shorthand for results carrying [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, classified by who can fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request cannot be parsed at all (not JSON, not UTF-8).
    #[error("{0}")]
    Malformed(String),
    /// The input is malformed or breaks a rule; `field` names the culprit.
    #[error("{message}")]
    Validation {
        /// The request field at fault, when one is.
        field: Option<String>,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A referenced object does not exist.
    #[error("{what} {id} not found")]
    NotFound {
        /// The kind of object ("agent", "task").
        what: &'static str,
        /// The identifier that was looked up.
        id: String,
    },
    /// The request conflicts with the current state (duplicate name, a task
    /// that already finished).
    #[error("{message}")]
    Conflict {
        /// The field at fault, when one is.
        field: Option<String>,
        /// What conflicts.
        message: String,
    },
    /// No or an unknown credential.
    #[error("{0}")]
    Unauthorized(String),
    /// A valid credential without the needed scope.
    #[error("{0}")]
    Forbidden(String),
    /// A body or field larger than allowed.
    #[error("{message}")]
    TooLarge {
        /// The field at fault, when one is.
        field: Option<String>,
        /// Which limit was exceeded.
        message: String,
    },
    /// Agent code that the static checks refuse; `findings` has every
    /// finding (errors and warnings) with its line and rule.
    #[error("{}", code_rejected_message(findings))]
    CodeRejected {
        /// What the checks found.
        findings: Vec<crate::finding::CodeFinding>,
    },
    /// A dependency (database, sandbox) is not available right now.
    #[error("{0}")]
    Unavailable(String),
    /// A fault inside Project38; the detail is for the logs only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// A validation error on `field`.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Validation {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// A conflict on `field`.
    pub fn conflict(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Conflict {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// A missing object.
    pub fn not_found(what: &'static str, id: impl ToString) -> Self {
        Error::NotFound {
            what,
            id: id.to_string(),
        }
    }

    /// An internal fault.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Error::Internal(detail.to_string())
    }

    /// The stable machine-readable code sent in error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Malformed(_) => "malformed",
            Error::Validation { .. } | Error::CodeRejected { .. } => "validation",
            Error::NotFound { .. } => "not_found",
            Error::Conflict { .. } => "conflict",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::TooLarge { .. } => "too_large",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
        }
    }

    /// The field at fault, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Validation { field, .. }
            | Error::Conflict { field, .. }
            | Error::TooLarge { field, .. } => field.as_deref(),
            Error::CodeRejected { .. } => Some("code"),
            _ => None,
        }
    }
}

/// "code has 2 errors: line 1: syntax_error: ...; line 3: F821: ...".
fn code_rejected_message(findings: &[crate::finding::CodeFinding]) -> String {
    let errors: Vec<String> = findings
        .iter()
        .filter(|f| f.is_error())
        .map(|f| match f.line {
            Some(l) => format!("line {l}: {}: {}", f.rule, f.message),
            None => format!("{}: {}", f.rule, f.message),
        })
        .collect();
    format!(
        "the code does not pass the checks ({} error{}): {}; `findings` lists them",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" },
        errors.join("; ")
    )
}

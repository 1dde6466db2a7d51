//! The one error type of Project38. Each variant maps to one HTTP status and
//! one CLI exit message; the message is written for the user and says what to
//! do. An internal fault or an unavailable dependency also keeps the error
//! that caused it (`source`): the whole chain is logged once, where the error
//! becomes a response ([`Error::report`]), and never sent to a client.

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
    #[error("{message}")]
    Unavailable {
        /// What is unavailable and what to do, for the user; without the
        /// cause's own text (a driver's message), which stays in `source`.
        message: String,
        /// The error that caused it, for the log.
        #[source]
        source: Option<Source>,
    },
    /// A fault inside Project38.
    #[error("{message}")]
    Internal {
        /// What Project38 was doing, for the user; without the cause's own
        /// text (a driver's message, SQL), which stays in `source`.
        message: String,
        /// The error that caused it, for the log only.
        #[source]
        source: Option<Source>,
    },
}

/// The cause of an internal fault or an unavailable dependency.
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What an internal fault says to the user when nothing more specific is
/// known.
const INTERNAL_MESSAGE: &str = "something went wrong inside Project38";

/// A detail given as text (`Error::internal("...")`), kept as the cause of
/// an internal fault so that it is logged but not sent.
#[derive(Debug)]
struct Detail(String);

impl std::fmt::Display for Detail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Detail {}

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

    /// An internal fault described only by `detail`, for the log: the user
    /// is told that something went wrong inside Project38. Prefer
    /// [`Error::internal_source`] when there is an error value.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Error::Internal {
            message: INTERNAL_MESSAGE.into(),
            source: Some(Box::new(Detail(detail.to_string()))),
        }
    }

    /// An internal fault while doing what `message` says (for the user,
    /// e.g. "cannot read the task"), caused by `source` (for the log).
    pub fn internal_source(message: impl Into<String>, source: impl Into<Source>) -> Self {
        Error::Internal {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// An unavailable dependency; `message` says what and what to do.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Error::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// An unavailable dependency, `message` for the user (without the
    /// cause's text), caused by `source` (for the log).
    pub fn unavailable_source(message: impl Into<String>, source: impl Into<Source>) -> Self {
        Error::Unavailable {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// The message and every cause under it, `message: cause: cause`, for
    /// the one log line of an error (never for a client).
    pub fn report(&self) -> Report<'_> {
        Report(self)
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
            Error::Unavailable { .. } => "unavailable",
            Error::Internal { .. } => "internal",
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

/// An error with its causes, as [`Error::report`] shows it.
#[derive(Debug, Clone, Copy)]
pub struct Report<'a>(&'a Error);

impl std::fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown = self.0.to_string();
        f.write_str(&shown)?;
        let mut cause = std::error::Error::source(self.0);
        while let Some(c) = cause {
            // Many errors quote their source in their own message (sqlx's
            // "error returned from database: {0}"): a cause already shown
            // is not repeated.
            let text = c.to_string();
            if !shown.contains(&text) {
                write!(f, ": {text}")?;
            }
            shown = text;
            cause = c.source();
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_detail_is_the_cause_not_the_message() {
        let e = Error::internal("unknown trigger \"x\" in store");
        assert_eq!(e.to_string(), "something went wrong inside Project38");
        assert_eq!(
            e.report().to_string(),
            "something went wrong inside Project38: unknown trigger \"x\" in store"
        );
        assert_eq!(e.code(), "internal");
    }

    #[test]
    fn the_report_has_every_cause_once() {
        let io = std::io::Error::other("disk I/O error");
        let e = Error::internal_source("cannot read the task", io);
        assert_eq!(e.to_string(), "cannot read the task");
        assert_eq!(
            e.report().to_string(),
            "cannot read the task: disk I/O error"
        );
        #[derive(Debug, thiserror::Error)]
        #[error("error returned from database: {0}")]
        struct Quoting(#[source] std::io::Error);
        let quoting = Quoting(std::io::Error::other("no such table: tasks"));
        let e = Error::internal_source("a database operation failed", quoting);
        assert_eq!(
            e.report().to_string(),
            "a database operation failed: error returned from database: no such table: tasks"
        );
        let e = Error::unavailable("the database is unreachable");
        assert_eq!(e.report().to_string(), "the database is unreachable");
        assert_eq!(e.code(), "unavailable");
    }
}

//! "May this agent run?": the one definition, which the API (a manual run,
//! a retry) and the worker (a queued task it claimed) both apply.
//!
//! The queue's claim statement does not apply it: it claims tasks in queue
//! order whatever their agent's state, and the worker asks
//! [`Agent::may_run`] right after claiming, recording a refused task as
//! cancelled with the reason. Filtering in SQL as well would leave such
//! tasks queued forever with no reason shown, and would be a second
//! spelling of the rule that could drift from this one.
//!
//! Whether an agent's schedule fires is the narrower
//! [`AgentStatus::fires_on_schedule`].

use crate::agent::{Agent, AgentStatus};

/// Why an agent may not run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotRunnable {
    /// Its status never runs (draft, pending approval, disabled,
    /// rejected); `approved` says whether its code is approved anyway.
    Status {
        /// The status.
        status: AgentStatus,
        /// Whether its current code and permissions are approved.
        approved: bool,
    },
    /// Active or paused, but nobody approved its current code and
    /// permissions.
    NotApproved {
        /// The status.
        status: AgentStatus,
    },
}

impl std::fmt::Display for NotRunnable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            NotRunnable::Status { status, approved } => write!(
                f,
                "the agent is {}{}",
                status.as_str(),
                if approved { "" } else { " and not approved" }
            ),
            NotRunnable::NotApproved { status } => {
                write!(f, "the agent is {} and not approved", status.as_str())
            }
        }
    }
}

impl Agent {
    /// Whether a run of the agent may start now: its status runs (active
    /// or paused; a paused agent runs on demand and its queued tasks still
    /// run) and a human, or the opt-in auto-approval, approved its current
    /// code and permissions. It never runs with permissions no one
    /// approved.
    pub fn may_run(&self) -> Result<(), NotRunnable> {
        let approved = self.approved_by.is_some();
        if !self.status.can_run() {
            return Err(NotRunnable::Status {
                status: self.status,
                approved,
            });
        }
        if !approved {
            return Err(NotRunnable::NotApproved {
                status: self.status,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(status: AgentStatus, approved: bool) -> Agent {
        let mut a = Agent::sample();
        a.status = status;
        a.approved_by = approved.then(|| "ada".to_string());
        a
    }

    #[test]
    fn only_approved_active_or_paused_agents_run() {
        for s in AgentStatus::ALL {
            let ok = matches!(s, AgentStatus::Active | AgentStatus::Paused);
            assert_eq!(agent(s, true).may_run().is_ok(), ok, "{s:?}");
            assert!(agent(s, false).may_run().is_err(), "{s:?} unapproved");
        }
    }

    #[test]
    fn the_refusal_says_why() {
        let why = |s, a| agent(s, a).may_run().unwrap_err().to_string();
        assert_eq!(why(AgentStatus::Disabled, true), "the agent is disabled");
        assert_eq!(
            why(AgentStatus::Disabled, false),
            "the agent is disabled and not approved"
        );
        assert_eq!(
            why(AgentStatus::Active, false),
            "the agent is active and not approved"
        );
    }
}

//! Project38's runtime: the worker that claims queued tasks from the store,
//! runs each agent once in the sandbox through the embedded Python runner,
//! masks every secret in what came back, and records the outcome and the
//! state the agent carries to its next run.
#![deny(missing_docs)]

mod config;
mod executor;
mod generation_task;
mod history;
mod live;
mod python;
mod reply;
mod scheduler;
mod signal;
mod spec;
mod worker;
mod workspace_archive;
mod workspace_carry;
mod workspaces;

pub use config::{DefaultLimits, RuntimeConfig, WorkspaceHome};
pub use executor::Executor;
pub use python::{RUNNER_SOURCE, resolve_python};
pub use scheduler::{MISFIRE_GRACE, Plan, Scheduler, plan};
pub use signal::LocalSignal;
pub use spec::{RunFacts, RunOrigin, RunSpec};
pub use worker::Worker;
pub use workspaces::LocalWorkspaces;

//! Project38's application services: the one place where a request becomes
//! a change. The HTTP API, the CLI and the MCP server call these functions;
//! they check scopes and input, call the store, write the audit log and wake
//! the workers. Nothing here knows about HTTP.
#![deny(missing_docs)]

pub mod agents;
pub mod dto;
pub mod generation_job;
pub mod generations;
pub mod health;
pub mod secrets;
pub mod tasks;
pub mod tokens;

use std::sync::Arc;

use p38_core::store::{QueueSignal, Store};

/// Limits and defaults the services enforce.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Largest agent source accepted, in bytes (default 256 KiB).
    pub max_code_bytes: usize,
    /// Largest description accepted, in bytes.
    pub max_description_bytes: usize,
    /// Largest `config` object accepted, once serialised, in bytes.
    pub max_config_bytes: usize,
    /// Approve agents without a human when they have no findings and no
    /// network, secret or tool permissions (opt-in).
    pub auto_approve: bool,
    /// Four eyes: the token that created or last changed what an agent's
    /// approval covers cannot approve or reject it (opt-in).
    pub approval_four_eyes: bool,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            max_code_bytes: 256 * 1024,
            max_description_bytes: 16 * 1024,
            max_config_bytes: 64 * 1024,
            auto_approve: false,
            approval_four_eyes: false,
        }
    }
}

/// The services, cheap to clone and shared by every interface.
#[derive(Clone)]
pub struct App {
    store: Arc<dyn Store>,
    signal: Arc<dyn QueueSignal>,
    config: AppConfig,
    secrets: Option<secrets::SecretsAdmin>,
    generator: Option<generations::Generator>,
    /// Notified (all waiters) when a worker of this process ends a task.
    finished: Arc<tokio::sync::Notify>,
    /// Deletes a deleted agent's workspace on this host (none: kept).
    workspaces: Option<Arc<dyn p38_core::workspace::WorkspaceRemover>>,
    /// The static checks every code given through the API passes (none:
    /// only the size and `def run(` checks).
    code_checker: Option<Arc<dyn p38_core::finding::CodeChecker>>,
}

impl App {
    /// Builds the services over a store and the workers' wake-up signal.
    pub fn new(store: Arc<dyn Store>, signal: Arc<dyn QueueSignal>, config: AppConfig) -> App {
        App {
            store,
            signal,
            config,
            secrets: None,
            generator: None,
            finished: Arc::default(),
            workspaces: None,
            code_checker: None,
        }
    }

    /// Checks every code given through the API with the factory's static
    /// stages: errors refuse it (422 with the findings), warnings come
    /// back with the agent.
    pub fn with_code_checker(mut self, checker: Arc<dyn p38_core::finding::CodeChecker>) -> App {
        self.code_checker = Some(checker);
        self
    }

    /// Removes the workspaces of deleted agents (on this host).
    pub fn with_workspaces(
        mut self,
        remover: Arc<dyn p38_core::workspace::WorkspaceRemover>,
    ) -> App {
        self.workspaces = Some(remover);
        self
    }

    /// The signal this process's workers give when they end a task, so a
    /// request waiting for it answers at once (see [`App::wait_task`]).
    pub fn with_task_finished(mut self, finished: Arc<tokio::sync::Notify>) -> App {
        self.finished = finished;
        self
    }

    /// Enables generation of agents from descriptions.
    pub fn with_generator(mut self, g: generations::Generator) -> App {
        self.generator = Some(g);
        self
    }

    /// Enables the secret services: values are sealed into the local
    /// backend, and writes or `reload` drop the resolver's cache.
    pub fn with_secrets(mut self, admin: secrets::SecretsAdmin) -> App {
        self.secrets = Some(admin);
        self
    }

    /// The store, for interfaces that only read (health).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The limits in force.
    pub fn config(&self) -> &AppConfig {
        &self.config
    }
}

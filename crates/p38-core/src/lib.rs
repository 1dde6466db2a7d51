//! Project38's domain: agents, tasks, tokens and audit records, the one error
//! type every layer speaks, schedule parsing, and the store traits through
//! which services reach persistence.
//!
//! Nothing in this crate does I/O. Adapters (`p38-store`, `p38-sandbox`)
//! implement the traits defined here; services (`p38-app`, `p38-runtime`)
//! call them; interfaces (`p38-server`, `p38-cli`) call services.
#![deny(missing_docs)]

pub mod agent;
pub mod approval;
pub mod audit;
pub mod auth;
pub mod error;
pub mod finding;
pub mod generation;
pub mod host;
pub mod job;
pub mod page;
pub mod runnable;
pub mod schedule;
pub mod store;
pub mod task;
pub mod time;
pub mod workspace;

pub use error::{Error, Result};

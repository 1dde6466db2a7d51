//! Liveness, database reachability and the root document.

use crate::App;
use crate::dto::{ApiRoot, Health};

impl App {
    /// What `GET /health` reports; never fails.
    pub async fn health(&self) -> Health {
        let reachable = self.store.ping().await.is_ok();
        Health {
            status: if reachable { "ok" } else { "degraded" }.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            database: self.store.backend().into(),
            database_reachable: reachable,
        }
    }

    /// The root document: name, version and links to the rest.
    pub fn root(&self) -> ApiRoot {
        ApiRoot {
            name: "Project38".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            openapi: "/openapi.json".into(),
            health: "/health".into(),
            api: "/api".into(),
        }
    }
}

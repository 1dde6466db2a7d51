//! Liveness and database reachability.

use crate::App;
use crate::dto::Health;

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
}

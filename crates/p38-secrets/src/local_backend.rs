//! The local backend: secrets sealed with the master key and kept in
//! Project38's own database. The database holds ciphertext only.

use std::sync::Arc;

use async_trait::async_trait;

use p38_core::Result;
use p38_core::store::SecretStore;

use crate::{LocalCipher, SecretBackend, SecretValue};

/// Reads sealed secrets from the store and opens them.
pub struct LocalBackend {
    store: Arc<dyn SecretStore>,
    cipher: Arc<LocalCipher>,
}

impl LocalBackend {
    /// A backend over `store`, opening values with `cipher`.
    pub fn new(store: Arc<dyn SecretStore>, cipher: Arc<LocalCipher>) -> LocalBackend {
        LocalBackend { store, cipher }
    }
}

impl std::fmt::Debug for LocalBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalBackend")
    }
}

#[async_trait]
impl SecretBackend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn get(&self, name: &str) -> Result<Option<SecretValue>> {
        match self.store.get_secret(name).await? {
            None => Ok(None),
            Some(blob) => self.cipher.open(name, &blob).map(Some),
        }
    }
}

//! Project38's secrets: a value type that cannot reach `Debug`, `Display`
//! or serde output, the backends that hold secrets (the local encrypted
//! store, the environment, Google Secret Manager, Vault), the
//! [`ChainResolver`] that asks them in order with a cache, and [`Masker`] /
//! [`StreamMasker`], which replace every known value and its common
//! encodings in anything an agent produced before it is stored or printed.
#![deny(missing_docs)]

mod backend;
mod env;
pub mod gcp;
pub mod local;
mod local_backend;
mod mask;
mod registry;
pub mod vault;

pub use backend::{ChainResolver, DEFAULT_CACHE_TTL, SecretBackend, check_secret_name};
pub use env::{ENV_PREFIX, EnvResolver};
pub use gcp::{GcpBackend, GcpConfig};
pub use local::{LocalCipher, MASTER_KEY_ENV, MasterKey};
pub use local_backend::LocalBackend;
pub use mask::{MASK, Masker, StreamMasker};
pub use registry::{MaskingWriter, SeenSecrets};
pub use vault::{VaultAuth, VaultBackend, VaultConfig};

use std::collections::BTreeMap;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use p38_core::Result;

/// A secret value. Its `Debug` prints `[REDACTED]`; it has no `Display` and
/// no `Serialize`; the memory is zeroed on drop.
#[derive(Clone)]
pub struct SecretValue(SecretString);

impl SecretValue {
    /// Wraps a value.
    pub fn new(v: impl Into<String>) -> Self {
        SecretValue(SecretString::from(v.into()))
    }

    /// The value, for the one place that hands it to an agent.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue([REDACTED])")
    }
}

/// Looks up secrets by name.
#[async_trait]
pub trait SecretResolver: Send + Sync {
    /// Resolves exactly `names`. A name that no backend knows is an error
    /// naming it and saying how to set it.
    async fn resolve(&self, names: &[String]) -> Result<BTreeMap<String, SecretValue>>;
}

/// The shortest value accepted as a secret: shorter ones would mask common
/// words everywhere and protect nothing.
pub const MIN_SECRET_LEN: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_do_not_print() {
        let s = SecretValue::new("sk-canary-123");
        assert!(!format!("{s:?}").contains("canary"));
        assert_eq!(s.expose(), "sk-canary-123");
    }
}

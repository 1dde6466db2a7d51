//! Secret backends and the chain that asks them in order.
//!
//! A [`SecretBackend`] answers for one name at a time: `Ok(Some(value))`
//! when it holds the secret, `Ok(None)` when it does not (the chain then
//! asks the next backend), and an error when it could not tell (network,
//! authentication). [`ChainResolver`] asks its backends in order, keeps each
//! value found for a TTL so a run does not call a cloud API per secret, and
//! implements [`SecretResolver`] for the executor.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use p38_core::{Error, Result};

use crate::{MIN_SECRET_LEN, SecretResolver, SecretValue};

/// One place secrets live: the local encrypted store, the environment,
/// Google Secret Manager, Vault.
#[async_trait]
pub trait SecretBackend: Send + Sync {
    /// A short stable name used in messages: "local", "env", "gcp", "vault".
    fn name(&self) -> &'static str;

    /// The value of secret `name`, `Ok(None)` when this backend does not
    /// hold it. Errors name the backend and never contain a value.
    async fn get(&self, name: &str) -> Result<Option<SecretValue>>;
}

/// How long [`ChainResolver`] keeps a value by default.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);

/// Checks that `name` is safe to put in a URL path or a variable name:
/// ASCII letters, digits, `_` and `-`, 1 to 255 characters. Backends call
/// it before building a request so a name can never climb a path.
pub fn check_secret_name(backend: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::validation(
            "secrets",
            format!(
                "{backend} backend: secret name {name:?} may hold only letters, digits, '_' and '-'"
            ),
        ))
    }
}

struct Cache {
    /// Bumped by [`ChainResolver::reload`] so a lookup that was in flight
    /// during a reload does not store a value fetched before it.
    generation: u64,
    entries: HashMap<String, (Instant, SecretValue)>,
}

/// Asks backends in order; the first that holds a name wins. Values found
/// are cached per name for the TTL, so a value rotated in a backend reaches
/// the next run after at most the TTL, and at once after [`reload`].
/// Names found nowhere are not cached.
///
/// [`reload`]: ChainResolver::reload
pub struct ChainResolver {
    backends: Vec<Arc<dyn SecretBackend>>,
    ttl: Duration,
    cache: Mutex<Cache>,
    seen: crate::SeenSecrets,
}

impl std::fmt::Debug for ChainResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainResolver")
            .field("backends", &self.backend_names())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl ChainResolver {
    /// A chain over `backends` (asked in this order) caching values for
    /// `ttl` ([`DEFAULT_CACHE_TTL`] is a good default; zero disables the
    /// cache).
    pub fn new(backends: Vec<Arc<dyn SecretBackend>>, ttl: Duration) -> Self {
        ChainResolver {
            backends,
            ttl,
            cache: Mutex::new(Cache {
                generation: 0,
                entries: HashMap::new(),
            }),
            seen: crate::SeenSecrets::default(),
        }
    }

    /// Remembers every value this chain resolves in `seen`, so the
    /// process's own logs can mask them.
    pub fn with_seen(mut self, seen: crate::SeenSecrets) -> Self {
        self.seen = seen;
        self
    }

    /// Drops every cached value: the next resolution asks the backends.
    pub fn reload(&self) {
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        c.generation += 1;
        c.entries.clear();
    }

    /// The names of the backends, in order.
    pub fn backend_names(&self) -> Vec<&'static str> {
        self.backends.iter().map(|b| b.name()).collect()
    }

    /// The cache TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// One name: from the cache when fresh, else from the first backend
    /// that has it. `Ok(None)` when no backend has it.
    pub async fn get(&self, name: &str) -> Result<Option<(&'static str, SecretValue)>> {
        check_secret_name("chain", name)?;
        let generation = {
            let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, v)) = c.entries.get(name) {
                if at.elapsed() < self.ttl {
                    return Ok(Some(("cache", v.clone())));
                }
                c.entries.remove(name);
            }
            c.generation
        };
        for backend in &self.backends {
            if let Some(v) = backend.get(name).await? {
                if v.expose().chars().count() < MIN_SECRET_LEN {
                    return Err(Error::validation(
                        "secrets",
                        format!(
                            "secret {name} in the {} backend is shorter than {MIN_SECRET_LEN} characters; such values cannot be masked safely: set a longer value",
                            backend.name()
                        ),
                    ));
                }
                if !self.ttl.is_zero() {
                    let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                    if c.generation == generation {
                        c.entries
                            .insert(name.to_string(), (Instant::now(), v.clone()));
                    }
                }
                return Ok(Some((backend.name(), v)));
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl SecretResolver for ChainResolver {
    async fn resolve(&self, names: &[String]) -> Result<BTreeMap<String, SecretValue>> {
        let mut out = BTreeMap::new();
        for name in names {
            if out.contains_key(name) {
                continue;
            }
            match self.get(name).await? {
                Some((_, v)) => {
                    self.seen.add([&v]);
                    out.insert(name.clone(), v);
                }
                None => {
                    return Err(Error::validation(
                        "secrets",
                        format!(
                            "secret {name} is not set in any backend ({}): set it with `p38 secret set {name}`",
                            self.backend_names().join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// Shared plumbing of the HTTP backends.
pub(crate) mod http {
    use p38_core::Error;

    /// A client with a timeout that follows no redirects, so a token header
    /// is never replayed to another host.
    pub(crate) fn client(
        backend: &str,
        timeout: std::time::Duration,
    ) -> p38_core::Result<reqwest::Client> {
        reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(std::time::Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                Error::internal_source(format!("{backend} backend: building the HTTP client"), e)
            })
    }

    /// A transport failure, without the URL (which may carry a query).
    pub(crate) fn transport(backend: &str, step: &str, e: reqwest::Error) -> Error {
        let e = e.without_url();
        let kind = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "could not connect"
        } else {
            "request failed"
        };
        Error::unavailable_source(format!("{backend} backend: {step}: {kind}"), e)
    }

    /// A short, single-line excerpt of an error body for messages. Error
    /// bodies carry no secret values; the excerpt is capped anyway.
    pub(crate) fn excerpt(body: &str) -> String {
        let one_line: String = body
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(200)
            .collect();
        one_line.trim().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_secret_name("x", "TELEGRAM_BOT_TOKEN").is_ok());
        assert!(check_secret_name("x", "a-b_1").is_ok());
        for bad in ["", "../x", "a/b", "a b", "a%2F", "é"] {
            assert!(check_secret_name("x", bad).is_err(), "{bad}");
        }
    }
}

//! Secrets from the server's environment: secret `NAME` is read from
//! `P38_SECRET_NAME`. The sandbox never sees the server's environment, so
//! only the values an agent declared reach it, over a pipe.

use std::collections::BTreeMap;

use async_trait::async_trait;

use p38_core::{Error, Result};

use crate::{MIN_SECRET_LEN, SecretBackend, SecretResolver, SecretValue};

/// The prefix of secret variables.
pub const ENV_PREFIX: &str = "P38_SECRET_";

/// Reads `P38_SECRET_<NAME>` at each resolution, so a changed value reaches
/// the next run of a process that re-reads its environment.
#[derive(Debug, Default, Clone)]
pub struct EnvResolver;

#[async_trait]
impl SecretResolver for EnvResolver {
    async fn resolve(&self, names: &[String]) -> Result<BTreeMap<String, SecretValue>> {
        let mut out = BTreeMap::new();
        for name in names {
            let var = format!("{ENV_PREFIX}{name}");
            let value = std::env::var(&var).map_err(|_| {
                Error::validation("secrets", format!("secret {name} is declared but not set: set the environment variable {var} on the worker"))
            })?;
            if value.chars().count() < MIN_SECRET_LEN {
                return Err(Error::validation(
                    "secrets",
                    format!(
                        "secret {name} is shorter than {MIN_SECRET_LEN} characters; such values cannot be masked safely"
                    ),
                ));
            }
            out.insert(name.clone(), SecretValue::new(value));
        }
        Ok(out)
    }
}

/// As a backend of a [`crate::ChainResolver`], named "env": `Ok(None)` when
/// `P38_SECRET_<NAME>` is unset, so the next backend is asked.
#[async_trait]
impl SecretBackend for EnvResolver {
    fn name(&self) -> &'static str {
        "env"
    }

    async fn get(&self, name: &str) -> Result<Option<SecretValue>> {
        crate::backend::check_secret_name("env", name)?;
        let var = format!("{ENV_PREFIX}{name}");
        match std::env::var(&var) {
            Ok(v) => Ok(Some(SecretValue::new(v))),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::validation(
                "secrets",
                format!("env backend: {var} is not valid UTF-8"),
            )),
        }
    }
}

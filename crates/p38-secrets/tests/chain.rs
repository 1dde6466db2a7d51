//! ChainResolver: order, cache TTL, reload, clear errors.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use p38_secrets::{ChainResolver, SecretBackend, SecretResolver, SecretValue};

struct Fake {
    name: &'static str,
    values: Mutex<HashMap<String, String>>,
    calls: AtomicUsize,
    fail: bool,
}

impl Fake {
    fn new(name: &'static str, pairs: &[(&str, &str)]) -> Arc<Self> {
        Arc::new(Fake {
            name,
            values: Mutex::new(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            calls: AtomicUsize::new(0),
            fail: false,
        })
    }

    fn set(&self, k: &str, v: &str) {
        self.values.lock().unwrap().insert(k.into(), v.into());
    }
}

#[async_trait]
impl SecretBackend for Fake {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn get(&self, name: &str) -> p38_core::Result<Option<SecretValue>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail {
            return Err(p38_core::Error::unavailable(format!(
                "{} backend: could not connect",
                self.name
            )));
        }
        Ok(self
            .values
            .lock()
            .unwrap()
            .get(name)
            .map(|v| SecretValue::new(v.clone())))
    }
}

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn first_backend_holding_a_name_wins_and_only_asked_names_resolve() {
    let local = Fake::new("local", &[("A_TOKEN", "local-value-a")]);
    let env = Fake::new(
        "env",
        &[
            ("A_TOKEN", "env-value-a"),
            ("B_TOKEN", "env-value-b"),
            ("C_TOKEN", "env-c-xx"),
        ],
    );
    let chain = ChainResolver::new(vec![local.clone(), env.clone()], Duration::from_secs(60));
    assert_eq!(chain.backend_names(), ["local", "env"]);
    let got = chain
        .resolve(&names(&["A_TOKEN", "B_TOKEN"]))
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got["A_TOKEN"].expose(), "local-value-a");
    assert_eq!(got["B_TOKEN"].expose(), "env-value-b");
    // A_TOKEN never reached env.
    assert_eq!(env.calls.load(Ordering::SeqCst), 1);
    // The single-name lookup says which backend answered.
    chain.reload();
    let (from, v) = chain.get("B_TOKEN").await.unwrap().unwrap();
    assert_eq!((from, v.expose()), ("env", "env-value-b"));
    let (from, _) = chain.get("B_TOKEN").await.unwrap().unwrap();
    assert_eq!(from, "cache");
}

#[tokio::test]
async fn rotated_value_is_seen_after_the_ttl_and_at_once_after_reload() {
    // Long enough for "still cached" to hold on a busy machine; the
    // wait past it is the behaviour.
    const TTL: Duration = Duration::from_secs(1);
    let b = Fake::new("vault", &[("ROTATING", "value-one")]);
    let chain = ChainResolver::new(vec![b.clone()], TTL);
    let n = names(&["ROTATING"]);
    assert_eq!(
        chain.resolve(&n).await.unwrap()["ROTATING"].expose(),
        "value-one"
    );
    b.set("ROTATING", "value-two");
    // Still cached.
    assert_eq!(
        chain.resolve(&n).await.unwrap()["ROTATING"].expose(),
        "value-one"
    );
    assert_eq!(b.calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(TTL + Duration::from_millis(100)).await;
    assert_eq!(
        chain.resolve(&n).await.unwrap()["ROTATING"].expose(),
        "value-two"
    );
    b.set("ROTATING", "value-three");
    assert_eq!(
        chain.resolve(&n).await.unwrap()["ROTATING"].expose(),
        "value-two"
    );
    chain.reload();
    assert_eq!(
        chain.resolve(&n).await.unwrap()["ROTATING"].expose(),
        "value-three"
    );
}

#[tokio::test]
async fn zero_ttl_disables_the_cache() {
    let b = Fake::new("env", &[("X_KEY", "value-one")]);
    let chain = ChainResolver::new(vec![b.clone()], Duration::ZERO);
    let n = names(&["X_KEY"]);
    chain.resolve(&n).await.unwrap();
    b.set("X_KEY", "value-two");
    assert_eq!(
        chain.resolve(&n).await.unwrap()["X_KEY"].expose(),
        "value-two"
    );
}

#[tokio::test]
async fn a_name_no_backend_has_is_a_clear_error_and_is_not_cached() {
    let local = Fake::new("local", &[]);
    let env = Fake::new("env", &[]);
    let chain = ChainResolver::new(vec![local.clone(), env], Duration::from_secs(60));
    let e = chain.resolve(&names(&["MISSING_TOKEN"])).await.unwrap_err();
    assert_eq!(e.code(), "validation");
    assert_eq!(
        e.to_string(),
        "secret MISSING_TOKEN is not set in any backend (local, env): set it with `p38 secret set MISSING_TOKEN`"
    );
    // Set afterwards: seen at once (misses are not cached).
    local.set("MISSING_TOKEN", "now-it-is-set");
    let got = chain.resolve(&names(&["MISSING_TOKEN"])).await.unwrap();
    assert_eq!(got["MISSING_TOKEN"].expose(), "now-it-is-set");
}

#[tokio::test]
async fn short_values_are_refused_without_printing_them() {
    let b = Fake::new("local", &[("SHORT", "xyz")]);
    let chain = ChainResolver::new(vec![b], Duration::from_secs(60));
    let e = chain.resolve(&names(&["SHORT"])).await.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("SHORT") && msg.contains("shorter than 4") && msg.contains("local"),
        "{msg}"
    );
    assert!(!msg.contains("xyz"));
}

#[tokio::test]
async fn a_failing_backend_stops_the_chain_with_its_name() {
    let failing = Arc::new(Fake {
        name: "gcp",
        values: Mutex::new(HashMap::new()),
        calls: AtomicUsize::new(0),
        fail: true,
    });
    let env = Fake::new("env", &[("K_TOKEN", "env-value-k")]);
    let chain = ChainResolver::new(vec![failing, env.clone()], Duration::from_secs(60));
    let e = chain.resolve(&names(&["K_TOKEN"])).await.unwrap_err();
    assert!(e.to_string().contains("gcp backend"), "{e}");
    assert_eq!(env.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn unsafe_names_are_refused_before_any_backend() {
    let b = Fake::new("vault", &[]);
    let chain = ChainResolver::new(vec![b.clone()], Duration::from_secs(60));
    assert!(chain.resolve(&names(&["../../sys/raw"])).await.is_err());
    assert_eq!(b.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn debug_of_the_chain_shows_no_value() {
    let b = Fake::new("local", &[("CANARY", "canary-secret-4242")]);
    let chain = ChainResolver::new(vec![b], Duration::from_secs(60));
    chain.resolve(&names(&["CANARY"])).await.unwrap();
    let d = format!("{chain:?}");
    assert!(d.contains("local") && !d.contains("canary-secret"), "{d}");
}

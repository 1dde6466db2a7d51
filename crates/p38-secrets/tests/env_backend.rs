//! EnvResolver as the "env" backend. One test in this binary, so no other
//! thread reads the environment while it is changed.
#![allow(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use p38_secrets::{ChainResolver, EnvResolver, SecretBackend, SecretResolver};

#[tokio::test]
async fn env_backend_reads_p38_secret_variables() {
    // SAFETY: the only test of this binary; nothing else touches the
    // environment concurrently.
    unsafe {
        std::env::set_var("P38_SECRET_ENV_BACKEND_TEST", "env-backend-value");
        std::env::remove_var("P38_SECRET_ENV_BACKEND_ABSENT");
    }
    let env = EnvResolver;
    assert_eq!(SecretBackend::name(&env), "env");
    let v = env.get("ENV_BACKEND_TEST").await.unwrap().unwrap();
    assert_eq!(v.expose(), "env-backend-value");
    assert!(env.get("ENV_BACKEND_ABSENT").await.unwrap().is_none());

    // Its own SecretResolver impl is unchanged.
    let got = env
        .resolve(&["ENV_BACKEND_TEST".to_string()])
        .await
        .unwrap();
    assert_eq!(got["ENV_BACKEND_TEST"].expose(), "env-backend-value");
    assert!(
        env.resolve(&["ENV_BACKEND_ABSENT".to_string()])
            .await
            .is_err()
    );

    // In a chain.
    let chain = ChainResolver::new(vec![Arc::new(EnvResolver)], Duration::from_secs(60));
    let got = chain
        .resolve(&["ENV_BACKEND_TEST".to_string()])
        .await
        .unwrap();
    assert_eq!(got["ENV_BACKEND_TEST"].expose(), "env-backend-value");
    let e = chain
        .resolve(&["ENV_BACKEND_ABSENT".to_string()])
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("not set in any backend (env)"),
        "{e}"
    );
}

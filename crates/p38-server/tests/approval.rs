//! The approval gate and tokens, through the real router in process (SQLite
//! in a temporary folder, no workers): what an approval covers, rejection,
//! four eyes, the author scope, the network approval, the last admin token
//! and token expiry.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use p38_app::{App, AppConfig};
use p38_core::auth::Scope;
use p38_core::store::{NoSignal, Store, TokenStore};
use p38_server::{HttpConfig, router};
use p38_store::{SqlStore, StoreOptions};

const CODE: &str = "def run(ctx):\n    return {}\n";

struct Api {
    router: Router,
    store: Arc<SqlStore>,
    admin: String,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn start() -> Api {
        Self::with(AppConfig::default()).await
    }

    async fn with(config: AppConfig) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/p38.db", dir.path().display());
        let store = Arc::new(
            SqlStore::connect(&url, StoreOptions::default())
                .await
                .unwrap(),
        );
        let dyn_store: Arc<dyn Store> = store.clone();
        let app = App::new(dyn_store, Arc::new(NoSignal), config);
        let file = app.ensure_admin_token(dir.path()).await.unwrap().unwrap();
        let admin = std::fs::read_to_string(file).unwrap().trim().to_string();
        Api {
            router: router(app, &HttpConfig::default()),
            store,
            admin,
            _dir: dir,
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"));
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Body::from(serde_json::to_vec(&b).unwrap())
            }
            None => Body::empty(),
        };
        let resp = self
            .router
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, v)
    }

    async fn expect(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
        want: u16,
    ) -> Value {
        let (st, v) = self.call(method, path, token, body).await;
        assert_eq!(st, want, "{method} {path}: {v}");
        v
    }

    async fn token(&self, scope: &str) -> String {
        let v = self
            .expect(
                "POST",
                "/api/tokens",
                &self.admin.clone(),
                Some(json!({"name": format!("{scope}-tok"), "scope": scope})),
                201,
            )
            .await;
        v["token"].as_str().unwrap().to_string()
    }

    async fn agent(&self, token: &str, name: &str, extra: Value, want: u16) -> Value {
        let mut body = json!({"name": name, "code": CODE});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            body[k] = v;
        }
        self.expect("POST", "/api/agents", token, Some(body), want)
            .await
    }
}

fn message(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap_or("")
}

#[tokio::test]
async fn a_change_of_any_covered_field_sends_an_active_agent_back_to_approval() {
    let api = Api::start().await;
    let admin = api.admin.clone();
    let changes = [
        json!({"code": "def run(ctx):\n    return {\"x\": 1}\n"}),
        json!({"config": {"url": "https://example.com"}}),
        json!({"secrets": ["API_KEY"]}),
        json!({"tools": ["browser"]}),
        json!({"network": true}),
        json!({"allow_hosts": ["api.example.com"]}),
        json!({"settings": {"tool_limits": {"browser": {"calls": 3}}}}),
    ];
    let fields = p38_core::approval::COVERED_FIELDS;
    for (i, change) in changes.into_iter().enumerate() {
        let name = format!("cov{i}");
        let a = api
            .agent(&admin, &name, json!({"schedule": "every 5m"}), 201)
            .await;
        assert_eq!(a["status"], "active");
        assert_eq!(a["approval"], json!({"approved_version": 1, "changes": []}));
        let u = api
            .expect(
                "PATCH",
                &format!("/api/agents/{name}"),
                &admin,
                Some(change.clone()),
                200,
            )
            .await;
        assert_eq!(u["status"], "pending_approval", "{change}");
        assert_eq!(u["next_runs"], json!([]), "{change}");
        let got = api
            .expect("GET", &format!("/api/agents/{name}"), &admin, None, 200)
            .await;
        let ch = got["approval"]["changes"].as_array().unwrap();
        assert_eq!(got["approval"]["approved_version"], 1);
        assert_eq!(ch.len(), 1, "{change}: {ch:?}");
        assert_eq!(ch[0]["field"], fields[i]);
        assert!(ch[0].get("before").is_some() && ch[0].get("after").is_some());
    }
    // The config diff has the values before and after.
    let got = api
        .expect("GET", "/api/agents/cov1", &admin, None, 200)
        .await;
    assert_eq!(
        got["approval"]["changes"][0],
        json!({"field": "config", "before": {}, "after": {"url": "https://example.com"}})
    );
    // Secrets are names: the diff never holds more.
    let got = api
        .expect("GET", "/api/agents/cov2", &admin, None, 200)
        .await;
    assert_eq!(got["approval"]["changes"][0]["after"], json!(["API_KEY"]));
}

#[tokio::test]
async fn a_schedule_a_pause_or_run_limits_keep_the_approval() {
    let api = Api::start().await;
    let admin = api.admin.clone();
    api.agent(
        &admin,
        "keep",
        json!({"settings": {"tool_limits": {"browser": 1}}}),
        201,
    )
    .await;
    for change in [
        json!({"schedule": "every 1h"}),
        json!({"settings": {"tool_limits": {"browser": 1}, "timeout_seconds": 9, "memory_mb": 64}}),
        json!({"description": "new words"}),
        json!({"status": "paused"}),
        json!({"status": "active"}),
    ] {
        let u = api
            .expect(
                "PATCH",
                "/api/agents/keep",
                &admin,
                Some(change.clone()),
                200,
            )
            .await;
        assert!(
            matches!(u["status"].as_str(), Some("active" | "paused")),
            "{change}: {u}"
        );
        assert_eq!(u["approval"]["changes"], json!([]), "{change}");
    }
}

#[tokio::test]
async fn allow_hosts_are_validated_stored_and_returned() {
    let api = Api::start().await;
    let admin = api.admin.clone();
    let a = api.agent(&admin, "plain", json!({}), 201).await;
    assert_eq!(a["allow_hosts"], json!([]));
    let a = api
        .agent(
            &admin,
            "hosts",
            json!({"allow_hosts": ["api.example.com", "*.example.org"]}),
            201,
        )
        .await;
    assert_eq!(
        a["allow_hosts"],
        json!(["api.example.com", "*.example.org"])
    );
    let got = api
        .expect("GET", "/api/agents/hosts", &admin, None, 200)
        .await;
    assert_eq!(got["allow_hosts"], a["allow_hosts"]);
    let e = api
        .agent(
            &admin,
            "bad",
            json!({"allow_hosts": ["ok.com", "http://x y"]}),
            422,
        )
        .await;
    assert_eq!(e["error"]["field"], "allow_hosts[1]");
    let e = api
        .expect(
            "PATCH",
            "/api/agents/hosts",
            &admin,
            Some(json!({"allow_hosts": "x"})),
            422,
        )
        .await;
    assert_eq!(e["error"]["field"], "allow_hosts");
}

#[tokio::test]
async fn a_rejected_agent_never_runs_until_a_change_sends_it_back() {
    let api = Api::start().await;
    let admin = api.admin.clone();
    api.agent(
        &admin,
        "rej",
        json!({"status": "pending_approval", "schedule": "every 5m"}),
        201,
    )
    .await;
    let e = api
        .expect(
            "POST",
            "/api/agents/rej/reject",
            &admin,
            Some(json!({"reason": "  "})),
            422,
        )
        .await;
    assert_eq!(e["error"]["field"], "reason");
    let e = api
        .expect(
            "POST",
            "/api/agents/rej/reject",
            &admin,
            Some(json!({})),
            422,
        )
        .await;
    assert_eq!(e["error"]["field"], "reason");
    let r = api
        .expect(
            "POST",
            "/api/agents/rej/reject",
            &admin,
            Some(json!({"reason": "calls an unknown host"})),
            200,
        )
        .await;
    assert_eq!(r["status"], "rejected");
    assert_eq!(r["rejected_reason"], "calls an unknown host");
    assert_eq!(r["next_fire_at"], Value::Null);
    // Audited with the reason.
    let audit = api.expect("GET", "/api/audit", &admin, None, 200).await;
    let entry = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "agent.reject")
        .expect("an agent.reject record");
    assert_eq!(entry["detail"]["reason"], "calls an unknown host");
    // Never runs: no manual run, no resume, no approval, no second rejection.
    let e = api
        .expect("POST", "/api/agents/rej/execute", &admin, None, 409)
        .await;
    assert!(message(&e).contains("rejected"), "{e}");
    api.expect(
        "PATCH",
        "/api/agents/rej",
        &admin,
        Some(json!({"status": "active"})),
        409,
    )
    .await;
    api.expect(
        "PATCH",
        "/api/agents/rej",
        &admin,
        Some(json!({"status": "pending_approval"})),
        409,
    )
    .await;
    api.expect("POST", "/api/agents/rej/approve", &admin, None, 409)
        .await;
    let e = api
        .expect(
            "PATCH",
            "/api/agents/rej",
            &admin,
            Some(json!({"status": "rejected"})),
            422,
        )
        .await;
    assert_eq!(e["error"]["field"], "status");
    // A schedule change is no change of what the approval covers.
    let u = api
        .expect(
            "PATCH",
            "/api/agents/rej",
            &admin,
            Some(json!({"schedule": "every 1h"})),
            200,
        )
        .await;
    assert_eq!(u["status"], "rejected");
    // A change of the code sends it back to approval.
    let u = api
        .expect(
            "PATCH",
            "/api/agents/rej",
            &admin,
            Some(json!({"code": "def run(ctx):\n    return {\"fixed\": True}\n"})),
            200,
        )
        .await;
    assert_eq!(u["status"], "pending_approval");
    assert_eq!(u["rejected_reason"], Value::Null);
    let a = api
        .expect("POST", "/api/agents/rej/approve", &admin, None, 200)
        .await;
    assert_eq!(a["status"], "active");
    // Only agents waiting for approval are rejected.
    api.expect(
        "POST",
        "/api/agents/rej/reject",
        &admin,
        Some(json!({"reason": "x"})),
        409,
    )
    .await;
}

#[tokio::test]
async fn four_eyes_keep_the_author_of_a_change_from_approving_it() {
    let api = Api::with(AppConfig {
        approval_four_eyes: true,
        ..AppConfig::default()
    })
    .await;
    let admin = api.admin.clone();
    let other_admin = api.token("admin").await;
    let op = api.token("operator").await;
    // The creator cannot start it approved.
    let e = api
        .agent(&admin, "fe", json!({"status": "active"}), 403)
        .await;
    assert!(message(&e).contains("four-eyes"), "{e}");
    let a = api.agent(&admin, "fe", json!({}), 201).await;
    assert_eq!(a["status"], "pending_approval");
    for verb in ["approve", "reject"] {
        let e = api
            .expect(
                "POST",
                &format!("/api/agents/fe/{verb}"),
                &admin,
                Some(json!({"reason": "r"})).filter(|_| verb == "reject"),
                403,
            )
            .await;
        assert!(
            message(&e).contains("four-eyes") && message(&e).contains("another token"),
            "{e}"
        );
    }
    api.expect("POST", "/api/agents/fe/approve", &op, None, 200)
        .await;
    // Whoever last changed what the approval covers cannot approve either.
    api.expect(
        "PATCH",
        "/api/agents/fe",
        &other_admin,
        Some(json!({"config": {"a": 1}})),
        200,
    )
    .await;
    let e = api
        .expect("POST", "/api/agents/fe/approve", &other_admin, None, 403)
        .await;
    assert!(message(&e).contains("four-eyes"), "{e}");
    api.expect("POST", "/api/agents/fe/approve", &op, None, 200)
        .await;
}

#[tokio::test]
async fn without_four_eyes_the_creator_approves() {
    let api = Api::start().await;
    let admin = api.admin.clone();
    api.agent(&admin, "solo", json!({"status": "pending_approval"}), 201)
        .await;
    api.expect("POST", "/api/agents/solo/approve", &admin, None, 200)
        .await;
}

#[tokio::test]
async fn approving_an_agent_with_the_host_network_needs_an_admin() {
    let api = Api::start().await;
    let admin = api.admin.clone();
    let op = api.token("operator").await;
    // `"host"` is the name of `true`.
    let a = api
        .agent(
            &admin,
            "net",
            json!({"status": "pending_approval", "network": "host"}),
            201,
        )
        .await;
    assert_eq!(a["network"], true);
    let e = api
        .agent(&admin, "lan", json!({"network": "lan"}), 422)
        .await;
    assert_eq!(e["error"]["field"], "network");
    let e = api
        .expect("POST", "/api/agents/net/approve", &op, None, 403)
        .await;
    assert!(message(&e).contains("admin"), "{e}");
    api.agent(&admin, "nonet", json!({"status": "pending_approval"}), 201)
        .await;
    api.expect("POST", "/api/agents/nonet/approve", &op, None, 200)
        .await;
    api.expect("POST", "/api/agents/net/approve", &admin, None, 200)
        .await;
}

#[tokio::test]
async fn an_author_creates_changes_and_runs_but_never_approves() {
    let api = Api::start().await;
    let admin = api.admin.clone();
    let author = api.token("author").await;
    let a = api.agent(&author, "mine", json!({}), 201).await;
    assert_eq!(a["status"], "pending_approval");
    let e = api
        .agent(&author, "mine2", json!({"status": "active"}), 403)
        .await;
    assert!(message(&e).contains("author"), "{e}");
    for verb in ["approve", "reject"] {
        let body = (verb == "reject").then(|| json!({"reason": "no"}));
        let e = api
            .expect(
                "POST",
                &format!("/api/agents/mine/{verb}"),
                &author,
                body,
                403,
            )
            .await;
        assert!(message(&e).contains("never approve or reject"), "{e}");
    }
    api.expect(
        "PATCH",
        "/api/agents/mine",
        &author,
        Some(json!({"config": {"k": 1}})),
        200,
    )
    .await;
    api.expect("POST", "/api/agents/mine/approve", &admin, None, 200)
        .await;
    api.expect("POST", "/api/agents/mine/execute", &author, None, 202)
        .await;
    api.expect(
        "PATCH",
        "/api/agents/mine",
        &author,
        Some(json!({"status": "paused"})),
        200,
    )
    .await;
    api.expect("DELETE", "/api/agents/mine", &author, None, 403)
        .await;
    api.expect("GET", "/api/tokens", &author, None, 403).await;
    // An operator still cannot author.
    let op = api.token("operator").await;
    api.agent(&op, "op-made", json!({}), 403).await;
}

#[tokio::test]
async fn the_last_active_admin_token_cannot_be_revoked() {
    let api = Api::start().await;
    let admin = api.admin.clone();
    let tokens = api.expect("GET", "/api/tokens", &admin, None, 200).await;
    let me = tokens[0]["id"].as_i64().unwrap();
    let e = api
        .expect("DELETE", &format!("/api/tokens/{me}"), &admin, None, 409)
        .await;
    assert!(message(&e).contains("last active admin token"), "{e}");
    // Still works.
    api.expect("GET", "/api/agents", &admin, None, 200).await;
    // With a second admin token, the first can go.
    let second = api.token("admin").await;
    api.expect("DELETE", &format!("/api/tokens/{me}"), &second, None, 200)
        .await;
    api.expect("GET", "/api/agents", &admin, None, 401).await;
}

#[tokio::test]
async fn tokens_expire_and_show_expiry_and_last_use() {
    let api = Api::start().await;
    let admin = api.admin.clone();
    for bad in [json!(0), json!(3651), json!(-1), json!("30d"), json!(1.5)] {
        let (st, e) = api
            .call(
                "POST",
                "/api/tokens",
                &admin,
                Some(json!({"name": "x", "scope": "viewer", "expires_in_days": bad})),
            )
            .await;
        assert_eq!(st, 422, "{bad}: {e}");
        assert_eq!(e["error"]["field"], "expires_in_days", "{bad}: {e}");
    }
    let t = api
        .expect(
            "POST",
            "/api/tokens",
            &admin,
            Some(json!({"name": "month", "scope": "viewer", "expires_in_days": 30})),
            201,
        )
        .await;
    let at: chrono::DateTime<chrono::Utc> = t["expires_at"].as_str().unwrap().parse().unwrap();
    let days = (at - chrono::Utc::now()).num_hours();
    assert!((29 * 24..=30 * 24).contains(&days), "{at}");
    // An expired token gets 401 saying so.
    let token = "p38_expired_token_for_the_test";
    api.store
        .create_token(
            "old",
            Scope::Viewer,
            &p38_app::tokens::hash_token(token),
            "p38_expi",
            Some(chrono::Utc::now() - chrono::Duration::minutes(1)),
            None,
        )
        .await
        .unwrap();
    let (st, e) = api.call("GET", "/api/agents", token, None).await;
    assert_eq!(st, 401);
    assert_eq!(e["error"]["code"], "unauthorized");
    assert!(message(&e).contains("expired"), "{e}");
    // The list shows expiry and last use.
    let list = api.expect("GET", "/api/tokens", &admin, None, 200).await;
    let rows = list.as_array().unwrap();
    let me = &rows[0];
    assert!(me["last_used_at"].is_string(), "{me}");
    assert_eq!(me["expires_at"], Value::Null);
    let month = rows.iter().find(|r| r["name"] == "month").unwrap();
    assert_eq!(month["expires_at"], t["expires_at"]);
    assert_eq!(month["last_used_at"], Value::Null);
}

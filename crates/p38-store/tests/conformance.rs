//! One conformance suite, run against every backend: SQLite always, and
//! PostgreSQL when `P38_TEST_DATABASE_URL` is set (each test in its own
//! schema, so tests run in parallel).

use std::sync::Arc;
use std::time::Duration;

use p38_core::Error;
use p38_core::agent::{AgentChange, AgentSettings, AgentStatus, ApprovalChange, NewAgent};
use p38_core::audit::NewAudit;
use p38_core::auth::Scope;
use p38_core::generation::{GenerationStage, GenerationStatus};
use p38_core::page::PageRequest;
use p38_core::store::{
    AgentStore, AuditStore, FireResult, GenerationStore, KEPT_WORKSPACE_ARCHIVES, ScheduleStore,
    Store, TaskStore, TokenStore, WorkspaceArchiveStore,
};
use p38_core::task::{
    FinishedRun, NewTask, RunFigures, TaskKind, TaskOutcome, TaskOutput, TaskStatus, TaskTarget,
    Trigger,
};
use p38_core::time::now;
use p38_core::workspace::ArchiveSave;
use p38_store::{SqlStore, StoreOptions};

struct Backend {
    name: &'static str,
    store: Arc<SqlStore>,
    schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

async fn backends(test: &str) -> Vec<Backend> {
    let mut out = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/p38.db", dir.path().display());
    let store = SqlStore::connect(&url, StoreOptions::default())
        .await
        .unwrap();
    out.push(Backend {
        name: "sqlite",
        store: Arc::new(store),
        schema: None,
        _dir: Some(dir),
    });
    match std::env::var("P38_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            let schema = format!("p38t_{}_{}", test, std::process::id());
            let store = SqlStore::connect(
                &url,
                StoreOptions {
                    schema: Some(schema.clone()),
                    ..Default::default()
                },
            )
            .await
            .expect("P38_TEST_DATABASE_URL is set but PostgreSQL is not reachable");
            store.drop_schema(&schema).await.unwrap();
            store.close().await;
            let store = SqlStore::connect(
                &url,
                StoreOptions {
                    schema: Some(schema.clone()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            out.push(Backend {
                name: "postgres",
                store: Arc::new(store),
                schema: Some(schema),
                _dir: None,
            });
        }
        _ => p38_testkit::missing(&format!(
            "the postgres backend for {test}: P38_TEST_DATABASE_URL is not set"
        )),
    }
    out
}

async fn cleanup(b: Backend) {
    if let Some(s) = &b.schema {
        b.store.drop_schema(s).await.unwrap();
    }
    b.store.close().await;
}

fn audit(action: &str) -> NewAudit {
    NewAudit {
        actor: "test".into(),
        action: action.into(),
        target: String::new(),
        detail: None,
    }
}

fn new_agent(name: &str) -> NewAgent {
    NewAgent {
        name: name.into(),
        description: "d".into(),
        code: "def run(ctx):\n    return 1\n".into(),
        status: AgentStatus::Active,
        schedule: Some("every 5m".into()),
        config: serde_json::json!({"symbol": "TSLA"}),
        secrets: vec!["API_KEY".into()],
        tools: vec!["telegram".into()],
        network: true,
        allow_hosts: vec!["api.example.com".into()],
        settings: AgentSettings {
            timeout_seconds: Some(10),
            ..Default::default()
        },
        created_by: "test".into(),
        next_fire_at: None,
        approved_by: Some("test".into()),
        generation_id: None,
    }
}

fn new_task(agent_id: i64) -> NewTask {
    NewTask {
        agent_id,
        agent_version: 1,
        trigger: Trigger::Manual,
        kind: TaskKind::Agent,
        attempt: 1,
        retry_of: None,
        scheduled_at: now(),
    }
}

/// A listing decodes every agent as a single read does, page by page,
/// newest first, and filters by status.
#[tokio::test]
async fn agent_listings_page_and_decode_like_single_reads() {
    for b in backends("agent_list").await {
        let s = &b.store;
        for i in 0..5 {
            let mut n = new_agent(&format!("list{i}"));
            if i % 2 == 1 {
                n.status = AgentStatus::PendingApproval;
                n.approved_by = None;
                n.schedule = None;
            }
            s.create_agent(n, audit("agent.create")).await.unwrap();
        }
        let mut seen = Vec::new();
        let mut page = PageRequest::first(2);
        loop {
            let got = s.list_agents(None, page).await.unwrap();
            assert!(got.items.len() <= 2, "{}", b.name);
            for a in &got.items {
                let one = s.get_agent(a.id).await.unwrap().unwrap();
                assert_eq!(
                    serde_json::to_value(a).unwrap(),
                    serde_json::to_value(&one).unwrap(),
                    "{}: listed and read agent {} differ",
                    b.name,
                    a.id
                );
                seen.push(a.id);
            }
            match got.next_cursor {
                Some(c) => page = PageRequest::parse(Some(&c), Some(2)).unwrap(),
                None => break,
            }
        }
        assert_eq!(seen.len(), 5, "{}: {seen:?}", b.name);
        assert!(seen.windows(2).all(|w| w[0] > w[1]), "{}: {seen:?}", b.name);
        let pending = s
            .list_agents(Some(AgentStatus::PendingApproval), PageRequest::first(10))
            .await
            .unwrap();
        assert_eq!(pending.items.len(), 2, "{}", b.name);
        assert!(
            pending
                .items
                .iter()
                .all(|a| a.status == AgentStatus::PendingApproval && a.schedule.is_none())
        );
        cleanup(b).await;
    }
}

#[tokio::test]
async fn agents_round_trip_versions_and_conflicts() {
    for b in backends("agents").await {
        let s = &b.store;
        let a = s
            .create_agent(new_agent("tesla"), audit("agent.create"))
            .await
            .unwrap();
        assert_eq!(a.name, "tesla", "{}", b.name);
        assert_eq!(a.version, 1);
        assert!(a.network);
        assert_eq!(a.config["symbol"], "TSLA");
        assert_eq!(a.settings.timeout_seconds, Some(10));
        let by_name = s.get_agent_by_name("tesla").await.unwrap().unwrap();
        assert_eq!(by_name.id, a.id);

        let dup = s
            .create_agent(new_agent("tesla"), audit("agent.create"))
            .await
            .unwrap_err();
        assert!(
            matches!(&dup, Error::Conflict { field: Some(f), .. } if f == "name"),
            "{}: {dup:?}",
            b.name
        );

        let change = AgentChange {
            code: Some("def run(ctx):\n    return 2\n".into()),
            ..Default::default()
        };
        let a2 = s
            .update_agent(a.id, change, "editor", audit("agent.update"))
            .await
            .unwrap();
        assert_eq!(a2.version, 2);
        let change = AgentChange {
            description: Some("new".into()),
            ..Default::default()
        };
        let a3 = s
            .update_agent(a.id, change, "editor", audit("agent.update"))
            .await
            .unwrap();
        assert_eq!(a3.version, 2, "non-code change keeps the code version");
        assert_eq!(a3.description, "new");
        let versions = s.list_versions(a.id).await.unwrap();
        assert_eq!(
            versions.iter().map(|v| v.version).collect::<Vec<_>>(),
            vec![2, 1]
        );
        assert_eq!(versions[0].created_by, "editor");

        s.create_agent(new_agent("other"), audit("agent.create"))
            .await
            .unwrap();
        let rename = AgentChange {
            name: Some("tesla".into()),
            ..Default::default()
        };
        let other = s.get_agent_by_name("other").await.unwrap().unwrap();
        assert!(matches!(
            s.update_agent(other.id, rename, "x", audit("agent.update"))
                .await,
            Err(Error::Conflict { .. })
        ));
        assert!(matches!(
            s.update_agent(99_999, AgentChange::default(), "x", audit("a"))
                .await,
            Err(Error::NotFound { .. })
        ));

        s.delete_agent(a.id, audit("agent.delete")).await.unwrap();
        assert!(s.get_agent(a.id).await.unwrap().is_none());
        assert!(matches!(
            s.delete_agent(a.id, audit("agent.delete")).await,
            Err(Error::NotFound { .. })
        ));

        let log = s.list_audit(PageRequest::first(100)).await.unwrap();
        let actions: Vec<_> = log.items.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions.iter().filter(|a| **a == "agent.create").count(),
            2,
            "failed creates are not audited"
        );
        assert!(
            log.items
                .iter()
                .any(|e| e.target == format!("agent:{}", a.id))
        );
        cleanup(b).await;
    }
}

#[tokio::test]
async fn keyset_pagination_walks_every_task_once() {
    for b in backends("pages").await {
        let s = &b.store;
        let a = s
            .create_agent(new_agent("pager"), audit("c"))
            .await
            .unwrap();
        for _ in 0..23 {
            s.enqueue(new_task(a.id), None).await.unwrap();
        }
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let req = PageRequest::parse(cursor.as_deref(), Some(5)).unwrap();
            let page = s.list_tasks(a.id, None, req).await.unwrap();
            seen.extend(page.items.iter().map(|t| t.id));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen.len(), 23, "{}", b.name);
        let mut sorted = seen.clone();
        sorted.sort_unstable_by(|x, y| y.cmp(x));
        assert_eq!(seen, sorted, "newest first, no repeats");
        let queued = s
            .list_tasks(a.id, Some(TaskStatus::Queued), PageRequest::first(100))
            .await
            .unwrap();
        assert_eq!(queued.items.len(), 23);
        let done = s
            .list_tasks(a.id, Some(TaskStatus::Succeeded), PageRequest::first(100))
            .await
            .unwrap();
        assert!(done.items.is_empty());
        cleanup(b).await;
    }
}

#[tokio::test]
async fn claim_complete_state_and_cancel() {
    for b in backends("queue").await {
        let s = &b.store;
        let a = s.create_agent(new_agent("q"), audit("c")).await.unwrap();
        let t1 = s.enqueue(new_task(a.id), None).await.unwrap();
        let t2 = s.enqueue(new_task(a.id), None).await.unwrap();
        let claimed = s.claim("w1", 1, Duration::from_secs(30)).await.unwrap();
        assert_eq!(claimed.len(), 1, "{}", b.name);
        assert_eq!(claimed[0].id, t1.id, "oldest first");
        assert_eq!(claimed[0].status, TaskStatus::Running);
        assert_eq!(claimed[0].worker.as_deref(), Some("w1"));

        let outcome = FinishedRun {
            outcome: TaskOutcome::Succeeded {
                result: Some(serde_json::json!({"price": 1})),
                new_state: Some(serde_json::json!({"n": 1})),
            },
            figures: RunFigures {
                stdout: Some("hi".into()),
                duration_ms: Some(5),
                ..Default::default()
            },
        };
        assert!(
            !s.complete(t1.id, "w2", outcome.clone()).await.unwrap(),
            "another worker cannot complete it"
        );
        assert!(s.complete(t1.id, "w1", outcome.clone()).await.unwrap());
        assert!(
            !s.complete(t1.id, "w1", outcome).await.unwrap(),
            "completing twice is refused"
        );
        let st = s.get_state(a.id).await.unwrap().unwrap();
        assert_eq!(st.run_count, 1);
        assert_eq!(st.state["n"], 1);
        let t1 = s.get_task(t1.id).await.unwrap().unwrap();
        assert_eq!(t1.status, TaskStatus::Succeeded);
        assert_eq!(t1.stdout.as_deref(), Some("hi"));
        assert_eq!(t1.result.unwrap()["price"], 1);

        let c = s.cancel_task(t2.id, audit("task.cancel")).await.unwrap();
        assert_eq!(c.status, TaskStatus::Cancelled);
        assert!(matches!(
            s.cancel_task(t2.id, audit("task.cancel")).await,
            Err(Error::Conflict { .. })
        ));
        assert!(matches!(
            s.cancel_task(424_242, audit("task.cancel")).await,
            Err(Error::NotFound { .. })
        ));
        assert!(
            s.claim("w1", 5, Duration::from_secs(30))
                .await
                .unwrap()
                .is_empty()
        );

        // A failed run leaves the state as it was.
        let t3 = s.enqueue(new_task(a.id), None).await.unwrap();
        s.claim("w1", 1, Duration::from_secs(30)).await.unwrap();
        // (A failure has no state to save: the type holds none.)
        let failed = FinishedRun::bare(TaskOutcome::failed("it raised"));
        assert!(s.complete(t3.id, "w1", failed).await.unwrap());
        assert_eq!(s.get_state(a.id).await.unwrap().unwrap().state["n"], 1);
        cleanup(b).await;
    }
}

#[tokio::test]
async fn expired_leases_are_requeued_and_heartbeats_extend_them() {
    for b in backends("lease").await {
        let s = &b.store;
        let a = s.create_agent(new_agent("l"), audit("c")).await.unwrap();
        let t = s.enqueue(new_task(a.id), None).await.unwrap();
        s.claim("dead", 1, Duration::from_millis(1)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(s.requeue_expired().await.unwrap(), 1, "{}", b.name);
        let again = s.claim("alive", 1, Duration::from_secs(30)).await.unwrap();
        assert_eq!(again[0].id, t.id);
        assert_eq!(
            again[0].attempt, 2,
            "a re-run after a lost worker counts as a new attempt"
        );
        assert!(
            s.heartbeat("alive", &[t.id], Duration::from_secs(30))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            s.heartbeat("dead", &[t.id], Duration::from_secs(30))
                .await
                .unwrap(),
            vec![t.id]
        );
        assert_eq!(s.requeue_expired().await.unwrap(), 0);
        cleanup(b).await;
    }
}

#[tokio::test]
async fn concurrent_claims_never_hand_out_a_task_twice() {
    for b in backends("race").await {
        let s = &b.store;
        for i in 0..20 {
            let a = s
                .create_agent(new_agent(&format!("r{i}")), audit("c"))
                .await
                .unwrap();
            for _ in 0..3 {
                s.enqueue(new_task(a.id), None).await.unwrap();
            }
        }
        let mut handles = Vec::new();
        for w in 0..4 {
            let s = b.store.clone();
            handles.push(tokio::spawn(async move {
                let me = format!("w{w}");
                let mut mine = Vec::new();
                let mut idle = 0;
                while idle < 3 {
                    let got = s.claim(&me, 3, Duration::from_secs(30)).await.unwrap();
                    if got.is_empty() {
                        idle += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                    idle = 0;
                    for t in got {
                        let done = FinishedRun::bare(TaskOutcome::Succeeded {
                            result: None,
                            new_state: None,
                        });
                        assert!(s.complete(t.id, &me, done).await.unwrap());
                        mine.push(t.id);
                    }
                }
                mine
            }));
        }
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await.unwrap());
        }
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "{}: a task was claimed twice", b.name);
        assert_eq!(n, 60, "{}: every task ran", b.name);
        cleanup(b).await;
    }
}

#[tokio::test]
async fn tokens_hash_lookup_and_revocation() {
    for b in backends("tokens").await {
        let s = &b.store;
        let t = s
            .create_token(
                "ops",
                Scope::Operator,
                "h1",
                "p38_abc",
                None,
                Some(audit("token.create")),
            )
            .await
            .unwrap();
        assert_eq!(t.scope, Scope::Operator);
        let p = s.principal_for_hash("h1").await.unwrap().unwrap();
        assert_eq!(p.principal.scope, Scope::Operator);
        assert_eq!(p.expires_at, None);
        assert!(s.principal_for_hash("nope").await.unwrap().is_none());
        assert_eq!(s.count_active_admin_tokens().await.unwrap(), 0);
        s.create_token("root", Scope::Admin, "h2", "p38_def", None, None)
            .await
            .unwrap();
        assert_eq!(s.count_active_admin_tokens().await.unwrap(), 1);
        let r = s.revoke_token(t.id, audit("token.revoke")).await.unwrap();
        assert!(r.revoked_at.is_some());
        assert!(
            s.principal_for_hash("h1").await.unwrap().is_none(),
            "{}",
            b.name
        );
        assert!(matches!(
            s.revoke_token(777, audit("token.revoke")).await,
            Err(Error::NotFound { .. })
        ));
        assert_eq!(s.list_tokens().await.unwrap().len(), 2);
        s.ping().await.unwrap();
        cleanup(b).await;
    }
}

#[tokio::test]
async fn tokens_expire_record_last_use_and_the_last_admin_stays() {
    for b in backends("token_expiry").await {
        let s = &b.store;
        let soon = now() + chrono::Duration::days(30);
        let root = s
            .create_token("root", Scope::Admin, "a1", "p38_a", None, None)
            .await
            .unwrap();
        let temp = s
            .create_token("temp", Scope::Admin, "a2", "p38_b", Some(soon), None)
            .await
            .unwrap();
        assert_eq!(
            temp.expires_at.map(p38_core::time::to_millis),
            Some(p38_core::time::to_millis(soon)),
            "{}",
            b.name
        );
        let found = s.principal_for_hash("a2").await.unwrap().unwrap();
        assert_eq!(found.expires_at, temp.expires_at);
        assert_eq!(found.last_used_at, None);
        // A use is recorded, then not again within the minute.
        let t0 = now();
        s.touch_token(temp.id, t0).await.unwrap();
        s.touch_token(temp.id, t0 + chrono::Duration::seconds(30))
            .await
            .unwrap();
        let listed = s.list_tokens().await.unwrap();
        let used = listed.iter().find(|t| t.id == temp.id).unwrap();
        assert_eq!(
            used.last_used_at.map(p38_core::time::to_millis),
            Some(p38_core::time::to_millis(t0)),
            "{}",
            b.name
        );
        s.touch_token(temp.id, t0 + chrono::Duration::seconds(61))
            .await
            .unwrap();
        let used = s.principal_for_hash("a2").await.unwrap().unwrap();
        assert_eq!(
            used.last_used_at.map(p38_core::time::to_millis),
            Some(p38_core::time::to_millis(
                t0 + chrono::Duration::seconds(61)
            ))
        );
        // An expired admin token is not an active one.
        s.create_token(
            "old",
            Scope::Admin,
            "a3",
            "p38_c",
            Some(now() - chrono::Duration::days(1)),
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            s.count_active_admin_tokens().await.unwrap(),
            2,
            "{}",
            b.name
        );
        s.revoke_token(temp.id, audit("token.revoke"))
            .await
            .unwrap();
        // The last active admin token is never revoked, not even by itself.
        let e = s
            .revoke_token(root.id, audit("token.revoke"))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::Conflict { message, .. } if message.contains("last active admin")),
            "{}: {e:?}",
            b.name
        );
        assert_eq!(s.count_active_admin_tokens().await.unwrap(), 1);
        cleanup(b).await;
    }
}

#[tokio::test]
async fn an_approval_records_what_it_approved_and_survives_withdrawal() {
    for b in backends("approval_snapshot").await {
        let s = &b.store;
        let mut new = new_agent("snap");
        new.settings.tool_limits = Some(serde_json::Map::from_iter([(
            "browser".to_string(),
            serde_json::json!({"calls": 5}),
        )]));
        let a = s.create_agent(new, audit("agent.create")).await.unwrap();
        assert_eq!(a.allow_hosts, ["api.example.com"], "{}", b.name);
        assert_eq!(a.changed_by, "test");
        assert_eq!(a.approved_version, Some(1));
        let snap = a.approved_snapshot.clone().expect("snapshot at creation");
        assert_eq!(snap, p38_core::approval::Covered::of(&a));
        // A change of config by someone else withdraws the approval; the
        // snapshot stays, so the change shows.
        let change = AgentChange {
            config: Some(serde_json::json!({"symbol": "NVDA"})),
            changed_by: Some("token:bob#2".into()),
            approval: ApprovalChange::Withdraw,
            status: Some(AgentStatus::PendingApproval),
            ..Default::default()
        };
        let u = s
            .update_agent(a.id, change, "token:bob#2", audit("agent.update"))
            .await
            .unwrap();
        assert_eq!(u.changed_by, "token:bob#2");
        assert_eq!(u.approved_by, None);
        assert_eq!(u.approved_snapshot.as_ref(), Some(&snap), "{}", b.name);
        let approval = p38_core::approval::Approval::of(&u);
        assert_eq!(approval.approved_version, Some(1));
        assert_eq!(approval.changes.len(), 1);
        assert_eq!(approval.changes[0].field, "config");
        // A rejection keeps its reason; an approval records the new state.
        let reject = AgentChange {
            status: Some(AgentStatus::Rejected),
            rejected_reason: Some(Some("no NVDA".into())),
            ..Default::default()
        };
        let r = s
            .update_agent(a.id, reject, "token:carol#3", audit("agent.reject"))
            .await
            .unwrap();
        assert_eq!(r.status, AgentStatus::Rejected);
        assert_eq!(r.rejected_reason.as_deref(), Some("no NVDA"));
        let approve = AgentChange {
            code: Some("def run(ctx):\n    return 2\n".into()),
            status: Some(AgentStatus::Active),
            rejected_reason: Some(None),
            approval: ApprovalChange::GrantBy("token:carol#3".into()),
            ..Default::default()
        };
        let ok = s
            .update_agent(a.id, approve, "token:carol#3", audit("agent.approve"))
            .await
            .unwrap();
        assert_eq!(ok.rejected_reason, None);
        assert_eq!(ok.approved_version, Some(2), "{}", b.name);
        assert!(p38_core::approval::Approval::of(&ok).changes.is_empty());
        let again = s.get_agent(a.id).await.unwrap().unwrap();
        assert_eq!(again.approved_snapshot, ok.approved_snapshot);
        cleanup(b).await;
    }
}

#[tokio::test]
async fn runs_of_one_agent_never_overlap() {
    for b in backends("overlap").await {
        let s = &b.store;
        let a1 = s.create_agent(new_agent("one"), audit("c")).await.unwrap();
        let a2 = s.create_agent(new_agent("two"), audit("c")).await.unwrap();
        for _ in 0..3 {
            s.enqueue(new_task(a1.id), None).await.unwrap();
            s.enqueue(new_task(a2.id), None).await.unwrap();
        }
        let first = s.claim("w", 10, Duration::from_secs(30)).await.unwrap();
        let mut agents: Vec<i64> = first.iter().map(|t| t.target.agent_id().unwrap()).collect();
        agents.sort_unstable();
        assert_eq!(agents, vec![a1.id, a2.id], "{}: one task per agent", b.name);
        assert!(
            s.claim("w2", 10, Duration::from_secs(30))
                .await
                .unwrap()
                .is_empty(),
            "{}: nothing while both run",
            b.name
        );
        let done = FinishedRun::bare(TaskOutcome::Succeeded {
            result: None,
            new_state: None,
        });
        let t1 = first
            .iter()
            .find(|t| t.target.agent_id() == Some(a1.id))
            .unwrap();
        s.complete(t1.id, "w", done).await.unwrap();
        let next = s.claim("w", 10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].target.agent_id(), Some(a1.id));
        assert!(next[0].id > t1.id, "oldest remaining task of the agent");
        cleanup(b).await;
    }
}

#[tokio::test]
async fn firing_is_a_compare_and_set_and_respects_overlap() {
    for b in backends("fire").await {
        let s = &b.store;
        let t0 = now() - chrono::Duration::seconds(1);
        let mut na = new_agent("sched");
        na.next_fire_at = Some(t0);
        let a = s.create_agent(na, audit("c")).await.unwrap();
        let due = s.due_agents(now(), 10).await.unwrap();
        assert_eq!(due.len(), 1, "{}", b.name);
        assert_eq!(due[0].next_fire_at, t0);
        let next = t0 + chrono::Duration::minutes(5);
        let task = NewTask {
            trigger: Trigger::Schedule,
            scheduled_at: t0,
            ..new_task(a.id)
        };
        let first = s
            .fire(a.id, t0, Some(next), Some(task.clone()), true)
            .await
            .unwrap();
        assert!(
            matches!(first, FireResult::Queued(_)),
            "{}: {first:?}",
            b.name
        );
        // A second scheduler with the same stale view loses.
        assert_eq!(
            s.fire(a.id, t0, Some(next), Some(task.clone()), true)
                .await
                .unwrap(),
            FireResult::Lost
        );
        assert!(s.due_agents(now(), 10).await.unwrap().is_empty());
        assert_eq!(s.next_fire_time().await.unwrap(), Some(next));
        // Overlap: the first run is still queued, so the next firing is skipped.
        let later = next + chrono::Duration::minutes(5);
        assert_eq!(
            s.fire(a.id, next, Some(later), Some(task.clone()), true)
                .await
                .unwrap(),
            FireResult::Skipped
        );
        // ...unless the policy is to queue.
        let even_later = later + chrono::Duration::minutes(5);
        assert!(matches!(
            s.fire(a.id, later, Some(even_later), Some(task), false)
                .await
                .unwrap(),
            FireResult::Queued(_)
        ));
        let tasks = s
            .list_tasks(a.id, None, PageRequest::first(10))
            .await
            .unwrap();
        assert_eq!(tasks.items.len(), 2);
        assert!(tasks.items.iter().all(|t| t.trigger == Trigger::Schedule));
        cleanup(b).await;
    }
}

#[tokio::test]
async fn scheduler_lease_elects_one_leader_and_fails_over() {
    for b in backends("lead").await {
        let s = &b.store;
        // Long enough for "b must wait" to hold on a busy machine.
        let lease = Duration::from_secs(1);
        assert!(s.try_lead("a", lease).await.unwrap(), "{}", b.name);
        assert!(
            !s.try_lead("b", lease).await.unwrap(),
            "{}: b must wait",
            b.name
        );
        assert!(s.try_lead("a", lease).await.unwrap(), "renewal");
        tokio::time::sleep(lease + Duration::from_millis(200)).await;
        assert!(
            s.try_lead("b", lease).await.unwrap(),
            "{}: b takes over an expired lease",
            b.name
        );
        assert!(!s.try_lead("a", lease).await.unwrap());
        s.resign("b").await.unwrap();
        assert!(
            s.try_lead("a", lease).await.unwrap(),
            "resigning hands over at once"
        );
        cleanup(b).await;
    }
}

#[tokio::test]
async fn a_failure_with_retry_at_queues_the_retry_atomically() {
    for b in backends("retry").await {
        let s = &b.store;
        let a = s.create_agent(new_agent("rt"), audit("c")).await.unwrap();
        let t = s.enqueue(new_task(a.id), None).await.unwrap();
        s.claim("w", 1, Duration::from_secs(30)).await.unwrap();
        let at = now() + chrono::Duration::seconds(2);
        let failed = FinishedRun::bare(TaskOutcome::Failed {
            error: "it raised".into(),
            retry_at: Some(at),
        });
        assert!(s.complete(t.id, "w", failed).await.unwrap());
        let tasks = s
            .list_tasks(a.id, Some(TaskStatus::Queued), PageRequest::first(10))
            .await
            .unwrap()
            .items;
        assert_eq!(tasks.len(), 1, "{}", b.name);
        let r = &tasks[0];
        assert_eq!(
            (r.attempt, r.retry_of, r.trigger),
            (2, Some(t.id), Trigger::Retry)
        );
        assert_eq!(r.scheduled_at, at);
        assert!(
            s.claim("w", 1, Duration::from_secs(30))
                .await
                .unwrap()
                .is_empty(),
            "not before its time"
        );
        // A success never queues a retry.
        let t2 = s.enqueue(new_task(a.id), None).await.unwrap();
        let c = s.claim("w", 1, Duration::from_secs(30)).await.unwrap();
        assert_eq!(c[0].id, t2.id);
        let ok = FinishedRun::bare(
            TaskOutcome::Succeeded {
                result: None,
                new_state: None,
            }
            .retried_at(Some(at)),
        );
        s.complete(t2.id, "w", ok).await.unwrap();
        assert_eq!(
            s.list_tasks(a.id, Some(TaskStatus::Queued), PageRequest::first(10))
                .await
                .unwrap()
                .items
                .len(),
            1
        );
        cleanup(b).await;
    }
}

#[tokio::test]
async fn output_is_saved_while_running_and_after_a_cancel_only_by_its_worker() {
    for b in backends("live").await {
        let s = &b.store;
        let a = s.create_agent(new_agent("live"), audit("c")).await.unwrap();
        let t = s.enqueue(new_task(a.id), None).await.unwrap();
        let out = |text: &str| TaskOutput {
            stdout: text.into(),
            stderr: format!("err {text}"),
            logs: serde_json::json!([{"level": "info", "message": text}]),
        };
        assert!(
            !s.save_output(t.id, "w1", out("queued")).await.unwrap(),
            "{}: nothing runs yet",
            b.name
        );
        s.claim("w1", 1, Duration::from_secs(30)).await.unwrap();
        assert!(s.save_output(t.id, "w1", out("one\0")).await.unwrap());
        assert!(!s.save_output(t.id, "w2", out("other")).await.unwrap());
        let got = s.get_task(t.id).await.unwrap().unwrap();
        assert_eq!(got.status, TaskStatus::Running);
        assert_eq!(got.stdout.as_deref(), Some("one\u{FFFD}"), "{}", b.name);
        assert_eq!(got.stderr.as_deref(), Some("err one\u{FFFD}"));
        assert_eq!(got.logs.unwrap()[0]["message"], "one\u{0}");

        // Cancelled by a user: the run's worker still stores what it wrote
        // up to the cancel; the outcome itself is refused.
        s.cancel_task(t.id, audit("task.cancel")).await.unwrap();
        assert!(
            s.save_output(t.id, "w1", out("until the cancel"))
                .await
                .unwrap()
        );
        let cancelled = FinishedRun::bare(TaskOutcome::Cancelled {
            reason: "cancelled".into(),
        });
        assert!(!s.complete(t.id, "w1", cancelled).await.unwrap());
        let got = s.get_task(t.id).await.unwrap().unwrap();
        assert_eq!(got.status, TaskStatus::Cancelled);
        assert_eq!(got.stdout.as_deref(), Some("until the cancel"));
        assert_eq!(got.error.as_deref(), Some("cancelled by user"));

        // A finished task keeps its outcome; a released one drops what its
        // run wrote, and the next claim starts with no output.
        let t2 = s.enqueue(new_task(a.id), None).await.unwrap();
        s.claim("w1", 1, Duration::from_secs(30)).await.unwrap();
        assert!(s.save_output(t2.id, "w1", out("first run")).await.unwrap());
        s.release("w1", &[t2.id]).await.unwrap();
        assert!(!s.save_output(t2.id, "w1", out("late")).await.unwrap());
        let claimed = s.claim("w2", 1, Duration::from_secs(30)).await.unwrap();
        assert_eq!(claimed[0].stdout, None, "{}", b.name);
        let done = FinishedRun {
            outcome: TaskOutcome::Succeeded {
                result: None,
                new_state: None,
            },
            figures: RunFigures {
                stdout: Some("final".into()),
                ..Default::default()
            },
        };
        assert!(s.complete(t2.id, "w2", done).await.unwrap());
        assert!(!s.save_output(t2.id, "w2", out("late")).await.unwrap());
        let got = s.get_task(t2.id).await.unwrap().unwrap();
        assert_eq!(got.stdout.as_deref(), Some("final"));
        cleanup(b).await;
    }
}

#[tokio::test]
async fn released_tasks_go_back_to_the_queue_and_noops_skip_the_agent_lock() {
    for b in backends("release").await {
        let s = &b.store;
        let a = s.create_agent(new_agent("rel"), audit("c")).await.unwrap();
        let t = s.enqueue(new_task(a.id), None).await.unwrap();
        s.claim("w1", 1, Duration::from_secs(30)).await.unwrap();
        assert_eq!(s.release("w1", &[t.id]).await.unwrap(), 1, "{}", b.name);
        let again = s.claim("w2", 1, Duration::from_secs(30)).await.unwrap();
        assert_eq!(again[0].id, t.id);
        assert_eq!(
            again[0].attempt, 1,
            "a released task was never run: same attempt"
        );
        for _ in 0..5 {
            s.enqueue(
                NewTask {
                    kind: TaskKind::Noop,
                    ..new_task(a.id)
                },
                None,
            )
            .await
            .unwrap();
        }
        let noops = s.claim("w3", 10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(noops.len(), 5, "{}: no-ops run side by side", b.name);
        assert!(noops.iter().all(|t| t.kind == TaskKind::Noop));
        cleanup(b).await;
    }
}

#[tokio::test]
async fn an_agent_may_allow_more_than_one_run_at_once() {
    for b in backends("conc").await {
        let s = &b.store;
        let mut na = new_agent("wide");
        na.settings.concurrency = Some(2);
        let a = s.create_agent(na, audit("c")).await.unwrap();
        for _ in 0..4 {
            s.enqueue(new_task(a.id), None).await.unwrap();
        }
        let first = s.claim("w1", 10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(first.len(), 2, "{}: two at once", b.name);
        assert!(
            s.claim("w2", 10, Duration::from_secs(30))
                .await
                .unwrap()
                .is_empty(),
            "{}: the limit holds across workers",
            b.name
        );
        let done = FinishedRun::bare(TaskOutcome::Succeeded {
            result: None,
            new_state: None,
        });
        s.complete(first[0].id, "w1", done).await.unwrap();
        assert_eq!(
            s.claim("w2", 10, Duration::from_secs(30))
                .await
                .unwrap()
                .len(),
            1
        );
        cleanup(b).await;
    }
}

#[tokio::test]
async fn a_change_decided_on_a_stale_read_is_a_conflict() {
    for b in backends("stale").await {
        let s = &b.store;
        let a = s
            .create_agent(new_agent("stale"), audit("c"))
            .await
            .unwrap();
        let seen = a.updated_at;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let first = AgentChange {
            code: Some("def run(ctx):\n    return 9\n".into()),
            expect_updated_at: Some(seen),
            ..Default::default()
        };
        s.update_agent(a.id, first, "admin", audit("agent.update"))
            .await
            .unwrap();
        let late = AgentChange {
            status: Some(AgentStatus::Active),
            expect_updated_at: Some(seen),
            ..Default::default()
        };
        let e = s
            .update_agent(a.id, late, "operator", audit("agent.update"))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::Conflict { field: Some(f), .. } if f == "version"),
            "{}: {e:?}",
            b.name
        );
        let wrong_version = AgentChange {
            status: Some(AgentStatus::Active),
            expect_version: Some(1),
            ..Default::default()
        };
        assert!(matches!(
            s.update_agent(a.id, wrong_version, "op", audit("agent.approve"))
                .await,
            Err(Error::Conflict { .. })
        ));
        cleanup(b).await;
    }
}

#[tokio::test]
async fn a_generation_whose_worker_died_is_taken_over_once_then_given_up() {
    for b in backends("gen_lease").await {
        let s = &b.store;
        // Long enough for "a live lease is not taken over" to hold on a busy
        // machine; the waits past it are the behaviour.
        let lease = Duration::from_secs(1);
        // What the user fixed along with the description goes with it.
        let overrides = p38_core::generation::GenerationOverrides {
            name: Some("tesla".into()),
            schedule: Some("every 5m".into()),
            ..Default::default()
        };
        let g = s
            .create_generation(
                "watch tesla",
                &overrides,
                "m",
                "admin",
                audit("generation.start"),
            )
            .await
            .unwrap();
        assert_eq!(g.stage, GenerationStage::Queued, "{}", b.name);
        // Its task is on the one queue, but only generation slots take it.
        assert!(
            s.claim("a", 10, lease).await.unwrap().is_empty(),
            "{}: agent slots never take a generation",
            b.name
        );
        let claimed = s.claim_generations("a", 10, lease).await.unwrap();
        assert_eq!(claimed.len(), 1, "{}", b.name);
        let task = claimed[0].clone();
        assert_eq!(task.kind, TaskKind::Generation);
        assert_eq!(
            task.target,
            TaskTarget::Generation {
                generation_id: g.id
            }
        );
        assert_eq!(
            task.target.agent_id(),
            None,
            "a generation has no agent yet"
        );
        assert_eq!(task.attempt, 1);
        let progress = p38_core::generation::GenerationProgress {
            stage: GenerationStage::Generating,
            ..Default::default()
        };
        assert!(
            s.generation_progress(task.id, "a", &progress)
                .await
                .unwrap(),
            "{}",
            b.name
        );
        assert!(
            !s.generation_progress(task.id, "b", &progress)
                .await
                .unwrap(),
            "{}: another worker cannot write it",
            b.name
        );
        assert!(
            s.heartbeat("a", &[task.id], lease)
                .await
                .unwrap()
                .is_empty(),
            "{}: its worker renews the lease",
            b.name
        );
        s.requeue_expired().await.unwrap();
        assert!(
            s.claim_generations("b", 10, lease)
                .await
                .unwrap()
                .is_empty(),
            "{}: a live lease is not taken over",
            b.name
        );
        tokio::time::sleep(lease + Duration::from_millis(200)).await;
        assert_eq!(s.requeue_expired().await.unwrap(), 1, "{}", b.name);
        let (x, y) = tokio::join!(
            s.claim_generations("b", 10, lease),
            s.claim_generations("c", 10, lease)
        );
        let taken: Vec<_> = [x.unwrap(), y.unwrap()].into_iter().flatten().collect();
        assert_eq!(
            taken.len(),
            1,
            "{}: exactly one worker takes it over",
            b.name
        );
        assert_eq!(taken[0].id, task.id);
        assert_eq!(taken[0].attempt, 2, "{}", b.name);
        let again = s.get_generation(g.id).await.unwrap().unwrap();
        assert_eq!(again.description, "watch tesla");
        assert_eq!(again.overrides, overrides, "{}", b.name);
        assert_eq!(
            s.heartbeat("a", &[task.id], lease).await.unwrap(),
            vec![task.id],
            "{}: the old worker lost it",
            b.name
        );
        assert!(
            !s.generation_progress(task.id, "a", &progress)
                .await
                .unwrap(),
            "{}: nor may it write progress",
            b.name
        );
        // Attempt 2 lapses, attempt 3 is taken and lapses: then it fails.
        tokio::time::sleep(lease + Duration::from_millis(200)).await;
        s.requeue_expired().await.unwrap();
        assert!(
            !s.claim_generations("d", 10, lease)
                .await
                .unwrap()
                .is_empty()
        );
        tokio::time::sleep(lease + Duration::from_millis(200)).await;
        s.requeue_expired().await.unwrap();
        assert!(
            s.claim_generations("e", 10, lease)
                .await
                .unwrap()
                .is_empty()
        );
        let g = s.get_generation(g.id).await.unwrap().unwrap();
        assert_eq!(g.status.as_str(), "failed", "{}", b.name);
        assert!(
            g.error
                .as_deref()
                .unwrap_or("")
                .contains("interrupted 3 times"),
            "{}: {:?}",
            b.name,
            g.error
        );
        let t = s.get_task(task.id).await.unwrap().unwrap();
        assert_eq!(t.status, TaskStatus::Failed, "{}: its task with it", b.name);
        cleanup(b).await;
    }
}

#[tokio::test]
async fn cancelling_a_generations_task_cancels_the_generation() {
    for b in backends("gen_task_cancel").await {
        let s = &b.store;
        let none = p38_core::generation::GenerationOverrides::default();
        let g = s
            .create_generation("one", &none, "m", "admin", audit("generation.start"))
            .await
            .unwrap();
        let task = s
            .claim_generations("a", 1, Duration::from_secs(60))
            .await
            .unwrap()
            .remove(0);
        let t = s.cancel_task(task.id, audit("task.cancel")).await.unwrap();
        assert_eq!(t.status, TaskStatus::Cancelled, "{}", b.name);
        let g = s.get_generation(g.id).await.unwrap().unwrap();
        assert_eq!(g.status, GenerationStatus::Cancelled, "{}", b.name);
        // And the other way round: a generation cancelled while queued
        // leaves no task to claim.
        let g2 = s
            .create_generation("two", &none, "m", "admin", audit("generation.start"))
            .await
            .unwrap();
        s.cancel_generation(g2.id, "cancelled by admin", audit("generation.cancel"))
            .await
            .unwrap();
        assert!(
            s.claim_generations("a", 10, Duration::from_secs(60))
                .await
                .unwrap()
                .is_empty(),
            "{}",
            b.name
        );
        cleanup(b).await;
    }
}

#[tokio::test]
async fn generations_list_newest_first_show_progress_and_cancel_once() {
    for b in backends("gen_list").await {
        let s = &b.store;
        let lease = Duration::from_secs(60);
        let none = p38_core::generation::GenerationOverrides::default();
        let mut ids = Vec::new();
        for d in ["one", "two", "three"] {
            let g = s
                .create_generation(d, &none, "m", "admin", audit("generation.start"))
                .await
                .unwrap();
            ids.push(g.id);
        }
        // Worker "a" runs all three: each generation's task.
        let claimed = s.claim_generations("a", 10, lease).await.unwrap();
        let task_of = |g: i64| {
            claimed
                .iter()
                .find(|t| t.target == TaskTarget::Generation { generation_id: g })
                .unwrap()
                .id
        };
        // Progress while running: tokens so far and the iterations that
        // ended; a progress without a report keeps the stored one.
        let mut p = p38_core::generation::GenerationProgress {
            stage: GenerationStage::Repairing,
            iteration: 2,
            findings: 1,
            cost_usd: 0.01,
            input_tokens: 1200,
            output_tokens: 400,
            report: Some(serde_json::json!({"iterations": [{"n": 1, "findings": []}]})),
        };
        assert!(
            s.generation_progress(task_of(ids[0]), "a", &p)
                .await
                .unwrap()
        );
        p.report = None;
        p.input_tokens = 1300;
        assert!(
            s.generation_progress(task_of(ids[0]), "a", &p)
                .await
                .unwrap()
        );
        let g = s.get_generation(ids[0]).await.unwrap().unwrap();
        assert_eq!((g.input_tokens, g.output_tokens), (1300, 400), "{}", b.name);
        assert_eq!(
            g.report.as_ref().unwrap()["iterations"][0]["n"],
            1,
            "{}",
            b.name
        );

        // Cancelled once, audited; then a conflict; unknown: not found.
        let c = s
            .cancel_generation(ids[1], "cancelled by admin", audit("generation.cancel"))
            .await
            .unwrap();
        assert_eq!(c.status, GenerationStatus::Cancelled, "{}", b.name);
        assert_eq!(c.error.as_deref(), Some("cancelled by admin"));
        assert!(
            matches!(
                s.cancel_generation(ids[1], "again", audit("generation.cancel"))
                    .await,
                Err(Error::Conflict { .. })
            ),
            "{}",
            b.name
        );
        assert!(matches!(
            s.cancel_generation(999_999, "x", audit("generation.cancel"))
                .await,
            Err(Error::NotFound { .. })
        ));
        // Its worker loses it: no renewal, no progress.
        assert_eq!(
            s.heartbeat("a", &[task_of(ids[1])], lease).await.unwrap(),
            vec![task_of(ids[1])]
        );
        assert!(
            !s.generation_progress(task_of(ids[1]), "a", &p)
                .await
                .unwrap()
        );
        let audits = s
            .list_audit(p38_core::page::PageRequest::first(50))
            .await
            .unwrap();
        assert!(
            audits.items.iter().any(|e| e.action == "generation.cancel"),
            "{}",
            b.name
        );

        // Newest first, two to a page, without reports; by status.
        let first = s
            .list_generations(None, p38_core::page::PageRequest::first(2))
            .await
            .unwrap();
        let got: Vec<i64> = first.items.iter().map(|g| g.id).collect();
        assert_eq!(got, vec![ids[2], ids[1]], "{}", b.name);
        assert!(first.items.iter().all(|g| g.report.is_none()));
        let next =
            p38_core::page::PageRequest::parse(first.next_cursor.as_deref(), Some(2)).unwrap();
        let second = s.list_generations(None, next).await.unwrap();
        let got: Vec<i64> = second.items.iter().map(|g| g.id).collect();
        assert_eq!(got, vec![ids[0]], "{}", b.name);
        assert!(second.next_cursor.is_none());
        let cancelled = s
            .list_generations(
                Some(GenerationStatus::Cancelled),
                p38_core::page::PageRequest::first(50),
            )
            .await
            .unwrap();
        let got: Vec<i64> = cancelled.items.iter().map(|g| g.id).collect();
        assert_eq!(got, vec![ids[1]], "{}", b.name);
        cleanup(b).await;
    }
}

#[tokio::test]
async fn workspace_archives_are_versioned_deduplicated_pruned_and_deleted_with_the_agent() {
    for b in backends("wsarchives").await {
        let s = &b.store;
        let a = s
            .create_agent(new_agent("carried"), audit("agent.create"))
            .await
            .unwrap();
        assert_eq!(s.latest_workspace_archive(a.id).await.unwrap(), None);

        // Bytes with a NUL and every byte value survive the round trip.
        let first: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        let saved = s
            .save_workspace_archive(a.id, "h1", first.clone(), Some(7))
            .await
            .unwrap();
        let ArchiveSave::Stored(v1) = saved else {
            panic!("{}: the first archive is stored: {saved:?}", b.name)
        };
        assert_eq!(
            (v1.version, v1.size_bytes, v1.saved_by_task),
            (1, 4096, Some(7))
        );
        assert_eq!(
            s.workspace_archive_bytes(a.id, 1).await.unwrap(),
            Some(first.clone()),
            "{}",
            b.name
        );

        // The same bytes again write nothing.
        let again = s
            .save_workspace_archive(a.id, "h1", first.clone(), Some(8))
            .await
            .unwrap();
        assert_eq!(again, ArchiveSave::Unchanged(v1.clone()), "{}", b.name);

        // New contents are new versions; only the latest few are kept.
        for n in 2..=5i64 {
            let saved = s
                .save_workspace_archive(a.id, &format!("h{n}"), vec![n as u8; 10], None)
                .await
                .unwrap();
            assert!(
                matches!(saved, ArchiveSave::Stored(ref v) if v.version == n),
                "{saved:?}"
            );
        }
        let latest = s.latest_workspace_archive(a.id).await.unwrap().unwrap();
        assert_eq!((latest.version, latest.sha256.as_str()), (5, "h5"));
        assert_eq!(
            s.workspace_archive_bytes(a.id, 5).await.unwrap(),
            Some(vec![5u8; 10])
        );
        let oldest_kept = 5 - KEPT_WORKSPACE_ARCHIVES + 1;
        assert!(
            s.workspace_archive_bytes(a.id, oldest_kept - 1)
                .await
                .unwrap()
                .is_none(),
            "{}: older versions are pruned",
            b.name
        );
        assert!(
            s.workspace_archive_bytes(a.id, oldest_kept)
                .await
                .unwrap()
                .is_some()
        );

        // Deleting the agent deletes its archives; saving for it is refused.
        s.delete_agent(a.id, audit("agent.delete")).await.unwrap();
        assert_eq!(s.latest_workspace_archive(a.id).await.unwrap(), None);
        for v in 1..=5 {
            assert!(s.workspace_archive_bytes(a.id, v).await.unwrap().is_none());
        }
        let gone = s
            .save_workspace_archive(a.id, "h6", vec![6], None)
            .await
            .unwrap_err();
        assert!(
            matches!(gone, Error::NotFound { .. }),
            "{}: {gone:?}",
            b.name
        );
        cleanup(b).await;
    }
}

//! End-to-end harness: starts the real `p38 up` binary on a free port with
//! a fresh data folder, and talks to it over HTTP (and through the CLI).
//!
//! The server's database is SQLite in its data folder, or, with
//! `P38_E2E_BACKEND=postgres`, a schema of its own in the PostgreSQL of
//! `P38_TEST_DATABASE_URL`, dropped when the test ends (`scripts/test.sh`
//! runs the API and CLI suites a second time that way).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::Method;
use reqwest::blocking::Client;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// The `p38` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_p38");

/// A trivial agent that succeeds.
pub const OK_CODE: &str = "def run(ctx):\n    return {\"ok\": True}\n";

/// A trivial agent that counts its runs in its state and prints a line.
pub const COUNTER_CODE: &str = "def run(ctx):\n    n = ctx.state.get(\"count\", 0) + 1\n    ctx.state[\"count\"] = n\n    ctx.log.info(\"run %d\", n)\n    print(\"hello\", n)\n    return {\"count\": n}\n";

/// An agent that raises.
pub const FAIL_CODE: &str = "def run(ctx):\n    raise ValueError(\"boom from agent\")\n";

/// An agent that runs for a minute (for cancellation).
pub const SLEEP_CODE: &str = "import time\n\ndef run(ctx):\n    time.sleep(60)\n    return {}\n";

/// `P38_*` variables of the environment the tests run in, removed from
/// every child so the caller's settings cannot leak in.
const P38_VARS: &[&str] = &[
    "P38_URL",
    "P38_TOKEN",
    "P38_DATA_DIR",
    "P38_BIND",
    "P38_DATABASE_URL",
    "P38_CONCURRENCY",
    "P38_PYTHON",
    "P38_INSECURE_NO_SANDBOX",
    "P38_RUN_TIMEOUT",
    "P38_RUN_MEMORY_MB",
    "P38_MAX_BODY_BYTES",
    "P38_MAX_CODE_BYTES",
    "P38_SHUTDOWN_GRACE",
    "P38_WORKER_ID",
    "P38_LOG",
    "P38_LOG_FORMAT",
];

/// A fresh `p38` command with no inherited `P38_*` settings.
pub fn p38_command() -> Command {
    let mut c = Command::new(BIN);
    for v in P38_VARS {
        c.env_remove(v);
    }
    c
}

/// A running `p38 up`, stopped (SIGTERM, then wait) on drop.
pub struct Server {
    child: Option<Child>,
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The admin token from `DATA_DIR/admin.token`.
    pub token: String,
    /// The folder the server runs in (its current directory).
    pub root: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    /// `dir/p38-data`.
    pub data_dir: PathBuf,
    /// Everything the server wrote to stderr so far.
    pub log: Arc<Mutex<String>>,
    http: Client,
    /// The PostgreSQL schema this server created, dropped on drop.
    owned_schema: Option<PgSchema>,
}

/// "sqlite" or "postgres": the database the servers of this test run use.
pub fn backend() -> &'static str {
    match std::env::var("P38_E2E_BACKEND").as_deref() {
        Ok("postgres") => "postgres",
        _ => "sqlite",
    }
}

/// A PostgreSQL schema of one test's server.
#[derive(Debug, Clone)]
struct PgSchema {
    url: String,
    name: String,
}

impl PgSchema {
    /// The schema of the server in `root`: the one written there by an
    /// earlier start (a restart keeps its data), else a new one.
    fn for_root(root: &Path) -> (PgSchema, bool) {
        let file = root.join("e2e-database");
        if let Ok(text) = std::fs::read_to_string(&file) {
            let (url, name) = text.split_once('\n').expect("e2e-database file");
            return (
                PgSchema {
                    url: url.into(),
                    name: name.trim().into(),
                },
                false,
            );
        }
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let base = std::env::var("P38_TEST_DATABASE_URL")
            .expect("P38_E2E_BACKEND=postgres needs P38_TEST_DATABASE_URL");
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("p38e2e_{}_{n}", std::process::id());
        let sep = if base.contains('?') { '&' } else { '?' };
        let s = PgSchema {
            url: format!("{base}{sep}schema={name}"),
            name,
        };
        std::fs::write(&file, format!("{}\n{}", s.url, s.name)).expect("writing e2e-database");
        (s, true)
    }

    fn drop_now(&self) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            if let Ok(s) =
                p38_store::SqlStore::connect(&self.url, p38_store::StoreOptions::default()).await
            {
                let _ = s.drop_schema(&self.name).await;
                s.close().await;
            }
        });
    }
}

/// A response, with the body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Resp {
    /// Asserts the status and the API's error shape, and returns the body.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str, field: Option<&str>) -> &Value {
        assert_eq!(
            self.status, status,
            "expected HTTP {status} ({code}, field {field:?}), got {}: {}",
            self.status, self.text
        );
        let err = &self.body["error"];
        assert!(
            err.is_object(),
            "error body must be {{\"error\":{{...}}}}: {}",
            self.text
        );
        assert_eq!(err["code"], code, "error code in {}", self.text);
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "error message must be a non-empty string: {}",
            self.text
        );
        if let Some(f) = field {
            assert_eq!(err["field"], f, "error field in {}", self.text);
        }
        err
    }

    /// Reads a response whole, parsing the body when it is JSON.
    fn read(resp: reqwest::blocking::Response) -> Resp {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            text,
            body,
        }
    }

    /// Asserts the status and returns the body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(
            self.status, status,
            "expected HTTP {status}, got {}: {}",
            self.status, self.text
        );
        &self.body
    }
}

impl Server {
    /// The database this server uses (SQLite in its data folder, or its
    /// PostgreSQL schema).
    pub fn database_url(&self) -> String {
        match std::fs::read_to_string(self.root.join("e2e-database")) {
            Ok(text) => text.split('\n').next().unwrap_or_default().to_string(),
            Err(_) => format!("sqlite://{}", self.data_dir.join("p38.db").display()),
        }
    }

    /// Writes `code` into agent `id` past the API and its static checks,
    /// as an agent stored before they existed: what the CLI must still
    /// show safely.
    pub fn store_code_past_the_api(&self, id: i64, code: &str) {
        use p38_core::store::AgentStore;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let store = p38_store::SqlStore::connect(
                &self.database_url(),
                p38_store::StoreOptions::default(),
            )
            .await
            .expect("store");
            let change = p38_core::agent::AgentChange {
                code: Some(code.to_string()),
                ..Default::default()
            };
            let audit = p38_core::audit::NewAudit {
                actor: "test".into(),
                action: "agent.update".into(),
                target: format!("agent:{id}"),
                detail: None,
            };
            store
                .update_agent(id, change, "test", audit)
                .await
                .expect("code stored");
            store.close().await;
        });
    }

    /// Starts `p38 up --bind 127.0.0.1:0` in a fresh temporary folder.
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    /// Starts the server with extra environment variables.
    pub fn start_with(env: &[(&str, &str)]) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("p38-e2e-")
            .tempdir()
            .expect("tempdir");
        let mut s = Self::launch(dir.path(), env);
        s._tmp = Some(dir);
        s
    }

    /// Starts a server in an existing folder (which it does not delete).
    pub fn start_in(root: &Path) -> Server {
        Self::launch(root, &[])
    }

    fn launch(root: &Path, env: &[(&str, &str)]) -> Server {
        let data_dir = root.join("p38-data");
        let mut cmd = p38_command();
        let mut owned_schema = None;
        if backend() == "postgres" {
            let (schema, new) = PgSchema::for_root(root);
            cmd.env("P38_DATABASE_URL", &schema.url);
            if new {
                owned_schema = Some(schema);
            }
        }
        cmd.args(["up", "--bind", "127.0.0.1:0"])
            .current_dir(root)
            .env("P38_DATA_DIR", &data_dir)
            .env("P38_SHUTDOWN_GRACE", "5")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawning p38 up");
        let stderr = child.stderr.take().expect("stderr pipe");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<String>();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                // Keep draining so the server never blocks on a full pipe.
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    {
                        let mut l = log.lock().unwrap_or_else(|e| e.into_inner());
                        l.push_str(&line);
                        l.push('\n');
                    }
                    let _ = tx.send(line);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(i) = line.find("listening on ") {
                        break line[i + "listening on ".len()..].trim().to_string();
                    }
                }
                Err(_) => {
                    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
                    let status = child.wait();
                    panic!(
                        "p38 up did not print its URL within 30 s (exit: {status:?}); stderr:\n{}",
                        log.lock().unwrap_or_else(|e| e.into_inner())
                    );
                }
            }
        };
        let token = std::fs::read_to_string(data_dir.join("admin.token"))
            .expect("reading admin.token")
            .trim()
            .to_string();
        let http = Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        Server {
            child: Some(child),
            url,
            token,
            root: root.to_path_buf(),
            _tmp: None,
            data_dir,
            log,
            http,
            owned_schema,
        }
    }

    /// What the server wrote to stderr so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends SIGTERM and waits for the exit, up to `limit`.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(st);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A request with any method, token and body; never panics on status.
    pub fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Resp {
        let mut req = self.http.request(method, format!("{}{}", self.url, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req
            .send()
            .unwrap_or_else(|e| panic!("request to {path} failed: {e}"));
        Resp::read(resp)
    }

    /// A JSON request with a token.
    pub fn req(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap());
        let ct = body.map(|_| "application/json");
        self.raw(method, path, token, ct, bytes)
    }

    /// GET /api/agents with one raw header.
    pub fn http_with_header(&self, name: &str, value: &str) -> Resp {
        let resp = self
            .http
            .get(format!("{}/api/agents", self.url))
            .header(name, value)
            .send()
            .expect("request");
        Resp::read(resp)
    }

    /// GET as admin.
    pub fn get(&self, path: &str) -> Resp {
        self.req(Method::GET, path, Some(&self.token), None)
    }

    /// POST as admin.
    pub fn post(&self, path: &str, body: &Value) -> Resp {
        self.req(Method::POST, path, Some(&self.token), Some(body))
    }

    /// PATCH as admin.
    pub fn patch(&self, path: &str, body: &Value) -> Resp {
        self.req(Method::PATCH, path, Some(&self.token), Some(body))
    }

    /// DELETE as admin.
    pub fn delete(&self, path: &str) -> Resp {
        self.req(Method::DELETE, path, Some(&self.token), None)
    }

    /// Creates a token with this scope; returns (id, token).
    pub fn create_token(&self, scope: &str) -> (i64, String) {
        let r = self.post(
            "/api/tokens",
            &json!({"name": format!("{scope}-tok"), "scope": scope}),
        );
        let b = r.expect(201);
        (
            b["id"].as_i64().expect("token id"),
            b["token"].as_str().expect("token").to_string(),
        )
    }

    /// Creates an agent (admin) with these code and extra fields; panics unless 201.
    pub fn create_agent(&self, name: &str, code: &str, extra: Value) -> Value {
        let mut body = json!({"name": name, "code": code});
        if let Value::Object(m) = extra {
            for (k, v) in m {
                body[k] = v;
            }
        }
        self.post("/api/agents", &body).expect(201).clone()
    }

    /// Queues a manual run (admin) and returns the task.
    pub fn execute(&self, agent: &str) -> Value {
        self.post(&format!("/api/agents/{agent}/execute"), &json!({}))
            .expect(202)
            .clone()
    }

    /// Polls a task until `done(status)` holds, up to `limit`.
    pub fn wait_task_until(&self, id: i64, limit: Duration, done: impl Fn(&str) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let t = self.get(&format!("/api/tasks/{id}")).expect(200).clone();
            if done(t["status"].as_str().unwrap_or("")) {
                return t;
            }
            if Instant::now() > deadline {
                panic!(
                    "task {id} still {} after {limit:?}: {t}\nserver log:\n{}",
                    t["status"],
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Polls a task until it has ended (30 s limit).
    pub fn wait_task(&self, id: i64) -> Value {
        self.wait_task_until(id, Duration::from_secs(30), |s| {
            !matches!(s, "queued" | "running")
        })
    }

    /// Runs the CLI against this server with the admin token file.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_env(args, &[])
    }

    /// Runs the CLI against this server with extra environment variables.
    pub fn cli_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = p38_command();
        cmd.args(args)
            .current_dir(&self.root)
            .env("P38_URL", &self.url)
            .env("P38_DATA_DIR", &self.data_dir)
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        run_with_timeout(cmd, Duration::from_secs(90))
    }

    /// Writes a file in the server's folder and returns its path.
    pub fn write_file(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.root.join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(15));
        unmount_workspaces(&self.data_dir);
        if let Some(s) = &self.owned_schema {
            s.drop_now();
        }
    }
}

/// Runs a command, killing it after `limit`.
pub fn run_with_timeout(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawning p38");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().expect("waiting for p38") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("p38 {:?} did not finish within {limit:?}", cmd.get_args());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

/// stdout of a CLI run as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr of a CLI run as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a CLI run succeeded, showing its output otherwise.
#[track_caller]
pub fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "p38 failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// Unix permission bits of a path.
pub fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Unmounts the workspace images the server left mounted under `data_dir`
/// (they stay mounted between runs), so the folder can be deleted; a server
/// started again in it mounts them again.
pub fn unmount_workspaces(data_dir: &Path) {
    let Ok(dir) = std::fs::canonicalize(data_dir) else {
        return;
    };
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mounts: Vec<(&str, &str)> = table
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ').skip(3);
            Some((f.next()?, f.next()?))
        })
        .collect();
    // Mounted in the data folder, or in a bind of it (a data folder under
    // one the agents cannot enter is bound under /run/p38).
    let mut roots = vec![dir.clone()];
    roots.extend(
        mounts
            .iter()
            .filter(|(root, _)| Path::new(root).starts_with(&dir))
            .map(|(_, point)| PathBuf::from(point)),
    );
    let mut points: Vec<&str> = mounts
        .iter()
        .map(|(_, point)| *point)
        .filter(|p| roots.iter().any(|r| Path::new(p).starts_with(r)))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let _ = Command::new("umount").args(["-l", point]).status();
    }
}

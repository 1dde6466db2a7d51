//! Secrets end to end: a canary secret set through the CLI, used by an
//! agent that prints, returns, raises and logs it, appears in no stored
//! row, no API response, no server log line and nowhere in the database
//! file; values are write-only; rotation reaches the next run.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Up {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Up {
    fn start() -> Up {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_p38"))
            .args(["up", "--bind", "127.0.0.1:0"])
            .env("P38_DATA_DIR", dir.path().join("data"))
            .env("P38_WORKSPACE_QUOTA", "walk") // no image left mounted in the temporary folder
            .env("P38_LOG", "debug")
            .env_remove("P38_MASTER_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(u) = line.split("listening on ").nth(1) {
                    let _ = tx.send(u.trim().to_string());
                }
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("p38 up started");
        Up {
            child,
            url,
            dir,
            log,
            reader: Some(reader),
        }
    }

    /// Stops the server (SIGTERM, as a user would) and waits for it to exit
    /// and for the last of its log to be read; returns the whole log.
    fn stop(&mut self) -> String {
        let st = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let exit = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "p38 up did not stop in 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(exit.success(), "p38 up exited with {exit:?}");
        // The server's stderr is closed: the reader sees its end.
        self.reader.take().unwrap().join().unwrap();
        self.log.lock().unwrap().clone()
    }

    fn p38(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let mut c = Command::new(env!("CARGO_BIN_EXE_p38"))
            .args(args)
            .env("P38_URL", &self.url)
            .env("P38_DATA_DIR", self.dir.path().join("data"))
            .env("P38_WORKSPACE_QUOTA", "walk") // no image left mounted in the temporary folder
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = c.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
        drop(input);
        let out = c.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    fn get(&self, path: &str) -> String {
        let token = std::fs::read_to_string(self.dir.path().join("data/admin.token")).unwrap();
        reqwest::blocking::Client::new()
            .get(format!("{}{}", self.url, path))
            .bearer_auth(token.trim())
            .send()
            .unwrap()
            .text()
            .unwrap()
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn a_canary_secret_never_leaves_the_sandbox_unmasked() {
    if !p38_testkit::sandbox_available() {
        return;
    }
    let canary = "p38-canary-51f0c2e9d8a7";
    let mut up = Up::start();
    let (ok, _, err) = up.p38(
        &["secret", "set", "CANARY_TOKEN"],
        Some(&format!("{canary}\n")),
    );
    assert!(ok, "{err}");
    let (ok, _, err) = up.p38(&["secret", "set", "TOO_SHORT"], Some("abc"));
    assert!(!ok && err.contains("at least 4 characters"), "{err}");

    let agent = r#"
import base64, hashlib, json, sys
def run(ctx):
    v = ctx.secrets["CANARY_TOKEN"]
    print("stdout:", v)
    print("b64:", base64.b64encode(v.encode()).decode(), file=sys.stderr)
    print("json:", json.dumps({"k": v}))
    ctx.log.info("log %s", v)
    ctx.state["kept"] = v
    if ctx.config.get("raise"):
        raise RuntimeError("failing with " + v)
    return {"value": v, "sha": hashlib.sha256(v.encode()).hexdigest()[:12]}
"#;
    let file = up.dir.path().join("leaky.py");
    std::fs::write(&file, agent).unwrap();
    let f = file.to_str().unwrap();
    let (ok, _, err) = up.p38(
        &[
            "agent",
            "create",
            "--name",
            "leaky",
            "--file",
            f,
            "--secret",
            "CANARY_TOKEN",
        ],
        None,
    );
    assert!(ok, "{err}");
    let (ok, out, err) = up.p38(&["agent", "run", "leaky", "--wait", "--json"], None);
    assert!(ok, "{out} {err}");
    assert!(!out.contains(canary), "the CLI printed the canary: {out}");
    let task: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(task["result"]["value"], "***");
    assert!(task["stdout"].as_str().unwrap().contains("stdout: ***"));
    let (ok, _, _) = up.p38(
        &["agent", "edit", "leaky", "--config", r#"{"raise": true}"#],
        None,
    );
    assert!(ok);
    // A changed config is approved again before it runs.
    let (ok, _, err) = up.p38(&["agent", "approve", "leaky", "--yes"], None);
    assert!(ok, "{err}");
    let (ok, out, err) = up.p38(&["agent", "run", "leaky", "--wait", "--json"], None);
    assert!(!ok, "the raising run fails");
    let failed: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("failing with ***")
    );

    // No API response holds it.
    for path in [
        "/api/agents",
        "/api/agents/leaky",
        "/api/agents/leaky/tasks",
        "/api/agents/leaky/state",
        "/api/secrets",
        "/api/audit",
    ] {
        let body = up.get(path);
        assert!(!body.contains(canary), "{path} leaked: {body}");
    }
    let tasks: serde_json::Value =
        serde_json::from_str(&up.get("/api/agents/leaky/tasks")).unwrap();
    for t in tasks["items"].as_array().unwrap() {
        let body = up.get(&format!("/api/tasks/{}", t["id"]));
        assert!(!body.contains(canary), "task leaked: {body}");
    }
    let secrets = up.get("/api/secrets");
    assert!(
        secrets.contains("CANARY_TOKEN") && !secrets.contains("value"),
        "metadata only: {secrets}"
    );
    let audit = up.get("/api/audit?limit=100");
    assert!(
        audit.contains("secret.set") && audit.contains("secrets.use"),
        "{audit}"
    );

    // Rotation through the API reaches the next run.
    let rotated = "p38-canary-rotated-77aa";
    let (ok, _, _) = up.p38(&["secret", "set", "CANARY_TOKEN"], Some(rotated));
    assert!(ok);
    let (ok, _, _) = up.p38(&["agent", "edit", "leaky", "--config", "{}"], None);
    assert!(ok);
    let (ok, _, err) = up.p38(&["agent", "approve", "leaky", "--yes"], None);
    assert!(ok, "{err}");
    let (ok, out, _) = up.p38(&["agent", "run", "leaky", "--wait", "--json"], None);
    assert!(ok);
    let t: serde_json::Value = serde_json::from_str(&out).unwrap();
    let sha = {
        let out = Command::new("python3")
            .args([
                "-c",
                &format!("import hashlib;print(hashlib.sha256(b'{rotated}').hexdigest()[:12])"),
            ])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert_eq!(
        t["result"]["sha"], sha,
        "the next run saw the rotated value"
    );

    // Stop the server, then scan its whole log and every database file.
    let log = up.stop();
    assert!(log.len() > 1000, "debug logging produced output");
    let shutdown = log
        .find("Shutting down: no new work is taken")
        .expect("the log was read past the start of the shutdown");
    assert!(
        log[shutdown..].contains("worker stopped"),
        "the log was read to the server's end"
    );
    assert!(
        !log.contains(canary) && !log.contains(rotated),
        "a server log line holds the secret"
    );
    let data = up.dir.path().join("data");
    let mut files = Vec::new();
    for f in ["p38.db", "p38.db-wal"] {
        match std::fs::read(data.join(f)) {
            Ok(bytes) => files.push((f, bytes)),
            // Closing the last connection checkpoints the WAL and removes it.
            Err(e) if f == "p38.db-wal" && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("cannot read {f}: {e}"),
        }
    }
    assert!(
        files.iter().any(|(_, b)| contains(b, "stdout: ***")),
        "the scanned files hold the runs' masked output: the right database"
    );
    for (f, bytes) in &files {
        assert!(
            !contains(bytes, canary) && !contains(bytes, rotated),
            "{f} holds a plaintext secret"
        );
    }
    let key = std::fs::metadata(data.join("master.key")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
}

//! What the benchmarks share: a real `p38 up` to drive over HTTP.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `p38 up` and its admin token.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The admin token.
    pub token: String,
    http: reqwest::blocking::Client,
    data: std::path::PathBuf,
}

impl Server {
    /// Starts `p38 up` on a free port with its data in `data` and the
    /// database at `database_url` (default: SQLite in `data`), and waits
    /// until it answers.
    pub fn start(database_url: Option<&str>, data: &Path) -> Server {
        Server::start_with(database_url, data, &[])
    }

    /// [`Server::start`] with extra `P38_*` settings in its environment.
    pub fn start_with(database_url: Option<&str>, data: &Path, env: &[(&str, &str)]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_p38"));
        cmd.args(["up", "--bind", &format!("127.0.0.1:{port}")])
            .env("P38_DATA_DIR", data)
            .env("P38_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(url) = database_url {
            cmd.env("P38_DATABASE_URL", url);
        }
        cmd.envs(env.iter().copied());
        let child = cmd.spawn().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::blocking::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while http.get(format!("{base}/health")).send().is_err() {
            assert!(Instant::now() < deadline, "p38 up did not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
        let token = std::fs::read_to_string(data.join("admin.token"))
            .unwrap()
            .trim()
            .to_string();
        Server {
            child,
            base,
            token,
            http,
            data: data.to_path_buf(),
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// GET as admin; the answer must be a success.
    pub fn get(&self, path: &str) -> reqwest::blocking::Response {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r
    }

    /// POST JSON as admin; the answer must be a success.
    pub fn post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        // Workspace images stay mounted after the server; unmount them so
        // the temporary folder can go and the next measurement does not
        // start with a longer mount table.
        unmount_under(&self.data);
    }
}

/// Unmounts (lazily) every mount under `dir`, deepest first.
fn unmount_under(dir: &Path) {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return;
    };
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<&str> = table
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(&dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").args(["-l", p]).status();
    }
}

/// The agent every throughput and overhead measurement runs.
pub const TRIVIAL_AGENT: &str = "def run(ctx):\n    return {\"ok\": True}\n";

/// `cargo bench ... -- WHAT [N]` (cargo's own `--bench` flag left out):
/// the measurement to make (default `all`) and how many runs (`default`).
/// `None`, after saying so, when bubblewrap is missing.
pub fn sandbox_bench_args(default: usize) -> Option<(String, usize)> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let what = args.first().cloned().unwrap_or_else(|| "all".into());
    let runs = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(default);
    if p38_sandbox::find_bubblewrap(Path::new("bwrap")).is_err() {
        eprintln!("SKIP: bubblewrap is not installed (apt-get install bubblewrap)");
        return None;
    }
    Some((what, runs))
}

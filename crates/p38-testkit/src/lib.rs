//! What Project38's test suites share: skips that are counted, and that
//! fail under CI.
//!
//! A test that returns early counts as passed, and the test harness
//! captures what a passing test prints, so a plain `eprintln!("SKIP")`
//! disappears. Every skip therefore goes through this crate: it prints the
//! reason (seen with `--nocapture`), appends a line to the file named by
//! `P38_SKIP_LOG` (which `scripts/test.sh` sets, counts and prints), and,
//! when the skip is for a missing dependency and `CI=true`, fails the test
//! instead: CI has PostgreSQL, bubblewrap, python3 and ruff, so a missing
//! one there is a broken CI, not a reason to pass.
//!
//! ```no_run
//! fn needs_postgres() {
//!     let Ok(url) = std::env::var("P38_TEST_DATABASE_URL") else {
//!         return p38_testkit::missing("P38_TEST_DATABASE_URL is not set");
//!     };
//!     // ... use url
//! }
//! ```

#![deny(missing_docs)]

use std::io::Write;

/// The test cannot run because something it needs is missing (a service,
/// a program, a variable). Under `CI=true` this panics, failing the test;
/// elsewhere the skip is recorded and the caller returns.
#[track_caller]
pub fn missing(what: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what}: CI must provide it (a missing dependency fails CI instead of skipping)");
    }
    record(what);
}

/// The test does not apply here (another backend, another architecture,
/// not root): recorded as a skip, also under CI, and the caller returns.
pub fn not_applicable(why: &str) {
    record(why);
}

/// Whether the sandbox's host dependencies are here: bubblewrap, found as
/// the product finds it (on `PATH`), and Debian's `/usr/bin/python3`.
/// When not, the skip is recorded as [`missing`] (a failure under CI).
#[track_caller]
pub fn sandbox_available() -> bool {
    if let Err(e) = p38_sandbox::find_bubblewrap(std::path::Path::new("bwrap")) {
        missing(&e.to_string());
        return false;
    }
    if !std::path::Path::new("/usr/bin/python3").exists() {
        missing("/usr/bin/python3 is missing (apt-get install python3)");
        return false;
    }
    true
}

fn record(reason: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("unnamed test")
        .to_string();
    let line = format!("SKIP {test}: {reason}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("P38_SKIP_LOG") {
        // One write of one line, appended: safe from many test threads
        // and processes at once.
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = appended {
            panic!("cannot record the skip in {}: {e}", path.to_string_lossy());
        }
    }
}

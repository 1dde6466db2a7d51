//! What reaches the operator's terminal, through the real `p38` binary:
//! approving and deleting an agent take a human's explicit yes (a terminal,
//! or `--yes`), and text an agent or a model wrote (code, description,
//! config, output, logs, errors, names) is shown with its control and
//! hidden characters escaped, never acted on by the terminal.
//!
//! The terminal is a real pseudo-terminal: `script` (util-linux) runs the
//! CLI on one and feeds it the test's input.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

/// What no view may print raw: ESC, BEL, CR, DEL, a C1 control, the
/// bidirectional controls and the invisible characters.
const RAW: &[char] = &[
    '\u{1b}', '\u{07}', '\r', '\u{7f}', '\u{85}', '\u{9b}', '\u{202a}', '\u{202b}', '\u{202c}',
    '\u{202d}', '\u{202e}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{200b}', '\u{200c}',
    '\u{200d}', '\u{200e}', '\u{200f}', '\u{feff}', '\u{2028}', '\u{2029}',
];

const HEBREW: &str = "סוכן שעוקב אחרי מניות";

/// An agent whose code holds what an attacker hides from a reviewer: a
/// comment that erases its own line (ESC [2K, then CR), an OSC 52 write of
/// the clipboard, a right-to-left override, a zero-width space. It prints a
/// fake `status: succeeded` over its own output with CR and logs escapes;
/// its first run keeps a hostile state, its later runs fail.
const HOSTILE_CODE: &str = "\"\"\"Hostile output.\"\"\"\nimport sys\n# \u{202e}erased below\u{1b}[2K\r\nCLIP = \"\u{1b}]52;c;ZXZpbA==\u{07}\"\nNAME = \"a\u{200b}b\"\n\n\ndef run(ctx):\n    # שלום: Hebrew stays readable\n    print(\"working\\rstatus: succeeded\\x1b[2K\")\n    print(\"second line \\u202e reversed\", file=sys.stderr)\n    ctx.log.info(\"log \\x1b[31mred\\x07\\nstatus: forged\")\n    if ctx.state.get(\"note\"):\n        raise ValueError(\"bad \\x1b[2K thing \\u202e\")\n    ctx.state[\"note\"] = \"\\u202eevil\\x9b\"\n    return {\"note\": \"\\u202e\"}\n";

/// The CLI against `s`, with `stdin` read from a file holding `input`
/// (`None`: no stdin at all); never a terminal.
fn cli_stdin(s: &Server, args: &[&str], input: Option<&str>) -> Output {
    let mut cmd = p38_command();
    cmd.args(args)
        .current_dir(&s.root)
        .env("P38_URL", &s.url)
        .env("P38_DATA_DIR", &s.data_dir);
    match input {
        Some(text) => {
            let file = s.write_file("stdin.txt", text);
            cmd.stdin(std::fs::File::open(file).unwrap());
        }
        None => {
            cmd.stdin(Stdio::null());
        }
    }
    run_with_timeout(cmd, Duration::from_secs(90))
}

/// The CLI on a pseudo-terminal (`script -qec`), typing `input`; returns
/// its exit status and everything the terminal showed.
fn cli_tty(s: &Server, args: &[&str], input: &str) -> (bool, String) {
    let line = std::iter::once(BIN)
        .chain(args.iter().copied())
        .map(shell_quote)
        .collect::<Vec<_>>()
        .join(" ");
    let file = s.write_file("tty-input.txt", input);
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"])
        .current_dir(&s.root)
        .env("P38_URL", &s.url)
        .env("P38_DATA_DIR", &s.data_dir)
        .stdin(std::fs::File::open(file).unwrap());
    let o = run_with_timeout(cmd, Duration::from_secs(90));
    (o.status.success(), stdout(&o) + &stderr(&o))
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn has_script() -> bool {
    Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn pending(s: &Server, name: &str) -> Value {
    s.create_agent(name, OK_CODE, json!({"status": "pending_approval"}))
}

fn status_of(s: &Server, name: &str) -> Value {
    s.get(&format!("/api/agents/{name}")).expect(200)["status"].clone()
}

/// Asserts `text` holds none of [`RAW`].
#[track_caller]
fn assert_no_raw(what: &str, text: &str) {
    let found: Vec<String> = RAW
        .iter()
        .filter(|c| text.contains(**c))
        .map(|c| format!("U+{:04X}", *c as u32))
        .collect();
    assert!(
        found.is_empty(),
        "{what} printed raw {found:?}:\n{}",
        text.escape_debug()
    );
}

#[test]
fn approve_without_a_terminal_refuses_unless_yes() {
    let s = Server::start();
    pending(&s, "gate");
    for input in [Some("n\n"), Some("y\n"), Some("yes\n"), None] {
        let o = cli_stdin(&s, &["agent", "approve", "gate"], input);
        assert_eq!(o.status.code(), Some(1), "stdin {input:?}: {}", stdout(&o));
        let err = stderr(&o);
        assert!(
            err.contains("not a terminal") && err.contains("--yes") && err.contains("not approved"),
            "stdin {input:?} says why and what to do: {err}"
        );
        assert_eq!(status_of(&s, "gate"), "pending_approval", "stdin {input:?}");
    }
    // The screen was still shown, so a script can see what it would approve.
    let o = cli_stdin(&s, &["agent", "approve", "gate"], None);
    assert!(stdout(&o).contains("--- code ---"), "{}", stdout(&o));

    let o = cli_stdin(&s, &["agent", "approve", "gate", "--yes"], None);
    assert_ok(&o);
    assert!(stdout(&o).contains("approved: agent"), "{}", stdout(&o));
    assert_eq!(status_of(&s, "gate"), "active");
}

#[test]
fn delete_without_a_terminal_refuses_unless_yes() {
    let s = Server::start();
    s.create_agent("doomed", OK_CODE, json!({}));
    for input in [Some("n\n"), Some("y\n"), None] {
        let o = cli_stdin(&s, &["agent", "delete", "doomed"], input);
        assert_eq!(o.status.code(), Some(1), "stdin {input:?}: {}", stdout(&o));
        let err = stderr(&o);
        assert!(
            err.contains("not a terminal") && err.contains("--yes") && err.contains("not deleted"),
            "stdin {input:?}: {err}"
        );
        s.get("/api/agents/doomed").expect(200);
    }
    let o = cli_stdin(&s, &["agent", "delete", "doomed", "-y"], None);
    assert_ok(&o);
    s.get("/api/agents/doomed")
        .assert_error(404, "not_found", None);
}

#[test]
fn on_a_terminal_only_an_explicit_yes_approves() {
    if !has_script() {
        p38_testkit::missing("`script` (util-linux) is not installed");
        return;
    }
    let s = Server::start();
    pending(&s, "asked");
    for input in ["n\n", "\n", "", "yess\n", "no\n"] {
        let (ok, shown) = cli_tty(&s, &["agent", "approve", "asked"], input);
        assert!(!ok, "answer {input:?} refused: {shown}");
        assert!(
            shown.contains("--- code ---") && shown.contains("approve this agent? [y/N]"),
            "the screen, then the question: {shown}"
        );
        assert!(shown.contains("not approved"), "{shown}");
        assert_eq!(status_of(&s, "asked"), "pending_approval", "{input:?}");
    }
    let (ok, shown) = cli_tty(&s, &["agent", "approve", "asked"], "Y\n");
    assert!(ok, "{shown}");
    assert!(shown.contains("approved: agent"), "{shown}");
    assert_eq!(status_of(&s, "asked"), "active");

    pending(&s, "asked-too");
    let (ok, shown) = cli_tty(&s, &["agent", "approve", "asked-too"], "yes\n");
    assert!(ok, "{shown}");
    assert_eq!(status_of(&s, "asked-too"), "active");
}

#[test]
fn on_a_terminal_delete_asks_and_only_yes_deletes() {
    if !has_script() {
        p38_testkit::missing("`script` (util-linux) is not installed");
        return;
    }
    let s = Server::start();
    s.create_agent("kept", OK_CODE, json!({}));
    let (ok, shown) = cli_tty(&s, &["agent", "delete", "kept"], "n\n");
    assert!(!ok, "{shown}");
    assert!(
        shown.contains("delete agent")
            && shown.contains("(kept)")
            && shown.contains("whole history"),
        "says what is deleted: {shown}"
    );
    s.get("/api/agents/kept").expect(200);
    let (ok, shown) = cli_tty(&s, &["agent", "delete", "kept"], "y\n");
    assert!(ok, "{shown}");
    assert!(shown.contains("deleted agent kept"), "{shown}");
    s.get("/api/agents/kept")
        .assert_error(404, "not_found", None);
}

/// An admin token whose name hides an escape and an override: it shows up
/// as the author of the agents it creates.
fn hostile_token(s: &Server) -> String {
    let r = s.post(
        "/api/tokens",
        &json!({"name": "ops\u{1b}[2K\u{202e}bot", "scope": "admin"}),
    );
    r.expect(201)["token"].as_str().unwrap().to_string()
}

#[test]
fn agent_views_show_control_and_hidden_characters_escaped() {
    let s = Server::start();
    let tok = hostile_token(&s);
    let body = json!({
        "name": "hostile",
        "code": OK_CODE,
        "description": format!("{HEBREW} \u{1b}[2K\rinnocent \u{202e}txt.exe \u{200b}\u{85}"),
        "config": {"target": "\u{1b}]52;c;ZXZpbA==\u{07}", "note": "\u{202e}abc"},
        "status": "pending_approval",
    });
    let id = s
        .req(Method::POST, "/api/agents", Some(&tok), Some(&body))
        .expect(201)["id"]
        .as_i64()
        .unwrap();
    // The API refuses such code (trojan_source); one stored before that
    // check existed is still shown safely.
    s.req(
        Method::PATCH,
        "/api/agents/hostile",
        Some(&tok),
        Some(&json!({"code": HOSTILE_CODE})),
    )
    .assert_error(422, "validation", Some("code"));
    s.store_code_past_the_api(id, HOSTILE_CODE);

    let o = s.cli(&["agent", "show", "hostile"]);
    assert_ok(&o);
    let out = stdout(&o);
    assert_no_raw("agent show", &out);
    assert!(out.contains(HEBREW), "Hebrew stays readable: {out}");
    assert!(
        out.contains(r"\x1b[2K\rinnocent \u{202e}txt.exe \u{200b}\u{85}"),
        "the description's escapes are visible: {out}"
    );
    // Config is JSON, so its escapes are JSON's.
    assert!(
        out.contains(r#"{"note":"\u202eabc","target":"\u001b]52;c;ZXZpbA==\u0007"}"#),
        "config shown escaped: {out}"
    );

    // The approval screen shows the code as Python reads it.
    let o = s.cli(&["agent", "approve", "hostile", "--yes"]);
    assert_ok(&o);
    let out = stdout(&o);
    assert_no_raw("agent approve", &out);
    for shown in [
        r"   3 | # \u{202e}erased below\x1b[2K\r",
        r#"   4 | CLIP = "\x1b]52;c;ZXZpbA==\x07""#,
        r#"   5 | NAME = "a\u{200b}b""#,
        "   9 |     # שלום: Hebrew stays readable",
    ] {
        assert!(
            out.contains(shown),
            "approval screen shows {shown:?}:\n{out}"
        );
    }
    assert!(
        out.contains(r#""note":"\u202eabc""#),
        "config on the screen: {out}"
    );
    assert!(out.contains(HEBREW), "{out}");
    assert!(out.contains("approved: agent"), "{out}");

    let o = s.cli(&["agent", "versions", "hostile"]);
    assert_ok(&o);
    let out = stdout(&o);
    assert_no_raw("agent versions", &out);
    assert!(
        out.contains(r"ops\x1b[2K\u{202e}bot"),
        "author escaped: {out}"
    );

    let o = s.cli(&["agent", "list"]);
    assert_ok(&o);
    assert_no_raw("agent list", &stdout(&o));

    // JSON stays JSON, with the overrides written as \u escapes too.
    let o = s.cli(&["agent", "show", "hostile", "--json"]);
    assert_ok(&o);
    let out = stdout(&o);
    assert_no_raw("agent show --json", &out);
    assert!(out.contains(r"\u202e") && out.contains(r"\u200b") && out.contains(r"\u001b"));
    let v: Value = serde_json::from_str(&out).expect("--json is JSON");
    assert_eq!(v["code"], HOSTILE_CODE, "and means the same code");
}

#[test]
fn task_views_show_agent_output_escaped() {
    let s = Server::start();
    let tok = hostile_token(&s);
    let body = json!({"name": "noisy", "code": OK_CODE});
    let id = s
        .req(Method::POST, "/api/agents", Some(&tok), Some(&body))
        .expect(201)["id"]
        .as_i64()
        .unwrap();
    s.store_code_past_the_api(id, HOSTILE_CODE);
    let first = s.execute("noisy")["id"].as_i64().unwrap();
    assert_eq!(s.wait_task(first)["status"], "succeeded");
    let o = s.cli(&["agent", "state", "noisy"]);
    assert_ok(&o);
    let out = stdout(&o);
    assert_no_raw("agent state", &out);
    assert!(out.contains(r"\u202eevil\u009b"), "state escaped: {out}");

    let id = s.execute("noisy")["id"].as_i64().unwrap();
    let t = s.wait_task(id);
    assert_eq!(t["status"], "failed", "{t}");
    let o = s.cli(&["task", "show", &id.to_string()]);
    assert_ok(&o);
    let out = stdout(&o);
    assert_no_raw("task show", &out);
    assert_one_status_line(&out, "failed");
    assert!(out.contains(r"working\rstatus: succeeded\x1b[2K"), "{out}");
    assert!(out.contains(r"second line \u{202e} reversed"), "{out}");
    assert!(out.contains(r"[info] log \x1b[31mred\x07"), "{out}");
    assert!(
        out.contains("\n      status: forged"),
        "a log's further lines are indented under it: {out}"
    );
    assert!(
        out.contains(r"bad \x1b[2K thing \u{202e}"),
        "error escaped: {out}"
    );
    assert!(
        out.contains(r#""note":"\u202e""#) || !out.contains("result:"),
        "{out}"
    );

    let o = s.cli(&["task", "list", "noisy"]);
    assert_ok(&o);
    let out = stdout(&o);
    assert_no_raw("task list", &out);
    assert!(
        out.contains("failed") && out.contains("ValueError"),
        "{out}"
    );

    let o = s.cli(&["agent", "run", "noisy", "--wait"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert_no_raw("agent run --wait", &out);
    assert_one_status_line(&out, "failed");
    assert!(out.contains(r"working\rstatus: succeeded"), "{out}");
}

/// Asserts that the one line starting with `status` is the real one.
#[track_caller]
fn assert_one_status_line(out: &str, status: &str) {
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("status")).collect();
    assert!(
        lines.len() == 1 && lines[0].ends_with(status),
        "only the real status is a status line: {lines:?}\n{out}"
    );
}

#[test]
fn a_local_run_shows_its_output_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hostile.py");
    std::fs::write(&file, HOSTILE_CODE).unwrap();
    let mut cmd = p38_command();
    cmd.args(["run", file.to_str().unwrap(), "--state", r#"{"note": "x"}"#])
        .stdin(Stdio::null());
    let o = run_with_timeout(cmd, Duration::from_secs(90));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert_no_raw("p38 run", &out);
    assert_one_status_line(&out, "failed");
    assert!(out.contains(r"working\rstatus: succeeded"), "{out}");
    assert!(out.contains(r"bad \x1b[2K thing \u{202e}"), "{out}");

    let mut cmd = p38_command();
    cmd.args(["run", file.to_str().unwrap(), "--json"])
        .stdin(Stdio::null());
    let o = run_with_timeout(cmd, Duration::from_secs(90));
    assert_ok(&o);
    assert_no_raw("p38 run --json", &stdout(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    assert_eq!(v["result"]["note"], "\u{202e}");
}

#[test]
fn server_errors_are_shown_escaped() {
    let s = Server::start();
    let o = s.cli(&["agent", "show", "no\u{1b}]52;c;eA==\u{07}such\u{202e}"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_no_raw("an error", &err);
    assert!(err.contains(r"no\x1b]52;c;eA==\x07such\u{202e}"), "{err}");
}

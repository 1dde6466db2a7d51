//! Every example agent under examples/agents runs with `p38 run`.

use std::path::Path;
use std::process::Command;

#[test]
fn every_example_agent_runs() {
    if !p38_testkit::sandbox_available() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/agents");
    let mut ran = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("py") {
            continue;
        }
        let out = Command::new(env!("CARGO_BIN_EXE_p38"))
            .args([
                "run",
                "--json",
                "--config",
                r#"{"price": 101, "symbol": "TSLA"}"#,
            ])
            .arg(&path)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{}: {e}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert_eq!(v["status"], "succeeded", "{}: {v}", path.display());
        assert!(out.status.success());
        ran += 1;
    }
    assert!(ran >= 3, "found {ran} examples");
}

//! Gives the crate a build id: a hash of its sources. The `p38` binary and
//! the small `p38-init` program installed beside it each carry the id of
//! the shim they were built with, so `p38` uses `p38-init` only when both
//! came from the same sources (a stale `p38-init` from an older build would
//! speak an older argument protocol).

use std::hash::{DefaultHasher, Hasher};
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.toml");
    let mut files = Vec::new();
    collect(Path::new("src"), &mut files);
    files.sort();
    // DefaultHasher::new() has fixed keys: the same sources give the same id.
    let mut h = DefaultHasher::new();
    h.write(env!("CARGO_PKG_VERSION").as_bytes());
    for f in files {
        h.write(f.to_string_lossy().as_bytes());
        h.write(&std::fs::read(&f).unwrap_or_default());
    }
    println!(
        "cargo:rustc-env=SANDBOX_SOURCE_ID={}-{:016x}",
        env!("CARGO_PKG_VERSION"),
        h.finish()
    );
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else {
            out.push(p);
        }
    }
}

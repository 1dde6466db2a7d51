//! `p38-init`: the sandbox's init shim on its own, installed beside `p38`.
//!
//! The shim is also `p38 __sandbox-init`, but every run execs it, and the
//! whole `p38` binary (the server, the CLI, every adapter) is large: the
//! dynamic loader's relocations and page faults of a 100 MB executable cost
//! more than a run's own start. This program links only the shim (a few
//! hundred relocations instead of tens of thousands). `p38` uses it when it
//! is beside it and was built from the same sources (see
//! `p38_sandbox::init::BUILD_ID`).

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    p38_sandbox::init::main(&args)
}

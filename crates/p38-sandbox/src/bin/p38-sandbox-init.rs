//! Stand-alone init shim, used by this crate's tests (the `p38` binary
//! embeds the same shim as `p38 __sandbox-init`).

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    p38_sandbox::init::main(&args)
}

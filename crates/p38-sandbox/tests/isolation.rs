//! What the sandboxed program must not see or do.

mod common;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;

use common::*;

const CANARY: &str = "P38_SANDBOX_TEST_CANARY";

/// Python that tries to read `path` and prints "read" or the errno name.
fn try_read(path: &str) -> String {
    format!(
        "import errno\ntry:\n    open({path:?}, 'rb').read()\n    print('read')\nexcept OSError as e:\n    print(errno.errorcode.get(e.errno, e.errno))\n"
    )
}

fn try_write(path: &str) -> String {
    format!(
        "import errno\ntry:\n    open({path:?}, 'wb').write(b'x')\n    print('wrote')\nexcept OSError as e:\n    print(errno.errorcode.get(e.errno, e.errno))\n"
    )
}

#[test]
fn etc_shadow_is_not_readable() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    // Not "permission denied", which plain file permissions give any
    // unprivileged process: the sandbox does not mount /etc at all, so
    // even the world-readable /etc/passwd is not there.
    assert_eq!(verdict(&env, &try_read("/etc/shadow")), "ENOENT");
    assert_eq!(verdict(&env, &try_read("/etc/passwd")), "ENOENT");
}

/// A world-readable secret next to the workspace, so only the sandbox (not
/// file permissions) can be what hides it.
fn plant(env: &Env, rel: &str) -> String {
    let p = env.dir.path().join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, "secret").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn sibling_workspace_is_not_readable() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    let host_path = plant(&env, "other/secret.txt");
    assert_ne!(verdict(&env, &try_read(&host_path)), "read");
    assert_ne!(
        verdict(&env, &try_read("/workspace/../other/secret.txt")),
        "read"
    );
}

#[test]
fn data_dir_is_not_readable() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    let host_path = plant(&env, "p38.db");
    assert_ne!(verdict(&env, &try_read(&host_path)), "read");
}

#[test]
fn root_home_is_not_visible() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    assert_eq!(
        verdict(&env, "import os\nprint(os.path.exists('/root'))\n"),
        "False"
    );
}

fn set_canary() {
    // SAFETY: set once, before any sandbox is spawned by this test; other
    // threads of this test binary do not read this variable.
    unsafe { std::env::set_var(CANARY, "leaked") };
}

#[test]
fn server_environment_is_not_visible() {
    if !bwrap_available() {
        return;
    }
    set_canary();
    let env = Env::new();
    let script = format!("import os\nprint({CANARY:?} in os.environ, sorted(os.environ))\n");
    let v = verdict(&env, &script);
    assert!(v.starts_with("False"), "{v}");
    assert!(!v.contains(CANARY), "{v}");
}

#[test]
fn proc_1_environ_holds_no_canary() {
    if !bwrap_available() {
        return;
    }
    set_canary();
    let env = Env::new();
    // PID 1 is the sandbox's init shim (not the host's init), and it is
    // not dumpable, so its environment cannot be read at all; whatever of
    // it could be read would not hold the canary.
    let script = format!(
        "import errno\nprint(open('/proc/1/comm').read().strip())\ntry:\n    data = open('/proc/1/environ', 'rb').read()\n    print('read', {CANARY:?}.encode() in data)\nexcept OSError as e:\n    print(errno.errorcode[e.errno])\n"
    );
    assert_eq!(verdict(&env, &script), "p38-init\nEACCES");
}

#[test]
fn writing_outside_workspace_and_tmp_fails() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    // The host's system directories are read-only mounts in the sandbox:
    // EROFS, which file permissions never give.
    for path in ["/usr/x", "/usr/bin/x", "/bin/x", "/lib/x"] {
        assert_eq!(verdict(&env, &try_write(path)), "EROFS", "{path}");
    }
    // Directories the sandbox does not mount are not there.
    for path in ["/etc/passwd", "/proc/x", "/home"] {
        assert_eq!(verdict(&env, &try_read(path)), "ENOENT", "{path}");
    }
    // Anything else outside the workspace and /tmp: landlock refuses.
    for path in ["/p38/x", "/x", "/etc/x"] {
        assert_eq!(verdict(&env, &try_write(path)), "EACCES", "{path}");
    }
    let name = format!("p38-isolation-{}", env.uid);
    assert_eq!(verdict(&env, &try_write("/workspace/ok")), "wrote");
    assert_eq!(verdict(&env, &try_write(&format!("/tmp/{name}"))), "wrote");
    assert!(env.workspace().join("ok").exists());
    // /tmp is the sandbox's own: the file is not in the host's /tmp.
    assert!(!std::path::Path::new("/tmp").join(&name).exists());
}

fn connect_script(port: u16) -> String {
    format!(
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=3).close()\n    print('connected')\nexcept OSError as e:\n    print('failed', e)\n"
    )
}

#[test]
fn host_loopback_is_unreachable_without_network() {
    if !bwrap_available() {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let env = Env::new();
    let v = verdict(&env, &connect_script(port));
    assert!(v.starts_with("failed"), "{v}");
}

#[test]
fn host_loopback_is_reachable_with_network() {
    if !bwrap_available() {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let env = Env::new();
    let mut req = env.request(&connect_script(port));
    req.network = true;
    let out = env.run(req);
    assert_eq!(
        text(&out.stdout.bytes).trim(),
        "connected",
        "{}",
        text(&out.stderr.bytes)
    );
}

#[test]
fn ptrace_is_denied() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    let script = r#"
import ctypes, ctypes.util
libc = ctypes.CDLL(None, use_errno=True)
rc = libc.ptrace(0, 0, None, None)  # PTRACE_TRACEME
print(rc, ctypes.get_errno())
"#;
    assert_eq!(verdict(&env, script), "-1 1"); // EPERM
}

#[test]
fn io_uring_and_the_new_mount_api_are_denied() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    // x86_64 numbers: io_uring_setup 425, open_tree 428, fsopen 430.
    let script = r#"
import ctypes, platform
libc = ctypes.CDLL(None, use_errno=True)
calls = {"x86_64": [(425, 1, 0), (428, -100, 0), (430, 0, 0)]}.get(platform.machine(), [])
out = []
for nr, a, b in calls:
    buf = ctypes.create_string_buffer(256)
    rc = libc.syscall(nr, a, buf if nr == 425 else b"tmpfs" if nr == 430 else b"/", b)
    out.append(f"{rc} {ctypes.get_errno()}")
print(";".join(out) or "skip")
"#;
    let v = verdict(&env, script);
    if v == "skip" {
        return p38_testkit::not_applicable("io_uring/mount API numbers: only checked on x86_64");
    }
    assert_eq!(v, "-1 1;-1 1;-1 1"); // EPERM each
}

#[test]
fn mount_is_denied() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    let script = r#"
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
rc = libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)
print(rc, ctypes.get_errno())
"#;
    assert_eq!(verdict(&env, script), "-1 1");
}

#[test]
fn unshare_is_denied() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    let script = r#"
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWUSER = 0x10000000
rc = libc.unshare(CLONE_NEWUSER)
print(rc, ctypes.get_errno())
"#;
    assert_eq!(verdict(&env, script), "-1 1");
}

#[test]
fn hostname_and_pid_namespace_are_private() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    let v = verdict(
        &env,
        "import os, socket\nprint(socket.gethostname(), len([p for p in os.listdir('/proc') if p.isdigit()]))\n",
    );
    let mut parts = v.split_whitespace();
    assert_eq!(parts.next(), Some("p38-sandbox"));
    let n: usize = parts.next().and_then(|s| s.parse().ok()).unwrap();
    assert!(n <= 3, "sees {n} processes");
}

#[test]
fn programs_written_to_the_workspace_cannot_be_executed() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    let script = r##"
import os, subprocess
with open("/workspace/x.sh", "w") as f:
    f.write("#!/bin/sh\necho ran\n")
os.chmod("/workspace/x.sh", 0o755)
try:
    print(subprocess.run(["/workspace/x.sh"], capture_output=True).stdout.decode().strip())
except PermissionError:
    print("denied")
"##;
    assert_eq!(verdict(&env, script), "denied"); // landlock: no execute under /workspace
}

#[test]
fn the_mount_table_and_pid_1_name_no_host_path_of_the_init_program() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    let init = std::fs::canonicalize(env!("CARGO_BIN_EXE_p38-sandbox-init")).unwrap();
    let init = init.to_str().unwrap();
    let script = "import os\n\
        print(open('/proc/self/mountinfo').read())\n\
        for p in ('/proc/1/exe', '/proc/1/cwd', '/proc/1/root'):\n    \
            try:\n        print(p, os.readlink(p))\n    \
            except OSError as e:\n        print(p, 'refused', e.errno)\n\
        try:\n    print(open('/proc/1/maps').read())\n\
        except OSError as e:\n    print('maps refused', e.errno)\n";
    let out = env.run_script(script);
    let text = text(&out.stdout.bytes);
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    assert!(text.contains(" /workspace "), "the table was read: {text}");
    let target_dir = std::path::Path::new(init)
        .parent()
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        !text.contains(target_dir),
        "host path of the init program: {text}"
    );
    assert!(!text.contains("/p38/init"), "{text}");
    assert!(
        text.contains("/proc/1/exe refused 13"),
        "PID 1 is not dumpable: {text}"
    );
    assert!(text.contains("maps refused 13"), "{text}");
}

//! How a process names itself in rows other processes read (task workers,
//! generation owners).

/// `hostname:pid`.
pub fn process_name() -> String {
    let host =
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "host".into());
    format!("{}:{}", host.trim(), std::process::id())
}

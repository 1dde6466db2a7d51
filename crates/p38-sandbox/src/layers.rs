//! Which protections a [`crate::Sandbox`] applies to every run, as found on
//! this host, so that an operator sees at start what holds and what does
//! not (e.g. memory bounded only per process when no cgroup is writable).

use std::fmt;

pub use crate::cgroup::MemoryCgroup;

/// The layers active for every run of a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layers {
    /// bubblewrap namespaces (false only with `insecure_no_sandbox`).
    pub namespaces: bool,
    /// Landlock filesystem rules (checked to bite by the start-up probe).
    pub landlock: bool,
    /// The seccomp filter (checked to bite by the start-up probe).
    pub seccomp: bool,
    /// The memory cgroup bounding the whole run; `None`: memory is bounded
    /// only per process by `RLIMIT_AS`, and memfd_create and shmget are
    /// refused.
    pub memory: Option<MemoryCgroup>,
    /// A pids cgroup limits the run's tasks (besides `RLIMIT_NPROC`).
    pub pids: bool,
}

impl fmt::Display for Layers {
    /// One line, e.g. "bubblewrap namespaces, landlock, seccomp, memory
    /// cgroup v1 (memsw), pids cgroup".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<&str> = Vec::new();
        if self.namespaces {
            parts.push("bubblewrap namespaces");
        } else {
            parts.push("NO namespaces (insecure)");
        }
        if self.landlock {
            parts.push("landlock");
        }
        if self.seccomp {
            parts.push("seccomp");
        }
        parts.push(match self.memory {
            Some(MemoryCgroup::V2) => "memory cgroup v2",
            Some(MemoryCgroup::V1 { memsw: true }) => "memory cgroup v1 (memsw)",
            Some(MemoryCgroup::V1 { memsw: false }) => "memory cgroup v1 (no swap accounting)",
            None => {
                "NO memory cgroup (memory bounded per process by RLIMIT_AS only; memfd_create and shmget refused)"
            }
        });
        if self.pids {
            parts.push("pids cgroup");
        }
        f.write_str(&parts.join(", "))
    }
}

impl Layers {
    /// A host setting that would make every run start faster, when one
    /// applies: entering a run's cgroup (a write to `cgroup.procs`) waits
    /// for an RCU grace period, several milliseconds, unless the kernel
    /// expedites grace periods. On cgroup v1 that happens ahead of the run
    /// (see launcher.rs), so only v2 runs wait. Measured in BENCHMARKS.md.
    pub fn tuning_hint(&self) -> Option<String> {
        if self.memory? != MemoryCgroup::V2 {
            return None;
        }
        let expedited = std::fs::read_to_string("/sys/kernel/rcu_expedited").ok()?;
        (expedited.trim() == "0").then(|| {
            "each run waits for an RCU grace period as it enters its cgroup (a few ms); \
             `echo 1 > /sys/kernel/rcu_expedited` (or boot with rcupdate.rcu_expedited=1) \
             removes that wait"
                .to_string()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_names_every_layer() {
        let l = Layers {
            namespaces: true,
            landlock: true,
            seccomp: true,
            memory: Some(MemoryCgroup::V1 { memsw: true }),
            pids: true,
        };
        assert_eq!(
            l.to_string(),
            "bubblewrap namespaces, landlock, seccomp, memory cgroup v1 (memsw), pids cgroup"
        );
        let none = Layers {
            memory: None,
            pids: false,
            ..l
        };
        assert!(none.to_string().contains("NO memory cgroup"), "{none}");
    }
}

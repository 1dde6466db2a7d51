//! The seccomp filter applied by the init shim: an ALLOW list of the system
//! calls CPython 3.11 and its standard library need (found by running the
//! standard library's own test suite under strace and then under this
//! filter, see `tests/kernel.rs`). Everything else fails with EPERM (not a
//! kill, so Python reports a normal `OSError` and the agent's error says
//! what was refused). A system call of a foreign architecture (i386
//! `int 0x80` or x32 numbers on x86_64) kills the process, so compat entry
//! points cannot bypass the list.
//!
//! One [`Profile`] per kind of sandboxed process: a later kind (a tool
//! gateway forwarder, a browser) gets its own variant that adds what it
//! needs, and the agent's list stays as narrow as it is.
//!
//! Among what is refused: other processes (ptrace, process_vm_*, kcmp,
//! pidfd_getfd), mounts and namespaces (mount family, the new mount API,
//! unshare, setns, clone with CLONE_NEW*), kernel attack surface agents do
//! not need (bpf, perf_event_open, keyctl, io_uring, userfaultfd,
//! modify_ldt, move_pages, AIO, POSIX message queues), `execveat` (so an fd
//! cannot be executed), and `memfd_create` without `MFD_NOEXEC_SEAL`.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Which kind of sandboxed process the filter is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    /// An agent: CPython and its standard library.
    Agent,
}

impl Profile {
    /// The name used on the init shim's command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Profile::Agent => "agent",
        }
    }

    /// Parses [`Profile::name`].
    pub(crate) fn from_name(name: &str) -> Option<Profile> {
        match name {
            "agent" => Some(Profile::Agent),
            _ => None,
        }
    }
}

/// What the filter allows beyond the profile's fixed list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Options {
    /// Whether memory that is not the process's own address space may be
    /// created: `memfd_create` (sealed against exec) and SysV `shmget`.
    /// Such memory outlives `RLIMIT_AS`; it is bounded only by a memory
    /// cgroup, so without one it is refused entirely.
    pub(crate) memory_sinks: bool,
}

/// Allowed without looking at arguments, on every architecture.
const PLAIN: &[i64] = {
    use libc::*;
    &[
        // Files and directories (landlock decides which paths).
        SYS_read,
        SYS_write,
        SYS_readv,
        SYS_writev,
        SYS_pread64,
        SYS_pwrite64,
        SYS_preadv,
        SYS_pwritev,
        SYS_preadv2,
        SYS_pwritev2,
        SYS_openat,
        SYS_close,
        SYS_close_range,
        SYS_fstat,
        SYS_newfstatat,
        SYS_statx,
        SYS_statfs,
        SYS_fstatfs,
        SYS_lseek,
        SYS_faccessat,
        SYS_faccessat2,
        SYS_getdents64,
        SYS_getcwd,
        SYS_chdir,
        SYS_fchdir,
        SYS_mkdirat,
        SYS_unlinkat,
        SYS_renameat,
        SYS_renameat2,
        SYS_linkat,
        SYS_symlinkat,
        SYS_readlinkat,
        SYS_fchmod,
        SYS_fchmodat,
        SYS_fchmodat2,
        SYS_fchown,
        SYS_fchownat,
        SYS_umask,
        SYS_utimensat,
        SYS_truncate,
        SYS_ftruncate,
        SYS_fallocate,
        SYS_fadvise64,
        SYS_readahead,
        SYS_fsync,
        SYS_fdatasync,
        SYS_flock,
        SYS_fcntl,
        SYS_ioctl,
        SYS_dup,
        SYS_dup3,
        SYS_pipe2,
        SYS_mknodat, // FIFOs (os.mkfifo); device nodes need CAP_MKNOD and mounts are nodev
        SYS_sendfile,
        SYS_copy_file_range,
        SYS_splice,
        SYS_tee,
        SYS_getxattr,
        SYS_lgetxattr,
        SYS_fgetxattr,
        SYS_listxattr,
        SYS_llistxattr,
        SYS_flistxattr,
        SYS_setxattr,
        SYS_lsetxattr,
        SYS_fsetxattr,
        SYS_removexattr,
        SYS_lremovexattr,
        SYS_fremovexattr,
        SYS_inotify_init1,
        SYS_inotify_add_watch,
        SYS_inotify_rm_watch,
        // Memory of the process itself (bounded by RLIMIT_AS).
        SYS_brk,
        SYS_mmap,
        SYS_munmap,
        SYS_mremap,
        SYS_mprotect,
        SYS_madvise,
        SYS_msync,
        SYS_mincore,
        SYS_membarrier,
        // Waiting, events, time.
        SYS_pselect6,
        SYS_ppoll,
        SYS_epoll_create1,
        SYS_epoll_ctl,
        SYS_epoll_pwait,
        SYS_epoll_pwait2,
        SYS_eventfd2,
        SYS_timerfd_create,
        SYS_timerfd_settime,
        SYS_timerfd_gettime,
        SYS_signalfd4,
        SYS_futex,
        SYS_futex_waitv,
        SYS_nanosleep,
        SYS_clock_nanosleep,
        SYS_clock_gettime,
        SYS_clock_getres,
        SYS_gettimeofday,
        SYS_getitimer,
        SYS_setitimer,
        SYS_timer_create,
        SYS_timer_settime,
        SYS_timer_gettime,
        SYS_timer_getoverrun,
        SYS_timer_delete,
        SYS_sched_yield,
        SYS_sched_getaffinity,
        SYS_sched_setaffinity,
        SYS_sched_getparam,
        SYS_sched_getscheduler,
        SYS_sched_get_priority_max,
        SYS_sched_get_priority_min,
        SYS_sched_rr_get_interval,
        SYS_sched_getattr,
        SYS_sched_setattr,
        SYS_sched_setparam,
        SYS_sched_setscheduler, // real-time policies need CAP_SYS_NICE
        SYS_getcpu,
        SYS_getpriority,
        SYS_setpriority, // only lowers priority without CAP_SYS_NICE
        // Signals (the PID namespace holds only the sandbox's processes).
        SYS_rt_sigaction,
        SYS_rt_sigprocmask,
        SYS_rt_sigreturn,
        SYS_restart_syscall,
        SYS_rt_sigpending,
        SYS_rt_sigtimedwait,
        SYS_rt_sigsuspend,
        SYS_rt_sigqueueinfo,
        SYS_rt_tgsigqueueinfo,
        SYS_sigaltstack,
        SYS_kill,
        SYS_tkill,
        SYS_tgkill,
        SYS_pidfd_open,
        SYS_pidfd_send_signal,
        // Processes and threads (clone is filtered below).
        SYS_execve,
        SYS_exit,
        SYS_exit_group,
        SYS_wait4,
        SYS_waitid,
        SYS_set_tid_address,
        SYS_set_robust_list,
        SYS_get_robust_list,
        SYS_rseq,
        SYS_prctl,
        SYS_getpid,
        SYS_gettid,
        SYS_getppid,
        SYS_getuid,
        SYS_geteuid,
        SYS_getgid,
        SYS_getegid,
        SYS_getgroups,
        SYS_getresuid,
        SYS_getresgid,
        SYS_getpgid,
        SYS_setpgid,
        SYS_getsid,
        SYS_setsid,
        SYS_capget,
        // Without capabilities these only move between the ids the process
        // already has (all the sandbox uid), as daemonizing code does.
        SYS_setuid,
        SYS_setgid,
        SYS_setreuid,
        SYS_setregid,
        SYS_setresuid,
        SYS_setresgid,
        SYS_setgroups,
        SYS_getrlimit,
        SYS_setrlimit, // soft limits up to the hard ones, which only go down
        SYS_prlimit64,
        SYS_getrusage,
        SYS_times,
        SYS_uname,
        SYS_sysinfo,
        SYS_getrandom,
        // Sockets (socket and socketpair are filtered below; the network
        // namespace decides what can be reached).
        SYS_connect,
        SYS_accept,
        SYS_accept4,
        SYS_bind,
        SYS_listen,
        SYS_shutdown,
        SYS_sendto,
        SYS_recvfrom,
        SYS_sendmsg,
        SYS_recvmsg,
        SYS_sendmmsg,
        SYS_recvmmsg,
        SYS_getsockname,
        SYS_getpeername,
        SYS_setsockopt,
        SYS_getsockopt,
    ]
};

/// The legacy calls x86_64 still has (other architectures only have the
/// `*at` forms above).
#[cfg(target_arch = "x86_64")]
const PLAIN_X86_64: &[i64] = {
    use libc::*;
    &[
        SYS_open,
        SYS_creat,
        SYS_stat,
        SYS_lstat,
        SYS_access,
        SYS_getdents,
        SYS_mkdir,
        SYS_rmdir,
        SYS_unlink,
        SYS_rename,
        SYS_link,
        SYS_symlink,
        SYS_readlink,
        SYS_chmod,
        SYS_chown,
        SYS_lchown,
        SYS_utime,
        SYS_utimes,
        SYS_futimesat,
        SYS_mknod,
        SYS_dup2,
        SYS_pipe,
        SYS_select,
        SYS_poll,
        SYS_epoll_create,
        SYS_epoll_wait,
        SYS_eventfd,
        SYS_signalfd,
        SYS_inotify_init,
        SYS_alarm,
        SYS_pause,
        SYS_time,
        SYS_getpgrp,
        SYS_arch_prctl,
        SYS_fork,
        SYS_vfork,
    ]
};
#[cfg(not(target_arch = "x86_64"))]
const PLAIN_X86_64: &[i64] = &[];

fn cond(arg: u8, len: SeccompCmpArgLen, op: SeccompCmpOp, value: u64) -> SeccompCondition {
    SeccompCondition::new(arg, len, op, value).expect("argument index below 6")
}

fn rule(conditions: Vec<SeccompCondition>) -> SeccompRule {
    SeccompRule::new(conditions).expect("a rule with conditions")
}

/// `socket(domain, ...)` for the address families Python's standard library
/// uses: unix, IPv4, IPv6, and NETLINK_ROUTE (glibc's getaddrinfo asks the
/// kernel for the local addresses through it). AF_VSOCK, AF_PACKET, AF_ALG,
/// ... are refused.
fn socket_rules() -> Vec<SeccompRule> {
    use SeccompCmpArgLen::Dword;
    let domain = |d: i32| cond(0, Dword, SeccompCmpOp::Eq, d as u64);
    vec![
        rule(vec![domain(libc::AF_UNIX)]),
        rule(vec![domain(libc::AF_INET)]),
        rule(vec![domain(libc::AF_INET6)]),
        rule(vec![
            domain(libc::AF_NETLINK),
            cond(2, Dword, SeccompCmpOp::Eq, libc::NETLINK_ROUTE as u64),
        ]),
    ]
}

/// `clone(flags, ...)` without any CLONE_NEW* flag: threads and processes,
/// never a namespace. (CLONE_NEWTIME shares its bit with the exit signal in
/// clone's flags and only works through clone3 and unshare.)
fn clone_rules() -> Vec<SeccompRule> {
    let new_ns = (libc::CLONE_NEWNS
        | libc::CLONE_NEWCGROUP
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUSER
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET) as u64;
    // x86_64 and aarch64 both pass the flags as the first argument.
    vec![rule(vec![cond(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(new_ns),
        0,
    )])]
}

/// `memfd_create(name, flags)` only with MFD_NOEXEC_SEAL (Linux 6.3+): the
/// memory can never be made executable, so it cannot carry a program past
/// the noexec mounts. Older kernels reject the flag with EINVAL, which
/// Python reports as an ordinary error.
fn memfd_rules() -> Vec<SeccompRule> {
    const MFD_NOEXEC_SEAL: u64 = 0x0008;
    vec![rule(vec![cond(
        1,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::MaskedEq(MFD_NOEXEC_SEAL),
        MFD_NOEXEC_SEAL,
    )])]
}

/// The allow list of `profile` as seccompiler rules (an empty rule list
/// allows the call whatever its arguments).
fn allowed(profile: Profile, opts: Options) -> BTreeMap<i64, Vec<SeccompRule>> {
    match profile {
        Profile::Agent => {
            let mut m: BTreeMap<i64, Vec<SeccompRule>> = PLAIN
                .iter()
                .chain(PLAIN_X86_64)
                .map(|&n| (n, vec![]))
                .collect();
            m.insert(libc::SYS_socket, socket_rules());
            m.insert(
                libc::SYS_socketpair,
                vec![rule(vec![cond(
                    0,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::Eq,
                    libc::AF_UNIX as u64,
                )])],
            );
            m.insert(libc::SYS_clone, clone_rules());
            // clone3 passes its flags in memory, which seccomp cannot read;
            // it is answered ENOSYS by the first filter (see `programs`)
            // so glibc falls back to clone.
            m.insert(libc::SYS_clone3, vec![]);
            if opts.memory_sinks {
                m.insert(libc::SYS_memfd_create, memfd_rules());
                for n in [
                    libc::SYS_shmget,
                    libc::SYS_shmat,
                    libc::SYS_shmdt,
                    libc::SYS_shmctl,
                ] {
                    m.insert(n, vec![]);
                }
            }
            m
        }
    }
}

fn target_arch() -> Result<TargetArch, String> {
    TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| format!("seccomp is not supported on this architecture: {e}"))
}

fn compile(filter: SeccompFilter) -> Result<BpfProgram, String> {
    filter.try_into().map_err(|e: seccompiler::BackendError| {
        format!("seccomp filter could not be compiled: {e}")
    })
}

/// Compiles the filters, in the order they are installed: one that answers
/// `clone3` with ENOSYS, then the allow list (everything else EPERM; it
/// refuses `seccomp` itself, so it must come last). The kernel runs every
/// filter and takes the strictest answer: for `clone3` the allow list's
/// "allow" loses to ENOSYS, and glibc retries with the filtered clone.
pub(crate) fn programs(profile: Profile, opts: Options) -> Result<Vec<BpfProgram>, String> {
    let arch = target_arch()?;
    let built = |e: seccompiler::BackendError| format!("seccomp filter could not be built: {e}");
    let allow = SeccompFilter::new(
        allowed(profile, opts),
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch,
    )
    .map_err(built)?;
    let clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, vec![])]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(built)?;
    Ok(vec![compile(clone3)?, compile(allow)?])
}

/// Installs the filters on the calling thread (sets no_new_privs first).
pub(crate) fn apply(profile: Profile, opts: Options) -> Result<(), String> {
    for prog in programs(profile, opts)? {
        seccompiler::apply_filter(&prog)
            .map_err(|e| format!("seccomp filter could not be installed: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_compile_with_and_without_memory_sinks() {
        for memory_sinks in [true, false] {
            let progs = programs(Profile::Agent, Options { memory_sinks }).expect("filter");
            assert_eq!(progs.len(), 2);
            assert!(progs.iter().all(|p| !p.is_empty()));
        }
    }

    #[test]
    fn refused_calls_are_not_on_the_list() {
        let m = allowed(Profile::Agent, Options { memory_sinks: true });
        for n in [
            libc::SYS_ptrace,
            libc::SYS_process_vm_readv,
            libc::SYS_pidfd_getfd,
            libc::SYS_kcmp,
            libc::SYS_mount,
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_bpf,
            libc::SYS_perf_event_open,
            libc::SYS_keyctl,
            libc::SYS_io_uring_setup,
            libc::SYS_userfaultfd,
            libc::SYS_execveat,
            libc::SYS_move_pages,
        ] {
            assert!(!m.contains_key(&n), "syscall {n} must not be allowed");
        }
        let m = allowed(
            Profile::Agent,
            Options {
                memory_sinks: false,
            },
        );
        assert!(!m.contains_key(&libc::SYS_memfd_create));
        assert!(!m.contains_key(&libc::SYS_shmget));
    }

    #[test]
    fn profile_names_round_trip() {
        assert_eq!(
            Profile::from_name(Profile::Agent.name()),
            Some(Profile::Agent)
        );
        assert_eq!(Profile::from_name("chromium"), None);
    }
}

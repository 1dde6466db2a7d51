//! The seccomp filter applied by the init shim: allow everything except
//! system calls that inspect other processes, change mounts/namespaces, or
//! touch the kernel/host configuration; those fail with EPERM (not a kill,
//! so Python reports a normal OSError).

use std::collections::BTreeMap;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, SeccompRule, TargetArch};

/// The denied system calls for the build's architecture. The filter built by
/// seccompiler kills the process on any foreign architecture (e.g. i386
/// `int 0x80` on x86_64), so compat entry points cannot bypass it.
fn denied() -> Vec<i64> {
    use libc::*;
    let mut v: Vec<i64> = vec![
        SYS_ptrace,
        SYS_process_vm_readv,
        SYS_process_vm_writev,
        SYS_mount,
        SYS_umount2,
        SYS_pivot_root,
        SYS_chroot,
        SYS_swapon,
        SYS_swapoff,
        SYS_reboot,
        SYS_kexec_load,
        SYS_kexec_file_load,
        SYS_init_module,
        SYS_finit_module,
        SYS_delete_module,
        SYS_bpf,
        SYS_perf_event_open,
        SYS_keyctl,
        SYS_add_key,
        SYS_request_key,
        SYS_unshare,
        SYS_setns,
        SYS_userfaultfd,
        SYS_open_by_handle_at,
        SYS_name_to_handle_at,
        SYS_acct,
        SYS_quotactl,
        SYS_settimeofday,
        SYS_clock_settime,
        SYS_adjtimex,
        SYS_syslog,
        SYS_personality,
        SYS_lookup_dcookie,
        SYS_fanotify_init,
        // The new mount API: the same powers as mount(2) by other calls.
        SYS_open_tree,
        SYS_move_mount,
        SYS_fsopen,
        SYS_fsconfig,
        SYS_fsmount,
        SYS_fspick,
        SYS_mount_setattr,
        // io_uring: a large kernel attack surface that agents do not need,
        // and its operations are not seen by this filter.
        SYS_io_uring_setup,
        SYS_io_uring_enter,
        SYS_io_uring_register,
    ];
    #[cfg(target_arch = "x86_64")]
    {
        v.extend([SYS_iopl, SYS_ioperm]);
        // The x32 ABI shares AUDIT_ARCH_X86_64 and uses numbers with bit 30
        // set; most kernels disable it, but deny the same calls there too,
        // plus x32's own ptrace/process_vm_* numbers.
        const X32: i64 = 0x4000_0000;
        let x32: Vec<i64> = v.iter().map(|n| n | X32).collect();
        v.extend(x32);
        v.extend([521 | X32, 539 | X32, 540 | X32]);
    }
    v
}

fn target_arch() -> Result<TargetArch, String> {
    TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| format!("seccomp is not supported on this architecture: {e}"))
}

/// Compiles the filter.
pub(crate) fn program() -> Result<BpfProgram, String> {
    let rules: BTreeMap<i64, Vec<SeccompRule>> =
        denied().into_iter().map(|n| (n, vec![])).collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        target_arch()?,
    )
    .map_err(|e| format!("seccomp filter could not be built: {e}"))?;
    filter.try_into().map_err(|e: seccompiler::BackendError| {
        format!("seccomp filter could not be compiled: {e}")
    })
}

/// Installs the filter on the calling thread (sets no_new_privs first).
pub(crate) fn apply() -> Result<(), String> {
    let prog = program()?;
    seccompiler::apply_filter(&prog)
        .map_err(|e| format!("seccomp filter could not be installed: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn filter_compiles() {
        let prog = super::program().expect("filter");
        assert!(!prog.is_empty());
    }
}

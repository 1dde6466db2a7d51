//! Landlock filesystem rules applied by the init shim to itself before it
//! execs Python (landlock domains are inherited across exec and fork).

use std::path::PathBuf;

use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, Scope, path_beneath_rules,
};

/// The newest ABI this crate was tested with; newer kernel features are not
/// requested so behaviour does not change under us. Best-effort: an older
/// kernel gives a partially enforced ruleset, which is accepted; a kernel
/// without landlock gives NotEnforced, which is refused.
const TESTED_ABI: ABI = ABI::V6;

/// Paths and the access each gets. Every other path is denied.
#[derive(Debug, Default)]
pub(crate) struct Rules {
    /// Read + execute.
    pub rx: Vec<PathBuf>,
    /// Read only (no execute).
    pub ro: Vec<PathBuf>,
    /// Read + write (files and directories), no execute.
    pub rw: Vec<PathBuf>,
}

/// Restricts the calling thread (and its future children). Also scopes
/// abstract unix sockets and signals to the sandbox where the kernel can.
pub(crate) fn restrict(rules: &Rules) -> Result<(), String> {
    let abi = TESTED_ABI;
    let read = AccessFs::from_read(abi);
    let read_only = read & !AccessFs::Execute;
    let all = AccessFs::from_all(abi);
    // Writable places are not executable: a program cannot drop a binary
    // into /workspace or /tmp and run it (Python files are run by reading).
    let read_write = all & !AccessFs::Execute;
    let status = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(|r| r.create())
        // path_beneath_rules skips paths that do not exist and narrows the
        // rights to file rights for non-directories.
        .and_then(|r| r.add_rules(path_beneath_rules(&rules.rx, read)))
        .and_then(|r| r.add_rules(path_beneath_rules(&rules.ro, read_only)))
        .and_then(|r| r.add_rules(path_beneath_rules(&rules.rw, read_write)))
        .and_then(|r| r.restrict_self())
        .map_err(|e| format!("landlock could not be applied: {e}"))?;
    match status.ruleset {
        RulesetStatus::NotEnforced => Err(
            "landlock is not supported by this kernel (or disabled at boot: add landlock to the lsm= kernel parameter)"
                .to_string(),
        ),
        RulesetStatus::FullyEnforced | RulesetStatus::PartiallyEnforced => Ok(()),
    }
}

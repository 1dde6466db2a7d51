//! ## What it does
//! Flags imports of `subprocess` and `pty`, imports of `os.system`,
//! `os.popen`, `os.exec*` and `os.spawn*`, and calls of those and of the
//! built-ins `eval`, `exec`, `compile` and `__import__`. Import aliases are
//! followed (`import os as o; o.system(...)`).
//!
//! ## Why is this bad?
//! An agent is a small program that fetches, computes and notifies through
//! `ctx.tools`. Starting processes or evaluating strings as code is never
//! needed for that, hides what the agent really does from the human who
//! approves it, and is the usual first step of an escape from the sandbox.
//! The sandbox still enforces the limits; this rule makes the intent visible
//! before approval. (It cannot see through `getattr(os, "system")`; nothing
//! static can, which is why the sandbox exists.)
//!
//! ## Example
//! ```python
//! import subprocess
//! subprocess.run(["curl", url])   # use urllib.request with network declared
//! value = eval(text)              # use json.loads or ast.literal_eval
//! ```

use super::{Rule, RuleContext, alias_map, call_target, imports, line, nodes};
use crate::validate::{Finding, Stage};

/// Modules whose mere import is forbidden.
const MODULES: &[&str] = &["subprocess", "pty"];
/// Built-ins that evaluate code.
const BUILTINS: &[&str] = &["eval", "exec", "compile", "__import__"];

/// See the module documentation.
#[derive(Debug, Default, Clone, Copy)]
pub struct ForbiddenCall;

/// Whether `os.<name>` is forbidden.
fn forbidden_os(name: &str) -> bool {
    matches!(name, "system" | "popen") || name.starts_with("exec") || name.starts_with("spawn")
}

/// Whether a fully qualified call target is forbidden.
fn forbidden_target(target: &str) -> bool {
    if BUILTINS.contains(&target)
        || target
            .strip_prefix("builtins.")
            .is_some_and(|b| BUILTINS.contains(&b))
    {
        return true;
    }
    if let Some(rest) = target.strip_prefix("os.") {
        return forbidden_os(rest);
    }
    MODULES
        .iter()
        .any(|m| target.strip_prefix(m).is_some_and(|r| r.starts_with('.')))
}

impl Rule for ForbiddenCall {
    fn name(&self) -> &'static str {
        "forbidden_call"
    }

    fn check(&self, ctx: &RuleContext<'_>) -> Vec<Finding> {
        let imports = imports(ctx);
        let mut out = Vec::new();
        for i in &imports {
            let root = i.module.split('.').next().unwrap_or("");
            let what = if MODULES.contains(&root) {
                Some(format!("import of `{}`", i.module))
            } else if i.module == "os" && i.name.as_deref().is_some_and(forbidden_os) {
                Some(format!(
                    "import of `os.{}`",
                    i.name.as_deref().unwrap_or("")
                ))
            } else {
                None
            };
            if let Some(what) = what {
                out.push(Finding::error(
                    Stage::Rules,
                    i.line,
                    self.name(),
                    format!("{what}: agents may not start processes; use urllib for HTTP and ctx.tools for everything else"),
                ));
            }
        }
        let aliases = alias_map(&imports);
        for node in nodes(ctx.tree).into_iter().filter(|n| n.kind() == "call") {
            let Some(target) = call_target(&node, ctx.source, &aliases) else {
                continue;
            };
            if forbidden_target(&target) {
                out.push(Finding::error(
                    Stage::Rules,
                    line(&node),
                    self.name(),
                    format!("call of `{target}` is forbidden: agents may not start processes or evaluate code (parse data with json.loads)"),
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::rules::check_sample;

    #[test]
    fn flags_processes_and_eval() {
        let bad = "import os\nimport subprocess as sp\nfrom os import system\n\n\ndef run(ctx):\n    os.system('ls')\n    sp.run(['ls'])\n    return eval('1')\n";
        let f = check_sample(&ForbiddenCall, bad, false);
        let lines: Vec<_> = f.iter().map(|f| f.line.unwrap()).collect();
        assert_eq!(lines, vec![2, 3, 7, 8, 9], "{f:#?}");
        let aliased = "import os as o\n\n\ndef run(ctx):\n    return o.execv('/bin/sh', [])\n";
        assert_eq!(check_sample(&ForbiddenCall, aliased, false).len(), 1);
    }

    #[test]
    fn passes_clean_code() {
        let good = "import json\nimport os.path\nimport re\n\n\ndef run(ctx):\n    # never eval(x) here\n    p = re.compile('a+')\n    return json.loads('[1]') + [os.path.join('a', 'b'), p.pattern, 'eval(1)']\n";
        assert!(check_sample(&ForbiddenCall, good, false).is_empty());
    }
}

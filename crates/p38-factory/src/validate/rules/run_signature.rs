//! ## What it does
//! Checks that the module defines, at top level, a plain (not `async`)
//! `def run(ctx)` taking exactly one positional parameter (a type
//! annotation or a default is fine; `*args`, `**kwargs` or keyword-only
//! parameters are not).
//!
//! ## Why is this bad?
//! The runner loads the module and calls `run(ctx)` once, synchronously. A
//! missing or nested `run` fails every run; an `async def run` returns a
//! coroutine that is not JSON-serialisable; extra required parameters raise
//! `TypeError`.
//!
//! ## Example
//! ```python
//! async def run(ctx, symbol):   # use: def run(ctx):
//!     ...
//! ```

use super::{Rule, RuleContext, line, text};
use crate::validate::{Finding, Stage};

/// See the module documentation.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunSignature;

impl Rule for RunSignature {
    fn name(&self) -> &'static str {
        "run_signature"
    }

    fn check(&self, ctx: &RuleContext<'_>) -> Vec<Finding> {
        let root = ctx.tree.root_node();
        let mut cursor = root.walk();
        let defs: Vec<_> = root
            .named_children(&mut cursor)
            .filter_map(|n| match n.kind() {
                "function_definition" => Some(n),
                "decorated_definition" => n
                    .child_by_field_name("definition")
                    .filter(|d| d.kind() == "function_definition"),
                _ => None,
            })
            .filter(|d| {
                d.child_by_field_name("name")
                    .is_some_and(|n| text(&n, ctx.source) == "run")
            })
            .collect();
        let Some(def) = defs.last() else {
            return vec![Finding::error(
                Stage::Rules,
                None,
                self.name(),
                "the module must define a top-level function `def run(ctx):`",
            )];
        };
        let mut problems = Vec::new();
        let mut c = def.walk();
        if def.children(&mut c).any(|n| n.kind() == "async") {
            problems.push("`run` must be a plain `def`, not `async def`".to_string());
        }
        if let Some(params) = def.child_by_field_name("parameters") {
            let mut c = params.walk();
            let mut positional = 0;
            for p in params.named_children(&mut c) {
                match p.kind() {
                    "identifier"
                    | "typed_parameter"
                    | "default_parameter"
                    | "typed_default_parameter" => positional += 1,
                    "positional_separator" | "comment" => {}
                    other => problems.push(format!(
                        "`run` must take only `ctx`, found a {} parameter `{}`",
                        other.replace('_', " "),
                        text(&p, ctx.source)
                    )),
                }
            }
            if positional != 1 {
                problems.push(format!(
                    "`run` must take exactly one positional parameter (ctx), it takes {positional}"
                ));
            }
        }
        problems
            .into_iter()
            .map(|m| Finding::error(Stage::Rules, line(def), self.name(), m))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::rules::check_sample;

    #[test]
    fn flags_bad_signatures() {
        for bad in [
            "def main(ctx):\n    return 1\n",
            "def run(ctx, symbol):\n    return 1\n",
            "def run():\n    return 1\n",
            "def run(*args):\n    return 1\n",
            "async def run(ctx):\n    return 1\n",
            "class A:\n    def run(self, ctx):\n        return 1\n",
        ] {
            let f = check_sample(&RunSignature, bad, false);
            assert!(!f.is_empty(), "{bad}");
        }
    }

    #[test]
    fn passes_good_signatures() {
        for good in [
            "def run(ctx):\n    \"\"\"Run.\"\"\"\n    return 1\n",
            "def run(ctx: object) -> dict:\n    return {}\n",
            "import functools\n\n\n@functools.cache\ndef run(ctx):\n    return 1\n",
        ] {
            assert!(
                check_sample(&RunSignature, good, false).is_empty(),
                "{good}"
            );
        }
    }
}

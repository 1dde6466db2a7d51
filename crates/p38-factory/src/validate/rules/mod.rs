//! Project38's own checks, one per file in the manner of ruff's rules: each
//! file documents what the rule does and why, and holds its tests with a
//! failing and a passing sample.
//!
//! Rules read the tree-sitter tree of the code (see the syntax stage), so
//! they see imports, calls and string literals as Python does, not as text;
//! a comment mentioning `eval(` is not a call. (`trojan_source` reads the
//! text itself: a hidden character is one wherever it is.)

mod forbidden_call;
mod hardcoded_secret;
mod network_without_permission;
mod run_signature;
mod trojan_source;

use std::collections::HashMap;

use tree_sitter::{Node, Tree};

use super::Finding;

pub use forbidden_call::ForbiddenCall;
pub use hardcoded_secret::{HardcodedSecret, mask_secrets};
pub use network_without_permission::NetworkWithoutPermission;
pub use run_signature::RunSignature;
pub use trojan_source::{TrojanSource, control_name, hidden_name};

/// What a rule looks at.
pub struct RuleContext<'a> {
    /// The agent's source.
    pub source: &'a str,
    /// Its tree-sitter tree (possibly with error nodes).
    pub tree: &'a Tree,
    /// Whether the agent declared network access.
    pub network: bool,
}

/// One check.
pub trait Rule: Send + Sync {
    /// The rule's name, as it appears in findings (`forbidden_call`).
    fn name(&self) -> &'static str;
    /// The findings of the rule on `ctx`.
    fn check(&self, ctx: &RuleContext<'_>) -> Vec<Finding>;
}

/// The rules a validator runs, built once (they hold compiled regexes).
pub struct RuleSet {
    rules: Vec<Box<dyn Rule>>,
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet {
            rules: vec![
                Box::new(HardcodedSecret::default()),
                Box::new(ForbiddenCall),
                Box::new(NetworkWithoutPermission),
                Box::new(RunSignature),
                Box::new(TrojanSource),
            ],
        }
    }
}

impl RuleSet {
    /// Runs every rule; findings are sorted by line.
    pub fn check(&self, ctx: &RuleContext<'_>) -> Vec<Finding> {
        let mut out: Vec<Finding> = self.rules.iter().flat_map(|r| r.check(ctx)).collect();
        out.sort_by_key(|f| f.line.unwrap_or(0));
        out
    }

    /// The names of the rules, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.rules.iter().map(|r| r.name()).collect()
    }
}

/// Every node of the tree, in source order.
pub(crate) fn nodes(tree: &Tree) -> Vec<Node<'_>> {
    let mut out = Vec::new();
    let mut stack = vec![tree.root_node()];
    let mut cursor = tree.walk();
    while let Some(node) = stack.pop() {
        out.push(node);
        let children: Vec<Node> = node.children(&mut cursor).collect();
        stack.extend(children.into_iter().rev());
    }
    out
}

/// A node's source text.
pub(crate) fn text<'a>(node: &Node, source: &'a str) -> &'a str {
    node.utf8_text(source.as_bytes()).unwrap_or("")
}

/// A node's 1-based line.
pub(crate) fn line(node: &Node) -> Option<u32> {
    Some(node.start_position().row as u32 + 1)
}

/// One imported name: `import a.b as c` gives module `a.b`, name `None`,
/// bound `c`; `from a import b as c` gives module `a`, name `b`, bound `c`.
#[derive(Debug, Clone)]
pub(crate) struct Import {
    pub module: String,
    pub name: Option<String>,
    pub bound: String,
    pub line: Option<u32>,
}

/// Every import statement in the code, at any depth.
pub(crate) fn imports(ctx: &RuleContext<'_>) -> Vec<Import> {
    let src = ctx.source;
    let mut out = Vec::new();
    for node in nodes(ctx.tree) {
        let mut cursor = node.walk();
        match node.kind() {
            "import_statement" => {
                for n in node.children_by_field_name("name", &mut cursor) {
                    let (module, alias) = split_alias(&n, src);
                    let bound =
                        alias.unwrap_or_else(|| module.split('.').next().unwrap_or("").to_string());
                    out.push(Import {
                        module,
                        name: None,
                        bound,
                        line: line(&node),
                    });
                }
            }
            "import_from_statement" => {
                let module = node
                    .child_by_field_name("module_name")
                    .map(|m| compact(text(&m, src)))
                    .unwrap_or_default();
                for n in node.children_by_field_name("name", &mut cursor) {
                    let (name, alias) = split_alias(&n, src);
                    let bound = alias.unwrap_or_else(|| name.clone());
                    out.push(Import {
                        module: module.clone(),
                        name: Some(name),
                        bound,
                        line: line(&node),
                    });
                }
                let mut c2 = node.walk();
                if node
                    .children(&mut c2)
                    .any(|c| c.kind() == "wildcard_import")
                {
                    out.push(Import {
                        module,
                        name: Some("*".into()),
                        bound: "*".into(),
                        line: line(&node),
                    });
                }
            }
            _ => {}
        }
    }
    out
}

fn split_alias(n: &Node, src: &str) -> (String, Option<String>) {
    if n.kind() == "aliased_import" {
        let name = n
            .child_by_field_name("name")
            .map(|x| compact(text(&x, src)))
            .unwrap_or_default();
        let alias = n
            .child_by_field_name("alias")
            .map(|x| text(&x, src).to_string());
        (name, alias)
    } else {
        (compact(text(n, src)), None)
    }
}

/// Removes whitespace (`os . system` is `os.system`).
pub(crate) fn compact(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The dotted name a call targets, with import aliases resolved
/// (`import subprocess as sp; sp.run()` gives `subprocess.run`); `None` for
/// calls of computed targets (`f()()`, `x[0]()`).
pub(crate) fn call_target(
    call: &Node,
    src: &str,
    aliases: &HashMap<String, String>,
) -> Option<String> {
    let f = call.child_by_field_name("function")?;
    if !matches!(f.kind(), "identifier" | "attribute") {
        return None;
    }
    let name = compact(text(&f, src));
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
    {
        return None;
    }
    let (root, rest) = match name.split_once('.') {
        Some((r, rest)) => (r, Some(rest)),
        None => (name.as_str(), None),
    };
    let root = aliases.get(root).map(String::as_str).unwrap_or(root);
    Some(match rest {
        Some(rest) => format!("{root}.{rest}"),
        None => root.to_string(),
    })
}

/// Bound name → what it stands for, from the imports.
pub(crate) fn alias_map(imports: &[Import]) -> HashMap<String, String> {
    imports
        .iter()
        .map(|i| {
            let full = match &i.name {
                Some(n) => format!("{}.{n}", i.module),
                None if i.bound == i.module.split('.').next().unwrap_or("") => i.bound.clone(),
                None => i.module.clone(),
            };
            (i.bound.clone(), full)
        })
        .collect()
}

#[cfg(test)]
pub(crate) fn check_sample(rule: &dyn Rule, code: &str, network: bool) -> Vec<Finding> {
    let tree = super::syntax::parse(code).expect("tree-sitter parses");
    rule.check(&RuleContext {
        source: code,
        tree: &tree,
        network,
    })
}

//! The syntax stage.
//!
//! Why tree-sitter and not `python3 -c "import ast; ..."` in a subprocess:
//! the parse happens in-process in well under a millisecond, needs no Python
//! on the server, can never execute the code, and the same error-recovering
//! tree feeds Project38's rules, so a hard-coded key is still found in code
//! that does not parse. The price: tree-sitter's grammar is more lenient than
//! CPython's compiler (it accepts `return` outside a function, some invalid
//! assignment targets, and Python 2 `print x`). We flag the Python 2
//! statements here, and ruff, which runs next, reports CPython's semantic
//! syntax errors; the dry run compiles for real.

use tree_sitter::{Node, Parser, Tree};

use super::{Finding, Stage};

/// Most syntax findings reported for one piece of code; the rest are noise
/// caused by the first few.
const MAX_FINDINGS: usize = 10;

/// Parses Python source; `None` only if tree-sitter itself gave up.
pub(crate) fn parse(code: &str) -> Option<Tree> {
    let mut parser = Parser::new();
    parser
        .set_language(&tree_sitter_python::LANGUAGE.into())
        .ok()?;
    parser.parse(code, None)
}

/// The syntax findings of a parse; `what` names the piece ("test") when it
/// is not the agent itself.
pub(crate) fn findings(tree: &Option<Tree>, code: &str, what: Option<&str>) -> Vec<Finding> {
    let prefix = what
        .map(|w| format!("in the {w} code: "))
        .unwrap_or_default();
    // Line numbers of the test code would point into the wrong file.
    let line_of = |n: &Node| what.is_none().then(|| n.start_position().row as u32 + 1);
    let Some(tree) = tree else {
        return vec![Finding::error(
            Stage::Syntax,
            None,
            "syntax_error",
            format!("{prefix}the Python parser could not process the code"),
        )];
    };
    let mut out = Vec::new();
    let mut cursor = tree.walk();
    let mut stack = vec![tree.root_node()];
    while let Some(node) = stack.pop() {
        if out.len() >= MAX_FINDINGS {
            break;
        }
        if node.is_missing() {
            out.push(Finding::error(
                Stage::Syntax,
                line_of(&node),
                "missing_token",
                format!("{prefix}missing `{}`", node.kind()),
            ));
            continue;
        }
        if node.is_error() {
            out.push(Finding::error(
                Stage::Syntax,
                line_of(&node),
                "syntax_error",
                format!("{prefix}invalid syntax near `{}`", snippet(&node, code)),
            ));
            continue;
        }
        if matches!(node.kind(), "print_statement" | "exec_statement") {
            out.push(Finding::error(
                Stage::Syntax,
                line_of(&node),
                "syntax_error",
                format!(
                    "{prefix}Python 2 `{}` statement; call it as a function",
                    &node.kind()[..node.kind().len() - "_statement".len()]
                ),
            ));
            continue;
        }
        // Every node is visited: Python 2 statements are not errors to
        // tree-sitter, so `has_error` cannot prune the walk.
        // Children in reverse so that findings come out in source order.
        let children: Vec<Node> = node.children(&mut cursor).collect();
        stack.extend(children.into_iter().rev());
    }
    out
}

/// The first line of a node's text, shortened.
fn snippet(node: &Node, code: &str) -> String {
    let text = node.utf8_text(code.as_bytes()).unwrap_or("");
    let line = text.lines().next().unwrap_or("").trim();
    let mut s: String = line.chars().take(40).collect();
    if line.chars().count() > 40 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_line() {
        let code = "\"\"\"M.\"\"\"\n\n\ndef run(ctx):\n    x = (1,\n    return x\n";
        let f = findings(&parse(code), code, None);
        assert!(!f.is_empty());
        assert!(f.iter().all(|f| f.line.is_some()));
        let clean = "def run(ctx):\n    return 1\n";
        assert!(findings(&parse(clean), clean, None).is_empty());
        let py2 = "print 'x'\n";
        assert_eq!(findings(&parse(py2), py2, None)[0].line, Some(1));
    }
}

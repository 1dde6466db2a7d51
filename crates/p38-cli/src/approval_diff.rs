//! What changed since an agent's last approval, as `p38 agent approve`
//! shows it first: one entry per covered field (`approval.changes` of
//! `GET /api/agents/{id}`), code as a line diff. Everything passes through
//! [`crate::safe_text`]; secrets are names only (the API never has values).

use p38_core::approval::Approval;
use serde_json::Value;

use crate::safe_text;

/// Above this many line pairs the code diff is not computed (the whole code
/// follows on the approval screen anyway).
const MAX_DIFF_CELLS: usize = 4_000_000;

/// The diff section of the approval screen.
pub fn render(approval: &Approval) -> String {
    let changes = &approval.changes;
    let mut out = String::new();
    match approval.approved_version {
        None => {
            out.push_str("never approved: everything below is new to the approver\n");
            return out;
        }
        Some(v) if changes.is_empty() => {
            out.push_str(&format!(
                "approved version {v}; nothing the approval covers changed since\n"
            ));
            return out;
        }
        Some(v) => out.push_str(&format!(
            "changed since the approval of version {v} ({}):\n",
            changes.len()
        )),
    }
    for ch in changes {
        let field = ch.field.as_str();
        let (before, after) = (&ch.before, &ch.after);
        match field {
            "code" => {
                out.push_str("  code:\n");
                out.push_str(&code_diff(
                    before.as_str().unwrap_or(""),
                    after.as_str().unwrap_or(""),
                ));
            }
            "secrets" | "tools" | "allow_hosts" => {
                let names = |v: &Value| -> Vec<String> {
                    v.as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(String::from)
                                .collect()
                        })
                        .unwrap_or_default()
                };
                let (b, n) = (names(before), names(after));
                let added: Vec<_> = n.iter().filter(|x| !b.contains(x)).collect();
                let removed: Vec<_> = b.iter().filter(|x| !n.contains(x)).collect();
                let list = |v: &[&String]| {
                    v.iter()
                        .map(|s| safe_text::line(s))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                out.push_str(&format!("  {field}:"));
                if !added.is_empty() {
                    out.push_str(&format!(" added {}", list(&added)));
                }
                if !removed.is_empty() {
                    out.push_str(&format!(" removed {}", list(&removed)));
                }
                if added.is_empty() && removed.is_empty() {
                    out.push_str(" reordered");
                }
                out.push('\n');
            }
            _ => out.push_str(&format!(
                "  {}: {} -> {}\n",
                safe_text::line(field),
                safe_text::json_compact(before),
                safe_text::json_compact(after)
            )),
        }
    }
    out
}

/// A line diff: `-` lines removed, `+` lines added, unchanged lines left
/// out (the full code follows).
fn code_diff(before: &str, after: &str) -> String {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    let mut out = String::new();
    if a.len().saturating_mul(b.len()) > MAX_DIFF_CELLS {
        out.push_str(&format!(
            "    {} lines before, {} lines now (too long to diff; the code follows)\n",
            a.len(),
            b.len()
        ));
        return out;
    }
    // Longest common subsequence, then a walk emitting the differences.
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[at(i, j)] = if a[i] == b[j] {
                lcs[at(i + 1, j + 1)] + 1
            } else {
                lcs[at(i + 1, j)].max(lcs[at(i, j + 1)])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[at(i, j + 1)] >= lcs[at(i + 1, j)]) {
            out.push_str(&format!("    +{:>4} | {}\n", j + 1, safe_text::line(b[j])));
            j += 1;
        } else {
            out.push_str(&format!("    -{:>4} | {}\n", i + 1, safe_text::line(a[i])));
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(a: &Value) -> String {
        super::render(&serde_json::from_value(a["approval"].clone()).unwrap())
    }

    #[test]
    fn shows_each_change_escaped() {
        let a = json!({"approval": {"approved_version": 2, "changes": [
            {"field": "code", "before": "def run(ctx):\n    pass\n", "after": "def run(ctx):\n    x = 1 # \u{1b}[2K\n    pass\n"},
            {"field": "secrets", "before": ["A"], "after": ["A", "B"]},
            {"field": "config", "before": {}, "after": {"url": "https://x\u{202e}"}},
        ]}});
        let r = render(&a);
        assert!(r.contains("approval of version 2 (3)"), "{r}");
        assert!(r.contains("+   2 |     x = 1 # \\x1b[2K"), "{r}");
        assert!(!r.contains('\u{1b}') && !r.contains('\u{202e}'), "{r}");
        assert!(r.contains("secrets: added B"), "{r}");
        assert!(
            r.contains("config: {} -> {\"url\":\"https://x\\u202e\"}"),
            "{r}"
        );
    }

    #[test]
    fn never_approved_and_unchanged() {
        assert!(
            render(&json!({"approval": {"approved_version": null, "changes": []}}))
                .contains("never approved")
        );
        assert!(
            render(&json!({"approval": {"approved_version": 3, "changes": []}}))
                .contains("nothing")
        );
    }
}

//! Asking the operator before an irreversible step (approving an agent,
//! deleting one with its history).
//!
//! The rule: `--yes` goes ahead without asking; otherwise the question is
//! asked only on a terminal, and only an explicit `y` or `yes` (any case)
//! goes ahead; any other answer, an empty line and end of input refuse.
//! Without a terminal there is nobody to ask, so the CLI refuses and says
//! to pass `--yes`: `echo n | p38 agent approve x` must never approve.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::bail;

/// One step that needs the operator's yes.
pub struct Confirmation {
    /// What did not happen, when refused: "agent 3 was not approved".
    refused: String,
    /// The command to run again with `--yes`: "p38 agent approve 3 --yes".
    with_yes: String,
}

impl Confirmation {
    /// A step that, refused, did not do `refused`, and runs without asking
    /// as `with_yes`.
    pub fn new(refused: String, with_yes: String) -> Confirmation {
        Confirmation { refused, with_yes }
    }

    /// Whether the operator must be asked: not with `--yes`; yes when stdin
    /// is a terminal; without one, an error that says to pass `--yes`.
    pub fn must_ask(&self, yes: bool) -> anyhow::Result<bool> {
        if yes {
            return Ok(false);
        }
        if !std::io::stdin().is_terminal() {
            bail!(
                "{}: stdin is not a terminal, so there is nobody to ask; to go ahead without asking, pass --yes ({})",
                self.refused,
                self.with_yes
            );
        }
        Ok(true)
    }

    /// Asks `question` on the terminal; an error unless the answer is yes.
    pub fn ask(&self, question: &str) -> anyhow::Result<()> {
        eprint!("{question} [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let read = std::io::stdin().lock().read_line(&mut answer)?;
        if read == 0 {
            // End of input (Ctrl-D): move off the prompt line.
            eprintln!();
        }
        if is_yes(&answer) {
            return Ok(());
        }
        bail!("{}: the answer was not yes", self.refused)
    }
}

/// Only an explicit yes counts.
fn is_yes(answer: &str) -> bool {
    let a = answer.trim();
    a.eq_ignore_ascii_case("y") || a.eq_ignore_ascii_case("yes")
}

#[cfg(test)]
mod tests {
    use super::is_yes;

    #[test]
    fn only_an_explicit_yes_counts() {
        for a in ["y\n", "Y", "yes\r\n", "YeS", " y "] {
            assert!(is_yes(a), "{a:?}");
        }
        for a in [
            "", "\n", "n", "no", "yess", "ye", "y y", "1", "true", "\u{1b}y",
        ] {
            assert!(!is_yes(a), "{a:?}");
        }
    }
}

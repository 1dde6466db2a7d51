//! The prompts, as minijinja templates under `prompts/`, compiled into the
//! binary with `include_str!` so that a deployed server needs no files.

use minijinja::{Environment, context};

use crate::error::FactoryError;
use crate::validate::Finding;

const SYSTEM: &str = include_str!("../prompts/system.j2");
const GENERATE: &str = include_str!("../prompts/generate.j2");
const REPAIR: &str = include_str!("../prompts/repair.j2");

/// What the repair prompt feeds back.
#[derive(Debug, Clone, Copy)]
pub enum Previous<'a> {
    /// Code that parsed as an answer but failed validation.
    Code(&'a str),
    /// An answer that was not the JSON object asked for.
    RawAnswer(&'a str),
    /// An answer cut off at the token limit, as far as it got.
    Truncated(&'a str),
}

/// The three templates, parsed once.
#[derive(Debug)]
pub struct Prompts {
    env: Environment<'static>,
}

impl Prompts {
    /// Parses the built-in templates.
    pub fn new() -> Result<Self, FactoryError> {
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .build()
            .map_err(|e| FactoryError::Template(e.to_string()))?;
        env.set_syntax(syntax);
        for (name, src) in [
            ("system", SYSTEM),
            ("generate", GENERATE),
            ("repair", REPAIR),
        ] {
            env.add_template(name, src)
                .map_err(|e| FactoryError::Template(format!("{name}: {e}")))?;
        }
        Ok(Prompts { env })
    }

    fn render(&self, name: &str, ctx: minijinja::Value) -> Result<String, FactoryError> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| FactoryError::Template(format!("{name}: {e}")))
    }

    /// The system prompt: the agent contract and the answer format.
    pub fn system(&self) -> Result<String, FactoryError> {
        self.render("system", context! { tools => p38_core::agent::KNOWN_TOOLS })
    }

    /// The first user message.
    pub fn generate(&self, description: &str) -> Result<String, FactoryError> {
        self.render("generate", context! { description })
    }

    /// A repair request: the description, what came back last time, and the
    /// findings (errors first).
    pub fn repair(
        &self,
        description: &str,
        previous: Previous<'_>,
        findings: &[Finding],
    ) -> Result<String, FactoryError> {
        let mut sorted: Vec<&Finding> = findings.iter().collect();
        sorted.sort_by_key(|f| (!f.is_error(), f.line.unwrap_or(0)));
        let views: Vec<minijinja::Value> = sorted
            .into_iter()
            .map(|f| {
                let line = f.line.map_or_else(|| "-".to_string(), |l| l.to_string());
                let severity = if f.is_error() { "error" } else { "warning" };
                minijinja::Value::from_pairs([
                    ("stage", minijinja::Value::from(f.stage.as_str())),
                    ("line", minijinja::Value::from(line)),
                    ("rule", minijinja::Value::from(f.rule.as_str())),
                    ("message", minijinja::Value::from(f.message.as_str())),
                    ("severity", minijinja::Value::from(severity)),
                ])
            })
            .collect();
        let (parse_failure, truncated, previous) = match previous {
            Previous::Code(c) => (false, false, c),
            Previous::RawAnswer(r) => (true, false, r),
            Previous::Truncated(r) => (false, true, r),
        };
        self.render(
            "repair",
            context! { description, parse_failure, truncated, previous, findings => views },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::Stage;

    #[test]
    fn templates_render() {
        let p = Prompts::new().unwrap();
        let sys = p.system().unwrap();
        for needle in [
            "def run(ctx)",
            "ctx.state",
            "ctx.secrets",
            "browser, filesystem, telegram, webhook",
            "\"network\"",
        ] {
            assert!(sys.contains(needle), "{needle}");
        }
        let g = p.generate("צור לי סוכן").unwrap();
        assert!(g.contains("צור לי סוכן"));
        let f = [Finding::error(
            Stage::Syntax,
            Some(3),
            "syntax_error",
            "invalid syntax near `(`",
        )];
        let r = p
            .repair("watch", Previous::Code("def run(ctx):\n"), &f)
            .unwrap();
        assert!(
            r.contains("[error] syntax, line 3, syntax_error: invalid syntax near `(`"),
            "{r}"
        );
        assert!(r.contains("<previous_code>"));
        let r = p.repair("watch", Previous::RawAnswer("sure!"), &f).unwrap();
        assert!(r.contains("<previous_answer>\nsure!"), "{r}");
        let r = p
            .repair("watch", Previous::Truncated("{\"name\": \"wat"), &f)
            .unwrap();
        assert!(r.contains("was truncated"), "{r}");
        assert!(r.contains("<truncated_answer>\n{\"name\": \"wat"), "{r}");
    }
}

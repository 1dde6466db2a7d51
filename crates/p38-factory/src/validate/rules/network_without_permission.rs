//! ## What it does
//! When the agent did not declare network access, flags imports of network
//! modules: `socket`, `ssl`, `urllib` (any submodule), `http.client`,
//! `ftplib`, `smtplib`, `poplib`, `imaplib`, `telnetlib`, `xmlrpc`, and the
//! third-party `requests`, `httpx`, `aiohttp`, `urllib3` and `websockets`.
//!
//! ## Why is this bad?
//! The sandbox cuts the network of an agent that did not ask for it, so such
//! code would fail at run time. Worse, the human approving the agent reads
//! "network: no" and should be able to trust it. The fix is to declare
//! `"network": true` (and say why in the description) or to drop the import.
//! Notifications go through `ctx.tools` and need no network permission.
//!
//! ## Example
//! ```python
//! import urllib.request   # with "network": false
//! ```

use super::{Rule, RuleContext, imports};
use crate::validate::{Finding, Stage};

/// Modules (roots) that talk to the network.
const NETWORK_MODULES: &[&str] = &[
    "socket",
    "ssl",
    "urllib",
    "ftplib",
    "smtplib",
    "poplib",
    "imaplib",
    "telnetlib",
    "xmlrpc",
    "requests",
    "httpx",
    "aiohttp",
    "urllib3",
    "websockets",
    "websocket",
];

/// See the module documentation.
#[derive(Debug, Default, Clone, Copy)]
pub struct NetworkWithoutPermission;

fn is_network(module: &str, name: Option<&str>) -> bool {
    let root = module.split('.').next().unwrap_or("");
    if NETWORK_MODULES.contains(&root) {
        return true;
    }
    // `import http.client`, `from http import client`, `from http.client import ...`;
    // plain `http` (HTTPStatus) is harmless.
    module == "http.client"
        || module.starts_with("http.client.")
        || (module == "http" && name == Some("client"))
}

impl Rule for NetworkWithoutPermission {
    fn name(&self) -> &'static str {
        "network_without_permission"
    }

    fn check(&self, ctx: &RuleContext<'_>) -> Vec<Finding> {
        if ctx.network {
            return Vec::new();
        }
        imports(ctx)
            .into_iter()
            .filter(|i| is_network(&i.module, i.name.as_deref()))
            .map(|i| {
                Finding::error(
                    Stage::Rules,
                    i.line,
                    self.name(),
                    format!(
                        "import of `{}` needs network access, but the agent declared \"network\": false; declare it true or remove the import",
                        i.module
                    ),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::rules::check_sample;

    const CODE: &str = "import json\nimport urllib.request\nfrom http import client\nfrom http import HTTPStatus\n\n\ndef run(ctx):\n    return HTTPStatus.OK\n";

    #[test]
    fn flags_network_imports_without_permission() {
        let f = check_sample(&NetworkWithoutPermission, CODE, false);
        let lines: Vec<_> = f.iter().map(|f| f.line.unwrap()).collect();
        assert_eq!(lines, vec![2, 3], "{f:#?}");
        let f = check_sample(&NetworkWithoutPermission, "import requests\n", false);
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn passes_with_permission_or_without_network_imports() {
        assert!(check_sample(&NetworkWithoutPermission, CODE, true).is_empty());
        let offline = "import json\nfrom http import HTTPStatus\n\n\ndef run(ctx):\n    return json.dumps({'s': HTTPStatus.OK})\n";
        assert!(check_sample(&NetworkWithoutPermission, offline, false).is_empty());
    }
}

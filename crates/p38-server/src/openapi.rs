//! The OpenAPI document's frame: title, version, the bearer security
//! scheme and the shared error schema. Paths and schemas come from the
//! `#[utoipa::path]` annotations on the handlers; the scope each operation
//! needs comes from [`ROUTE_SCOPES`], the one table of them (README's API
//! table says the same; a test holds the three together); [`finish`] adds
//! the error responses that follow from an operation's shape, so no route
//! can forget one: 401 for every route behind the token, 400 and 413 for
//! every route with a body, 422 for every route with a body or parameters.

use p38_core::auth::Scope;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr,
    ResponseBuilder, Schema,
};

/// The least scope each operation needs: `(method, path, scopes)`, where
/// any one of `scopes` will do and each includes what is below it
/// (`viewer` < `operator` < `admin`; `author` includes `operator`'s
/// running, retrying and cancelling but never its approving or rejecting).
/// Empty: no token needed.
pub(crate) const ROUTE_SCOPES: &[(&str, &str, &[Scope])] = {
    use Scope::{Admin, Author, Operator, Viewer};
    &[
        ("get", "/", &[]),
        ("get", "/health", &[]),
        ("get", "/api/agents", &[Viewer]),
        ("post", "/api/agents", &[Author]),
        ("get", "/api/agents/{id}", &[Viewer]),
        // Operators may change `status` alone (pause, resume).
        ("patch", "/api/agents/{id}", &[Author, Operator]),
        ("delete", "/api/agents/{id}", &[Admin]),
        ("get", "/api/agents/{id}/versions", &[Viewer]),
        ("get", "/api/agents/{id}/state", &[Viewer]),
        ("post", "/api/agents/{id}/execute", &[Operator]),
        ("post", "/api/agents/{id}/approve", &[Operator]),
        ("post", "/api/agents/{id}/reject", &[Operator]),
        ("get", "/api/agents/{id}/tasks", &[Viewer]),
        ("get", "/api/generations", &[Viewer]),
        ("get", "/api/generations/{id}", &[Viewer]),
        ("post", "/api/generations/{id}/cancel", &[Operator]),
        ("get", "/api/tasks/{id}", &[Viewer]),
        ("post", "/api/tasks/{id}/retry", &[Operator]),
        ("post", "/api/tasks/{id}/cancel", &[Operator]),
        ("get", "/api/tokens", &[Admin]),
        ("post", "/api/tokens", &[Admin]),
        ("delete", "/api/tokens/{id}", &[Admin]),
        ("get", "/api/audit", &[Admin]),
        ("get", "/api/secrets", &[Admin]),
        ("put", "/api/secrets/{name}", &[Admin]),
        ("delete", "/api/secrets/{name}", &[Admin]),
        ("post", "/api/secrets/reload", &[Admin]),
    ]
};

pub(crate) fn base() -> OpenApi {
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Project38 API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Create, approve and run autonomous agents. Every route except / and /health needs `Authorization: Bearer <token>`. Errors share one shape: {\"error\":{\"code\",\"message\",\"field\"}}.",
                ))
                .build(),
        )
        .build()
}

/// What each error status means, for every route that answers it.
const ERROR_STATUSES: [(&str, &str); 8] = [
    (
        "400",
        "The body is not JSON (or not sent as application/json)",
    ),
    ("401", "No token, or one that is unknown or revoked"),
    ("403", "The token's scope does not allow this"),
    ("404", "No such object"),
    ("409", "Conflicts with the object's current state"),
    (
        "413",
        "The body, or one of its fields, is larger than the server accepts",
    ),
    ("422", "A field or parameter is wrong; `field` names it"),
    ("503", "A dependency is not available"),
];

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

/// Adds the error responses an operation can answer because of its shape,
/// and a description to every error response without one.
fn complete_errors(op: &mut Operation) {
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let body = op.request_body.is_some();
    let params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let implied = [
        ("401", secured),
        ("400", body),
        ("413", body),
        ("422", body || params),
    ];
    for (status, applies) in implied {
        if applies && !op.responses.responses.contains_key(status) {
            let text = ERROR_STATUSES
                .iter()
                .find(|(s, _)| *s == status)
                .map_or("", |(_, d)| d);
            op.responses
                .responses
                .insert(status.to_string(), error_response(text));
        }
    }
    for (status, resp) in op.responses.responses.iter_mut() {
        if let RefOr::T(r) = resp
            && r.description.is_empty()
            && let Some((_, d)) = ERROR_STATUSES.iter().find(|(s, _)| s == status)
        {
            r.description = d.to_string();
        }
    }
}

pub(crate) fn finish(mut doc: OpenApi) -> OpenApi {
    let mut components = doc
        .components
        .take()
        .unwrap_or_else(|| ComponentsBuilder::new().build());
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    // The time zones a schedule may be evaluated in, as the server knows them.
    if let Some(RefOr::T(Schema::Object(settings))) = components.schemas.get_mut("AgentSettings")
        && let Some(RefOr::T(Schema::Object(tz))) = settings.properties.get_mut("timezone")
    {
        let mut names: Vec<serde_json::Value> = p38_core::agent::time_zone_names()
            .map(serde_json::Value::from)
            .collect();
        names.push(serde_json::Value::Null);
        tz.enum_values = Some(names);
    }
    // A secret or tool is declared once (utoipa has no attribute for it).
    for body in ["CreateAgent", "UpdateAgent"] {
        if let Some(RefOr::T(Schema::Object(o))) = components.schemas.get_mut(body) {
            for list in ["secrets", "tools"] {
                if let Some(RefOr::T(Schema::Array(a))) = o.properties.get_mut(list) {
                    a.unique_items = true;
                }
            }
        }
    }
    doc.components = Some(components);
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in operations(item) {
            if let Some((_, _, scopes)) = ROUTE_SCOPES
                .iter()
                .find(|(m, p, _)| *m == method && p == path)
            {
                set_scopes(op, scopes);
            }
            // After the scopes: the 401 follows from the security set.
            complete_errors(op);
        }
    }
    doc
}

/// Each operation of a path, with its method in lower case.
fn operations(
    item: &mut utoipa::openapi::path::PathItem,
) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", item.get.as_mut()),
        ("put", item.put.as_mut()),
        ("post", item.post.as_mut()),
        ("delete", item.delete.as_mut()),
        ("patch", item.patch.as_mut()),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.map(|op| (m, op)))
}

/// The operation's security requirement: a bearer token of one of
/// `scopes` (OpenAPI 3.1 lets a non-OAuth requirement list roles), also as
/// `x-p38-scopes`; none for public routes.
fn set_scopes(op: &mut Operation, scopes: &[Scope]) {
    if scopes.is_empty() {
        op.security = None;
        return;
    }
    op.security = Some(
        scopes
            .iter()
            .map(|s| SecurityRequirement::new("bearer", [s.as_str()]))
            .collect(),
    );
    let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    let ext = ExtensionsBuilder::new()
        .add("x-p38-scopes", serde_json::json!(names))
        .build();
    match &mut op.extensions {
        Some(e) => e.merge(ext),
        None => op.extensions = Some(ext),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation of the document has its scope in the table, every
    /// entry of the table is an operation, and README's API table names
    /// the same scope for each.
    #[test]
    fn every_route_has_its_scope_in_the_document_and_the_readme() {
        let doc = crate::routes_and_document().1;
        let mut seen = Vec::new();
        let mut paths = doc.paths.paths.clone();
        for (path, item) in paths.iter_mut() {
            for (method, op) in operations(item) {
                let entry = ROUTE_SCOPES
                    .iter()
                    .find(|(m, p, _)| *m == method && p == path)
                    .unwrap_or_else(|| panic!("{method} {path} has no scope in ROUTE_SCOPES"));
                seen.push((method, path.clone()));
                let want: Vec<Vec<String>> = entry
                    .2
                    .iter()
                    .map(|s| vec![s.as_str().to_string()])
                    .collect();
                let got: Vec<Vec<String>> = serde_json::to_value(&op.security)
                    .unwrap()
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|r| serde_json::from_value(r["bearer"].clone()).unwrap_or_default())
                    .collect();
                assert_eq!(got, want, "{method} {path}");
            }
        }
        for (m, p, _) in ROUTE_SCOPES {
            assert!(
                seen.iter().any(|(sm, sp)| sm == m && sp == p),
                "ROUTE_SCOPES names {m} {p}, which the API does not have"
            );
        }
        let readme = include_str!("../../../README.md");
        let table = readme_scopes(readme);
        for (m, p, scopes) in ROUTE_SCOPES {
            let want = scopes.first().map(|s| s.as_str()).unwrap_or("none");
            let got = table
                .iter()
                .find(|(tm, tp, _)| tm == m && tp == p)
                .unwrap_or_else(|| panic!("README's API table has no row for {m} {p}"));
            assert_eq!(got.2, want, "README's scope of {m} {p}");
        }
    }

    /// A change's values are any JSON (a string of code, a list of
    /// secrets, an object of config, a boolean): the schema must not narrow
    /// them to one type.
    #[test]
    fn approval_changes_take_any_value() {
        let doc = crate::openapi_document();
        let change = &doc["components"]["schemas"]["FieldChange"]["properties"];
        for side in ["before", "after"] {
            assert!(change[side].is_object(), "{change}");
            assert!(
                change[side].get("type").is_none(),
                "{side}: {}",
                change[side]
            );
        }
        let approval = &doc["components"]["schemas"]["Approval"];
        assert!(approval.is_object(), "no Approval schema");
    }

    /// `(method, path, scope)` of each row of README's API table: a first
    /// cell like `` `GET/POST /api/tokens, DELETE /api/tokens/{id}` ``.
    fn readme_scopes(readme: &str) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for line in readme.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = line.split(" | ").collect();
            if cells.len() < 2 {
                continue;
            }
            let scope = cells[1].split_whitespace().next().unwrap_or("").to_string();
            for route in cells[0].trim_start_matches("| ").split(", ") {
                let route = route.trim_matches('`');
                let Some((methods, path)) = route.split_once(' ') else {
                    continue;
                };
                for m in methods.split('/') {
                    out.push((m.to_lowercase(), path.to_string(), scope.clone()));
                }
            }
        }
        out
    }
}

//! The OpenAPI document's frame: title, version, the bearer security
//! scheme and the shared error schema. Paths and schemas come from the
//! `#[utoipa::path]` annotations on the handlers; [`finish`] adds the error
//! responses that follow from an operation's shape, so no route can forget
//! one: 401 for every route behind the token, 400 and 413 for every route
//! with a body, 422 for every route with a body or parameters.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr,
    ResponseBuilder, Schema,
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
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            complete_errors(op);
        }
    }
    doc
}

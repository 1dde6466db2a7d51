//! The OpenAPI document's frame: title, version, the bearer security
//! scheme and the shared error schema. Paths and schemas come from the
//! `#[utoipa::path]` annotations on the handlers.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder};

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

pub(crate) fn finish(mut doc: OpenApi) -> OpenApi {
    let components = doc
        .components
        .take()
        .unwrap_or_else(|| ComponentsBuilder::new().build());
    let mut components = components;
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    doc.components = Some(components);
    doc
}

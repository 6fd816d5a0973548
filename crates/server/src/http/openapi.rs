//! The OpenAPI 3.1 document: generated from the handlers' annotations, then completed with
//! the problem+json answers every operation can give, so that clients see the error shape
//! of each route without each handler repeating it.

use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    Content, OpenApi as Doc, Ref, RefOr, Response, ResponseBuilder, path::Operation,
};

use super::error::{PROBLEM_JSON, Problem};
use crate::error::FieldError;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "SheetGPT API",
        description = "Conversations with language models that become typed, versioned tables.\n\n\
Authenticate with `Authorization: Bearer <token>`, where the token is an access token from \
`POST /api/v1/auth/login` or an API key (`sgk_…`). Every error is `application/problem+json` \
(RFC 9457) with a stable `code`; validation errors list each invalid field in `errors`. \
Lists take `limit` and `cursor` and answer `{items, next_cursor}`.",
        license(name = "MIT OR Apache-2.0"),
    ),
    security(("bearer" = [])),
    tags(
        (name = "auth", description = "Accounts, sign-in, tokens and sessions"),
        (name = "api-keys", description = "API keys for scripts"),
        (name = "conversations", description = "Conversations with models, streamed replies, usage"),
        (name = "tables", description = "Typed, versioned tables"),
        (name = "schemas", description = "Target schema presets for tables in replies"),
        (name = "operations", description = "Health, readiness and metrics"),
    ),
    components(schemas(Problem, FieldError)),
)]
struct ApiDoc;

pub fn base() -> Doc {
    ApiDoc::openapi()
}

/// Adds the bearer scheme and the shared problem responses to every operation.
pub fn finish(mut doc: Doc) -> Doc {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("An access token (JWT) or an API key (sgk_…)"))
                .build(),
        ),
    );
    let problem: RefOr<Response> = ResponseBuilder::new()
        .description("Problem details (RFC 9457)")
        .content(
            PROBLEM_JSON,
            Content::new(Some(Ref::from_schema_name("Problem"))),
        )
        .build()
        .into();
    components.responses.insert("Problem".to_owned(), problem);

    for item in doc.paths.paths.values_mut() {
        let ops = [
            item.get.as_mut(),
            item.put.as_mut(),
            item.post.as_mut(),
            item.delete.as_mut(),
            item.patch.as_mut(),
        ];
        for op in ops.into_iter().flatten() {
            add_problem_responses(op);
        }
    }
    doc
}

fn add_problem_responses(op: &mut Operation) {
    let public = op.security.as_ref().is_some_and(|reqs| {
        reqs.iter()
            .any(|r| serde_json::to_value(r).is_ok_and(|v| v == serde_json::json!({})))
    });
    let has_body = op.request_body.is_some();
    let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let mut codes = vec![
        ("400", "Malformed request"),
        (
            "429",
            "Too many requests (rate limit or quota; see Retry-After)",
        ),
        ("500", "Internal error"),
    ];
    if !public {
        codes.push(("401", "Missing, invalid or expired credentials"));
        codes.push(("403", "Not allowed (e.g. read-only API key on a write)"));
    }
    if has_body {
        codes.push(("413", "Body too large"));
        codes.push(("415", "Body is not JSON"));
        codes.push(("422", "Invalid fields"));
    }
    if has_params {
        codes.push(("404", "No such resource (or not yours)"));
        codes.push(("422", "Invalid query parameters"));
    }
    // Any request whose path, query or body carries U+0000: `nul-character`.
    codes.push((
        "422",
        "Invalid input, e.g. a U+0000 (NUL) character anywhere",
    ));
    for (code, description) in codes {
        op.responses
            .responses
            .entry(code.to_owned())
            .or_insert_with(|| {
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        PROBLEM_JSON,
                        Content::new(Some(Ref::from_schema_name("Problem"))),
                    )
                    .build()
                    .into()
            });
    }
}

//! The service error (`crate::error::Error`) answered as RFC 9457 `application/problem+json`:
//! its status code, problem body and headers are decided here, and nowhere else.
//!
//! What the user sees is a stable `code`, a title and a sentence; what went wrong inside
//! (database errors, I/O, panics) goes to the log with its cause chain and never into a
//! response.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{Error, FieldError};

pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem details document (RFC 9457).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the kind of problem; resolve it against the API's address.
    #[serde(rename = "type")]
    #[schema(example = "/problems/validation-failed")]
    pub kind: String,
    #[schema(example = "Validation failed")]
    pub title: String,
    #[schema(example = 422)]
    pub status: u16,
    #[schema(example = "The request has 1 invalid field.")]
    pub detail: String,
    /// Machine-readable code, the last part of `type`.
    #[schema(example = "validation-failed")]
    pub code: String,
    /// For validation problems: every invalid field with what is wrong with it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Gone { .. } => StatusCode::GONE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::QuotaExceeded {
                retry_after_secs, ..
            } => {
                if retry_after_secs.is_some() {
                    StatusCode::TOO_MANY_REQUESTS
                } else {
                    StatusCode::FORBIDDEN
                }
            }
            Self::Unavailable(_) | Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::Gateway { timeout, .. } => {
                if *timeout {
                    StatusCode::GATEWAY_TIMEOUT
                } else {
                    StatusCode::BAD_GATEWAY
                }
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem body of this error (also sent as a WebSocket `problem` event).
    pub fn problem(&self) -> Problem {
        let status = self.status();
        let (code, detail, errors): (&str, String, Vec<FieldError>) = match self {
            Self::Validation(errors) => (
                "validation-failed",
                match errors.len() {
                    1 => "The request has 1 invalid field.".to_owned(),
                    n => format!("The request has {n} invalid fields."),
                },
                errors.clone(),
            ),
            Self::BadRequest { code, detail }
            | Self::Unauthorized { code, detail }
            | Self::Forbidden { code, detail }
            | Self::Conflict { code, detail }
            | Self::Gone { code, detail } => (code, detail.clone(), Vec::new()),
            Self::NotFound(what) => ("not-found", format!("The {what} does not exist."), vec![]),
            Self::Unprocessable {
                code,
                detail,
                errors,
            } => (code, detail.clone(), errors.clone()),
            Self::PayloadTooLarge { detail } => ("payload-too-large", detail.clone(), vec![]),
            Self::UnsupportedMediaType { detail } => {
                ("unsupported-media-type", detail.clone(), vec![])
            }
            Self::TooManyRequests { detail, .. } => ("too-many-requests", detail.clone(), vec![]),
            Self::QuotaExceeded { detail, .. } => ("quota-exceeded", detail.clone(), vec![]),
            Self::Gateway { timeout, detail } => (
                if *timeout {
                    "model-timeout"
                } else {
                    "model-unavailable"
                },
                detail.clone(),
                vec![],
            ),
            Self::Busy => (
                "database-busy",
                "The database is busy with another write (a large change or import); nothing \
                 was changed: try again in a few seconds."
                    .to_owned(),
                vec![],
            ),
            Self::Unavailable(_) => (
                "unavailable",
                "The service cannot answer right now; try again shortly.".to_owned(),
                vec![],
            ),
            Self::Internal(_) => (
                "internal",
                "Something went wrong on our side; it has been logged.".to_owned(),
                vec![],
            ),
        };
        Problem::new(status, code, detail, errors)
    }
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: String, errors: Vec<FieldError>) -> Self {
        Self {
            kind: format!("/problems/{code}"),
            title: title_for(status, code),
            status: status.as_u16(),
            detail,
            code: code.to_owned(),
            errors,
        }
    }

    /// The problem for a bare status code (unknown route, wrong method, timeouts…).
    pub fn for_status(status: StatusCode) -> Self {
        let (code, detail) = match status {
            StatusCode::NOT_FOUND => ("not-found", "No resource exists at this address."),
            StatusCode::METHOD_NOT_ALLOWED => (
                "method-not-allowed",
                "This address does not accept that method; see the Allow header.",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => (
                "payload-too-large",
                "The request body is larger than this server accepts.",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "unsupported-media-type",
                "The request body has a content type this address does not accept.",
            ),
            StatusCode::REQUEST_TIMEOUT => ("request-timeout", "The request took too long."),
            StatusCode::SERVICE_UNAVAILABLE => (
                "unavailable",
                "The service could not answer in time; try again shortly.",
            ),
            StatusCode::UNAUTHORIZED => ("unauthorized", "Authentication is required."),
            StatusCode::FORBIDDEN => ("forbidden", "You may not do this."),
            StatusCode::TOO_MANY_REQUESTS => ("too-many-requests", "Too many requests."),
            s if s.is_server_error() => (
                "internal",
                "Something went wrong on our side; it has been logged.",
            ),
            _ => ("bad-request", "The request could not be understood."),
        };
        Self::new(status, code, detail.to_owned(), Vec::new())
    }

    pub fn into_response_with(self, status: StatusCode) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}

fn title_for(status: StatusCode, code: &str) -> String {
    match code {
        "validation-failed" => "Validation failed".to_owned(),
        _ => status.canonical_reason().unwrap_or("Error").to_owned(),
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(err) => {
                tracing::error!(error = ?err, "internal error");
            }
            Self::Unavailable(reason) => tracing::warn!(%reason, "service unavailable"),
            Self::Busy => tracing::warn!("database busy past its timeout"),
            _ => {}
        }
        let status = self.status();
        let mut response = self.problem().into_response_with(status);
        match &self {
            Self::Unauthorized { .. } => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"sheetgpt\""),
                );
            }
            Self::TooManyRequests {
                retry_after_secs, ..
            }
            | Self::QuotaExceeded {
                retry_after_secs: Some(retry_after_secs),
                ..
            } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            Self::Busy => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(5u64));
            }
            _ => {}
        }
        response
    }
}

impl From<JsonRejection> for Error {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::UnsupportedMediaType {
                detail: "Send the body as JSON with `Content-Type: application/json`.".to_owned(),
            },
            JsonRejection::JsonSyntaxError(err) => Self::bad_request(
                "malformed-json",
                format!("The body is not valid JSON: {}", serde_source(&err)),
            ),
            JsonRejection::JsonDataError(err) => {
                // serde says which field and why ("missing field `email`", "invalid type ...
                // at line 1 column 12"); that is the user's own input, safe to echo.
                Self::Validation(vec![FieldError::new("body", serde_source(&err))])
            }
            JsonRejection::BytesRejection(err) => {
                if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Self::PayloadTooLarge {
                        detail: "The request body is larger than this server accepts.".to_owned(),
                    }
                } else {
                    Self::bad_request("unreadable-body", "The request body could not be read.")
                }
            }
            other => Self::bad_request("bad-request", other.body_text()),
        }
    }
}

impl From<PathRejection> for Error {
    fn from(rejection: PathRejection) -> Self {
        // An id that does not parse names nothing that exists.
        tracing::debug!(%rejection, "path rejected");
        Self::NotFound("resource")
    }
}

impl From<QueryRejection> for Error {
    fn from(rejection: QueryRejection) -> Self {
        Self::Validation(vec![FieldError::new("query", rejection.body_text())])
    }
}

/// The innermost message of an error chain (serde's own words, without axum's prefix).
fn serde_source(err: &dyn std::error::Error) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

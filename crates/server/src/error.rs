//! The one error of the services: what went wrong, in the service's own terms.
//!
//! Services and storage adapters return it; the HTTP layer (`http::error`) turns it into an
//! RFC 9457 problem with a status code in one place, the CLI prints it, the chat task and the
//! job workers record its sentence. Nothing here knows about HTTP.

use utoipa::ToSchema;

/// One invalid field of a request.
#[derive(Clone, Debug, serde::Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field (`email`, `scopes[1]`).
    #[schema(example = "password")]
    pub field: String,
    #[schema(example = "must be at least 10 characters long")]
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("{detail}")]
    Unauthorized { code: &'static str, detail: String },
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A well-formed request the server cannot carry out on this data (422 with its own code).
    #[error("{detail}")]
    Unprocessable {
        code: &'static str,
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// The resource existed and is gone for good (an export file past its retention).
    #[error("{detail}")]
    Gone { code: &'static str, detail: String },
    #[error("{detail}")]
    PayloadTooLarge { detail: String },
    #[error("{detail}")]
    UnsupportedMediaType { detail: String },
    /// A quota is used up: a daily one resets after `retry_after_secs` (429 with
    /// `Retry-After`), a total one does not (403).
    #[error("{detail}")]
    QuotaExceeded {
        retry_after_secs: Option<u64>,
        detail: String,
    },
    #[error("too many requests")]
    TooManyRequests {
        retry_after_secs: u64,
        detail: String,
    },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// The database stayed locked by another write past its busy timeout: 503 with
    /// `Retry-After`, nothing written.
    #[error("database busy")]
    Busy,
    /// An outside service (a model provider, Google) failed or, with `timeout`, did not
    /// answer in time; `detail` is safe to show.
    #[error("{detail}")]
    Gateway { timeout: bool, detail: String },
    /// Anything the user cannot fix. The cause is logged, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Unauthorized {
            code,
            detail: detail.into(),
        }
    }

    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Forbidden {
            code,
            detail: detail.into(),
        }
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            detail: detail.into(),
        }
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }
}

impl From<sea_orm::DbErr> for Error {
    fn from(err: sea_orm::DbErr) -> Self {
        if crate::db::is_busy(&err) {
            // Another write held the database past the busy timeout (SQLite's one writer, a
            // long change or import): not the user's fault, and it passes.
            return Self::Busy;
        }
        Self::Internal(anyhow::Error::new(err))
    }
}

/// `or_not_found("table")` on a lookup that found nothing.
pub trait OrNotFound<T> {
    fn or_not_found(self, what: &'static str) -> Result<T, Error>;
}

impl<T> OrNotFound<T> for Option<T> {
    fn or_not_found(self, what: &'static str) -> Result<T, Error> {
        self.ok_or(Error::NotFound(what))
    }
}

//! Extractors that turn a request into domain input or a problem+json answer.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{Error, FieldError};

/// A JSON body that is parsed, then validated with `garde`; every invalid field is reported.
pub struct ValidatedJson<T>(pub T);

impl<T, S> FromRequest<S> for ValidatedJson<T>
where
    T: DeserializeOwned + garde::Validate<Context = ()>,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (value, bytes) = read_json::<T, S>(req, state).await?;
        // Every body is an object: serde would also read a struct from an array of its fields
        // in order (`[null, null]`), which no client means.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(Error::Validation(vec![FieldError::new(
                "body",
                "must be a JSON object",
            )]));
        }
        if let Err(report) = value.validate() {
            let errors = report
                .iter()
                .map(|(path, error)| {
                    let field = path.to_string();
                    FieldError::new(
                        if field.is_empty() {
                            "body".to_owned()
                        } else {
                            field
                        },
                        error.message(),
                    )
                })
                .collect();
            return Err(Error::Validation(errors));
        }
        Ok(Self(value))
    }
}

/// Reads a JSON body: the bytes (within the body limit), refused if they hold a U+0000
/// (`http::nul`), then parsed. Every JSON extractor goes through here.
pub async fn read_json<T, S>(req: Request, state: &S) -> Result<(T, axum::body::Bytes), Error>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    let (parts, body) = req.into_parts();
    let headers = parts.headers.clone();
    let bytes = axum::body::Bytes::from_request(Request::from_parts(parts, body), state)
        .await
        .map_err(|e| Error::from(axum::extract::rejection::JsonRejection::from(e)))?;
    // A number serde_json would round (`0.1000000000000000055`, 24-digit ids) is read as the
    // string of its digits: a cell keeps what the client wrote, and a numeric field refuses it.
    let bytes = match sheetgpt_core::exact::json_numbers_as_written(&bytes) {
        std::borrow::Cow::Borrowed(_) => bytes,
        std::borrow::Cow::Owned(rewritten) => axum::body::Bytes::from(rewritten),
    };
    let mut again = Request::new(axum::body::Body::from(bytes.clone()));
    *again.headers_mut() = headers;
    // The content type is checked first (415 before 422), by axum's own extractor.
    let axum::Json(value) = match axum::Json::<T>::from_request(again, state).await {
        Ok(json) => {
            super::nul::check_json(&bytes)?;
            json
        }
        Err(rejection) => {
            if !matches!(
                rejection,
                axum::extract::rejection::JsonRejection::MissingJsonContentType(_)
            ) {
                super::nul::check_json(&bytes)?;
            }
            return Err(rejection.into());
        }
    };
    Ok((value, bytes))
}

/// A path parameter whose parse failure is a 404 problem, not axum's plain-text 400.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// A query string whose parse failure is a 422 problem.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

//! Exports: templates, the file writer pipeline, export jobs and their workers.

pub mod jobs;
pub mod render;
pub mod templates;
pub mod worker;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// Streams an open file as an attachment.
pub fn file_response(file: std::fs::File, content_type: &'static str, file_name: &str) -> Response {
    let length = file.metadata().map(|m| m.len()).ok();
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
    let mut response = axum::body::Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(len) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    response
}

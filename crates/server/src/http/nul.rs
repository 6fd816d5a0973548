//! U+0000 (NUL) is refused at the edge, with 422 `nul-character` naming the field.
//!
//! PostgreSQL `text` and `jsonb` cannot hold it: stored there it is an error (a 500 for the
//! request, or for every later sort or filter of a table whose JSON rows carry `\u0000`),
//! while SQLite keeps it. Stripping it would change the user's text without telling them, so
//! both databases refuse it the same way, before anything is read or written: in the path and
//! query of every request ([`refuse_in_uri`], a middleware), in JSON bodies (the extractors in
//! `http::extract`), in WebSocket frames and in the text fields of uploads. (Bytes inside
//! uploaded files are the import readers'.)

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::{Error, FieldError};

const MESSAGE: &str = "contains the character U+0000 (NUL), which cannot be stored; remove it";

/// The 422 for a NUL in `field`.
pub fn refused(field: impl Into<String>) -> Error {
    Error::Unprocessable {
        code: "nul-character",
        detail: "The request contains the character U+0000 (NUL), which SheetGPT does not store."
            .to_owned(),
        errors: vec![FieldError::new(field, MESSAGE)],
    }
}

/// Refuses a text field (a multipart field, a header value read as text) holding a NUL.
pub fn check_text(field: &str, text: &str) -> Result<(), Error> {
    if text.contains('\0') {
        return Err(refused(field));
    }
    Ok(())
}

/// Refuses a JSON document that holds a NUL in any string or key, naming where.
pub fn check_json(bytes: &[u8]) -> Result<(), Error> {
    if !json_has_nul(bytes) {
        return Ok(());
    }
    // Only on the way to a refusal: parse to find the field.
    let field = serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| path_of_nul(&v, String::new()))
        .unwrap_or_else(|| "body".to_owned());
    Err(refused(field))
}

/// A `\u0000` escape outside an escaped backslash, or a raw NUL byte. JSON has backslashes
/// only inside strings, so no tokenizing is needed beyond skipping each escape whole.
fn json_has_nul(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            0 => return true,
            b'\\' => {
                if bytes.get(i + 1) == Some(&b'u') && bytes.get(i + 2..i + 6) == Some(b"0000") {
                    return true;
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    false
}

/// The JSON path (`rows[1].label`) of the first string or key holding a NUL.
fn path_of_nul(value: &Value, here: String) -> Option<String> {
    match value {
        Value::String(s) if s.contains('\0') => Some(root_or(here)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| path_of_nul(v, format!("{here}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let path = if here.is_empty() {
                k.clone()
            } else {
                format!("{here}.{k}")
            };
            if k.contains('\0') {
                return Some(path.replace('\0', "\u{fffd}"));
            }
            path_of_nul(v, path)
        }),
        _ => None,
    }
}

fn root_or(path: String) -> String {
    if path.is_empty() {
        "body".to_owned()
    } else {
        path
    }
}

/// Whether percent-decoding `text` gives a NUL. `%00` is its only spelling (a URI cannot
/// carry the raw byte), and a `%` not followed by two hex digits stays itself.
fn decodes_to_nul(text: &str) -> bool {
    text.contains("%00")
}

/// The middleware: a path or query string that decodes to a NUL is refused before routing
/// reaches a handler (or the rate limit counts it). A query parameter is named when it can be.
pub async fn refuse_in_uri(req: Request, next: Next) -> Response {
    let uri = req.uri();
    if decodes_to_nul(uri.path()) {
        return refused("path").into_response();
    }
    if let Some(query) = uri.query()
        && decodes_to_nul(query)
    {
        let field = query
            .split('&')
            .find(|pair| decodes_to_nul(pair))
            .map(|pair| pair.split_once('=').map_or(pair, |(name, _)| name))
            .filter(|name| !decodes_to_nul(name) && !name.is_empty())
            .unwrap_or("query")
            .to_owned();
        return refused(field).into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(json: &str) -> Option<String> {
        match check_json(json.as_bytes()) {
            Ok(()) => None,
            Err(Error::Unprocessable { errors, .. }) => Some(errors[0].field.clone()),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_nul_escape_is_found_and_its_field_named() {
        assert_eq!(
            field_of(r#"{"email": "a\u0000b"}"#).as_deref(),
            Some("email")
        );
        assert_eq!(
            field_of(r#"{"rows": [{"a": 1}, {"label": "x\u0000"}]}"#).as_deref(),
            Some("rows[1].label")
        );
        assert_eq!(
            field_of(r#"{"ops": [{"cells": [{"value": "\u0000"}]}]}"#).as_deref(),
            Some("ops[0].cells[0].value")
        );
        assert_eq!(field_of(r#"["\u0000"]"#).as_deref(), Some("[0]"));
        assert_eq!(field_of(r#""\u0000""#).as_deref(), Some("body"));
        assert_eq!(
            field_of("{\"k\\u0000\": 1}").as_deref(),
            Some("k\u{fffd}"),
            "a key holding a NUL"
        );
        assert_eq!(
            field_of("{\"a\": \"\0\"}").as_deref(),
            Some("body"),
            "raw byte: not JSON"
        );
    }

    #[test]
    fn escaped_backslashes_and_other_escapes_are_not_a_nul() {
        assert_eq!(field_of(r#"{"path": "C:\\u0000"}"#), None);
        assert_eq!(field_of(r#"{"a": "\\\\u0000"}"#), None);
        assert_eq!(field_of(r#"{"a": "\u0001 \u00000"}"#).as_deref(), Some("a"));
        assert_eq!(field_of(r#"{"a": "\u1000 \"u0000"}"#), None);
        assert_eq!(field_of(r#"{"a": "ends with \\"}"#), None);
        assert_eq!(field_of("{\"a\": \"\\"), None, "a truncated escape");
    }

    #[test]
    fn percent_encoded_nuls_are_found_in_uris() {
        assert!(decodes_to_nul("filter=a:eq:x%00"));
        assert!(!decodes_to_nul("filter=a:eq:x%2500"));
        assert!(!decodes_to_nul("filter=a:eq:x%0"));
        assert!(decodes_to_nul("a=%%00"));
    }
}

//! The web page: plain HTML, CSS and ES modules under `static/`, compiled into the binary and
//! served at `/` and `/assets/…`. No build step and nothing from the network: `cargo run`
//! serves the page as the files are.
//!
//! Each file is answered with an `ETag` (a hash of its bytes) and `Cache-Control: no-cache`,
//! so a browser revalidates and gets `304 Not Modified` until the binary changes; text files
//! are sent gzipped to browsers that accept it (compressed once, on first request). The page
//! gets a stricter CSP than the API's: scripts and styles from this origin only, not even
//! inline styles.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest as _, Sha256};

use crate::http::error::Problem;
use crate::state::AppState;

/// Same-origin scripts, styles and connections only; no inline script or style, no frames.
/// `blob:` images are the page's own (none today, kept for pasted pictures); downloads are
/// `blob:` links, which CSP does not govern.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                            img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; \
                            manifest-src 'self'; form-action 'self'; frame-ancestors 'none'; \
                            base-uri 'none'";

macro_rules! files {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_bytes!(concat!("static/", $path)) as &[u8])),*]
    };
}

/// Every file of the page, by its path under `static/` (a test checks none is missing).
const FILES: &[(&str, &[u8])] = files![
    "index.html",
    "app.css",
    "icon.svg",
    "js/api.js",
    "js/app.js",
    "js/auth.js",
    "js/chat.js",
    "js/dom.js",
    "js/format.js",
    "js/grid.js",
    "js/screens/account.js",
    "js/screens/exports.js",
    "js/screens/keys.js",
    "js/screens/page.js",
    "js/screens/tables.js",
    "js/screens/templates.js",
    "js/screens/usage.js",
    "js/table.js",
];

struct Asset {
    bytes: &'static [u8],
    content_type: &'static str,
    prepared: OnceLock<Prepared>,
}

struct Prepared {
    etag: HeaderValue,
    /// The gzipped bytes, when they are smaller.
    gzip: Option<Vec<u8>>,
}

struct Assets(HashMap<&'static str, Asset>);

impl Assets {
    fn new() -> Self {
        Self(
            FILES
                .iter()
                .map(|(path, bytes)| {
                    (
                        *path,
                        Asset {
                            bytes,
                            content_type: content_type(path),
                            prepared: OnceLock::new(),
                        },
                    )
                })
                .collect(),
        )
    }

    fn serve(&self, path: &str, headers: &HeaderMap) -> Response {
        let Some(asset) = self.0.get(path) else {
            return Problem::for_status(StatusCode::NOT_FOUND)
                .into_response_with(StatusCode::NOT_FOUND);
        };
        let prepared = asset.prepared.get_or_init(|| prepare(asset));
        let mut response = if headers
            .get(header::IF_NONE_MATCH)
            .is_some_and(|v| etag_matches(v, &prepared.etag))
        {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            match &prepared.gzip {
                Some(gzip) if accepts_gzip(headers) => {
                    let mut r = gzip.clone().into_response();
                    r.headers_mut()
                        .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                    r
                }
                _ => asset.bytes.into_response(),
            }
        };
        let out = response.headers_mut();
        out.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        out.insert(header::ETAG, prepared.etag.clone());
        out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        out.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        out.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_CSP),
        );
        response
    }
}

fn prepare(asset: &Asset) -> Prepared {
    let hash = Sha256::digest(asset.bytes);
    let hex: String = hash.iter().take(10).map(|b| format!("{b:02x}")).collect();
    let etag = HeaderValue::from_str(&format!("\"{hex}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
    let gzip = (!asset.content_type.starts_with("image/png"))
        .then(|| {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            encoder.write_all(asset.bytes).ok()?;
            encoder.finish().ok()
        })
        .flatten()
        .filter(|gz| gz.len() < asset.bytes.len());
    Prepared { etag, gzip }
}

fn etag_matches(if_none_match: &HeaderValue, etag: &HeaderValue) -> bool {
    let Ok(text) = if_none_match.to_str() else {
        return false;
    };
    let etag = etag.to_str().unwrap_or_default();
    text.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// `GET /` (the page) and `GET /assets/{path}` (its files).
pub fn router() -> Router<AppState> {
    let assets = Arc::new(Assets::new());
    let page = Arc::clone(&assets);
    Router::new()
        .route(
            "/",
            get(move |headers: HeaderMap| async move { page.serve("index.html", &headers) }),
        )
        .route(
            "/assets/{*path}",
            get(
                move |Path(path): Path<String>, headers: HeaderMap| async move {
                    // index.html is the page itself, not an asset.
                    if path == "index.html" {
                        return Problem::for_status(StatusCode::NOT_FOUND)
                            .into_response_with(StatusCode::NOT_FOUND);
                    }
                    assets.serve(&path, &headers)
                },
            ),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_under_static_is_served() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web/static");
        let mut found = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{e}")) {
                let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
                if path.is_dir() {
                    dirs.push(path);
                } else if let Ok(rel) = path.strip_prefix(&root) {
                    found.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        found.sort();
        let mut listed: Vec<String> = FILES.iter().map(|(p, _)| (*p).to_owned()).collect();
        listed.sort();
        assert_eq!(found, listed, "FILES must list every file under static/");
    }

    #[test]
    fn gzip_is_chosen_only_when_accepted() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip;q=0.8"),
        );
        assert!(accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0, br"),
        );
        assert!(!accepts_gzip(&h));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn etags_match_strong_weak_lists_and_star() {
        let tag = HeaderValue::from_static("\"abc\"");
        for v in ["\"abc\"", "W/\"abc\"", "\"x\", \"abc\"", "*"] {
            assert!(etag_matches(&HeaderValue::from_static(v), &tag), "{v}");
        }
        assert!(!etag_matches(&HeaderValue::from_static("\"abd\""), &tag));
    }
}

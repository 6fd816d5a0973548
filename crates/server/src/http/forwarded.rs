//! What a reverse proxy says about the request: the client's address (`X-Forwarded-For`),
//! the scheme (`X-Forwarded-Proto`) and the host (`X-Forwarded-Host`) the browser used.
//!
//! Only with `http.trust_forwarded_for`, and only the part the trusted proxies wrote: each
//! proxy appends to these headers, so everything to the left of what they added is whatever
//! the client sent, and taking the leftmost entry would let a client choose its own address
//! (and so its own rate limits, sign-in brake and audit trail). With `http.trusted_proxy_hops`
//! = N proxies in front of the server, the entry N from the right is the one the outermost
//! trusted proxy wrote. Several headers of one name count as one list joined by commas, in
//! order. A list shorter than N was written by trusted proxies only, so its leftmost entry is
//! taken.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

use crate::config::HttpConfig;

/// The entry of `name` that the trusted proxies wrote, if they are trusted and wrote one.
pub fn trusted_value(headers: &HeaderMap, name: &str, http: &HttpConfig) -> Option<String> {
    if !http.trust_forwarded_for {
        return None;
    }
    let entries: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let hops = usize::try_from(http.trusted_proxy_hops.max(1)).unwrap_or(1);
    let at = entries.len().saturating_sub(hops);
    entries.get(at).map(|e| (*e).to_owned())
}

/// The client's address: as the trusted proxy saw it, else the peer of the connection.
pub fn client_ip(headers: &HeaderMap, peer: Option<IpAddr>, http: &HttpConfig) -> Option<IpAddr> {
    trusted_value(headers, "x-forwarded-for", http)
        .and_then(|entry| parse_address(&entry))
        // A proxy that writes something other than an address (`unknown`, an obfuscated
        // name) leaves the connection's peer: the proxy itself, shared by all such clients,
        // which is the stricter choice.
        .or(peer)
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:443`.
fn parse_address(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .and_then(|e| e.parse().ok())
        })
}

/// The request reached the trusted proxy over TLS (the server itself speaks plain HTTP).
pub fn is_tls(headers: &HeaderMap, http: &HttpConfig) -> bool {
    trusted_value(headers, "x-forwarded-proto", http)
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

/// The host the browser asked the trusted proxy for, else the `Host` header.
pub fn host(headers: &HeaderMap, http: &HttpConfig) -> Option<String> {
    trusted_value(headers, "x-forwarded-host", http).or_else(|| {
        headers
            .get(axum::http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(|h| h.trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn config(trust: bool, hops: u32) -> HttpConfig {
        let mut http = crate::config::Config::default().http;
        http.trust_forwarded_for = trust;
        http.trusted_proxy_hops = hops;
        http
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_static(value));
        }
        h
    }

    const PEER: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)));

    #[test]
    fn the_entry_the_nearest_proxy_appended_is_the_client() {
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 192.0.2.7")]);
        assert_eq!(
            client_ip(&h, PEER, &config(true, 1)),
            "192.0.2.7".parse().ok()
        );
    }

    #[test]
    fn with_two_hops_the_second_from_the_right_is_the_client() {
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "192.0.2.7, 10.1.1.1"),
        ]);
        assert_eq!(
            client_ip(&h, PEER, &config(true, 2)),
            "192.0.2.7".parse().ok()
        );
        // Fewer entries than hops: all were written by trusted proxies.
        let h = headers(&[("x-forwarded-for", "192.0.2.8")]);
        assert_eq!(
            client_ip(&h, PEER, &config(true, 2)),
            "192.0.2.8".parse().ok()
        );
    }

    #[test]
    fn untrusted_headers_are_ignored_and_odd_entries_fall_back_to_the_peer() {
        let h = headers(&[("x-forwarded-for", "192.0.2.7")]);
        assert_eq!(client_ip(&h, PEER, &config(false, 1)), PEER);
        let h = headers(&[("x-forwarded-for", "192.0.2.7, unknown")]);
        assert_eq!(client_ip(&h, PEER, &config(true, 1)), PEER);
        let h = headers(&[("x-forwarded-for", "[2001:db8::1]:443")]);
        assert_eq!(
            client_ip(&h, PEER, &config(true, 1)),
            "2001:db8::1".parse().ok()
        );
        let h = headers(&[("x-forwarded-for", "192.0.2.9:5555")]);
        assert_eq!(
            client_ip(&h, PEER, &config(true, 1)),
            "192.0.2.9".parse().ok()
        );
    }

    #[test]
    fn proto_and_host_follow_the_same_rule() {
        let h = headers(&[
            ("x-forwarded-proto", "https, http"),
            ("x-forwarded-host", "evil.example, app.example"),
            ("host", "internal:8080"),
        ]);
        assert!(!is_tls(&h, &config(true, 1)), "the nearest proxy says http");
        assert!(is_tls(&h, &config(true, 2)));
        assert_eq!(host(&h, &config(true, 1)).as_deref(), Some("app.example"));
        assert_eq!(
            host(&h, &config(false, 1)).as_deref(),
            Some("internal:8080")
        );
        assert!(!is_tls(&h, &config(false, 1)));
    }
}

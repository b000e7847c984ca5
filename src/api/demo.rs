//! `GET /demo`: a small page to try the service in a browser (served when `DEMO_PAGE` allows).
//!
//! One HTML document with its stylesheet and script inlined, all embedded in the binary at
//! compile time (`demo/index.html`, `demo/demo.css`, `demo/demo.js`): no build step and nothing
//! fetched from elsewhere. The Content-Security-Policy allows exactly the embedded script and
//! stylesheet (by their SHA-256) and requests to this origin only, so the page cannot load
//! anything external even by mistake.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use sha2::{Digest, Sha256};

const TEMPLATE: &str = include_str!("demo/index.html");
const STYLE: &str = include_str!("demo/demo.css");
const SCRIPT: &str = include_str!("demo/demo.js");

/// The assembled page and the policy that allows exactly its inline script and style.
struct Page {
    html: String,
    csp: String,
}

static PAGE: LazyLock<Page> = LazyLock::new(|| Page {
    html: TEMPLATE
        .replacen("{{style}}", STYLE, 1)
        .replacen("{{script}}", SCRIPT, 1),
    csp: format!(
        "default-src 'none'; script-src '{}'; style-src '{}'; connect-src 'self'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        sha256_source(SCRIPT),
        sha256_source(STYLE)
    ),
});

/// The demo page (`text/html; charset=utf-8`).
pub async fn page() -> Response {
    let page = &*PAGE;
    (
        [
            (header::CONTENT_SECURITY_POLICY, page.csp.as_str()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Html(page.html.as_str()),
    )
        .into_response()
}

/// A CSP hash source, `sha256-<base64>`, for an inline element's exact text.
fn sha256_source(text: &str) -> String {
    format!("sha256-{}", base64(&Sha256::digest(text.as_bytes())))
}

/// Standard base64 with padding (RFC 4648), as CSP hash sources are written.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (raw, encoded) in cases {
            assert_eq!(base64(raw.as_bytes()), encoded, "{raw:?}");
        }
        // The CSP example hash of `alert('Hello, world.');` (CSP Level 3, section 2.3.1).
        assert_eq!(
            sha256_source("alert('Hello, world.');"),
            "sha256-qznLcsROx4GACP2dm0UCKCzCG+HiZ1guq6ZZDob/Tng="
        );
    }

    #[test]
    fn the_page_is_one_self_contained_document() {
        let html = &PAGE.html;
        assert!(!html.contains("{{"), "a placeholder was left in the page");
        assert!(html.contains(STYLE) && html.contains(SCRIPT));
        // Nothing loaded from anywhere: no external script, stylesheet, font or image.
        for needle in [
            "http://",
            "https://",
            "//cdn",
            "<script src",
            "<link",
            "@import",
            "url(",
            "<img",
        ] {
            assert!(!html.contains(needle), "the page contains {needle:?}");
        }
        // Exactly one inline script and one inline style, the ones the policy hashes.
        assert_eq!(html.matches("<script>").count(), 1);
        assert_eq!(html.matches("<style>").count(), 1);
        assert!(PAGE.csp.contains(&sha256_source(SCRIPT)));
        assert!(PAGE.csp.contains(&sha256_source(STYLE)));
        assert!(PAGE.csp.starts_with("default-src 'none';"));
    }

    #[test]
    fn the_script_calls_only_relative_routes() {
        // Relative URLs keep the page working under an API Gateway stage prefix (`/prod/demo`).
        for route in ["\"classify-conversation\"", "\"feedback\"", "\"./\""] {
            assert!(SCRIPT.contains(route), "{route} missing from demo.js");
        }
        assert!(!SCRIPT.contains("fetch(\"/"), "an absolute URL in demo.js");
    }

    #[tokio::test]
    async fn page_is_html_with_its_policy() {
        let response = page().await;
        assert_eq!(response.status(), 200);
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], PAGE.csp.as_str());
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, PAGE.html.as_bytes());
    }
}

//! The admin page: one HTML page, its script and style sheet, compiled into the binary so a
//! node serves it with no internet at all (no CDN, no web fonts, no build step). The page
//! asks for a token once, keeps it in the tab's session storage, and calls the API with it;
//! everything it shows comes from the API.
//!
//! Every answer of the server carries strict security headers ([`security_headers`]): a
//! content security policy that allows only this node's own scripts, styles and API (no
//! inline script), no framing, and `no-store` on API answers.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::{ApiError, Result};

/// A file of the page.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// The files gzip-compressed, made once: the page crosses slow links.
fn gzipped(index: usize) -> &'static [u8] {
    static ZIPPED: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    ZIPPED.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| offline_sync_engine::snapshot::gzip(a.body))
            .collect()
    })[index]
        .as_slice()
}

/// An [`Asset`] of `assets/admin/`, built into the binary.
macro_rules! asset {
    ($name:literal, $content_type:literal) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../assets/admin/", $name)),
        }
    };
}

/// The page and what it loads.
static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("admin.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
];

/// The policy of every answer: this node's own files and API only, nothing inline, no
/// framing, no forms posted anywhere, no plugins.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'none'; object-src 'none'; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// A strong validator of `body` (FNV-1a, 64 bits): the page changes only with the binary.
fn etag(body: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in body {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{h:016x}\"")
}

fn serve(req: &HttpRequest, name: &str) -> Result<HttpResponse> {
    let (index, asset) = ASSETS
        .iter()
        .enumerate()
        .find(|(_, a)| a.name == name)
        .ok_or_else(|| ApiError::not_found(format!("the admin page has no file {name:?}")))?;
    let tag = etag(asset.body);
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, tag))
        // Checked again each time (a 304 costs a few bytes on a slow link), so a new
        // binary's page is never mixed with an old script.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::VARY, "Accept-Encoding"));
    if fresh {
        return Ok(res.finish());
    }
    res.insert_header((header::CONTENT_TYPE, asset.content_type));
    if crate::dto::accepts_gzip(req) {
        return Ok(res
            .insert_header((header::CONTENT_ENCODING, "gzip"))
            .body(gzipped(index)));
    }
    Ok(res.body(asset.body))
}

/// `GET /admin`: the page.
pub(crate) async fn page(req: HttpRequest) -> Result<HttpResponse> {
    serve(&req, "index.html")
}

/// `GET /admin/{asset}`: a file the page loads.
pub(crate) async fn asset(req: HttpRequest, name: web::Path<String>) -> Result<HttpResponse> {
    serve(&req, &name)
}

/// Adds the security headers to every answer, errors included (a 401 from the token check
/// too): the content security policy, no framing, no sniffing, no referrer, and `no-store`
/// unless the handler chose how its answer is cached.
pub(crate) async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> std::result::Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    let fixed = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CROSS_ORIGIN_OPENER_POLICY, "same-origin"),
        (header::CROSS_ORIGIN_RESOURCE_POLICY, "same-origin"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_nothing_from_elsewhere_and_nothing_inline() {
        let html = std::str::from_utf8(ASSETS[0].body).unwrap();
        assert!(!html.contains("<script>"), "inline script");
        assert!(!html.contains(" style="), "inline style");
        let handler = html.split(" on").skip(1).find(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(handler.is_none(), "an inline event handler: on{handler:?}");
        for asset in ASSETS {
            // The SVG namespace is a name, not an address anything is fetched from.
            let text = String::from_utf8_lossy(asset.body).replace("http://www.w3.org/2000/svg", "");
            assert!(
                !text.contains("http://") && !text.contains("https://") && !text.contains("//cdn"),
                "{} names another host",
                asset.name
            );
        }
        let script = std::str::from_utf8(ASSETS[1].body).unwrap();
        assert!(
            !script.contains("innerHTML"),
            "the script builds nodes, never HTML text"
        );
        assert!(
            !script.contains("localStorage"),
            "the token is kept for the tab only"
        );
    }

    #[test]
    fn etags_follow_the_content() {
        assert_eq!(etag(b"a"), etag(b"a"));
        assert_ne!(etag(b"a"), etag(b"b"));
    }
}

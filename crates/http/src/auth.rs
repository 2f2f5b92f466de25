//! Bearer tokens: the admin token may do everything, the read token may only read. Probes,
//! metrics and the OpenAPI document need none. With no token configured at all, every
//! endpoint is open — the binaries then bind to 127.0.0.1 only and say so.

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;

use crate::error::ApiError;
use crate::routes;
use crate::state::AppState;

/// Who may call an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone: probes, metrics, the OpenAPI document.
    Public,
    /// The read or the admin token.
    Read,
    /// The admin token.
    Admin,
}

/// The configured tokens. `Debug` never shows them.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Tokens {
    pub(crate) admin: Option<String>,
    pub(crate) read: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("admin", &self.admin.as_ref().map(|_| "<redacted>"))
            .field("read", &self.read.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Compares without stopping at the first differing byte, so response times do not tell
/// how much of a guessed token was right.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Tokens {
    /// Whether any token is configured (otherwise the API is open, on loopback only).
    pub(crate) fn enabled(&self) -> bool {
        self.admin.is_some() || self.read.is_some()
    }

    /// Checks the `Authorization` header value against what `access` requires.
    pub(crate) fn check(&self, access: Access, authorization: Option<&str>) -> Result<(), ApiError> {
        if access == Access::Public || !self.enabled() {
            return Ok(());
        }
        let Some(token) = authorization
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
        else {
            return Err(ApiError::unauthorized());
        };
        let admin = self.admin.as_deref().is_some_and(|t| same(t, token));
        let read = self.read.as_deref().is_some_and(|t| same(t, token));
        match (access, admin, read) {
            (_, true, _) | (Access::Read, _, true) => Ok(()),
            (Access::Admin, false, true) => Err(ApiError::forbidden()),
            _ => Err(ApiError::unauthorized()),
        }
    }
}

/// Middleware: looks up what the matched route requires in the route table (the one source
/// the OpenAPI document is made from too) and checks the token before anything else runs.
pub(crate) async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let access = req
        .match_pattern()
        .and_then(|pattern| routes::access_of(req.method(), &pattern))
        .unwrap_or(Access::Public);
    // Without the state there is no way to know the tokens: refuse rather than let through.
    let state = req
        .app_data::<actix_web::web::Data<AppState>>()
        .ok_or_else(ApiError::internal)?;
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    state.tokens.check(access, header)?;
    req.extensions_mut().insert(access);
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens {
            admin: Some("admin-secret-token".into()),
            read: Some("read-secret-token".into()),
        }
    }

    #[test]
    fn tokens_grant_what_they_should() {
        let t = tokens();
        let code = |access, header: Option<&str>| t.check(access, header).err().map(|e| e.code());
        assert_eq!(code(Access::Public, None), None);
        assert_eq!(code(Access::Read, None), Some("unauthorized"));
        assert_eq!(code(Access::Read, Some("Bearer nope")), Some("unauthorized"));
        assert_eq!(
            code(Access::Read, Some("Basic read-secret-token")),
            Some("unauthorized")
        );
        assert_eq!(code(Access::Read, Some("Bearer read-secret-token")), None);
        assert_eq!(code(Access::Read, Some("Bearer admin-secret-token")), None);
        assert_eq!(
            code(Access::Admin, Some("Bearer read-secret-token")),
            Some("forbidden")
        );
        assert_eq!(code(Access::Admin, Some("Bearer admin-secret-token")), None);
        assert_eq!(
            code(Access::Admin, Some("Bearer admin-secret-toke")),
            Some("unauthorized")
        );
    }

    #[test]
    fn no_token_configured_opens_everything() {
        let t = Tokens::default();
        assert!(!t.enabled());
        assert!(t.check(Access::Admin, None).is_ok());
    }

    #[test]
    fn debug_hides_the_tokens() {
        let debug = format!("{:?}", tokens());
        assert!(!debug.contains("secret"), "{debug}");
    }

    #[test]
    fn comparison_needs_every_byte() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}

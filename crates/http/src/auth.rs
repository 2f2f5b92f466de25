//! Bearer tokens: the admin token may do everything, the read token may only read. Probes,
//! metrics and the OpenAPI document need none. With no token configured at all, every
//! endpoint is open — the binaries then bind to 127.0.0.1 only and say so.
//!
//! The check fails closed: it is attached to each resource the router registers from the
//! route table, so it runs for exactly the route the router chose, whatever spelling of the
//! path (percent-encoded, dot segments) led there. A method the table does not list for a
//! path needs the admin token; a path the table does not know reaches no handler at all.

use actix_web::HttpMessage;
use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;

use crate::error::ApiError;
use crate::table::Access;

/// Which token a request carried, kept in the request's extensions for handlers (the audit
/// log records it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// The admin token.
    Admin,
    /// The read-only token.
    Read,
    /// No token was needed: a public endpoint, or no token configured at all.
    Anonymous,
}

impl Role {
    /// `admin`, `read` or `anonymous`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Read => "read",
            Role::Anonymous => "anonymous",
        }
    }
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

/// Compares in constant time (`subtle`), so response times do not tell how much of a guessed
/// token was right. Only the length may differ in time, and it is no secret worth keeping.
fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Tokens {
    /// Whether any token is configured (otherwise the API is open, on loopback only).
    pub(crate) fn enabled(&self) -> bool {
        self.admin.is_some() || self.read.is_some()
    }

    /// Checks the `Authorization` header value against what `access` requires; returns the
    /// role of the token that passed.
    pub(crate) fn check(&self, access: Access, authorization: Option<&str>) -> Result<Role, ApiError> {
        if access == Access::Public || !self.enabled() {
            return Ok(Role::Anonymous);
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
            (_, true, _) => Ok(Role::Admin),
            (Access::Read, _, true) => Ok(Role::Read),
            (Access::Admin, false, true) => Err(ApiError::forbidden()),
            _ => Err(ApiError::unauthorized()),
        }
    }
}

/// What each method of one resource requires, taken from the route table when the resource
/// is registered.
#[derive(Clone, Debug, Default)]
pub(crate) struct ResourceAccess {
    methods: Vec<(Method, Access)>,
}

impl ResourceAccess {
    /// Adds what `method` requires.
    pub(crate) fn add(&mut self, method: Method, access: Access) {
        self.methods.push((method, access));
    }

    /// What `method` requires: as listed (HEAD as GET), or the admin token for a method the
    /// table does not list (it only reaches the "method not allowed" answer, but nothing
    /// unlisted is public).
    pub(crate) fn of(&self, method: &Method) -> Access {
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        self.methods
            .iter()
            .find(|(m, _)| m == method)
            .map_or(Access::Admin, |(_, a)| *a)
    }
}

/// Middleware of one resource: checks the token against what the route the router matched
/// requires, before anything else runs, and records the role for the handler. A refusal is
/// an answer, not an error, so the server's outer middleware (the security headers) still
/// sees it.
pub(crate) async fn require_token(
    tokens: std::sync::Arc<Tokens>,
    table: std::rc::Rc<ResourceAccess>,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, BoxBody>>, actix_web::Error> {
    let access = table.of(req.method());
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let role = tokens.check(access, header);
    match role {
        Ok(role) => {
            req.extensions_mut().insert(role);
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(e) => Ok(req.error_response(e).map_into_right_body()),
    }
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
        assert_eq!(
            t.check(Access::Read, Some("Bearer read-secret-token")),
            Ok(Role::Read)
        );
        assert_eq!(
            t.check(Access::Read, Some("Bearer admin-secret-token")),
            Ok(Role::Admin)
        );
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
    fn unlisted_methods_need_the_admin_token() {
        let mut table = ResourceAccess::default();
        table.add(Method::GET, Access::Public);
        assert_eq!(table.of(&Method::GET), Access::Public);
        assert_eq!(table.of(&Method::HEAD), Access::Public);
        assert_eq!(table.of(&Method::POST), Access::Admin);
        assert_eq!(ResourceAccess::default().of(&Method::GET), Access::Admin);
    }

    #[test]
    fn comparison_needs_every_byte() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}

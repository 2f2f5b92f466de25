//! The types of the route table ([`crate::routes`]): who may call an endpoint, which nodes
//! serve it, and one endpoint's entry. A leaf: the router, the token check and the OpenAPI
//! document all read these, and these read none of them.

use actix_web::Route;
use actix_web::http::Method;
use offline_sync_engine::Mode;
use serde_json::Value;

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

impl Access {
    /// `public`, `read` or `admin`, as the OpenAPI document's `x-access` says.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Read => "read",
            Access::Admin => "admin",
        }
    }
}

/// Which nodes serve an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Serves {
    Both,
    Master,
    Replica,
}

impl Serves {
    pub(crate) fn includes(self, mode: Mode) -> bool {
        matches!(
            (self, mode),
            (Serves::Both, _) | (Serves::Master, Mode::Master) | (Serves::Replica, Mode::Replica)
        )
    }
}

/// One endpoint.
pub(crate) struct Op {
    pub(crate) method: Method,
    pub(crate) path: &'static str,
    pub(crate) serves: Serves,
    pub(crate) access: Access,
    pub(crate) id: &'static str,
    pub(crate) tag: &'static str,
    pub(crate) summary: &'static str,
    /// The handler, as a route without a method.
    pub(crate) route: fn() -> Route,
    /// Parameters, request body and success responses of the OpenAPI operation.
    pub(crate) spec: fn() -> Value,
}

/// The path segment of a Strapi plural route (`/api/{plural}`): a route with it is served at
/// each plural of `SYNC_CONTENT_TYPES`.
pub(crate) const PLURAL: &str = "{plural}";

impl Op {
    /// Whether this is a Strapi plural route's operation.
    pub(crate) fn is_plural(&self) -> bool {
        self.path.contains(PLURAL)
    }
}

//! The API's errors: one type, mapped to a status code and the JSON body
//! `{"error":{"code":"...","message":"..."}}` in one place.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use offline_sync_engine::Error as EngineError;

/// Result of a handler.
pub(crate) type Result<T, E = ApiError> = std::result::Result<T, E>;

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// An error with the given status, machine-readable code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 401: no token, or not one this server knows.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a bearer token is required (Authorization: Bearer <token>)",
        )
    }

    /// 403: a read-only token on a write or admin endpoint.
    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this token is read-only; the admin token is required",
        )
    }

    /// 503: the node cannot serve this yet (its database is not connected).
    pub fn not_ready(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", message)
    }

    /// 500, with a message that reveals nothing internal.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        use StatusCode as S;
        match &e {
            EngineError::NotFound => Self::not_found("not found"),
            EngineError::AlreadyExists => {
                Self::new(S::CONFLICT, "already_exists", "the document already exists")
            }
            EngineError::Invalid { reason } => Self::new(S::BAD_REQUEST, "invalid", reason.clone()),
            EngineError::NotSynced(ct) => Self::new(
                S::NOT_FOUND,
                "content_type_not_synced",
                format!("content type {ct} is not synced by this node (SYNC_CONTENT_TYPES)"),
            ),
            EngineError::Conflict { reason } => Self::new(S::CONFLICT, "conflict", reason.clone()),
            EngineError::TooLarge { .. } => Self::new(S::PAYLOAD_TOO_LARGE, "too_large", e.to_string()),
            EngineError::Stale { .. } => Self::new(S::CONFLICT, "version_conflict", e.to_string()),
            EngineError::ResyncRequired { .. } | EngineError::CsnGap { .. } => {
                Self::new(S::SERVICE_UNAVAILABLE, "resync_required", e.to_string())
            }
            EngineError::Storage(_) if e.outcome_unknown() => {
                // Not 503: a client that tries a create again on "unavailable" would make a
                // second document if the first was kept.
                tracing::warn!(error = %e, cause = ?std::error::Error::source(&e), "write outcome unknown");
                Self::new(
                    S::INTERNAL_SERVER_ERROR,
                    "outcome_unknown",
                    "the database connection broke while the write was committing: it may have \
                     been kept; read before trying again",
                )
            }
            EngineError::Storage(_) if e.is_retryable() => {
                tracing::warn!(error = %e, cause = ?std::error::Error::source(&e), "database unavailable");
                Self::new(
                    S::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the database is unreachable",
                )
            }
            EngineError::Snapshot { .. } => {
                Self::new(S::SERVICE_UNAVAILABLE, "master_unavailable", e.to_string())
            }
            EngineError::Transport(source) if e.is_retryable() => Self::new(
                S::SERVICE_UNAVAILABLE,
                "broker_unavailable",
                format!("the broker is unreachable: {source}"),
            ),
            _ => {
                tracing::error!(error = %e, cause = ?std::error::Error::source(&e), "request failed");
                Self::internal()
            }
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            res.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        res.json(serde_json::json!({
            "error": { "code": self.code, "message": self.message }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_to_statuses() {
        let cases = [
            (EngineError::NotFound, 404, "not_found"),
            (EngineError::AlreadyExists, 409, "already_exists"),
            (EngineError::Invalid { reason: "bad".into() }, 400, "invalid"),
            (
                EngineError::Stale {
                    expected: 1,
                    current: 2,
                },
                409,
                "version_conflict",
            ),
            (
                EngineError::Conflict {
                    reason: "resolved".into(),
                },
                409,
                "conflict",
            ),
            (
                EngineError::Storage(offline_sync_storage::Error::Contended(Box::new(
                    std::io::Error::other("database is locked"),
                ))),
                503,
                "database_unavailable",
            ),
            (
                EngineError::Storage(offline_sync_storage::Error::Indeterminate(Box::new(
                    std::io::Error::other("connection reset"),
                ))),
                500,
                "outcome_unknown",
            ),
        ];
        for (e, status, code) in cases {
            let api = ApiError::from(e);
            assert_eq!((api.status_code().as_u16(), api.code()), (status, code));
        }
    }
}

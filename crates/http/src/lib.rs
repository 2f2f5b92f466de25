//! The HTTP API of offline-sync (DESIGN.md §7), on actix-web: the seed's endpoints under
//! `/api/offline-sync/` with its paths and JSON shapes (status, push, pull, queue, ships,
//! conflicts, health probes, Prometheus metrics), a document API under `/api/documents/`,
//! dead letters, and an OpenAPI 3 document made from the same route table the server
//! registers.
//!
//! Every write and admin endpoint needs `Authorization: Bearer <token>` (the admin token;
//! reads also accept the read-only token); probes, metrics and the OpenAPI document do not.
//! Errors are `{"error":{"code":"...","message":"..."}}` with the status that fits. Handlers
//! hand engine work to the tokio runtime [`serve`] was called on, where the engine's
//! database and broker connections live. [`MasterClient`] is the other side of the master's
//! snapshot endpoint: a replica's resync over HTTP.

mod admin;
mod auth;
mod client;
mod dto;
mod error;
mod metrics;
mod openapi;
mod query;
mod routes;
mod server;
mod state;
mod table;
mod webhooks;

pub use client::MasterClient;
pub use error::ApiError;
pub use metrics::describe as describe_metrics;
pub use server::{HttpConfig, MAX_BODY_BYTES, RenderMetrics, Server, serve};
pub use state::{Node, NodeSlot};
pub use webhooks::{EVENT_ID_HEADER, SIGNATURE_HEADER, Webhook, signature};

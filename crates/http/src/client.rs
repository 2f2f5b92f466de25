//! [`MasterClient`]: a replica's way to the master's state over the master's HTTP API
//! (`GET /api/offline-sync/snapshot`), for a resync when `master-updates` no longer holds
//! what the ship must read. Pages come gzip-compressed; each is one request, so a link that
//! drops half-way costs the page in flight, not the pages before it.

use std::time::Duration;

use async_trait::async_trait;
use offline_sync_engine::snapshot::{self, MAX_PAGE_BYTES};
use offline_sync_engine::{Error, PageQuery, Replica, Result, Snapshot, SnapshotSource};
use offline_sync_model::{ContentType, Csn, DocumentId, ShipId};
use serde::Deserialize;

/// Fetches pages of the master's state from its HTTP API. `Debug` never shows the token.
#[derive(Clone)]
pub struct MasterClient {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for MasterClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterClient")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl MasterClient {
    /// A client of the master's API at `base` (`http://host:port`), sending `token` (its read
    /// token) with every request; a request gives up after `timeout`.
    pub fn new(base: &str, token: Option<String>, timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .new_agent();
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            agent,
        }
    }

    fn fetch(
        &self,
        ship: &ShipId,
        after: Csn,
        from: Option<(ContentType, DocumentId)>,
        limit: u64,
    ) -> Result<(Snapshot, u64)> {
        let down = |reason: String| Error::Snapshot {
            reason,
            retryable: true,
        };
        let mut req = self
            .agent
            .get(format!("{}/api/offline-sync/snapshot", self.base))
            .query("after", after.to_string())
            .query("limit", limit.to_string())
            .query("ship", ship.as_str())
            .header("Accept-Encoding", "gzip");
        if let Some((ct, id)) = &from {
            req = req.query("from", format!("{}/{id}", ct.as_str()));
        }
        if let Some(token) = &self.token {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        let mut resp = req.call().map_err(|e| down(format!("{}: {e}", self.base)))?;
        let status = resp.status().as_u16();
        let gzip = resp
            .headers()
            .get("content-encoding")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
        let raw = resp
            .body_mut()
            .with_config()
            .limit(MAX_PAGE_BYTES)
            .read_to_vec()
            .map_err(|e| down(format!("reading a page from {}: {e}", self.base)))?;
        let wire = raw.len() as u64;
        let body = if gzip { snapshot::gunzip(&raw)? } else { raw };
        if status != 200 {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_default();
            return Err(Error::Snapshot {
                reason: format!("the master at {} answered {status}: {message}", self.base),
                // Refused (a wrong token, a bad request) stays refused until someone acts.
                retryable: status >= 500 || status == 408 || status == 429,
            });
        }
        let page: Envelope = serde_json::from_slice(&body).map_err(|e| Error::Snapshot {
            reason: format!("a page from {} is not a snapshot: {e}", self.base),
            retryable: false,
        })?;
        Ok((Snapshot::from_value(page.data)?, wire))
    }
}

#[async_trait]
impl SnapshotSource for MasterClient {
    async fn page(&self, replica: &Replica, query: PageQuery) -> Result<Option<(Snapshot, u64)>> {
        let this = self.clone();
        let ship = replica.ship().clone();
        tokio::task::spawn_blocking(move || this.fetch(&ship, query.after, query.from, query.limit))
            .await
            .map_err(|e| Error::Snapshot {
                reason: format!("the request was cancelled: {e}"),
                retryable: true,
            })?
            .map(Some)
    }
}

#[derive(Deserialize)]
struct Envelope {
    data: serde_json::Value,
}

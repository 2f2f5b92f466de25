//! [`MasterClient`]: a replica's way to the master's state over the master's HTTP API
//! (`GET /api/offline-sync/snapshot`), for a resync when `master-updates` no longer holds
//! what the ship must read. Pages come gzip-compressed; each is one request, so a link that
//! drops half-way costs the page in flight, not the pages before it.

use std::io::Read as _;
use std::time::Duration;

use async_trait::async_trait;
use offline_sync_engine::{Error, Published, Result, ShipSeq, Snapshot, SnapshotSource, StoredDoc};
use offline_sync_model::{ContentType, Csn, DocumentId, Fields, Hlc, Seq, ShipId};
use serde::Deserialize;

/// The most bytes one page may take on the link, and once decompressed (the master cuts its
/// pages at [`offline_sync_engine::MAX_SNAPSHOT_BYTES`] plus one document).
const MAX_PAGE_BYTES: u64 = 64 * 1024 * 1024;

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
        let body = if gzip {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(raw.as_slice())
                .take(MAX_PAGE_BYTES)
                .read_to_end(&mut out)
                .map_err(|e| Error::Snapshot {
                    reason: format!("a page from {} is not valid gzip: {e}", self.base),
                    retryable: true,
                })?;
            out
        } else {
            raw
        };
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
        Ok((page.data.into_snapshot()?, wire))
    }
}

#[async_trait]
impl SnapshotSource for MasterClient {
    async fn page(
        &self,
        ship: &ShipId,
        after: Csn,
        from: Option<(ContentType, DocumentId)>,
        limit: u64,
    ) -> Result<(Snapshot, u64)> {
        let this = self.clone();
        let ship = ship.clone();
        tokio::task::spawn_blocking(move || this.fetch(&ship, after, from, limit))
            .await
            .map_err(|e| Error::Snapshot {
                reason: format!("the request was cancelled: {e}"),
                retryable: true,
            })?
    }
}

#[derive(Deserialize)]
struct Envelope {
    data: Page,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    at: Csn,
    offset: i64,
    last_seq: Option<Seq>,
    #[serde(default)]
    applied: Vec<Applied>,
    #[serde(default)]
    touched: Vec<Doc>,
    #[serde(default)]
    resolved: Vec<Resolved>,
    #[serde(default)]
    total: Option<u64>,
    #[serde(default)]
    collected: Csn,
    documents: Vec<Doc>,
    next: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Resolved {
    conflict: u64,
    content_type: String,
    document_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Applied {
    seq: Seq,
    hlc: Option<Hlc>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    document_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Doc {
    content_type: String,
    document_id: String,
    fields: Fields,
    deleted: bool,
    version: Csn,
}

fn invalid(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Snapshot {
        reason: format!("a page names an invalid {what}: {e}"),
        retryable: false,
    }
}

fn key(ct: &str, id: &str) -> Result<(ContentType, DocumentId)> {
    let ct = ContentType::new(ct).map_err(|e| invalid("content type", e))?;
    let id = id.parse().map_err(|e| invalid("document id", e))?;
    Ok((ct, id))
}

impl Doc {
    fn stored(self) -> Result<StoredDoc> {
        let (content_type, id) = key(&self.content_type, &self.document_id)?;
        Ok(StoredDoc {
            content_type,
            id,
            fields: self.fields,
            deleted: self.deleted,
            version: self.version,
            updated_at_ms: 0,
        })
    }
}

impl Page {
    fn into_snapshot(self) -> Result<Snapshot> {
        let documents = self
            .documents
            .into_iter()
            .map(Doc::stored)
            .collect::<Result<Vec<_>>>()?;
        let next = match self.next {
            Some(next) => {
                let (ct, id) = next.rsplit_once('/').ok_or_else(|| invalid("next page", &next))?;
                Some(key(ct, id)?)
            }
            None => None,
        };
        Ok(Snapshot {
            at: Published {
                csn: self.at,
                next_offset: self.offset,
            },
            documents,
            next,
            last_seq: self.last_seq,
            applied: self
                .applied
                .into_iter()
                .map(|a| {
                    let document = match (a.content_type, a.document_id) {
                        (Some(ct), Some(id)) => Some(key(&ct, &id)?),
                        _ => None,
                    };
                    Ok(ShipSeq {
                        seq: a.seq,
                        hlc: a.hlc,
                        document,
                    })
                })
                .collect::<Result<_>>()?,
            touched: self.touched.into_iter().map(Doc::stored).collect::<Result<_>>()?,
            resolved: self
                .resolved
                .into_iter()
                .map(|r| key(&r.content_type, &r.document_id).map(|(ct, id)| (r.conflict, ct, id)))
                .collect::<Result<_>>()?,
            total: self.total,
            collected: self.collected,
        })
    }
}

//! Webhooks as Strapi's: every event of the node's change feed (`entry.create`,
//! `entry.update`, `entry.delete`, with Strapi's payload) is POSTed to each configured
//! receiver that wants it, signed, at least once and in feed order (so in order per
//! document).
//!
//! The queue is the change feed itself, kept in the database: a receiver's task reads on from
//! the position it last delivered, which is saved at most a second after each delivery, so a
//! restart delivers again at most a second's events. Sync never waits for a receiver: the feed
//! is written with the documents, whatever the receivers do, and is bounded by the node's
//! retention (`SYNC_LOG_RETENTION_HOURS`); events pruned before a receiver that was down got
//! them are counted as dropped. A receiver that fails (anything but a 2xx, redirects
//! included) is tried again with a growing delay, and the events behind it wait their turn.
//! Fields of `SYNC_SENSITIVE_FIELDS` are never sent.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hmac::{Hmac, Mac};
use offline_sync_engine::{FeedEvent, FeedKind};
use offline_sync_model::Sensitive;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::dto;
use crate::state::Node;

/// The header that carries `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "X-Offline-Sync-Signature";
/// The header that carries the event's id in the feed: the same event delivered twice has
/// the same id, so a receiver can drop a repeat.
pub const EVENT_ID_HEADER: &str = "X-Offline-Sync-Event-Id";
/// How long a receiver has to answer a delivery.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// The first and the longest wait before a failed delivery is tried again.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(30);
/// How often an idle receiver's task looks for new events.
const POLL: Duration = Duration::from_millis(250);
/// How long a receiver's position may lag its deliveries in the database.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// Events read a query.
const PAGE: usize = 100;

/// A receiver of the node's events. `Debug` shows only [`Webhook::label`].
#[derive(Clone)]
pub struct Webhook {
    /// Where events are POSTed.
    pub url: String,
    /// The events it receives (`entry.create`, `entry.update`, `entry.delete`): all when empty.
    pub events: BTreeSet<String>,
    /// Headers sent with each delivery.
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.label())
            .field("events", &self.events)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Webhook {
    /// Its scheme, host and path, without user information, query or fragment.
    fn endpoint(&self) -> (&str, &str, &str) {
        let (scheme, rest) = self.url.split_once("://").unwrap_or(("", &self.url));
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        (scheme, host, path)
    }

    /// Its scheme and host, and a digest of its path: safe to log and show, since a path may
    /// hold a secret (as many services' webhook URLs do) and user information or a query
    /// often does.
    pub fn label(&self) -> String {
        let (scheme, host, path) = self.endpoint();
        let digest = Sha256::digest(path.as_bytes());
        format!("{scheme}://{host}/…{}", hex(&digest[..4]))
    }

    /// The name its position is saved under: a digest of its scheme, host and path, so it
    /// survives a reordering of `SYNC_WEBHOOKS` and a new token in its query, and shows
    /// nothing of the URL.
    fn name(&self) -> String {
        let (scheme, host, path) = self.endpoint();
        let digest = Sha256::digest(format!("{scheme}://{host}{path}").as_bytes());
        hex(&digest[..12])
    }

    fn wants(&self, kind: FeedKind) -> bool {
        self.events.is_empty() || self.events.contains(&format!("entry.{}", kind.as_str()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256=` and the hex HMAC-SHA256 of `body` with `secret`: what [`SIGNATURE_HEADER`]
/// carries.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

/// Where a receiver's deliveries stand.
#[derive(Clone, Debug, Default)]
struct Delivery {
    /// The feed position delivered up to.
    position: u64,
    /// The feed's last position when last read.
    feed_last: u64,
    delivered: u64,
    failed: u64,
    dropped: u64,
    /// Failures in a row of the event in flight.
    retries: u32,
    last_status: Option<u16>,
    last_error: Option<String>,
    last_delivered_at_ms: Option<u64>,
    next_attempt_at_ms: Option<u64>,
}

#[derive(Debug)]
struct Receiver {
    hook: Webhook,
    label: String,
    delivery: Mutex<Delivery>,
}

impl Receiver {
    fn update(&self, f: impl FnOnce(&mut Delivery)) {
        f(&mut self.delivery.lock().unwrap_or_else(PoisonError::into_inner));
    }

    fn delivery(&self) -> Delivery {
        self.delivery
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn pending_gauge(&self, d: &Delivery) {
        metrics::gauge!("offline_sync_webhook_pending", "webhook" => self.label.clone())
            .set(d.feed_last.saturating_sub(d.position) as f64);
    }
}

/// The node's webhook receivers, the key their deliveries are signed with and the fields
/// never sent.
pub(crate) struct Webhooks {
    receivers: Vec<Arc<Receiver>>,
    secret: Arc<[u8]>,
    sensitive: Arc<Sensitive>,
    /// Becomes true when the server stops: the deliveries stop.
    closing: tokio::sync::watch::Receiver<bool>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("receivers", &self.receivers)
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    pub(crate) fn new(
        hooks: Vec<Webhook>,
        secret: &str,
        sensitive: Sensitive,
        closing: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        let receivers = hooks
            .into_iter()
            .map(|hook| {
                Arc::new(Receiver {
                    label: hook.label(),
                    hook,
                    delivery: Mutex::new(Delivery::default()),
                })
            })
            .collect();
        Self {
            receivers,
            secret: secret.as_bytes().into(),
            sensitive: Arc::new(sensitive),
            closing,
        }
    }

    /// Starts delivering to every receiver on the current tokio runtime. A receiver seen for
    /// the first time starts at the end of the feed (it gets what happens from now on); one
    /// seen before reads on from where it was. Call before the node applies anything, so no
    /// change comes between.
    pub(crate) async fn start(&self, node: &Node) -> offline_sync_engine::Result<()> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(DELIVERY_TIMEOUT))
            .http_status_as_error(false)
            // A redirect would turn the POST into a GET without the body (and carry the
            // headers to another host): it counts as a failure.
            .max_redirects(0)
            .build()
            .new_agent();
        for r in &self.receivers {
            let name = r.hook.name();
            let position = match node.webhook_position(&name).await? {
                Some(position) => position,
                None => {
                    let last = node.feed(u64::MAX, 1).await?.last;
                    node.save_webhook_position(&name, last).await?;
                    last
                }
            };
            r.update(|d| d.position = position);
            tracing::info!(webhook = %r.label, position, "webhook deliveries start");
            let to = Target {
                receiver: Arc::clone(r),
                agent: agent.clone(),
                secret: Arc::clone(&self.secret),
                sensitive: Arc::clone(&self.sensitive),
                name,
            };
            let (node, mut closing) = (node.clone(), self.closing.clone());
            tokio::spawn(async move {
                tokio::select! {
                    () = deliver_all(&to, &node) => {}
                    _ = closing.wait_for(|closing| *closing) => {}
                }
            });
        }
        Ok(())
    }

    /// Where each receiver's deliveries stand, as the API shows them.
    pub(crate) fn status(&self) -> Vec<Value> {
        self.receivers
            .iter()
            .map(|r| {
                let d = r.delivery();
                json!({
                    "webhook": r.label,
                    "events": r.hook.events,
                    "position": d.position,
                    "pending": d.feed_last.saturating_sub(d.position),
                    "delivered": d.delivered,
                    "failed": d.failed,
                    "dropped": d.dropped,
                    "retries": d.retries,
                    "lastStatus": d.last_status,
                    "lastError": d.last_error,
                    "lastDeliveredAt": d.last_delivered_at_ms.map(dto::timestamp),
                    "nextAttemptAt": d.next_attempt_at_ms.map(dto::timestamp),
                })
            })
            .collect()
    }
}

/// What a receiver's task delivers with.
struct Target {
    receiver: Arc<Receiver>,
    agent: ureq::Agent,
    secret: Arc<[u8]>,
    sensitive: Arc<Sensitive>,
    /// The name its position is saved under.
    name: String,
}

/// Delivers the feed to a receiver from its position on, for as long as the node runs.
async fn deliver_all(to: &Target, node: &Node) {
    let r = &to.receiver;
    let mut saved = r.delivery().position;
    let mut saved_at = tokio::time::Instant::now();
    loop {
        let mut position = r.delivery().position;
        let page = match node.feed(position, PAGE).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(webhook = %r.label, error = %e, "webhook: the change feed could not be read");
                tokio::time::sleep(MAX_RETRY).await;
                continue;
            }
        };
        if page.missed(position) {
            let lost = page.pruned_through - position;
            tracing::warn!(
                webhook = %r.label,
                lost,
                "webhook: events were pruned from the change feed before they could be delivered"
            );
            metrics::counter!("offline_sync_webhook_dropped_total", "webhook" => r.label.clone())
                .increment(lost);
            r.update(|d| d.dropped += lost);
            position = page.pruned_through;
        }
        r.update(|d| {
            d.position = position;
            d.feed_last = page.last;
            r.pending_gauge(d);
        });
        let from = position;
        for e in page.events.into_iter().filter(|e| e.seq > from) {
            let seq = e.seq;
            if r.hook.wants(e.kind) {
                deliver(to, e).await;
            }
            position = seq;
            r.update(|d| {
                d.position = seq;
                r.pending_gauge(d);
            });
            if saved_at.elapsed() >= SAVE_EVERY {
                save(node, &to.name, position).await;
                (saved, saved_at) = (position, tokio::time::Instant::now());
            }
        }
        if position != saved {
            save(node, &to.name, position).await;
            (saved, saved_at) = (position, tokio::time::Instant::now());
        }
        if position >= page.last {
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Saves a receiver's position; on failure, logs it (the events after the saved one are
/// delivered again after a restart, which at least once allows).
async fn save(node: &Node, name: &str, position: u64) {
    if let Err(e) = node.save_webhook_position(name, position).await {
        tracing::warn!(error = %e, position, "webhook: position not saved");
    }
}

/// Delivers event `e`, its sensitive fields left out, trying again with a growing delay
/// until the receiver takes it (answers 2xx).
async fn deliver(to: &Target, mut e: FeedEvent) {
    let (r, agent) = (&to.receiver, &to.agent);
    let seq = e.seq;
    let event = format!("entry.{}", e.kind.as_str());
    to.sensitive.strip(&mut e.doc.fields);
    let body = dto::feed_event(e).to_string().into_bytes();
    let signature = signature(&to.secret, &body);
    let mut wait = FIRST_RETRY;
    loop {
        let (agent, url, headers, body, signature, event) = (
            agent.clone(),
            r.hook.url.clone(),
            r.hook.headers.clone(),
            body.clone(),
            signature.clone(),
            event.clone(),
        );
        let sent = tokio::task::spawn_blocking(move || {
            let mut req = agent
                .post(&url)
                .header("Content-Type", "application/json")
                .header(SIGNATURE_HEADER, &signature)
                .header(EVENT_ID_HEADER, seq.to_string())
                .header("X-Offline-Sync-Event", &event);
            for (name, value) in &headers {
                req = req.header(name, value);
            }
            req.send(&body[..]).map(|resp| resp.status().as_u16())
        })
        .await;
        let outcome = match sent {
            Ok(Ok(status)) if (200..300).contains(&status) => Ok(status),
            Ok(Ok(status)) => Err((Some(status), format!("answered {status}"))),
            Ok(Err(e)) => Err((None, e.to_string())),
            Err(e) => Err((None, format!("delivery task failed: {e}"))),
        };
        match outcome {
            Ok(status) => {
                metrics::counter!("offline_sync_webhook_deliveries_total", "webhook" => r.label.clone(), "outcome" => "delivered")
                    .increment(1);
                r.update(|d| {
                    d.delivered += 1;
                    d.retries = 0;
                    d.last_status = Some(status);
                    d.last_error = None;
                    d.last_delivered_at_ms = Some(dto::now_ms());
                    d.next_attempt_at_ms = None;
                });
                return;
            }
            Err((status, error)) => {
                metrics::counter!("offline_sync_webhook_deliveries_total", "webhook" => r.label.clone(), "outcome" => "failed")
                    .increment(1);
                tracing::warn!(webhook = %r.label, event = seq, error = %error, retry_in = ?wait, "webhook delivery failed");
                r.update(|d| {
                    d.failed += 1;
                    d.retries += 1;
                    d.last_status = status;
                    d.last_error = Some(error);
                    d.next_attempt_at_ms = Some(dto::now_ms() + wait.as_millis() as u64);
                });
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_RETRY);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_hide_what_may_be_secret() {
        let hook = |url: &str| Webhook {
            url: url.to_owned(),
            events: BTreeSet::new(),
            headers: vec![("X-Key".into(), "k3y".into())],
        };
        let label = hook("https://user:pw@hooks.example:8443/in/s3cret?token=abc#f").label();
        assert!(label.starts_with("https://hooks.example:8443/…"), "{label}");
        assert!(
            !label.contains("s3cret") && !label.contains("abc") && !label.contains("pw"),
            "{label}"
        );
        assert_ne!(hook("http://h/a").label(), hook("http://h/b").label());
        // A new token in the query is the same receiver, at the same position.
        assert_eq!(hook("http://h/a?t=1").name(), hook("http://u@h/a?t=2").name());
        let shown = format!("{:?}", hook("https://u:pw@h/p?token=abc"));
        assert!(
            !shown.contains("pw") && !shown.contains("abc") && !shown.contains("k3y"),
            "{shown}"
        );
        assert_ne!(hook("http://a/1").name(), hook("http://a/2").name());
        assert!(hook("http://a/1").name().len() <= 48);
    }

    #[test]
    fn the_signature_is_the_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_filter_names_the_events_a_receiver_gets() {
        let mut hook = Webhook {
            url: "http://h/".into(),
            events: BTreeSet::new(),
            headers: vec![],
        };
        assert!(hook.wants(FeedKind::Delete));
        hook.events.insert("entry.create".into());
        assert!(
            hook.wants(FeedKind::Create) && !hook.wants(FeedKind::Update) && !hook.wants(FeedKind::Delete)
        );
    }
}

//! The change feed: every change of a document's content the node applied (its own writes,
//! the master's commits, a resync's pages), in the order it applied them, each with its place
//! in the node's feed as its id. Streamed as Server-Sent Events to a client that accepts
//! `text/event-stream`, answered as JSON (long-polled) to any other. A client resumes after
//! the last id it saw: `since` in the query, or the `Last-Event-ID` header an `EventSource`
//! sends when it reconnects (which wins). The feed is kept in the database, so ids survive a
//! restart of the node.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentEncoding, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use offline_sync_engine::FeedPage;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use crate::dto;
use crate::error::{ApiError, Result};
use crate::state::{AppState, Node};

/// How often the feed is read again while a client waits for a change.
const POLL: Duration = Duration::from_millis(200);
/// How long a stream stays silent before it sends a comment, so that proxies and clients
/// know it is alive.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// What a long poll waits for a change unless `timeout` says otherwise, and the most it may.
const DEFAULT_WAIT_S: u64 = 25;
const MAX_WAIT_S: u64 = 60;
/// Events a long poll answers at most unless `limit` says otherwise, and the most it may.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1_000;
/// Events read a query while streaming.
const STREAM_PAGE: usize = 200;
/// Clients that may follow the feed at once (streams and long polls): each reads the
/// database several times a second.
pub(crate) const MAX_LISTENERS: usize = 64;

/// The query of `GET /api/offline-sync/changes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangesQuery {
    /// The id of the last event the client has: a whole number, or `now` for only the
    /// changes to come (default 0: the whole feed kept).
    since: Option<String>,
    /// Seconds a long poll waits for a change (default 25, at most 60; 0 answers at once).
    timeout: Option<u64>,
    /// Events a long poll answers at most (default 100, at most 1,000).
    limit: Option<usize>,
}

/// Where the client asked to start.
enum Since {
    After(u64),
    Now,
}

/// Where the client resumes: its `Last-Event-ID`, else `since`.
fn since(req: &HttpRequest, query: &ChangesQuery) -> Result<Since> {
    if let Some(last) = req.headers().get("last-event-id") {
        let last = last.to_str().ok().and_then(|s| s.trim().parse().ok());
        return last.map(Since::After).ok_or_else(|| {
            ApiError::bad_request("Last-Event-ID must be the id of an event (a whole number)")
        });
    }
    match query.since.as_deref() {
        None => Ok(Since::After(0)),
        Some("now") => Ok(Since::Now),
        Some(s) => s
            .parse()
            .map(Since::After)
            .map_err(|_| ApiError::bad_request("since must be the id of an event (a whole number) or now")),
    }
}

/// Checks that the feed still holds every event after `after`: 410 when some were pruned
/// or `after` is beyond its end (the node's database was replaced by an older one). Either
/// way the client lists the documents again and resumes from the end.
fn check_position(after: u64, page: &FeedPage) -> Result<()> {
    let gone = |why: String| {
        Err(ApiError::new(
            StatusCode::GONE,
            "feed_position_gone",
            format!(
                "{why}: list the documents again and resume from since={}",
                page.last
            ),
        ))
    };
    if page.missed(after) {
        return gone(format!(
            "the events after {after} are no longer kept (retention pruned the feed up to {})",
            page.pruned_through
        ));
    }
    if after > page.last {
        return gone(format!(
            "the feed has no event {after}: it ends at {} (was this node's database restored?)",
            page.last
        ));
    }
    Ok(())
}

pub(crate) async fn changes(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<ChangesQuery>,
) -> Result<HttpResponse> {
    let since = since(&req, &query)?;
    let sse = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be 1 to {MAX_LIMIT}")));
    }
    let wait = query.timeout.unwrap_or(DEFAULT_WAIT_S);
    if wait > MAX_WAIT_S {
        return Err(ApiError::bad_request(format!(
            "timeout must be 0 to {MAX_WAIT_S} seconds"
        )));
    }
    if sse && (query.limit.is_some() || query.timeout.is_some()) {
        return Err(ApiError::bad_request(
            "limit and timeout are for the long poll; an event stream sends every change",
        ));
    }
    let node = state.node()?;
    let permit = Arc::clone(&state.listeners).try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_listeners",
            format!("{MAX_LISTENERS} clients already follow the change feed; try again later"),
        )
    })?;
    let first = {
        let node = node.clone();
        let after = match since {
            Since::After(after) => after,
            Since::Now => u64::MAX,
        };
        state.run(async move { node.feed(after, 1).await }).await?
    };
    let after = match since {
        Since::After(after) => {
            check_position(after, &first)?;
            after
        }
        Since::Now => first.last,
    };
    if sse {
        Ok(stream(&state, node, after, permit))
    } else {
        let answer = long_poll(&state, node, after, limit, Duration::from_secs(wait)).await;
        drop(permit);
        answer
    }
}

/// Answers the events after `after` as JSON, waiting up to `wait` for one:
/// `{"data":[events], "meta":{"lastEventId": the id to pass as since next}}`.
async fn long_poll(
    state: &AppState,
    node: Node,
    after: u64,
    limit: usize,
    wait: Duration,
) -> Result<HttpResponse> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut closing = state.closing.clone();
    let page = state
        .run(async move {
            loop {
                let page = node.feed(after, limit).await?;
                if page.missed(after) {
                    return Ok(page);
                }
                if !page.events.is_empty() || tokio::time::Instant::now() >= deadline || *closing.borrow() {
                    return Ok(page);
                }
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    // The server is gone: answer what there is.
                    gone = closing.changed() => if gone.is_err() { return Ok(page) },
                }
            }
        })
        .await?;
    check_position(after, &page)?;
    let last = page.events.last().map_or(after, |e| e.seq);
    let events: Vec<_> = page.events.into_iter().map(dto::feed_event).collect();
    Ok(HttpResponse::Ok().json(json!({"data": events, "meta": {"lastEventId": last}})))
}

/// One Server-Sent Event: its id, and its data on one line (JSON has no raw newline).
fn frame(e: offline_sync_engine::FeedEvent) -> Bytes {
    let id = e.seq;
    Bytes::from(format!("id: {id}\ndata: {}\n\n", dto::feed_event(e)))
}

/// Streams the events after `after` for as long as the client listens: read on the engine's
/// runtime by a task that stops when the client goes or the server stops, with a comment
/// after each [`KEEP_ALIVE`] of silence.
fn stream(state: &AppState, node: Node, after: u64, permit: OwnedSemaphorePermit) -> HttpResponse {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let mut closing = state.closing.clone();
    state.runtime.spawn(async move {
        let _permit = permit;
        // How long an EventSource waits before it reconnects, and where it resumes: an id
        // alone sets an EventSource's last event id, so a reconnection before the first
        // change (after since=now) misses nothing either.
        let start = format!("retry: 2000\nid: {after}\n\n");
        if tx.send(Bytes::from(start)).await.is_err() {
            return;
        }
        let mut after = after;
        let mut quiet = tokio::time::Instant::now();
        loop {
            if *closing.borrow() {
                // The client reconnects, once the node is back, with the last id it saw.
                return;
            }
            let page = match node.feed(after, STREAM_PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    // The client reconnects with the last id it saw and misses nothing.
                    tracing::warn!(error = %e, "change feed stream stopped: the feed could not be read");
                    return;
                }
            };
            if page.missed(after) {
                // The client fell behind the retention: its reconnection is answered 410.
                return;
            }
            if page.events.is_empty() {
                if quiet.elapsed() >= KEEP_ALIVE {
                    if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                        return;
                    }
                    quiet = tokio::time::Instant::now();
                }
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    gone = closing.changed() => if gone.is_err() { return },
                    _ = tx.closed() => return,
                }
                continue;
            }
            for e in page.events {
                after = e.seq;
                if tx.send(frame(e)).await.is_err() {
                    return;
                }
            }
            quiet = tokio::time::Instant::now();
        }
    });
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        ))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        // Not compressed: an encoder would hold events back until its buffer fills.
        .insert_header(ContentEncoding::Identity)
        .insert_header(("x-accel-buffering", "no"))
        .streaming(Frames(rx))
}

/// The frames of a stream, as its body.
struct Frames(mpsc::Receiver<Bytes>);

impl futures_core::Stream for Frames {
    type Item = std::result::Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|frame| frame.map(Ok))
    }
}

/// Where the deliveries to each webhook (`SYNC_WEBHOOKS`) stand.
pub(crate) async fn webhooks(state: web::Data<AppState>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(dto::data(state.webhooks.status())))
}

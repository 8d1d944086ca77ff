//! The server loop of `weir serve`: accepts TCP connections and serves the
//! [`router`](super::router) on each with HTTP/1.1, within [`Limits`].
//!
//! axum's own `serve` sets no limit a client can feel: a connection that
//! sends half a request line, or stays open between requests, is held for
//! as long as the client likes, and connections are not counted. This loop
//! drives hyper's connection builder itself so that every connection is
//! bounded in time and their number is bounded:
//! - the request head (request line and headers) must arrive within
//!   `header_read_timeout`, else the connection is closed (hyper's timer);
//! - a whole request, its body read and its response computed, must finish
//!   within `request_timeout`, else it is answered `408` and the connection
//!   closed;
//! - a kept-alive connection with no request for `idle_timeout` is closed
//!   (a response streamed while it grows, a followed log, is activity
//!   for as long as the client takes its chunks);
//! - at most `max_connections` are served at once; beyond that the loop
//!   stops accepting, so further clients wait in the kernel's backlog (they
//!   are not refused) until a connection ends, which the three timeouts
//!   guarantee happens.
//!
//! - a connection that is closing (idle, or the server shutting down) has
//!   `drain_timeout` to finish what it is doing, then it is dropped. This
//!   is what bounds writing a response: the idle clock runs from the moment
//!   the response is computed, so a client that never reads its response
//!   (its socket buffers full, hyper waiting to write) is dropped after
//!   `idle_timeout` + `drain_timeout` and frees its slot; without it such
//!   clients would use up every slot and hold shutdown forever.
//!
//! Graceful shutdown: once `shutdown` is cancelled no connection is
//! accepted, each open one may finish the request in flight and is closed,
//! and [`serve`] returns when all are, or after `drain_timeout` at the
//! latest, dropping those still open: a daemon told to stop (SIGTERM)
//! always gets to release its lease and exit.
//!
//! What it must not do: route or authenticate; that is the router's.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// Bounds on the HTTP server's connections (`[http]` in `weir.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time to receive a request's line and headers; default 10 s.
    pub header_read_timeout: Duration,
    /// Time for a whole request, body and response; default 60 s.
    pub request_timeout: Duration,
    /// Time a kept-alive connection may wait for its next request;
    /// default 60 s.
    pub idle_timeout: Duration,
    /// Connections served at once (further ones wait); default 512.
    pub max_connections: usize,
}

/// Time a closing connection (idle, or the server shutting down) has to
/// finish before it is dropped, and the bound on the whole shutdown drain;
/// see [`serve_draining`].
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            max_connections: 512,
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` is
/// cancelled, then closes every connection gracefully (see the module
/// docs), dropping those still open after [`DEFAULT_DRAIN_TIMEOUT`].
/// Errors accepting a connection (too many open files, say) are logged and
/// retried after a short pause; they never stop the server.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_draining(listener, router, limits, DEFAULT_DRAIN_TIMEOUT, shutdown).await
}

/// [`serve`], with `drain_timeout` as the time a closing connection has to
/// finish before it is dropped, and the bound on the shutdown drain: this
/// returns at most `drain_timeout` after `shutdown` is cancelled.
pub async fn serve_draining(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: Limits,
    drain_timeout: Duration,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        // Wait for a free slot before accepting: beyond the bound, clients
        // wait in the backlog instead of holding a task each.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => {
                permit.expect("the semaphore is never closed")
            }
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept an HTTP connection; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
        let router = router.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            connection(stream, router, limits, drain_timeout, shutdown).await;
            tracing::trace!(%peer, "HTTP connection closed");
            drop(permit);
        });
    }
    drop(listener);
    // Each connection drops itself `drain_timeout` after the shutdown; this
    // bound holds even if one does not (a handler ignoring cancellation).
    let drained = tokio::time::timeout(drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            drain_ms = drain_timeout.as_millis() as u64,
            "dropping HTTP connections still open after the shutdown drain"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// Serves one connection until the client closes it, a limit closes it or
/// the server shuts down.
async fn connection(
    stream: tokio::net::TcpStream,
    router: Router,
    limits: Limits,
    drain_timeout: Duration,
    shutdown: CancellationToken,
) {
    let activity = Arc::new(Activity::default());
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            let router = router.clone();
            let activity = activity.clone();
            async move {
                let _in_flight = activity.start();
                let request = request.map(Body::new);
                let response =
                    match tokio::time::timeout(limits.request_timeout, router.oneshot(request))
                        .await
                    {
                        Ok(Ok(response)) => response,
                        Ok(Err(never)) => match never {},
                        Err(_) => timed_out(limits.request_timeout),
                    };
                Ok::<Response<Body>, Infallible>(active_while_streamed(response, &activity))
            }
        })
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    // Set once the connection is closing: the instant it is dropped if it
    // has not finished by then (a client not reading its response).
    let mut drain: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        let idle = activity.idle_for(limits.idle_timeout);
        let closing = drain.is_some();
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    // A header timeout, a client gone mid-request, bad
                    // HTTP: the client's problem, not the server's.
                    tracing::debug!(%error, "HTTP connection ended with an error");
                }
                return;
            }
            () = closed_by(&mut drain) => {
                tracing::debug!(
                    drain_ms = drain_timeout.as_millis() as u64,
                    "dropping an HTTP connection that did not close in time"
                );
                return;
            }
            () = shutdown.cancelled(), if !closing => {
                drain = Some(Box::pin(tokio::time::sleep(drain_timeout)));
                conn.as_mut().graceful_shutdown();
            }
            () = idle, if !closing => {
                tracing::debug!("closing an idle HTTP connection");
                drain = Some(Box::pin(tokio::time::sleep(drain_timeout)));
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Completes at `deadline`, or never if there is none.
async fn closed_by(deadline: &mut Option<std::pin::Pin<Box<tokio::time::Sleep>>>) {
    match deadline {
        Some(deadline) => deadline.as_mut().await,
        None => std::future::pending().await,
    }
}

/// `408 Request Timeout`, closing the connection (the rest of a slow body
/// is never read).
fn timed_out(after: Duration) -> Response<Body> {
    let mut response = Response::new(Body::from(format!(
        "{{\"error\":\"the request did not complete within {} ms\"}}",
        after.as_millis()
    )));
    *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}

/// A response streamed as it is produced (its length unknown: `GET
/// /api/v1/executions/{id}/logs?follow=true`) counts as activity each
/// time hyper takes a chunk of it to write, so a long follow is not
/// closed as idle. A client that stops reading fills its socket's buffer,
/// hyper stops taking chunks, and the idle bound closes it.
fn active_while_streamed(response: Response<Body>, activity: &Arc<Activity>) -> Response<Body> {
    use axum::body::HttpBody as _;
    use futures_util::StreamExt as _;
    if response.body().size_hint().exact().is_some() {
        return response;
    }
    let activity = activity.clone();
    response
        .map(|body| Body::from_stream(body.into_data_stream().inspect(move |_| activity.touch())))
}

/// Whether a connection has a request in flight, and a wake-up when the
/// last one ends: the idle timeout counts from there.
#[derive(Default)]
struct Activity {
    in_flight: AtomicUsize,
    changed: Notify,
}

impl Activity {
    fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
        InFlight(self.clone())
    }

    /// Restarts the idle clock: a streamed response sent a chunk.
    fn touch(&self) {
        self.changed.notify_waiters();
    }

    /// Completes once no request has been in flight for `timeout` in a row.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.in_flight.load(Ordering::Acquire) > 0 {
                changed.await;
                continue;
            }
            if tokio::time::timeout(timeout, changed).await.is_err() {
                return;
            }
        }
    }
}

/// A request in flight; dropping it (the response is ready) restarts the
/// idle clock.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_waiters();
    }
}

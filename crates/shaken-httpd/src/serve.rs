//! The accept loop and the per-connection driver (hyper HTTP/1.1 under an axum router).
//! axum::serve has no header timeout, connection cap or shutdown deadline, so this replaces it.
//!
//! It must never hold more connections than the cap (beyond it a new one is closed at once),
//! never spin on a failing accept, and never return from shutdown later than `drain_timeout`
//! after it was asked, whatever the clients do.

use crate::body::BodyLimits;
use crate::{effective_connection_cap, HttpdMetrics, Limits, RateLimitedLog};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// What a connection beyond the cap is told before it is closed.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

struct Shared {
    limits: Limits,
    metrics: HttpdMetrics,
    in_flight: Arc<Semaphore>,
    log: RateLimitedLog,
}

/// Serves `app` on `listener` under `limits` until `shutdown` completes, then drains: open
/// connections finish their current request within `limits.drain_timeout` or are cut.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    metrics: HttpdMetrics,
    shutdown: impl Future<Output = ()>,
) {
    let cap = effective_connection_cap(limits.max_connections);
    if cap < limits.max_connections {
        tracing::warn!(
            configured = limits.max_connections,
            used = cap,
            "http: max_connections lowered to fit the open-file limit (RLIMIT_NOFILE)"
        );
    }
    let connections = Arc::new(Semaphore::new(cap));
    let shared = Arc::new(Shared {
        in_flight: Arc::new(Semaphore::new(limits.max_in_flight.max(1))),
        limits,
        metrics,
        log: RateLimitedLog::new(Duration::from_secs(10)),
    });
    let app = app.layer(axum::middleware::from_fn_with_state(shared.clone(), admit));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let Ok(permit) = connections.clone().try_acquire_owned() else {
                        shared.metrics.connections_refused.with_label_values(&["cap"]).inc();
                        shared.log.warn("connection_cap", "http: connection cap reached; closing new connections");
                        // Best effort, never waiting: a client that reads gets a reason.
                        let _ = stream.try_write(REFUSED);
                        drop(stream);
                        continue;
                    };
                    let (app, shared, stop) = (app.clone(), shared.clone(), stop_rx.clone());
                    tasks.spawn(async move {
                        connection(stream, app, &shared, stop).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    shared.metrics.connections_refused.with_label_values(&["accept_error"]).inc();
                    shared.log.warn("accept_error", &format!("http: accept failed: {e}"));
                    // EMFILE and friends do not clear by retrying at once.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(shared.limits.drain_timeout, drain)
        .await
        .is_err()
    {
        let left = tasks.len();
        shared
            .metrics
            .timeouts
            .with_label_values(&["drain"])
            .inc_by(left as u64);
        tracing::warn!(
            connections = left,
            "http: drain deadline reached; cutting the remaining connections"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

/// Outermost middleware: the in-flight cap, and the body limits handed to the handlers.
async fn admit(State(sh): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    let Ok(_permit) = sh.in_flight.clone().try_acquire_owned() else {
        sh.metrics.rejected("overloaded");
        sh.log
            .warn("overloaded", "http: max_in_flight reached; answering 503");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::RETRY_AFTER, "1")],
            Json(json!({ "error": "too many requests in flight; retry later" })),
        )
            .into_response();
    };
    req.extensions_mut().insert(BodyLimits {
        max_bytes: sh.limits.max_body_bytes,
        timeout: sh.limits.body_timeout,
        metrics: Some(sh.metrics.clone()),
    });
    next.run(req).await
}

/// When a connection last moved a byte, and how many of its requests are being handled.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        // A byte may have moved since `now` was read: never negative.
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// The socket, noting every byte read or written in its [`Activity`].
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Drives one connection until it ends, times out, or shutdown is asked (then it finishes
/// the request it is serving; the drain deadline in [`serve`] bounds that).
async fn connection(
    stream: TcpStream,
    app: Router,
    shared: &Shared,
    mut stop: watch::Receiver<bool>,
) {
    let metrics = &shared.metrics;
    metrics.connections_active.inc();
    // Decrements also when the drain deadline aborts this task.
    let _active = scopeguard(metrics.connections_active.clone());
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
        in_flight: AtomicUsize::new(0),
    });
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: activity.clone(),
    });
    let act = activity.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut app = app.clone();
        let act = act.clone();
        async move {
            act.in_flight.fetch_add(1, Ordering::Relaxed);
            let r = tower_service::Service::call(&mut app, req.map(Body::new)).await;
            act.in_flight.fetch_sub(1, Ordering::Relaxed);
            act.touch();
            r
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(shared.limits.header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let tick =
        (shared.limits.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut ticker = tokio::time::interval(tick);
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    if e.is_timeout() {
                        metrics.timeout("header");
                    }
                    tracing::debug!(error = %e, "http connection ended with an error");
                }
                break;
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
            _ = ticker.tick() => {
                if activity.in_flight.load(Ordering::Relaxed) == 0
                    && activity.idle_for() >= shared.limits.idle_timeout
                {
                    metrics.timeout("idle");
                    break;
                }
            }
        }
    }
}

struct ActiveGuard(prometheus::IntGauge);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn scopeguard(g: prometheus::IntGauge) -> ActiveGuard {
    ActiveGuard(g)
}

//! The sensor's one HTTP server (axum over [`crate::httpd`] on its own small tokio runtime):
//! `/metrics` for Prometheus, `/healthz`, and the traceback API over the local store —
//! `GET /v1/traceback` for one request, `POST /v1/traceback` for up to 1,000 queries sharing
//! one budget of `http.traceback_max_calls` calls. The API needs the bearer token from the
//! configuration (checked before the body is read); bad input gets a 400 with a JSON error
//! naming the parameter. Body parsing and queries run on blocking threads and never touch the
//! capture path.

use crate::config::HttpConfig;
use crate::httpd::{BearerGuard, HttpdMetrics, LimitedBody};
use crate::metrics::Metrics;
use crate::traceback::query::{answer_batch, Reader, TracebackQuery, MAX_BATCH};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("http.bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("http runtime: {0}")]
    Runtime(std::io::Error),
}

#[derive(Clone)]
pub struct HttpState {
    pub metrics: Arc<Metrics>,
    /// Readiness of the pipeline's components, answered by /healthz.
    pub health: Arc<crate::health::Health>,
    /// The traceback store directory, when the store is enabled.
    pub store: Option<PathBuf>,
    /// Bearer token for the traceback API; the API refuses every request without one.
    pub token: Option<String>,
    /// The `[http]` section: limits of the HTTP layer and of traceback answers.
    pub config: HttpConfig,
}

/// A running server: its address (port 0 resolved) and its thread.
pub struct HttpServer {
    pub addr: SocketAddr,
    pub thread: std::thread::JoinHandle<()>,
}

/// Starts the server on `bind`; it stops (draining its connections) when `stop` is set.
pub fn spawn(
    bind: SocketAddr,
    state: HttpState,
    stop: crate::shutdown::Shutdown,
) -> Result<HttpServer, HttpError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("http")
        .enable_all()
        .build()
        .map_err(HttpError::Runtime)?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(bind))
        .map_err(|source| HttpError::Bind { addr: bind, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| HttpError::Bind { addr: bind, source })?;
    let limits = state.config.limits();
    let httpd_metrics = HttpdMetrics::register(&state.metrics.registry, "shaken_sensor");
    let app = router(state, httpd_metrics.clone());
    let drain = limits.drain_timeout;
    let thread = std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            runtime.block_on(async move {
                let shutdown = async move {
                    // A blocking thread waits on the token; the drain bounds the exit.
                    let _ = tokio::task::spawn_blocking(move || stop.wait()).await;
                };
                crate::httpd::serve(listener, app, limits, httpd_metrics, shutdown).await;
            });
            // A query still running on a blocking thread must not hold the exit past the drain.
            runtime.shutdown_timeout(drain);
        })
        .map_err(HttpError::Runtime)?;
    tracing::info!(%addr, "http server listening");
    Ok(HttpServer { addr, thread })
}

pub fn router(state: HttpState, httpd_metrics: HttpdMetrics) -> Router {
    let guard = Arc::new(BearerGuard::new(
        state.token.clone(),
        "http.token",
        httpd_metrics,
    ));
    let api = Router::new()
        .route("/v1/traceback", get(traceback_get).post(traceback_post))
        .route_layer(axum::middleware::from_fn_with_state(
            guard,
            crate::httpd::auth::require,
        ));
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .merge(api)
        .with_state(Arc::new(state))
}

async fn metrics(State(s): State<Arc<HttpState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

/// 200 when every registered component is ok, 503 otherwise; the JSON body names the part
/// that is not ok and why.
async fn healthz(State(s): State<Arc<HttpState>>) -> Response {
    let (ready, body) = s.health.report();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

fn error(status: StatusCode, message: impl Into<String>, param: Option<&str>) -> Response {
    let mut body = json!({ "error": message.into() });
    if let Some(p) = param {
        body["param"] = json!(p);
    }
    (status, Json(body)).into_response()
}

/// The store directory, or the 503 saying it is disabled (the token was checked before).
#[allow(clippy::result_large_err)]
fn store_dir(s: &HttpState) -> Result<PathBuf, Response> {
    s.store.clone().ok_or_else(|| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the traceback store is disabled",
            None,
        )
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryParams {
    orig: Option<String>,
    dest: Option<String>,
    at: Option<String>,
    window_s: Option<serde_json::Value>,
}

impl QueryParams {
    fn parse(&self) -> Result<TracebackQuery, crate::traceback::query::QueryError> {
        let window = self.window_s.as_ref().map(|w| match w {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        TracebackQuery::parse(
            self.orig.as_deref(),
            self.dest.as_deref(),
            self.at.as_deref(),
            window.as_deref(),
        )
    }
}

/// The answers and whether the request's call budget cut any of them.
#[allow(clippy::result_large_err)]
async fn run_queries(
    dir: PathBuf,
    queries: Vec<TracebackQuery>,
    max_calls: usize,
) -> Result<(Vec<Value>, bool), Response> {
    tokio::task::spawn_blocking(move || {
        let reader = Reader::open(&dir)?;
        answer_batch(&reader, &queries, max_calls)
    })
    .await
    .map_err(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "query task failed", None))?
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None))
}

async fn traceback_get(
    State(s): State<Arc<HttpState>>,
    params: Result<Query<QueryParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let dir = match store_dir(&s) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let Ok(Query(params)) = params else {
        return error(
            StatusCode::BAD_REQUEST,
            "unknown or malformed query parameters",
            None,
        );
    };
    let q = match params.parse() {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string(), Some(e.param)),
    };
    match run_queries(dir, vec![q], s.config.traceback_max_calls).await {
        Ok((mut answers, _)) => Json(answers.pop().unwrap_or(Value::Null)).into_response(),
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    queries: Vec<QueryParams>,
}

/// Parses and checks a batch body: the queries, or the 400 naming what is wrong.
#[allow(clippy::result_large_err)]
fn parse_batch(body: &[u8]) -> Result<Vec<TracebackQuery>, Response> {
    let Ok(batch) = serde_json::from_slice::<Batch>(body) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "body must be {\"queries\": [...]}",
            Some("queries"),
        ));
    };
    if batch.queries.len() > MAX_BATCH {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!(
                "{} queries; at most {MAX_BATCH} per request",
                batch.queries.len()
            ),
            Some("queries"),
        ));
    }
    batch
        .queries
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.parse().map_err(|e| {
                error(
                    StatusCode::BAD_REQUEST,
                    format!("queries[{i}]: {e}"),
                    Some(e.param),
                )
            })
        })
        .collect()
}

// The refusal is the handler's response itself; boxing it would only add an allocation.
#[allow(clippy::result_large_err)]
async fn traceback_post(
    State(s): State<Arc<HttpState>>,
    LimitedBody(body): LimitedBody,
) -> Response {
    let dir = match store_dir(&s) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let parsed = match tokio::task::spawn_blocking(move || parse_batch(&body)).await {
        Ok(Ok(q)) => q,
        Ok(Err(r)) => return r,
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "parse task failed", None),
    };
    match run_queries(dir, parsed, s.config.traceback_max_calls).await {
        Ok((answers, truncated)) => {
            Json(json!({ "answers": answers, "truncated": truncated })).into_response()
        }
        Err(r) => r,
    }
}

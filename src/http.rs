//! The sensor's one HTTP server (axum on its own small tokio runtime): `/metrics` for
//! Prometheus, `/healthz`, and the traceback API over the local store — `GET /v1/traceback`
//! for one request, `POST /v1/traceback` for up to 1,000. The API needs the bearer token from
//! the configuration; bad input gets a 400 with a JSON error naming the parameter. Queries run
//! on blocking threads and never touch the capture path.

use crate::metrics::Metrics;
use crate::traceback::query::{answer, Reader, TracebackQuery, MAX_BATCH};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
}

/// A running server: its address (port 0 resolved) and its thread.
pub struct HttpServer {
    pub addr: SocketAddr,
    pub thread: std::thread::JoinHandle<()>,
}

/// Starts the server on `bind`; it stops when `stop` is set.
pub fn spawn(
    bind: SocketAddr,
    state: HttpState,
    stop: Arc<AtomicBool>,
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
    let app = router(state);
    let thread = std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            runtime.block_on(async move {
                let shutdown = async move {
                    while !stop.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                };
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                {
                    tracing::error!(error = %e, "http server stopped");
                }
            })
        })
        .map_err(HttpError::Runtime)?;
    tracing::info!(%addr, "http server listening");
    Ok(HttpServer { addr, thread })
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/v1/traceback", get(traceback_get).post(traceback_post))
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

/// Checks the bearer token and the store; the store directory, or the refusal to send.
// The refusal is the handler's response itself; boxing it would only add an allocation.
#[allow(clippy::result_large_err)]
fn authorize(s: &HttpState, headers: &HeaderMap) -> Result<PathBuf, Response> {
    let Some(token) = s.token.as_deref().filter(|t| !t.is_empty()) else {
        return Err(error(
            StatusCode::FORBIDDEN,
            "no API token configured (http.token)",
            None,
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Constant-time comparison: the token is a secret.
    let ok = presented.is_some_and(|p| {
        p.len() == token.len()
            && p.bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if !ok {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
            None,
        ));
    }
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

#[allow(clippy::result_large_err)]
async fn run_queries(dir: PathBuf, queries: Vec<TracebackQuery>) -> Result<Vec<Value>, Response> {
    tokio::task::spawn_blocking(move || {
        let reader = Reader::open(&dir)?;
        queries
            .iter()
            .map(|q| answer(&reader, q))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "query task failed", None))?
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None))
}

async fn traceback_get(
    State(s): State<Arc<HttpState>>,
    headers: HeaderMap,
    params: Result<Query<QueryParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let dir = match authorize(&s, &headers) {
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
    match run_queries(dir, vec![q]).await {
        Ok(mut answers) => Json(answers.pop().unwrap_or(Value::Null)).into_response(),
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    queries: Vec<QueryParams>,
}

async fn traceback_post(
    State(s): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: Result<Json<Batch>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let dir = match authorize(&s, &headers) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let Ok(Json(batch)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "body must be {\"queries\": [...]}",
            Some("queries"),
        );
    };
    if batch.queries.len() > MAX_BATCH {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "{} queries; at most {MAX_BATCH} per request",
                batch.queries.len()
            ),
            Some("queries"),
        );
    }
    let mut parsed = Vec::with_capacity(batch.queries.len());
    for (i, p) in batch.queries.iter().enumerate() {
        match p.parse() {
            Ok(q) => parsed.push(q),
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("queries[{i}]: {e}"),
                    Some(e.param),
                )
            }
        }
    }
    match run_queries(dir, parsed).await {
        Ok(answers) => Json(json!({ "answers": answers })).into_response(),
        Err(r) => r,
    }
}

//! The collector's HTTP side (axum): ingest, inspection, metrics, health, and the test-only
//! fault admin endpoint. Handlers parse and check; SQLite work runs on blocking threads.
//!
//! It must never accept a request without the token (compared in constant time), never buffer
//! more than `max_body` bytes of a body (compressed or not), and never answer 2xx for a batch
//! it did not commit.

use super::db::{Db, Incoming, Stored};
use super::error::CollectorError;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use serde::Deserialize;
use serde_json::{json, Value};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Test fault injection: what the next ingest requests get instead of normal service.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Answer 500 to the next N ingest requests.
    pub fail_next: u64,
    /// Answer 429 with `Retry-After: retry_after_s` to the next N (after the 500s).
    pub rate_limit_next: u64,
    pub retry_after_s: u64,
    /// Answer 400 (a refused batch) to the next N (after the 429s).
    pub reject_next: u64,
    /// Wait this long before answering every ingest request.
    pub delay_ms: u64,
}

pub struct Settings {
    pub token: String,
    pub max_body: usize,
    /// Serve POST/GET /admin/faults (tests only).
    pub test_faults: bool,
    pub faults: Faults,
}

struct CollectorMetrics {
    registry: Registry,
    ingested: IntCounter,
    duplicates: IntCounterVec,
    batches: IntCounterVec,
}

impl CollectorMetrics {
    fn new() -> Self {
        let registry = Registry::new();
        let ingested = IntCounter::new(
            "shaken_collector_records_ingested_total",
            "Records stored for the first time",
        )
        .expect("static metric definition");
        let duplicates = IntCounterVec::new(
            Opts::new(
                "shaken_collector_duplicates_total",
                "Records not stored again: by record_id, or whole batches by idempotency_key (records counted)",
            ),
            &["by"],
        )
        .expect("static metric definition");
        let batches = IntCounterVec::new(
            Opts::new(
                "shaken_collector_batches_total",
                "Ingest requests by HTTP status answered",
            ),
            &["status"],
        )
        .expect("static metric definition");
        for c in [&duplicates, &batches] {
            registry
                .register(Box::new(c.clone()))
                .expect("metric registered once");
        }
        registry
            .register(Box::new(ingested.clone()))
            .expect("metric registered once");
        CollectorMetrics {
            registry,
            ingested,
            duplicates,
            batches,
        }
    }

    fn render(&self) -> String {
        let mut buf = String::new();
        if prometheus::TextEncoder::new()
            .encode_utf8(&self.registry.gather(), &mut buf)
            .is_err()
        {
            buf.clear();
        }
        buf
    }
}

struct App {
    db: Arc<Mutex<Db>>,
    token: String,
    max_body: usize,
    faults: Mutex<Faults>,
    metrics: CollectorMetrics,
}

pub fn router(db: Db, settings: Settings) -> Router {
    let test_faults = settings.test_faults;
    let max_body = settings.max_body;
    let app = Arc::new(App {
        db: Arc::new(Mutex::new(db)),
        token: settings.token,
        max_body,
        faults: Mutex::new(settings.faults),
        metrics: CollectorMetrics::new(),
    });
    let mut r = Router::new()
        .route("/v1/ingest", post(ingest))
        .route("/v1/records", get(|s, h, q| list(s, h, q, "call")))
        .route("/v1/detections", get(|s, h, q| list(s, h, q, "detection")))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }));
    if test_faults {
        r = r.route("/admin/faults", post(set_faults).get(get_faults));
    }
    // The compressed body is capped here, the decompressed one while inflating.
    r.layer(DefaultBodyLimit::max(max_body)).with_state(app)
}

fn answer(app: &App, status: StatusCode, body: Value) -> Response {
    app.metrics
        .batches
        .with_label_values(&[status.as_str()])
        .inc();
    (status, Json(body)).into_response()
}

fn authorized(app: &App, headers: &HeaderMap) -> bool {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let token = app.token.as_bytes();
    // Constant time over the token's length: the comparison leaks no prefix.
    let diff = presented.len() ^ token.len();
    let mut acc = u8::from(diff != 0);
    for (i, t) in token.iter().enumerate() {
        acc |= t ^ presented.as_bytes().get(i).copied().unwrap_or(!t);
    }
    acc == 0
}

/// The fault to apply to this request, if any (500, 429 + seconds, 400).
fn take_fault(app: &App) -> Option<(StatusCode, u64)> {
    let mut f = app.faults.lock().unwrap_or_else(|p| p.into_inner());
    if f.fail_next > 0 {
        f.fail_next -= 1;
        return Some((StatusCode::INTERNAL_SERVER_ERROR, 0));
    }
    if f.rate_limit_next > 0 {
        f.rate_limit_next -= 1;
        return Some((StatusCode::TOO_MANY_REQUESTS, f.retry_after_s));
    }
    if f.reject_next > 0 {
        f.reject_next -= 1;
        return Some((StatusCode::BAD_REQUEST, 0));
    }
    None
}

/// The body as NDJSON text bytes: gzip inflated with the same cap.
fn decode_body(headers: &HeaderMap, body: &[u8], max: usize) -> Result<Vec<u8>, CollectorError> {
    let enc = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match enc.as_str() {
        "identity" | "" => Ok(body.to_vec()),
        "gzip" | "x-gzip" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body)
                .take(max as u64 + 1)
                .read_to_end(&mut out)
                .map_err(CollectorError::BadGzip)?;
            if out.len() > max {
                return Err(CollectorError::TooLarge(max));
            }
            Ok(out)
        }
        other => Err(CollectorError::Encoding(other.to_string())),
    }
}

/// Parses NDJSON: each non-empty line a JSON object with a record id. Detection events without
/// a `record_id` are keyed by `detection_id:state:last_seen` (each update is its own event).
pub fn parse_lines(text: &[u8]) -> Result<Vec<Incoming>, CollectorError> {
    let mut out = Vec::new();
    for (i, line) in text.split(|b| *b == b'\n').enumerate() {
        let line_no = i + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let bad = |problem: &str| CollectorError::BadLine {
            line: line_no,
            problem: problem.to_string(),
        };
        let v: Value = serde_json::from_slice(line).map_err(|e| bad(&format!("not JSON: {e}")))?;
        let Some(obj) = v.as_object() else {
            return Err(bad("not a JSON object"));
        };
        let schema = obj.get("schema").and_then(Value::as_str).unwrap_or("");
        let kind = if schema.starts_with("shaken-sensor/call/") {
            "call"
        } else if schema.starts_with("shaken-sensor/detection/") {
            "detection"
        } else {
            return Err(bad(&format!("unknown schema {schema:?}")));
        };
        let str_of = |k: &str| obj.get(k).and_then(Value::as_str);
        let record_id = match (str_of("record_id"), kind) {
            (Some(id), _) => id.to_string(),
            (None, "detection") => {
                match (str_of("detection_id"), str_of("state"), str_of("last_seen")) {
                    (Some(d), Some(s), Some(t)) => format!("{d}:{s}:{t}"),
                    _ => {
                        return Err(bad(
                            "detection without record_id or detection_id/state/last_seen",
                        ))
                    }
                }
            }
            (None, _) => return Err(bad("no record_id")),
        };
        if record_id.is_empty() || record_id.len() > 256 {
            return Err(bad("record_id must be 1 to 256 characters"));
        }
        out.push(Incoming {
            record_id,
            kind,
            sensor_id: str_of("sensor_id").map(str::to_string),
            body: String::from_utf8_lossy(line).into_owned(),
        });
    }
    Ok(out)
}

async fn ingest(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let delay = app
        .faults
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .delay_ms;
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if !authorized(&app, &headers) {
        return answer(
            &app,
            StatusCode::UNAUTHORIZED,
            json!({"error": "missing or wrong bearer token"}),
        );
    }
    if let Some((status, retry_after)) = take_fault(&app) {
        let mut resp = answer(&app, status, json!({"error": "injected fault"}));
        if status == StatusCode::TOO_MANY_REQUESTS {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, retry_after.into());
        }
        return resp;
    }
    let body = match body {
        Ok(b) => b,
        Err(e) => return answer(&app, e.status(), json!({"error": e.body_text()})),
    };
    let text = match decode_body(&headers, &body, app.max_body) {
        Ok(t) => t,
        Err(e @ CollectorError::TooLarge(_)) => {
            return answer(
                &app,
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": e.to_string()}),
            )
        }
        Err(e @ CollectorError::Encoding(_)) => {
            return answer(
                &app,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                json!({"error": e.to_string()}),
            )
        }
        Err(e) => {
            return answer(
                &app,
                StatusCode::BAD_REQUEST,
                json!({"error": e.to_string()}),
            )
        }
    };
    let records = match parse_lines(&text) {
        Ok(r) => r,
        Err(CollectorError::BadLine { line, problem }) => {
            return answer(
                &app,
                StatusCode::BAD_REQUEST,
                json!({"error": problem, "line": line}),
            )
        }
        Err(e) => {
            return answer(
                &app,
                StatusCode::BAD_REQUEST,
                json!({"error": e.to_string()}),
            )
        }
    };
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty() && k.len() <= 256)
        .map(str::to_string);
    let db = app.db.clone();
    let n = records.len() as u64;
    let stored = tokio::task::spawn_blocking(move || {
        db.lock()
            .unwrap_or_else(|p| p.into_inner())
            .store(key.as_deref(), &records)
    })
    .await;
    match stored {
        Ok(Ok(Stored::Batch {
            inserted,
            duplicates,
        })) => {
            app.metrics.ingested.inc_by(inserted);
            app.metrics
                .duplicates
                .with_label_values(&["record_id"])
                .inc_by(duplicates);
            answer(
                &app,
                StatusCode::OK,
                json!({"accepted": inserted, "duplicates": duplicates}),
            )
        }
        Ok(Ok(Stored::SeenKey)) => {
            app.metrics
                .duplicates
                .with_label_values(&["idempotency_key"])
                .inc_by(n);
            answer(
                &app,
                StatusCode::OK,
                json!({"accepted": 0, "duplicates": n, "seen_batch": true}),
            )
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "collector: storing a batch failed");
            answer(
                &app,
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "storage failed"}),
            )
        }
        Err(_) => answer(
            &app,
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "storage task failed"}),
        ),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<u32>,
    after: Option<i64>,
}

async fn list(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
    kind: &'static str,
) -> Response {
    if !authorized(&app, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "missing or wrong bearer token"})),
        )
            .into_response();
    }
    let Ok(Query(p)) = params else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "limit and after must be integers"})),
        )
            .into_response();
    };
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let after = p.after.unwrap_or(0);
    let db = app.db.clone();
    let rows = tokio::task::spawn_blocking(move || {
        db.lock()
            .unwrap_or_else(|p| p.into_inner())
            .list(kind, after, limit)
    })
    .await;
    match rows {
        Ok(Ok(rows)) => {
            let next = rows.last().map_or(after, |(seq, _)| *seq);
            let records: Vec<Value> = rows
                .iter()
                .map(|(_, b)| serde_json::from_str(b).unwrap_or(Value::Null))
                .collect();
            Json(json!({"records": records, "next": next})).into_response()
        }
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "storage failed"})),
        )
            .into_response(),
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}

async fn set_faults(
    State(app): State<Arc<App>>,
    body: Result<Json<Faults>, axum::extract::rejection::JsonRejection>,
) -> Response {
    match body {
        Ok(Json(f)) => {
            *app.faults.lock().unwrap_or_else(|p| p.into_inner()) = f.clone();
            Json(f).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": e.body_text()})),
        )
            .into_response(),
    }
}

async fn get_faults(State(app): State<Arc<App>>) -> Response {
    Json(app.faults.lock().unwrap_or_else(|p| p.into_inner()).clone()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_parsed_and_a_bad_one_is_named() {
        let ok = b"{\"schema\":\"shaken-sensor/call/v1\",\"record_id\":\"a\",\"sensor_id\":\"s\"}\n\n{\"schema\":\"shaken-sensor/detection/v1\",\"detection_id\":\"d1\",\"state\":\"opened\",\"last_seen\":\"t\"}\n";
        let recs = parse_lines(ok).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!((recs[0].record_id.as_str(), recs[0].kind), ("a", "call"));
        assert_eq!(recs[0].sensor_id.as_deref(), Some("s"));
        assert_eq!(
            (recs[1].record_id.as_str(), recs[1].kind),
            ("d1:opened:t", "detection")
        );
        let bad = b"{\"schema\":\"shaken-sensor/call/v1\",\"record_id\":\"a\"}\n{\"schema\":\"shaken-sensor/call/v1\"}\n";
        match parse_lines(bad) {
            Err(CollectorError::BadLine { line, .. }) => assert_eq!(line, 2),
            other => panic!("{:?}", other.map(|v| v.len())),
        }
        match parse_lines(b"[1]\n") {
            Err(CollectorError::BadLine { line, .. }) => assert_eq!(line, 1),
            other => panic!("{:?}", other.map(|v| v.len())),
        }
    }

    #[test]
    fn token_comparison_needs_the_exact_token() {
        let app = App {
            db: Arc::new(Mutex::new(
                Db::open(std::path::Path::new(":memory:")).unwrap(),
            )),
            token: "secret".into(),
            max_body: 1024,
            faults: Mutex::new(Faults::default()),
            metrics: CollectorMetrics::new(),
        };
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, v.parse().unwrap());
            authorized(&app, &h)
        };
        assert!(with("Bearer secret"));
        for wrong in [
            "Bearer secre",
            "Bearer secretx",
            "Bearer Secret",
            "secret",
            "Bearer ",
        ] {
            assert!(!with(wrong), "{wrong}");
        }
        assert!(!authorized(&app, &HeaderMap::new()));
    }
}

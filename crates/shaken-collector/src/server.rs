//! The collector's HTTP side (axum over [`shaken_httpd`]): ingest, inspection, metrics, health,
//! and the test-only fault admin endpoint. The token is checked before a body byte is read;
//! decompression, line parsing and SQLite work run on blocking threads. Lines are read as
//! [`shaken_wire::RecordHead`]s (identity only) and stored verbatim.
//!
//! It must never accept a request without the token (compared in constant time), never buffer
//! more than `max_body` bytes of a body (compressed or not), never hold a line longer than
//! `max_line` as JSON, and never answer 2xx for records it did not store.

use crate::db::{Db, Incoming, Stored};
use crate::error::CollectorError;
use crate::providers::SensorPrincipal;
use crate::traceback::{self, Answer, Clock, Subject, Tuning};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use serde::{Deserialize, Serialize};
use shaken_httpd::{BearerGuard, HttpdMetrics, LimitedBody, RateLimitedLog};
use shaken_wire::{RecordHead, RecordKind, Timestamp};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Test fault injection: what the next ingest requests get instead of normal service.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
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
    /// The configured token: it may push records of any sensor and read them back.
    pub token: String,
    /// Where sensor tokens are looked up (the provider registry), if anywhere.
    pub tokens: Option<Db>,
    /// Largest body, compressed or inflated, bytes (`limits.max_body_bytes` caps it as sent).
    pub max_body: usize,
    /// Longest NDJSON line, bytes: a longer one is refused with 413 before it is parsed.
    pub max_line: usize,
    /// Largest GET /v1/records or /v1/detections answer, bytes (at least one record is sent).
    pub max_response: usize,
    /// Serve POST/GET /admin/faults (tests only).
    pub test_faults: bool,
    pub faults: Faults,
    /// Traceback record window and request deadline.
    pub tuning: Tuning,
    /// The one clock of tracebacks and request deadlines.
    pub clock: Clock,
}

struct CollectorMetrics {
    registry: Registry,
    ingested: IntCounter,
    duplicates: IntCounterVec,
    batches: IntCounterVec,
    key_conflicts: IntCounter,
    provider_mismatch: IntCounterVec,
    tracebacks: IntCounterVec,
    candidates_capped: IntCounter,
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
        let provider_mismatch = IntCounterVec::new(
            Opts::new(
                "shaken_collector_provider_mismatch_total",
                "Batches refused (403) because a sensor token carried a record of a sensor that is not its provider's, by reason (no_sensor_id, unknown_sensor, other_provider)",
            ),
            &["reason"],
        )
        .expect("static metric definition");
        for r in ["no_sensor_id", "unknown_sensor", "other_provider"] {
            provider_mismatch.with_label_values(&[r]);
        }
        for c in [&duplicates, &batches, &provider_mismatch] {
            registry
                .register(Box::new(c.clone()))
                .expect("metric registered once");
        }
        let key_conflicts = IntCounter::new(
            "shaken_collector_idempotency_conflicts_total",
            "Batches refused (409) because their Idempotency-Key was seen with a different body",
        )
        .expect("static metric definition");
        for c in [&ingested, &key_conflicts] {
            registry
                .register(Box::new(c.clone()))
                .expect("metric registered once");
        }
        let tracebacks = IntCounterVec::new(
            Opts::new(
                "shaken_collector_tracebacks_total",
                "Tracebacks started, by status after their first resolution (complete, awaiting, unregistered_upstream, loop, too_long)",
            ),
            &["status"],
        )
        .expect("static metric definition");
        let candidates_capped = IntCounter::new(
            "shaken_collector_traceback_candidates_capped_total",
            "Traceback hop lookups that found more records of one orig/dest pair than they read (64)",
        )
        .expect("static metric definition");
        registry
            .register(Box::new(tracebacks.clone()))
            .expect("metric registered once");
        registry
            .register(Box::new(candidates_capped.clone()))
            .expect("metric registered once");
        CollectorMetrics {
            registry,
            tracebacks,
            candidates_capped,
            ingested,
            duplicates,
            batches,
            key_conflicts,
            provider_mismatch,
        }
    }

    fn render(&self) -> String {
        // The traceback module counts capped lookups in a static (it has no metrics handle).
        let capped = traceback::CANDIDATES_CAPPED.load(std::sync::atomic::Ordering::Relaxed);
        if let Some(d) = capped.checked_sub(self.candidates_capped.get()) {
            self.candidates_capped.inc_by(d);
        }
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
    max_body: usize,
    max_line: usize,
    max_response: usize,
    faults: Mutex<Faults>,
    metrics: CollectorMetrics,
    log: RateLimitedLog,
    tuning: Tuning,
    clock: Clock,
}

/// The provider a portal or sensor token stands for on the request routes (the configured
/// token, the ITG analyst's, has none and sees every request).
#[derive(Clone, Copy, Debug)]
struct ProviderPrincipal(i64);

/// The collector's routes, and the HTTP layer's metrics (registered in the same registry, for
/// [`shaken_httpd::serve`]).
pub fn router(db: Db, settings: Settings) -> (Router, HttpdMetrics) {
    let test_faults = settings.test_faults;
    let app = Arc::new(App {
        db: Arc::new(Mutex::new(db)),
        max_body: settings.max_body,
        max_line: settings.max_line,
        max_response: settings.max_response,
        faults: Mutex::new(settings.faults),
        metrics: CollectorMetrics::new(),
        log: RateLimitedLog::new(Duration::from_secs(10)),
        tuning: settings.tuning,
        clock: settings.clock.clone(),
    });
    let httpd_metrics = HttpdMetrics::register(&app.metrics.registry, "shaken_collector");
    // Sensor tokens from the provider registry, looked up on a connection of their own so a
    // lookup never waits behind a batch being stored (a hash lookup: microseconds).
    let tokens = settings.tokens.map(Mutex::new).map(Arc::new);
    let guard = |count_batches: bool| {
        let mut g = BearerGuard::new(
            Some(settings.token.clone()),
            "--token",
            httpd_metrics.clone(),
        );
        if count_batches {
            let batches = app.metrics.batches.clone();
            g.on_refused = Some(Box::new(move |status: StatusCode| {
                batches.with_label_values(&[status.as_str()]).inc();
            }));
            // Only ingest takes sensor tokens: a sensor reads nothing back.
            if let Some(tokens) = tokens.clone() {
                g.issued = Some(Box::new(
                    move |token: &str, ext: &mut axum::http::Extensions| {
                        let db = tokens.lock().unwrap_or_else(|p| p.into_inner());
                        match db.lookup_token(token) {
                            Ok(Some(p)) => {
                                ext.insert(p);
                                true
                            }
                            Ok(None) => false,
                            Err(e) => {
                                tracing::error!(error = %e, "collector: token lookup failed");
                                false
                            }
                        }
                    },
                ));
            }
        }
        axum::middleware::from_fn_with_state(Arc::new(g), shaken_httpd::auth::require)
    };
    let ingest_routes = Router::new()
        .route("/v1/ingest", post(ingest))
        .route_layer(guard(true));
    let read_routes = Router::new()
        .route("/v1/records", get(|s, q| list(s, q, RecordKind::Call)))
        .route(
            "/v1/detections",
            get(|s, q| list(s, q, RecordKind::Detection)),
        )
        .route_layer(guard(false));
    // Tracebacks: the ITG analyst (the configured token) only.
    let traceback_routes = Router::new()
        .route("/v1/tracebacks", post(start_traceback))
        .route("/v1/tracebacks/:id", get(get_traceback))
        .route("/v1/providers/noncooperative", get(noncooperative))
        .route("/v1/providers/:name/scorecard", get(scorecard))
        .route_layer(guard(false));
    // Requests: the analyst, or a provider by its portal token or one of its sensor tokens.
    let mut provider_guard = BearerGuard::new(
        Some(settings.token.clone()),
        "--token",
        httpd_metrics.clone(),
    );
    if let Some(tokens) = tokens.clone() {
        provider_guard.issued = Some(Box::new(
            move |token: &str, ext: &mut axum::http::Extensions| {
                let db = tokens.lock().unwrap_or_else(|p| p.into_inner());
                let found = traceback::lookup_provider_token(db.conn_ref(), token)
                    .map_err(crate::providers::ProviderError::from)
                    .and_then(|p| match p {
                        Some(p) => Ok(Some(p)),
                        None => db.lookup_token(token).map(|s| s.map(|s| s.provider_id)),
                    });
                match found {
                    Ok(Some(p)) => {
                        ext.insert(ProviderPrincipal(p));
                        true
                    }
                    Ok(None) => false,
                    Err(e) => {
                        tracing::error!(error = %e, "collector: token lookup failed");
                        false
                    }
                }
            },
        ));
    }
    let request_routes = Router::new()
        .route("/v1/requests", get(list_requests))
        .route("/v1/requests/:id/answer", post(answer_request))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::new(provider_guard),
            shaken_httpd::auth::require,
        ));
    let mut r = Router::new()
        .merge(ingest_routes)
        .merge(read_routes)
        .merge(traceback_routes)
        .merge(request_routes)
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }));
    if test_faults {
        r = r.route("/admin/faults", post(set_faults).get(get_faults));
    }
    (r.with_state(app), httpd_metrics)
}

/// The fault to apply to this request, if any (500, 429 + seconds, 400), after the delay.
async fn take_fault(app: &App) -> Option<CollectorError> {
    let delay = app
        .faults
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .delay_ms;
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let mut f = app.faults.lock().unwrap_or_else(|p| p.into_inner());
    let (status, retry_after) = if f.fail_next > 0 {
        f.fail_next -= 1;
        (StatusCode::INTERNAL_SERVER_ERROR, 0)
    } else if f.rate_limit_next > 0 {
        f.rate_limit_next -= 1;
        (StatusCode::TOO_MANY_REQUESTS, f.retry_after_s)
    } else if f.reject_next > 0 {
        f.reject_next -= 1;
        (StatusCode::BAD_REQUEST, 0)
    } else {
        return None;
    };
    Some(CollectorError::Injected {
        status,
        retry_after,
    })
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
            // Every member: concatenated gzip streams are one legal body (RFC 1952 §2.2).
            flate2::read::MultiGzDecoder::new(body)
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

/// Parses NDJSON: each non-empty line a JSON object with a record id, at most `max_line` bytes.
/// Detection events without a `record_id` are keyed by `detection_id:state:last_seen` (each
/// update is its own event). Ids are unique per kind: a call and a detection may share one.
pub fn parse_lines(text: &[u8], max_line: usize) -> Result<Vec<Incoming>, CollectorError> {
    let mut out = Vec::new();
    for (i, line) in text.split(|b| *b == b'\n').enumerate() {
        let line_no = i + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > max_line {
            return Err(CollectorError::LineTooLong {
                line: line_no,
                max: max_line,
            });
        }
        let Some(first) = line.iter().find(|b| !b.is_ascii_whitespace()) else {
            continue;
        };
        let bad = |problem: &str| CollectorError::BadLine {
            line: line_no,
            problem: problem.to_string(),
        };
        // A derived struct would also accept a JSON array; a record is an object.
        if *first != b'{' {
            return Err(bad("not a JSON object"));
        }
        // The whole line is validated as JSON (the parser skips the fields the head does not
        // name without building them), so what is stored and served verbatim is well-formed
        // and a line costs about its own size in memory.
        let head: RecordHead<'_> =
            serde_json::from_slice(line).map_err(|e| bad(&format!("not JSON: {e}")))?;
        let Some(kind) = head.kind() else {
            let schema = head.schema.as_deref().unwrap_or("");
            return Err(bad(&format!("unknown schema {schema:?}")));
        };
        let record_id = match (&head.record_id, kind) {
            (Some(id), _) => id.to_string(),
            (None, RecordKind::Detection) => {
                match (&head.detection_id, &head.state, &head.last_seen) {
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
        let body = match std::str::from_utf8(line) {
            Ok(t) => t.to_string(),
            Err(_) => return Err(bad("not UTF-8")),
        };
        out.push(Incoming {
            record_id,
            kind: kind.as_str(),
            sensor_id: head.sensor().map(str::to_string),
            body,
        });
    }
    Ok(out)
}

/// What an ingest body came to, computed off the async workers.
struct Decoded {
    records: Vec<Incoming>,
    /// SHA-256 of the inflated body, hex: what an Idempotency-Key is bound to.
    digest: String,
}

fn decode_and_parse(
    headers: &HeaderMap,
    body: &[u8],
    max_body: usize,
    max_line: usize,
) -> Result<Decoded, CollectorError> {
    use sha2::Digest;
    let text = decode_body(headers, body, max_body)?;
    let digest = sha2::Sha256::digest(&text);
    let digest = digest.iter().map(|b| format!("{b:02x}")).collect();
    let records = parse_lines(&text, max_line)?;
    Ok(Decoded { records, digest })
}

/// The answer to an ingest that stored its batch (or had stored it before).
#[derive(Serialize)]
struct Ingested {
    accepted: u64,
    duplicates: u64,
    /// The Idempotency-Key was seen before with this body: nothing stored this time.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    seen_batch: bool,
}

/// `POST /v1/ingest`: every answer, refusals included, counted in `batches_total{status}`.
async fn ingest(
    State(app): State<Arc<App>>,
    sensor: Option<axum::Extension<SensorPrincipal>>,
    headers: HeaderMap,
    body: Result<LimitedBody, Response>,
) -> Response {
    let fault = take_fault(&app).await;
    let resp = match (fault, body) {
        (Some(fault), _) => fault.into_response(),
        (None, Ok(LimitedBody(body))) => {
            match ingest_body(&app, sensor.map(|s| s.0), headers, body).await {
                Ok(done) => Json(done).into_response(),
                Err(e) => {
                    match &e {
                    CollectorError::TooLarge(_) | CollectorError::LineTooLong { .. } => app
                        .log
                        .warn("ingest_too_large", &format!("collector: ingest refused: {e}")),
                    CollectorError::KeyConflict => app.log.warn(
                        "idempotency_conflict",
                        "collector: Idempotency-Key reused with a different body; refused (409)",
                    ),
                    CollectorError::Query(_) | CollectorError::Provider(_) => {
                        tracing::error!(error = %e, "collector: storing a batch failed")
                    }
                    CollectorError::WrongProvider { .. } => app.log.warn(
                        "provider_mismatch",
                        &format!("collector: batch refused (403): {e}"),
                    ),
                    _ => {}
                }
                    e.into_response()
                }
            }
        }
        (None, Err(resp)) => {
            app.log.warn(
                "ingest_body",
                &format!("collector: ingest body refused ({})", resp.status()),
            );
            resp
        }
    };
    app.metrics
        .batches
        .with_label_values(&[resp.status().as_str()])
        .inc();
    resp
}

async fn ingest_body(
    app: &App,
    sensor: Option<SensorPrincipal>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Ingested, CollectorError> {
    let (max_body, max_line) = (app.max_body, app.max_line);
    let hdrs = headers.clone();
    let decoded =
        tokio::task::spawn_blocking(move || decode_and_parse(&hdrs, &body, max_body, max_line))
            .await
            .map_err(|_| CollectorError::Task("parse"))??;
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty() && k.len() <= 256)
        .map(str::to_string);
    let db = app.db.clone();
    let n = decoded.records.len() as u64;
    let mismatch = app.metrics.provider_mismatch.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let mut db = db.lock().unwrap_or_else(|p| p.into_inner());
        // Before the key: a batch a token may not push is refused whatever was sent before.
        if let Some(s) = &sensor {
            if let Some((r, reason)) = db.foreign_record(s.provider_id, &decoded.records)? {
                mismatch.with_label_values(&[reason]).inc();
                return Err(CollectorError::WrongProvider {
                    record_id: r.record_id.clone(),
                    problem: match reason {
                        "no_sensor_id" => "no sensor_id",
                        "unknown_sensor" => "its sensor_id is no registered sensor",
                        _ => "its sensor belongs to another provider than this token",
                    },
                });
            }
        }
        db.store(key.as_deref(), &decoded.digest, &decoded.records)
    })
    .await
    .map_err(|_| CollectorError::Task("storage"))??;
    match stored {
        Stored::Batch {
            inserted,
            duplicates,
        } => {
            app.metrics.ingested.inc_by(inserted);
            app.metrics
                .duplicates
                .with_label_values(&["record_id"])
                .inc_by(duplicates);
            Ok(Ingested {
                accepted: inserted,
                duplicates,
                seen_batch: false,
            })
        }
        Stored::SeenKey => {
            app.metrics
                .duplicates
                .with_label_values(&["idempotency_key"])
                .inc_by(n);
            Ok(Ingested {
                accepted: 0,
                duplicates: n,
                seen_batch: true,
            })
        }
        Stored::KeyConflict => {
            app.metrics.key_conflicts.inc();
            Err(CollectorError::KeyConflict)
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<u32>,
    after: Option<i64>,
}

/// Stored records of one kind, oldest first, as they were received (byte for byte): at most
/// `limit` of them and about `max_response` bytes; `next` is the `after` of the next page.
async fn list(
    State(app): State<Arc<App>>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
    kind: RecordKind,
) -> Result<Response, CollectorError> {
    let Ok(Query(p)) = params else {
        return Err(CollectorError::BadPage);
    };
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let after = p.after.unwrap_or(0);
    let db = app.db.clone();
    let max_bytes = app.max_response;
    let page = tokio::task::spawn_blocking(move || {
        db.lock()
            .unwrap_or_else(|p| p.into_inner())
            .page(kind.as_str(), after, limit, max_bytes)
    })
    .await
    .map_err(|_| CollectorError::Task("storage"))?;
    match page {
        Ok((rows, next)) => {
            let mut out = String::with_capacity(rows.iter().map(String::len).sum::<usize>() + 64);
            out.push_str("{\"records\":[");
            for (i, r) in rows.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r);
            }
            out.push_str("],\"next\":");
            out.push_str(&next.unwrap_or(after).to_string());
            out.push('}');
            Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
        }
        Err(e) => {
            tracing::error!(error = %e, "collector: reading a page failed");
            Err(e)
        }
    }
}

/// Runs `f` on the database off the async workers.
async fn with_db<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, traceback::TracebackError> + Send + 'static,
) -> Result<T, CollectorError> {
    let db = app.db.clone();
    let r = tokio::task::spawn_blocking(move || {
        let mut db = db.lock().unwrap_or_else(|p| p.into_inner());
        f(db.conn())
    })
    .await
    .map_err(|_| CollectorError::Task("traceback"))?;
    r.map_err(|e| {
        if let traceback::TracebackError::Db(err) = &e {
            tracing::error!(error = %err, "collector: traceback storage failed");
        }
        CollectorError::from(e)
    })
}

fn json_body<T>(
    body: Result<Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, CollectorError> {
    body.map(|Json(b)| b)
        .map_err(|e| CollectorError::BadJson(e.body_text()))
}

/// `POST /v1/tracebacks {orig, dest, at}`: resolved as far as the records go, 201 and the chain.
async fn start_traceback(
    State(app): State<Arc<App>>,
    body: Result<Json<Subject>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, CollectorError> {
    let s = json_body(body)?;
    let (tuning, clock) = (app.tuning, app.clock.clone());
    let view = with_db(&app, move |c| {
        let now = clock();
        let id = traceback::start(c, &s, tuning, now)?;
        traceback::get(c, id, now)
    })
    .await?;
    app.metrics
        .tracebacks
        .with_label_values(&[view.status.as_str()])
        .inc();
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn get_traceback(
    State(app): State<Arc<App>>,
    axum::extract::Path(id): axum::extract::Path<i64>,
) -> Result<Response, CollectorError> {
    let clock = app.clock.clone();
    let view = with_db(&app, move |c| traceback::get(c, id, clock())).await?;
    Ok(Json(view).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestParams {
    /// Answered and missed requests too, not only open ones.
    #[serde(default)]
    all: bool,
}

/// `GET /v1/requests`: the caller's provider's requests (every provider's for the analyst).
async fn list_requests(
    State(app): State<Arc<App>>,
    who: Option<axum::Extension<ProviderPrincipal>>,
    params: Result<Query<RequestParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, CollectorError> {
    let Ok(Query(p)) = params else {
        return Err(CollectorError::BadJson("all must be true or false".into()));
    };
    let provider = who.map(|w| w.0 .0);
    let clock = app.clock.clone();
    let list = with_db(&app, move |c| {
        traceback::requests(c, provider, p.all, clock())
    })
    .await?;
    Ok(Json(serde_json::json!({ "requests": list })).into_response())
}

/// `POST /v1/requests/{id}/answer {upstream_ocn | origin: "customer"}`: the traceback after it.
async fn answer_request(
    State(app): State<Arc<App>>,
    who: Option<axum::Extension<ProviderPrincipal>>,
    axum::extract::Path(id): axum::extract::Path<i64>,
    body: Result<Json<Answer>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, CollectorError> {
    let a = json_body(body)?;
    let provider = who.map(|w| w.0 .0);
    let (tuning, clock) = (app.tuning, app.clock.clone());
    let view = with_db(&app, move |c| {
        let now = clock();
        let tb = traceback::answer(c, id, provider, &a, tuning, now)?;
        traceback::get(c, tb, now)
    })
    .await?;
    Ok(Json(view).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowParams {
    /// Days back from now (default 90, at most 3650).
    days: Option<u32>,
    /// `csv` for CSV (noncooperative only); JSON otherwise.
    format: Option<String>,
}

async fn cards(
    app: &App,
    params: Result<Query<WindowParams>, axum::extract::rejection::QueryRejection>,
) -> Result<(Vec<crate::scorecard::Scorecard>, Option<String>), CollectorError> {
    let Ok(Query(p)) = params else {
        return Err(CollectorError::BadJson(
            "days must be a whole number; format csv or json".into(),
        ));
    };
    let days = i64::from(p.days.unwrap_or(90).min(3650));
    let clock = app.clock.clone();
    let cards = with_db(app, move |c| {
        let now = clock();
        crate::scorecard::scorecards(c, Timestamp(now.micros() - days * 86_400_000_000), now)
    })
    .await?;
    Ok((cards, p.format))
}

/// `GET /v1/providers/noncooperative[?days=N&format=csv]`: the providers that missed or were
/// late with traceback requests in the window, each with its reasons.
async fn noncooperative(
    State(app): State<Arc<App>>,
    params: Result<Query<WindowParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, CollectorError> {
    let (cards, format) = cards(&app, params).await?;
    if format.as_deref() == Some("csv") {
        return Ok((
            [(header::CONTENT_TYPE, "text/csv")],
            crate::scorecard::noncooperative_csv(&cards),
        )
            .into_response());
    }
    let bad: Vec<_> = cards
        .into_iter()
        .filter(|c| !c.reasons.is_empty())
        .collect();
    Ok(Json(serde_json::json!({ "providers": bad })).into_response())
}

/// `GET /v1/providers/{name or OCN}/scorecard[?days=N]`.
async fn scorecard(
    State(app): State<Arc<App>>,
    axum::extract::Path(name): axum::extract::Path<String>,
    params: Result<Query<WindowParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, CollectorError> {
    let (cards, _) = cards(&app, params).await?;
    match cards
        .into_iter()
        .find(|c| c.provider == name || c.ocns.contains(&name))
    {
        Some(c) => Ok(Json(c).into_response()),
        None => Err(traceback::TracebackError::NotFound("provider").into()),
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
) -> Result<Json<Faults>, CollectorError> {
    let Json(f) = body.map_err(|e| CollectorError::BadJson(e.body_text()))?;
    *app.faults.lock().unwrap_or_else(|p| p.into_inner()) = f.clone();
    Ok(Json(f))
}

async fn get_faults(State(app): State<Arc<App>>) -> Response {
    Json(app.faults.lock().unwrap_or_else(|p| p.into_inner()).clone()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_parsed_and_a_bad_one_is_named() {
        let ok = b"{\"schema\":\"shaken-sensor/call/v1\",\"record_id\":\"a\",\"sensor_id\":\"s\"}\n\n{\"schema\":\"shaken-sensor/detection/v1\",\"detection_id\":\"d1\",\"state\":\"opened\",\"last_seen\":\"t\"}\n{\"schema\":\"shaken-sensor/detection/v1\",\"detection_id\":\"edge:1:det-6b1-000001\",\"state\":\"closed\",\"last_seen\":\"t\"}\n";
        let recs = parse_lines(ok, 1 << 20).unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!((recs[0].record_id.as_str(), recs[0].kind), ("a", "call"));
        assert_eq!(recs[0].sensor_id.as_deref(), Some("s"));
        assert_eq!(
            (recs[1].record_id.as_str(), recs[1].kind),
            ("d1:opened:t", "detection")
        );
        // A DetectionEvent has no sensor_id: its detection id names the sensor (so a sensor
        // token's provider check applies to detections too).
        assert_eq!(recs[1].sensor_id, None);
        assert_eq!(recs[2].sensor_id.as_deref(), Some("edge:1"));
        let bad = b"{\"schema\":\"shaken-sensor/call/v1\",\"record_id\":\"a\"}\n{\"schema\":\"shaken-sensor/call/v1\"}\n";
        match parse_lines(bad, 1 << 20) {
            Err(CollectorError::BadLine { line, .. }) => assert_eq!(line, 2),
            other => panic!("{:?}", other.map(|v| v.len())),
        }
        match parse_lines(b"[1]\n", 1 << 20) {
            Err(CollectorError::BadLine { line, .. }) => assert_eq!(line, 1),
            other => panic!("{:?}", other.map(|v| v.len())),
        }
    }

    #[test]
    fn long_lines_are_refused_before_parsing_and_multi_member_gzip_is_read_whole() {
        let line = b"{\"schema\":\"shaken-sensor/call/v1\",\"record_id\":\"a\"}\n";
        match parse_lines(line, 10) {
            Err(CollectorError::LineTooLong { line, max }) => assert_eq!((line, max), (1, 10)),
            other => panic!("{:?}", other.map(|v| v.len())),
        }
        let gz = |d: &[u8]| {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(d).unwrap();
            e.finish().unwrap()
        };
        let mut body = gz(b"one\n");
        body.extend(gz(b"two\n"));
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        assert_eq!(decode_body(&h, &body, 100).unwrap(), b"one\ntwo\n");
        // The inflated cap counts every member.
        assert!(matches!(
            decode_body(&h, &body, 5),
            Err(CollectorError::TooLarge(5))
        ));
    }
}

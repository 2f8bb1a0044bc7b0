//! The collector client (docs/collector.md): takes records off the [`Spool`] in batches, DetectionEvents
//! ahead of CallRecords, and POSTs each as gzip NDJSON to `{url}/v1/ingest` with a bearer token
//! and an Idempotency-Key that stays the same for every retry of that batch.
//!
//! Outcomes: 2xx acknowledges the batch in the spool; network errors, 408, 429 and 5xx are
//! retried with exponential backoff and jitter (Retry-After honoured); 401/403 keep the data,
//! retry every `backoff_max_ms` and raise `push_auth_failing`; any other 4xx moves the batch to
//! the dead-letter folder. It must never drop a record for a transient or credential problem,
//! never block the capture path (its input is a bounded queue, [`PushQueue`]), and never spin:
//! every retry waits.
//!
//! Up to `max_in_flight` batches are out at once, each retried by its own task; the spool's ack
//! point moves only over a contiguous run of settled batches ([`Spool::delivered`]), and a batch
//! cut before a crash is cut the same way after it, so it keeps its Idempotency-Key.
//!
//! Threads: one spool writer (appends what the queue brings, fsync policy), one pusher with its
//! own small tokio runtime. [`PushService::finish`] drains for at most `drain_timeout_s`.

use super::spool::{now_ms, Batch, FsyncPolicy, Kind, Position, Spool, SpoolConfig, SpoolError};
use crate::backpressure::Backpressure;
use crate::config::{PushConfig, PushFsync};
use crate::metrics::Metrics;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use reqwest::StatusCode;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Longest Retry-After we wait for before asking again.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Bytes of a refusal's body kept in the dead-letter file and the log.
const MAX_REASON: usize = 4096;
/// Batches of one class a single undelivered batch may hold behind it (delivered, waiting for
/// the ack point), per `max_in_flight` slot; beyond it no new batch of that class goes out.
const HELD_PER_SLOT: usize = 16;
/// Records the spool writer appends at once.
const APPEND_BATCH: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("push: cannot read {key} {path}: {source}")]
    ReadFile {
        key: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("push: {key} {path}: {message}")]
    BadPem {
        key: &'static str,
        path: String,
        message: String,
    },
    #[error("push: token is not a valid HTTP header value")]
    BadToken,
    #[error("push: building the HTTP client: {0}")]
    Client(reqwest::Error),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("push: cannot start a thread: {0}")]
    Spawn(std::io::Error),
}

/// Largest CA bundle, certificate or key file.
const MAX_PEM_FILE: u64 = 1 << 20;

fn read(key: &'static str, path: &str) -> Result<Vec<u8>, PushError> {
    use crate::config::files::FileError;
    crate::config::read_bounded(std::path::Path::new(path), MAX_PEM_FILE).map_err(|e| {
        let source = match e {
            FileError::Io { source, .. } => source,
            other => std::io::Error::other(other.problem()),
        };
        PushError::ReadFile {
            key,
            path: path.to_string(),
            source,
        }
    })
}

/// The HTTP client with the configured CA bundle and client certificate.
pub fn build_client(cfg: &PushConfig) -> Result<reqwest::Client, PushError> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_millis(cfg.timeout_ms))
        .connect_timeout(Duration::from_millis(cfg.timeout_ms))
        .pool_idle_timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none());
    if !cfg.ca_file.is_empty() {
        let pem = read("push.ca_file", &cfg.ca_file)?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| PushError::BadPem {
            key: "push.ca_file",
            path: cfg.ca_file.clone(),
            message: e.to_string(),
        })?;
        if certs.is_empty() {
            return Err(PushError::BadPem {
                key: "push.ca_file",
                path: cfg.ca_file.clone(),
                message: "no certificate in it".into(),
            });
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    if !cfg.client_cert_file.is_empty() {
        let mut pem = read("push.client_cert_file", &cfg.client_cert_file)?;
        pem.push(b'\n');
        pem.extend(read("push.client_key_file", &cfg.client_key_file)?);
        let id = reqwest::Identity::from_pem(&pem).map_err(|e| PushError::BadPem {
            key: "push.client_cert_file",
            path: cfg.client_cert_file.clone(),
            message: e.to_string(),
        })?;
        b = b.identity(id);
    }
    b.build().map_err(PushError::Client)
}

/// `check-config`: the CA bundle, client certificate and token file read and parsed as the
/// pusher would at start-up.
pub fn check_files(cfg: &PushConfig) -> Result<(), PushError> {
    build_client(cfg)?;
    bearer(cfg).map(|_| ())
}

fn bearer(cfg: &PushConfig) -> Result<HeaderValue, PushError> {
    let token = if cfg.token_file.is_empty() {
        cfg.token.clone()
    } else {
        String::from_utf8_lossy(&read("push.token_file", &cfg.token_file)?)
            .trim()
            .to_string()
    };
    let mut v =
        HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| PushError::BadToken)?;
    v.set_sensitive(true);
    Ok(v)
}

/// The producers' side: bounded, in front of the spool writer. Clone freely.
#[derive(Clone)]
pub struct PushQueue {
    tx: Sender<(Kind, Vec<u8>)>,
    metrics: Arc<Metrics>,
}

impl PushQueue {
    /// Offers one serialized record (a JSON object, no trailing newline) under the run's
    /// `backpressure` (replay blocks while the queue is full); a record not queued is counted
    /// in `records_dropped_total{where="push_queue"}`. Returns whether it was queued.
    pub fn offer(&self, kind: Kind, json: Vec<u8>, backpressure: Backpressure) -> bool {
        let sent = backpressure.send(&self.tx, (kind, json)).is_ok();
        if !sent {
            self.metrics
                .records_dropped
                .with_label_values(&["push_queue"])
                .inc();
        }
        sent
    }
}

/// The running push: the spool writer and the pusher threads.
pub struct PushService {
    queue: Option<PushQueue>,
    writer: Option<JoinHandle<()>>,
    pusher: Option<JoinHandle<()>>,
    /// Set with the drain deadline (Unix ms) when the sensor stops.
    finish_at: Arc<AtomicU64>,
    wake: Arc<Notify>,
    spool: Arc<Spool>,
    drain: Duration,
}

struct Shared {
    spool: Arc<Spool>,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    finish_at: Arc<AtomicU64>,
}

impl PushService {
    /// Opens the spool, checks the credentials' files and starts both threads.
    pub fn start(
        cfg: &PushConfig,
        sensor_id: &str,
        metrics: Arc<Metrics>,
    ) -> Result<PushService, PushError> {
        let client = build_client(cfg)?;
        let auth = bearer(cfg)?;
        let fsync = match cfg.fsync {
            PushFsync::EveryBatch => FsyncPolicy::EveryBatch,
            PushFsync::Interval => {
                FsyncPolicy::Interval(Duration::from_millis(cfg.fsync_interval_ms))
            }
        };
        let spool = Arc::new(Spool::open(
            &SpoolConfig {
                dir: PathBuf::from(&cfg.spool_dir),
                max_bytes: cfg.spool_max_mb * 1024 * 1024,
                fsync,
            },
            metrics.clone(),
        )?);
        // Zeros from the start, so dashboards and alerts see the series before the first event.
        for outcome in ["delivered", "retry", "auth_failed", "dead_letter"] {
            metrics.push_batches.with_label_values(&[outcome]);
        }
        for outcome in ["delivered", "dead_letter"] {
            metrics.push_records.with_label_values(&[outcome]);
        }
        for kind in Kind::ALL {
            metrics.records_shed.with_label_values(&[kind.as_str()]);
        }
        let backlog: u64 = Kind::ALL.iter().map(|k| spool.pending(*k)).sum();
        if backlog > 0 {
            tracing::info!(records = backlog, "push: resuming delivery from the spool");
        }
        let (tx, rx) = bounded(cfg.queue_records);
        let wake = Arc::new(Notify::new());
        let finish_at = Arc::new(AtomicU64::new(0));
        let shared = Shared {
            spool: spool.clone(),
            metrics: metrics.clone(),
            wake: wake.clone(),
            finish_at: finish_at.clone(),
        };
        let writer = {
            let (spool, metrics, wake) = (spool.clone(), metrics.clone(), wake.clone());
            let tick = match fsync {
                FsyncPolicy::Interval(d) => d.min(Duration::from_millis(200)),
                FsyncPolicy::EveryBatch => Duration::from_millis(200),
            };
            std::thread::Builder::new()
                .name("push-spool".into())
                .spawn(move || spool_writer(rx, &spool, &metrics, &wake, tick))
                .map_err(PushError::Spawn)?
        };
        let pusher = Pusher {
            client,
            auth,
            ingest: format!("{}/v1/ingest", cfg.url.trim_end_matches('/')),
            sensor_id: sensor_id.to_string(),
            cfg: cfg.clone(),
            shared,
        };
        let pusher = std::thread::Builder::new()
            .name("push".into())
            .spawn(move || pusher.run())
            .map_err(PushError::Spawn)?;
        Ok(PushService {
            queue: Some(PushQueue {
                tx,
                metrics: metrics.clone(),
            }),
            writer: Some(writer),
            pusher: Some(pusher),
            finish_at,
            wake,
            spool,
            drain: Duration::from_secs(cfg.drain_timeout_s),
        })
    }

    /// A producer handle (the sink thread's; detections get their own clone).
    pub fn queue(&self) -> PushQueue {
        self.queue.clone().expect("queue lives until finish")
    }

    pub fn spool(&self) -> &Arc<Spool> {
        &self.spool
    }

    /// Stops taking records, appends what is queued, then waits at most `drain_timeout_s` for
    /// delivery. What is not delivered by then stays in the spool for the next start.
    pub fn finish(mut self) {
        self.queue = None;
        // The writer ends when every producer's queue handle is gone.
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        let deadline = now_ms() + self.drain.as_millis() as u64;
        self.finish_at.store(deadline.max(1), Ordering::SeqCst);
        self.wake.notify_one();
        if let Some(p) = self.pusher.take() {
            let _ = p.join();
        }
        let left: u64 = Kind::ALL.iter().map(|k| self.spool.pending(*k)).sum();
        if left > 0 {
            tracing::warn!(
                records = left,
                "push: undelivered records left in the spool for the next start"
            );
        }
    }
}

fn spool_writer(
    rx: Receiver<(Kind, Vec<u8>)>,
    spool: &Spool,
    metrics: &Metrics,
    wake: &Notify,
    tick: Duration,
) {
    let mut detections = Vec::new();
    let mut calls = Vec::new();
    loop {
        let first = match rx.recv_timeout(tick) {
            Ok(item) => item,
            Err(RecvTimeoutError::Timeout) => {
                if let Err(e) = spool.sync_if_due() {
                    tracing::error!(error = %e, "push: spool fsync failed");
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        for (kind, json) in std::iter::once(first).chain(rx.try_iter().take(APPEND_BATCH - 1)) {
            match kind {
                Kind::Detection => detections.push(json),
                Kind::CallRecord => calls.push(json),
            }
        }
        for (kind, batch) in [
            (Kind::Detection, &mut detections),
            (Kind::CallRecord, &mut calls),
        ] {
            if batch.is_empty() {
                continue;
            }
            if let Err(e) = spool.append(kind, batch) {
                tracing::error!(error = %e, records = batch.len(), "push: records not spooled");
                metrics
                    .records_dropped
                    .with_label_values(&["spool"])
                    .inc_by(batch.len() as u64);
            }
            batch.clear();
        }
        if let Err(e) = spool.sync_if_due() {
            tracing::error!(error = %e, "push: spool fsync failed");
        }
        wake.notify_one();
    }
    if let Err(e) = spool.sync() {
        tracing::error!(error = %e, "push: spool fsync failed");
    }
}

/// What one request came to.
#[derive(Debug, PartialEq)]
enum Outcome {
    Delivered,
    Retry {
        why: String,
        after: Option<Duration>,
    },
    AuthFailed(StatusCode),
    Refused {
        status: StatusCode,
        reason: String,
    },
}

/// xorshift64*: jitter needs spread, not secrecy.
struct Jitter(u64);

impl Jitter {
    /// `salt` spreads the tasks of one process apart.
    fn new(salt: u64) -> Self {
        Jitter(
            (now_ms()
                ^ (u64::from(std::process::id()) << 32)
                ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
                | 1,
        )
    }

    /// A uniform draw in [d/2, d].
    fn spread(&mut self, d: Duration) -> Duration {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        let frac = r as f64 / (1u64 << 53) as f64;
        d.mul_f64(0.5 + 0.5 * frac)
    }
}

/// What every delivery task shares.
struct Pusher {
    client: reqwest::Client,
    auth: HeaderValue,
    ingest: String,
    sensor_id: String,
    cfg: PushConfig,
    shared: Shared,
}

/// The Idempotency-Key of a batch: sensor, spool instance, class and the byte range it covers,
/// so every retry of the same records (also after a restart) carries the same key.
pub fn batch_key(sensor_id: &str, spool_id: &str, batch: &Batch) -> String {
    format!(
        "{sensor_id}:{spool_id}:{}:{}.{}-{}.{}",
        batch.kind.as_str(),
        batch.start.segment,
        batch.start.offset,
        batch.end.segment,
        batch.end.offset
    )
}

/// NDJSON of a batch, gzip-compressed.
pub fn gzip_ndjson(records: &[Vec<u8>]) -> Vec<u8> {
    let raw: usize = records.iter().map(|r| r.len() + 1).sum();
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(raw / 4 + 64),
        flate2::Compression::fast(),
    );
    for r in records {
        // Writing into a Vec cannot fail.
        let _ = gz.write_all(r);
        let _ = gz.write_all(b"\n");
    }
    gz.finish().unwrap_or_default()
}

fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let secs: u64 = h.get("retry-after")?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

impl Pusher {
    fn run(self) {
        // Two workers: gzip of one batch and the HTTP of the others overlap.
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("push-io")
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "push: no runtime; records stay in the spool");
                return;
            }
        };
        rt.block_on(Arc::new(self).deliver_loop());
    }

    /// Unix ms by which to stop, once the sensor is finishing.
    fn deadline(&self) -> Option<u64> {
        match self.shared.finish_at.load(Ordering::SeqCst) {
            0 => None,
            t => Some(t),
        }
    }

    fn past_deadline(&self) -> bool {
        self.deadline().is_some_and(|t| now_ms() >= t)
    }

    /// Sleeps `d`, or less when the drain deadline comes first; false when it came.
    async fn pause(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        loop {
            let now = Instant::now();
            if now >= until {
                return true;
            }
            if self.past_deadline() {
                return false;
            }
            // Short steps so a finish() during a long backoff is noticed promptly.
            tokio::time::sleep((until - now).min(Duration::from_millis(100))).await;
        }
    }

    /// The next batch to hand out, DetectionEvents first.
    fn next_batch(&self) -> Result<Option<Batch>, SpoolError> {
        let window = self.cfg.max_in_flight.max(1) * HELD_PER_SLOT;
        for kind in Kind::ALL {
            // DetectionEvents go one batch at a time, so the collector receives an event's
            // states (opened, updated, closed) in order; they are few. CallRecords are
            // independent of each other and may arrive in any order.
            let limit = match kind {
                Kind::Detection => 1,
                Kind::CallRecord => window,
            };
            if self.shared.spool.in_flight(kind) >= limit {
                continue; // one out already, or too many delivered held behind one
            }
            let b = self.shared.spool.next_batch(
                kind,
                self.cfg.batch_max_records,
                self.cfg.batch_max_bytes,
            )?;
            if b.is_some() {
                return Ok(b);
            }
        }
        Ok(None)
    }

    /// Keeps up to `max_in_flight` batches out, each delivered by its own task with its own
    /// retries; the spool counts a batch delivered when its task settles it.
    async fn deliver_loop(self: Arc<Self>) {
        let m = self.shared.metrics.clone();
        let max = self.cfg.max_in_flight.max(1);
        let mut tasks = tokio::task::JoinSet::new();
        // (class, start) -> append time of the batch's first record, for the backlog age.
        let mut out: std::collections::BTreeMap<(usize, Position), u64> = Default::default();
        let mut read_failed = false;
        loop {
            let finishing = self.deadline().is_some();
            let late = self.past_deadline();
            while !late && !read_failed && tasks.len() < max {
                match self.next_batch() {
                    Ok(Some(batch)) => {
                        let at = (batch.kind as usize, batch.start);
                        out.insert(at, batch.first_appended_ms);
                        tasks.spawn(self.clone().deliver(batch));
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "push: reading the spool failed");
                        read_failed = true;
                    }
                }
            }
            let unsent = Kind::ALL.iter().any(|k| self.shared.spool.unsent(*k));
            if unsent && !late && !read_failed {
                m.push_in_flight_full.inc();
            }
            m.push_in_flight.set(tasks.len() as i64);
            m.push_oldest_undelivered_seconds.set(
                out.values()
                    .min()
                    .map_or(0, |t| now_ms().saturating_sub(*t) / 1000) as i64,
            );
            if tasks.is_empty() {
                if finishing && (late || !read_failed) {
                    return; // drained, or out of time
                }
                if read_failed {
                    read_failed = false;
                    if !self.pause(Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
                tokio::select! {
                    _ = self.shared.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
                continue;
            }
            let room = tasks.len() < max && !late;
            tokio::select! {
                done = tasks.join_next() => {
                    if let Some(Ok(at)) = done {
                        out.remove(&at);
                    }
                }
                _ = self.shared.wake.notified(), if room => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            // Settle every other finished task before handing out more.
            while let Some(done) = tasks.try_join_next() {
                if let Ok(at) = done {
                    out.remove(&at);
                }
            }
        }
    }

    /// Delivers one batch: retried until the collector acknowledges or refuses it, or the
    /// drain deadline comes. Every attempt carries the same records and Idempotency-Key.
    async fn deliver(self: Arc<Self>, batch: Batch) -> (usize, Position) {
        let at = (batch.kind as usize, batch.start);
        let m = &self.shared.metrics;
        let key = batch_key(&self.sensor_id, self.shared.spool.id(), &batch);
        let body = tokio::task::block_in_place(|| gzip_ndjson(&batch.records));
        let mut rng = Jitter::new(batch.start.offset ^ batch.start.segment.rotate_left(32));
        let mut attempt: u32 = 0;
        loop {
            let outcome = match self.deadline() {
                Some(t) => {
                    let left = Duration::from_millis(t.saturating_sub(now_ms()));
                    match tokio::time::timeout(left, self.send(&key, body.clone())).await {
                        Ok(o) => o,
                        Err(_) => return at, // the drain deadline came: it stays spooled
                    }
                }
                None => self.send(&key, body.clone()).await,
            };
            let wait = match outcome {
                Outcome::Delivered => {
                    m.push_auth_failing.set(0);
                    m.push_batches.with_label_values(&["delivered"]).inc();
                    m.push_records
                        .with_label_values(&["delivered"])
                        .inc_by(batch.records.len() as u64);
                    if let Err(e) = self.shared.spool.delivered(&batch) {
                        tracing::error!(error = %e, "push: cannot record delivery; the batch will be sent again");
                    }
                    return at;
                }
                Outcome::Retry { why, after } => {
                    m.push_batches.with_label_values(&["retry"]).inc();
                    let exp = Duration::from_millis(self.cfg.backoff_initial_ms)
                        .saturating_mul(1u32 << attempt.min(20))
                        .min(Duration::from_millis(self.cfg.backoff_max_ms));
                    attempt = attempt.saturating_add(1);
                    let wait = rng.spread(exp).max(after.unwrap_or_default());
                    tracing::warn!(reason = %why, retry_in_ms = wait.as_millis() as u64, records = batch.records.len(), "push: batch not delivered, will retry");
                    wait
                }
                Outcome::AuthFailed(status) => {
                    m.push_batches.with_label_values(&["auth_failed"]).inc();
                    m.push_auth_failing.set(1);
                    tracing::error!(
                        %status,
                        url = %self.ingest,
                        "push: the collector refuses our credentials (push.token / client certificate); records are kept and retried"
                    );
                    Duration::from_millis(self.cfg.backoff_max_ms)
                }
                Outcome::Refused { status, reason } => {
                    m.push_batches.with_label_values(&["dead_letter"]).inc();
                    m.push_records
                        .with_label_values(&["dead_letter"])
                        .inc_by(batch.records.len() as u64);
                    tokio::task::block_in_place(|| self.dead_letter(&batch, &key, status, &reason));
                    if let Err(e) = self.shared.spool.delivered(&batch) {
                        tracing::error!(error = %e, "push: cannot record the dead-letter move");
                    }
                    return at;
                }
            };
            if !self.pause(wait).await {
                return at; // the drain deadline came: it stays spooled
            }
        }
    }

    async fn send(&self, key: &str, body: Vec<u8>) -> Outcome {
        let res = self
            .client
            .post(&self.ingest)
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_TYPE, "application/x-ndjson")
            .header(CONTENT_ENCODING, "gzip")
            .header("idempotency-key", key)
            .body(body)
            .send()
            .await;
        let resp = match res {
            Ok(r) => r,
            Err(e) => {
                let why = if e.is_timeout() {
                    "timeout".to_string()
                } else if e.is_connect() {
                    "connection failed".to_string()
                } else {
                    format!("network error: {e}")
                };
                return Outcome::Retry { why, after: None };
            }
        };
        let status = resp.status();
        if status.is_success() {
            return Outcome::Delivered;
        }
        let after = retry_after(resp.headers());
        match status.as_u16() {
            408 | 429 | 500..=599 => Outcome::Retry {
                why: format!("HTTP {status}"),
                after,
            },
            401 | 403 => Outcome::AuthFailed(status),
            _ => {
                let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                let reason =
                    String::from_utf8_lossy(&body[..body.len().min(MAX_REASON)]).into_owned();
                Outcome::Refused { status, reason }
            }
        }
    }

    fn dead_letter(&self, batch: &Batch, key: &str, status: StatusCode, reason: &str) {
        let dir = Path::new(&self.cfg.dead_letter_dir);
        let cap = self.cfg.dead_letter_max_mb * 1024 * 1024;
        let used: u64 = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        let size: u64 = batch.records.iter().map(|r| r.len() as u64 + 1).sum();
        let file = dir.join(format!(
            "{}-{}-{}.ndjson",
            now_ms(),
            batch.kind.as_str(),
            batch.start.segment * 1_000_000_000_000 + batch.start.offset
        ));
        let header = serde_json::json!({ "dead_letter": {
            "status": status.as_u16(), "reason": reason, "idempotency_key": key,
            "class": batch.kind.as_str(), "records": batch.records.len(), "url": self.ingest,
        }});
        let written = if used + size > cap {
            Err(std::io::Error::other(format!(
                "dead-letter folder over push.dead_letter_max_mb ({used} bytes)"
            )))
        } else {
            std::fs::create_dir_all(dir).and_then(|_| {
                let mut f = std::io::BufWriter::new(std::fs::File::create(&file)?);
                writeln!(f, "{header}")?;
                for r in &batch.records {
                    f.write_all(r)?;
                    f.write_all(b"\n")?;
                }
                f.into_inner().map_err(|e| e.into_error())?.sync_all()
            })
        };
        match written {
            Ok(()) => tracing::error!(
                %status, reason, records = batch.records.len(), file = %file.display(),
                "push: the collector refused a batch; moved to the dead-letter folder"
            ),
            Err(e) => tracing::error!(
                %status, reason, records = batch.records.len(), error = %e,
                "push: the collector refused a batch and it could not be dead-lettered; records lost"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_half_to_full() {
        let mut j = Jitter(42);
        let d = Duration::from_millis(1000);
        let draws: Vec<Duration> = (0..1000).map(|_| j.spread(d)).collect();
        assert!(draws
            .iter()
            .all(|x| *x >= Duration::from_millis(500) && *x <= d));
        // Spread, not a constant.
        let lo = draws
            .iter()
            .filter(|x| **x < Duration::from_millis(750))
            .count();
        assert!(lo > 300 && lo < 700, "{lo}");
    }

    #[test]
    fn gzip_body_round_trips_as_ndjson() {
        use std::io::Read;
        let recs = vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()];
        let gz = gzip_ndjson(&recs);
        let mut out = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "{\"a\":1}\n{\"b\":2}\n");
    }

    #[test]
    fn retry_after_seconds_are_read_and_capped() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after", HeaderValue::from_static("999999"));
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }
}

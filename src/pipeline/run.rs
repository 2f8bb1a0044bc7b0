//! Builds the stages from the configuration, starts their threads, and shuts them down in
//! order: capture stops → workers close their calls → the sink writes the last record.

use super::capture_thread::CaptureThread;
use super::detection::Detection;
use super::dispatch::{Backpressure, Dispatcher};
use super::messages::{SinkRecord, WorkerMsg};
use super::problems;
use super::reload::LiveConfig;
use super::summary::Summary;
use super::verification::{publish_cache_stats, CacheCounters, Verification};
use super::worker::{RecordSender, Worker};
use crate::capture::decode::{DecodeSettings, Decoder};
use crate::capture::hep_listen::HepSource;
use crate::capture::source::{FrameSource, PcapSource, SourceError};
use crate::clock::{Clock, ManualClock, SystemClock, Timestamp};
use crate::config::Config;
use crate::dialog::table::{DialogLimits, DialogTable};
use crate::export::jsonl::{JsonlError, JsonlWriter};
use crate::health::{self, Health};
use crate::metrics::latency::{LocalLatency, Stage};
use crate::metrics::Metrics;
use crate::shaken::service::ShakenService;
use crate::sip::message::ParseLimits;
use crate::traceback::store::{spawn_writer, Store, StoreConfig, WriterStats};
use crossbeam_channel::{bounded, RecvTimeoutError};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Hep(#[from] crate::capture::hep_listen::HepListenError),
    #[error(transparent)]
    Output(#[from] JsonlError),
    #[error("{0} thread panicked")]
    ThreadPanicked(&'static str),
    #[error("cannot start thread: {0}")]
    Spawn(std::io::Error),
    #[error(transparent)]
    Shaken(#[from] crate::shaken::service::SetupError),
    #[error("traceback store: {0}")]
    Store(#[from] crate::traceback::store::StoreError),
    #[error(transparent)]
    Push(#[from] crate::export::push::PushError),
    #[error(transparent)]
    HepExport(#[from] crate::export::hep::HepExportError),
}

pub enum Input {
    /// Capture files, read one after another as fast as the machine allows.
    Files(Vec<PathBuf>),
    /// The configured interfaces and HEP listeners, until `stop` is set.
    Live,
}

pub struct RunOptions {
    /// Overrides `output.records` (a path, "-" or "").
    pub records_out: Option<String>,
    /// Progress lines on stderr (replay).
    pub progress: bool,
    /// Set by the signal handler (or a test) to stop capturing and flush.
    pub stop: Arc<AtomicBool>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    /// Readiness of capture and sinks for /healthz; later stages register their own.
    pub health: Arc<Health>,
    /// What a SIGHUP may change while running; None: fixed for this run.
    pub live: Option<Arc<LiveConfig>>,
    /// Overrides `output.detections` (a path, "-" or "").
    pub detections_out: Option<String>,
}

impl RunOptions {
    pub fn new(stop: Arc<AtomicBool>) -> Self {
        let metrics = Arc::new(Metrics::new());
        RunOptions {
            records_out: None,
            progress: false,
            stop,
            health: Arc::new(Health::new(&metrics)),
            metrics,
            clock: Arc::new(SystemClock),
            live: None,
            detections_out: None,
        }
    }
}

fn spawn<T: Send + 'static>(
    name: String,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<thread::JoinHandle<T>, PipelineError> {
    thread::Builder::new()
        .name(name)
        .spawn(f)
        .map_err(PipelineError::Spawn)
}

/// Publishes the store writer's totals; a write error since the last call marks the store
/// unhealthy until a batch commits again.
fn publish_store_stats(m: &Metrics, s: &WriterStats, h: &health::Component, seen: &mut (u64, u64)) {
    use std::sync::atomic::Ordering::Relaxed;
    let (errors, batches) = (s.errors.load(Relaxed), s.batches.load(Relaxed));
    if errors > seen.0 {
        h.set_failed(format!(
            "{} store write errors (see the log)",
            errors - seen.0
        ));
    } else if batches > seen.1 {
        h.set_ok();
    }
    *seen = (errors, batches);
    for (stat, v) in [
        ("inserted", &s.inserted),
        ("duplicates", &s.duplicates),
        ("batches", &s.batches),
        ("errors", &s.errors),
        ("partitions_dropped", &s.partitions_dropped),
        ("dict_full", &s.dict_full),
    ] {
        m.store
            .with_label_values(&[stat])
            .set(v.load(Relaxed) as i64);
    }
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Runs the whole pipeline to completion (end of files, or `stop`) and returns its summary.
pub fn run(cfg: &Config, input: Input, opts: RunOptions) -> Result<Summary, PipelineError> {
    let started = Instant::now();
    let metrics = opts.metrics.clone();
    let live = matches!(input, Input::Live);
    let mut sources: Vec<Box<dyn FrameSource>> = Vec::new();
    match &input {
        Input::Files(files) => {
            for f in files {
                sources.push(Box::new(PcapSource::open_file(f)?));
            }
        }
        Input::Live => {
            let filter = |linktype| cfg.bpf_filter(linktype);
            for i in &cfg.capture.interfaces {
                sources.push(Box::new(PcapSource::open_live(i, &cfg.capture, &filter)?));
            }
            if cfg.capture.hep.enabled {
                sources.push(Box::new(HepSource::start(
                    &cfg.capture.hep,
                    metrics.clone(),
                    opts.clock.clone(),
                )?));
            }
        }
    }

    if live {
        tracing::info!(sources = sources.len(), "capture running");
    } else {
        tracing::debug!(sources = sources.len(), "capture running");
    }

    // Sink.
    let records_path = opts
        .records_out
        .clone()
        .unwrap_or_else(|| cfg.output.records.clone());
    let mut writer = JsonlWriter::open(&records_path)?;
    let (rec_tx, rec_rx) = bounded::<SinkRecord>(cfg.output.queue_records);
    let serialize_in_workers = writer.is_some() || cfg.push.enabled || cfg.traceback.enabled;
    let sink_metrics = metrics.clone();
    // The traceback store has its own writer thread behind its own bounded queue.
    let store = if cfg.traceback.enabled {
        let tb = &cfg.traceback;
        let store = Store::open(StoreConfig {
            dir: PathBuf::from(&tb.dir),
            retention_days: tb.retention_days,
            max_disk_mb: tb.max_disk_mb,
            batch_max: 1000,
            flush_interval: Duration::from_millis(tb.flush_ms),
        })?;
        let (tx, rx) = bounded::<SinkRecord>(tb.queue_records);
        let stats = Arc::new(WriterStats::default());
        let handle = spawn_writer(store, rx, stats.clone(), opts.clock.clone());
        Some((tx, handle, stats))
    } else {
        None
    };
    // Collector push: records go through a bounded queue into the durable spool.
    let push = if cfg.push.enabled {
        Some(crate::export::push::PushService::start(
            &cfg.push,
            &cfg.sensor.id,
            metrics.clone(),
        )?)
    } else {
        None
    };
    let push_queue = push.as_ref().map(|p| p.queue());
    // DetectionEvents reach the spool from the detections sink (ahead of CallRecords). Only
    // cloned when detection runs: a clone nobody drops would keep the spool writer, and so the
    // shutdown, waiting.
    let detections_push = push_queue.clone().filter(|_| cfg.detect.enabled);
    let store_tx = store.as_ref().map(|(tx, _, _)| tx.clone());
    let store_stats = store.as_ref().map(|(_, _, s)| s.clone());
    let store_metrics = metrics.clone();
    let sink_health = opts.health.register(health::SINK_JSONL, true, "");
    let store_health = cfg
        .traceback
        .enabled
        .then(|| opts.health.register(health::TRACEBACK_STORE, true, ""));
    let mut store_seen = (0u64, 0u64);
    let push_health = cfg
        .push
        .enabled
        .then(|| opts.health.register(health::PUSH, true, ""));
    let mut sink_latency = LocalLatency::new(metrics.latency.clone());
    let sink = spawn("sink-jsonl".into(), move || -> Result<(), JsonlError> {
        let write_failed = |e: JsonlError| {
            sink_health.set_failed(e.to_string());
            e
        };
        loop {
            match rec_rx.recv_timeout(Duration::from_millis(200)) {
                Ok(SinkRecord { record: r, json }) => {
                    if let Some(w) = writer.as_mut() {
                        match &json {
                            Some(j) => w.write_json(j),
                            None => w.write(&r),
                        }
                        .map_err(write_failed)?;
                    }
                    sink_metrics.records_written.inc();
                    if let Some(arrival) = r.trace {
                        sink_latency.record_since(Stage::Sink, arrival);
                        sink_latency.maybe_merge();
                    }
                    if let Some(q) = &push_queue {
                        // Serializing plain structs into a Vec cannot fail.
                        let bytes = match &json {
                            Some(j) => j.clone(),
                            None => serde_json::to_vec(&r).unwrap_or_default(),
                        };
                        q.offer(crate::export::spool::Kind::CallRecord, bytes, !live);
                    }
                    if let Some(tx) = &store_tx {
                        let item = SinkRecord { record: r, json };
                        let full = if live {
                            tx.try_send(item).is_err()
                        } else {
                            tx.send(item).is_err()
                        };
                        if full {
                            store_metrics
                                .records_dropped
                                .with_label_values(&["traceback_queue"])
                                .inc();
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(w) = writer.as_mut() {
                        w.flush().map_err(write_failed)?;
                    }
                    if let (Some(s), Some(h)) = (&store_stats, &store_health) {
                        publish_store_stats(&store_metrics, s, h, &mut store_seen);
                    }
                    if let Some(h) = &push_health {
                        // Records stay in the spool meanwhile; the operator must fix the token.
                        if sink_metrics.push_auth_failing.get() != 0 {
                            h.set_failed("the collector refuses our credentials (401/403)");
                        } else {
                            h.set_ok();
                        }
                    }
                    sink_latency.merge();
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        if let Some(w) = writer.as_mut() {
            w.flush().map_err(write_failed)?;
        }
        sink_latency.merge();
        Ok(())
    })?;

    // Verification. In replay its clock is the capture's (certificate cache TTLs included).
    let packet_clock = (!live).then(|| Arc::new(ManualClock::new(Timestamp::ZERO)));
    let shaken = if cfg.shaken.enabled {
        let clock: Arc<dyn Clock> = match &packet_clock {
            Some(c) => c.clone(),
            None => opts.clock.clone(),
        };
        Some(Arc::new(ShakenService::from_config(&cfg.shaken, clock)?))
    } else {
        None
    };
    let live_config = opts.live.clone().unwrap_or_else(|| LiveConfig::new(cfg));
    if let Some(svc) = &shaken {
        live_config.attach_shaken(svc.clone());
    }

    // Workers.
    let n = cfg.worker_count();
    let pending_per_worker = (cfg.shaken.max_pending / n).max(1);
    let cache_published = Arc::new(Mutex::new(CacheCounters::default()));
    let peers = live_config.peers();
    let sensor_id: Arc<str> = Arc::from(cfg.sensor.id.as_str());
    let (recycle_tx, recycle_rx) = bounded(n * (cfg.capture.queue_batches + 2));
    let limits = ParseLimits {
        max_headers: cfg.sip.max_headers,
        max_header_line: cfg.sip.max_header_line,
    };
    let dialog_limits = DialogLimits::for_worker(&cfg.dialog, n);
    let hep_export = if cfg.export.hep.enabled {
        Some(crate::export::hep::HepExport::start(
            &cfg.export.hep,
            metrics.clone(),
        )?)
    } else {
        None
    };
    // Campaign detection: shard threads fed by the workers, events to their own sink.
    let detection = if cfg.detect.enabled {
        let path = opts
            .detections_out
            .clone()
            .unwrap_or_else(|| cfg.output.detections.clone());
        let sinks = super::detection::DetectionSinks {
            path: &path,
            push: detections_push,
            hep: hep_export.as_ref().map(|h| h.detections()),
        };
        Some(Detection::start(
            &cfg.detect,
            sinks,
            sensor_id.clone(),
            metrics.clone(),
            !live,
            live_config.clone(),
            n,
        )?)
    } else {
        None
    };
    let mut worker_txs = Vec::with_capacity(n);
    let mut workers = Vec::with_capacity(n);
    for id in 0..n {
        let (tx, rx) = bounded::<WorkerMsg>(cfg.capture.queue_batches);
        worker_txs.push(tx);
        let records = RecordSender {
            tx: rec_tx.clone(),
            wait: !live,
            serialize: serialize_in_workers,
        };
        let (recycle, metrics, peers, sensor_id) = (
            recycle_tx.clone(),
            metrics.clone(),
            peers.clone(),
            sensor_id.clone(),
        );
        let detect = detection.as_ref().map(|d| d.feed.for_source(id));
        let verification = shaken.as_ref().map(|svc| {
            let (tx, rx) = bounded::<String>(pending_per_worker);
            (
                Verification::new(
                    svc.clone(),
                    metrics.clone(),
                    tx,
                    pending_per_worker,
                    cache_published.clone(),
                ),
                rx,
            )
        });
        workers.push(spawn(format!("worker-{id}"), move || {
            Worker {
                id,
                rx,
                recycle,
                records,
                // The table holds Rc keys, so it is built on the thread that owns it.
                table: DialogTable::new(dialog_limits, peers, sensor_id),
                limits,
                metrics,
                verification,
                detect,
            }
            .run()
        })?);
    }
    drop(rec_tx);
    drop(recycle_tx);

    // Capture: one thread for all files (in order), one per live interface.
    let groups: Vec<(String, Vec<Box<dyn FrameSource>>)> = if live {
        sources
            .into_iter()
            .map(|s| (s.name().to_string(), vec![s]))
            .collect()
    } else {
        vec![("file".to_string(), sources)]
    };
    let settings = DecodeSettings::from_config(&cfg.capture);
    let capture_health = opts
        .health
        .register(health::CAPTURE, false, "capture not started");
    let summaries_done = Arc::new(AtomicBool::new(false));
    let summaries = problems::spawn(
        metrics.clone(),
        Duration::from_secs(cfg.log.summary_interval_s.max(1)),
        summaries_done.clone(),
    )
    .map_err(PipelineError::Spawn)?;
    // Whatever way run() ends, the summary thread writes its last line and stops.
    let summaries_guard = SetOnDrop(summaries_done);
    // The sources are open: capture is running from here (a thread that fails says so).
    capture_health.set_ok();
    let mut captures = Vec::new();
    for (label, sources) in groups {
        let mut dispatcher = Dispatcher::new(
            worker_txs.clone(),
            recycle_rx.clone(),
            if live {
                Backpressure::Drop
            } else {
                Backpressure::Wait
            },
        );
        dispatcher.hep_tap = hep_export.as_ref().map(|h| h.tap());
        let t = CaptureThread {
            sources,
            decoder: Decoder::new(settings.clone()),
            dispatcher,
            metrics: metrics.clone(),
            stop: opts.stop.clone(),
            clock: opts.clock.clone(),
            label: label.clone(),
            progress: opts.progress,
            stats_interval: Duration::from_secs(cfg.capture.stats_interval_s),
            packet_clock: packet_clock.clone(),
            health: capture_health.clone(),
        };
        captures.push(spawn(format!("capture-{label}"), move || t.run())?);
    }
    let mut last_ts = Timestamp::ZERO;
    let mut failed = None;
    for c in captures {
        match c.join() {
            Ok(outcome) => last_ts = last_ts.max(outcome.last_ts),
            Err(_) => failed = Some(PipelineError::ThreadPanicked("capture")),
        }
    }
    capture_health.set_failed(if live {
        "capture stopped"
    } else {
        "replay finished"
    });
    if live {
        last_ts = last_ts.max(opts.clock.now());
    }
    for tx in &worker_txs {
        let _ = tx.send(WorkerMsg::Shutdown(last_ts));
    }
    drop(worker_txs);
    for w in workers {
        if w.join().is_err() {
            failed = Some(PipelineError::ThreadPanicked("worker"));
        }
    }
    if let Some(svc) = &shaken {
        publish_cache_stats(svc, &metrics, &cache_published);
    }
    if let Some(d) = detection {
        if let Err(e) = d.finish() {
            failed = Some(e);
        }
    }
    if let Some(h) = hep_export {
        h.finish();
    }
    match sink.join() {
        Ok(r) => r?,
        Err(_) => failed = Some(PipelineError::ThreadPanicked("sink")),
    }
    if let Some((tx, handle, stats)) = store {
        drop(tx);
        match handle.join() {
            Ok(r) => r?,
            Err(_) => failed = Some(PipelineError::ThreadPanicked("traceback store")),
        }
        let h = opts.health.register(health::TRACEBACK_STORE, true, "");
        publish_store_stats(&metrics, &stats, &h, &mut (0, 0));
    }
    drop(summaries_guard);
    if summaries.join().is_err() {
        failed = Some(PipelineError::ThreadPanicked("log summary"));
    }
    // The sink (the last producer) has ended: spool what is queued, then drain for a while.
    if let Some(p) = push {
        p.finish();
    }
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(Summary::from_metrics(
        &metrics,
        started.elapsed().as_secs_f64(),
    ))
}

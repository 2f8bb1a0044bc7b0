//! Builds the stages from the configuration, starts their threads, and shuts them down in
//! order: capture stops → workers close their calls → the sink writes the last record.

use super::capture_thread::CaptureThread;
use super::detection::Detection;
use super::dispatch::{Backpressure, Dispatcher};
use super::messages::WorkerMsg;
use super::summary::Summary;
use super::verification::{publish_cache_stats, CacheCounters, Verification};
use super::worker::{RecordSender, Worker};
use crate::capture::decode::{DecodeSettings, Decoder};
use crate::capture::source::{PcapSource, SourceError};
use crate::clock::{Clock, ManualClock, SystemClock, Timestamp};
use crate::config::Config;
use crate::dialog::table::{DialogLimits, DialogTable};
use crate::export::jsonl::{JsonlError, JsonlWriter};
use crate::metrics::Metrics;
use crate::peers::PeerTable;
use crate::record::CallRecord;
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
    Output(#[from] JsonlError),
    #[error("{0} thread panicked")]
    ThreadPanicked(&'static str),
    #[error("cannot start thread: {0}")]
    Spawn(std::io::Error),
    #[error(transparent)]
    Shaken(#[from] crate::shaken::service::SetupError),
    #[error("traceback store: {0}")]
    Store(#[from] crate::traceback::store::StoreError),
}

pub enum Input {
    /// Capture files, read one after another as fast as the machine allows.
    Files(Vec<PathBuf>),
    /// The configured interfaces, until `stop` is set.
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
    /// Overrides `output.detections` (a path, "-" or "").
    pub detections_out: Option<String>,
}

impl RunOptions {
    pub fn new(stop: Arc<AtomicBool>) -> Self {
        RunOptions {
            records_out: None,
            progress: false,
            stop,
            metrics: Arc::new(Metrics::new()),
            clock: Arc::new(SystemClock),
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

fn publish_store_stats(m: &Metrics, s: &WriterStats) {
    use std::sync::atomic::Ordering::Relaxed;
    for (stat, v) in [
        ("inserted", &s.inserted),
        ("duplicates", &s.duplicates),
        ("batches", &s.batches),
        ("errors", &s.errors),
        ("partitions_dropped", &s.partitions_dropped),
    ] {
        m.store
            .with_label_values(&[stat])
            .set(v.load(Relaxed) as i64);
    }
}

/// Runs the whole pipeline to completion (end of files, or `stop`) and returns its summary.
pub fn run(cfg: &Config, input: Input, opts: RunOptions) -> Result<Summary, PipelineError> {
    let started = Instant::now();
    let metrics = opts.metrics.clone();
    let live = matches!(input, Input::Live);
    let sources: Vec<PcapSource> = match &input {
        Input::Files(files) => files
            .iter()
            .map(|f| PcapSource::open_file(f))
            .collect::<Result<_, _>>()?,
        Input::Live => {
            let filter = cfg.bpf_filter();
            cfg.capture
                .interfaces
                .iter()
                .map(|i| PcapSource::open_live(i, &cfg.capture, &filter))
                .collect::<Result<_, _>>()?
        }
    };

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
    let (rec_tx, rec_rx) = bounded::<CallRecord>(cfg.output.queue_records);
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
        let (tx, rx) = bounded::<CallRecord>(tb.queue_records);
        let stats = Arc::new(WriterStats::default());
        let handle = spawn_writer(store, rx, stats.clone(), opts.clock.clone());
        Some((tx, handle, stats))
    } else {
        None
    };
    let store_tx = store.as_ref().map(|(tx, _, _)| tx.clone());
    let store_stats = store.as_ref().map(|(_, _, s)| s.clone());
    let store_metrics = metrics.clone();
    let sink = spawn("sink-jsonl".into(), move || -> Result<(), JsonlError> {
        loop {
            match rec_rx.recv_timeout(Duration::from_millis(200)) {
                Ok(r) => {
                    if let Some(w) = writer.as_mut() {
                        w.write(&r)?;
                    }
                    sink_metrics.records_written.inc();
                    if let Some(tx) = &store_tx {
                        let full = if live {
                            tx.try_send(r).is_err()
                        } else {
                            tx.send(r).is_err()
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
                        w.flush()?;
                    }
                    if let Some(s) = &store_stats {
                        publish_store_stats(&store_metrics, s);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        if let Some(w) = writer.as_mut() {
            w.flush()?;
        }
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

    // Workers.
    let n = cfg.worker_count();
    let pending_per_worker = (cfg.shaken.max_pending / n).max(1);
    let cache_published = Arc::new(Mutex::new(CacheCounters::default()));
    let peers = Arc::new(PeerTable::new(&cfg.peers));
    let sensor_id: Arc<str> = Arc::from(cfg.sensor.id.as_str());
    let (recycle_tx, recycle_rx) = bounded(n * (cfg.capture.queue_batches + 2));
    let limits = ParseLimits {
        max_headers: cfg.sip.max_headers,
        max_header_line: cfg.sip.max_header_line,
    };
    let dialog_limits = DialogLimits::for_worker(&cfg.dialog, n);
    // Campaign detection: shard threads fed by the workers, events to their own sink.
    let detection = if cfg.detect.enabled {
        let path = opts
            .detections_out
            .clone()
            .unwrap_or_else(|| cfg.output.detections.clone());
        Some(Detection::start(
            &cfg.detect,
            &path,
            sensor_id.clone(),
            metrics.clone(),
            !live,
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
        };
        let (recycle, metrics, peers, sensor_id) = (
            recycle_tx.clone(),
            metrics.clone(),
            peers.clone(),
            sensor_id.clone(),
        );
        let detect = detection.as_ref().map(|d| d.feed.clone());
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
    let groups: Vec<(String, Vec<PcapSource>)> = if live {
        sources
            .into_iter()
            .map(|s| (s.name().to_string(), vec![s]))
            .collect()
    } else {
        vec![("file".to_string(), sources)]
    };
    let settings = DecodeSettings::from_config(&cfg.capture);
    let mut captures = Vec::new();
    for (label, sources) in groups {
        let t = CaptureThread {
            sources,
            decoder: Decoder::new(settings.clone()),
            dispatcher: Dispatcher::new(
                worker_txs.clone(),
                recycle_rx.clone(),
                if live {
                    Backpressure::Drop
                } else {
                    Backpressure::Wait
                },
            ),
            metrics: metrics.clone(),
            stop: opts.stop.clone(),
            clock: opts.clock.clone(),
            label: label.clone(),
            progress: opts.progress,
            stats_interval: Duration::from_secs(cfg.capture.stats_interval_s),
            packet_clock: packet_clock.clone(),
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
        publish_store_stats(&metrics, &stats);
    }
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(Summary::from_metrics(
        &metrics,
        started.elapsed().as_secs_f64(),
    ))
}

//! Runs the pipeline: opens the sources, starts every stage in order (push, traceback store,
//! log summary, HEP export, detection, records sink, workers, capture), then finishes them in
//! reverse ([`Stages::finish`]): capture ends (end of files or the shutdown token), workers
//! close their calls, the sinks write the last records, the store commits, the spool drains.
//! The first error is returned; a later stage failing never skips draining the store and spool.
//!
//! It never handles a record itself: each stage's file says what it does.

use super::capture_stage::{Capture, Sources};
use super::detection::{Detection, DetectionSinks};
use super::outputs::{HepExportStage, PushStage, StoreStage};
use super::problems::Summaries;
use super::reload::LiveConfig;
use super::sink::{Sink, SinkOutputs};
use super::stage::{Shared, Stages};
use super::summary::Summary;
use super::worker_pool::Workers;
use crate::backpressure::Backpressure;
use crate::capture::source::SourceError;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::export::jsonl::JsonlError;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

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
    /// The configured interfaces and HEP listeners, until the shutdown token is set.
    Live,
}

pub struct RunOptions {
    /// Overrides `output.records` (a path, "-" or "").
    pub records_out: Option<String>,
    /// Progress lines on stderr (replay).
    pub progress: bool,
    /// Triggered by the signal handler (or a test) to stop capturing and flush.
    pub shutdown: Shutdown,
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
    pub fn new(shutdown: Shutdown) -> Self {
        let metrics = Arc::new(Metrics::new());
        RunOptions {
            records_out: None,
            progress: false,
            shutdown,
            health: Arc::new(Health::new(&metrics)),
            metrics,
            clock: Arc::new(SystemClock),
            live: None,
            detections_out: None,
        }
    }
}

/// Runs the whole pipeline to completion (end of files, or the shutdown token) and returns
/// its summary.
pub fn run(cfg: &Config, input: Input, opts: RunOptions) -> Result<Summary, PipelineError> {
    let started = Instant::now();
    let shared = Arc::new(Shared::new(
        opts.metrics.clone(),
        opts.clock.clone(),
        opts.health.clone(),
        // A stage that cannot start stops the others without touching the caller's token.
        opts.shutdown.child(),
        Backpressure::for_input(matches!(input, Input::Live)),
        opts.live.clone().unwrap_or_else(|| LiveConfig::new(cfg)),
        Arc::from(cfg.sensor.id.as_str()),
    ));
    let sources = Sources::open(cfg, &input, &shared)?;
    let mut stages = Stages::default();
    let started_all = start(cfg, &shared, &opts, sources, &mut stages);
    stages.finish(started_all.err())?;
    Ok(Summary::from_metrics(
        &opts.metrics,
        started.elapsed().as_secs_f64(),
    ))
}

/// Starts the stages, each before the ones that feed it; what started is in `stages`
/// whatever fails.
fn start(
    cfg: &Config,
    shared: &Arc<Shared>,
    opts: &RunOptions,
    sources: Sources,
    stages: &mut Stages,
) -> Result<(), PipelineError> {
    let push = stages.start_if(
        cfg.push.enabled,
        || PushStage::start(cfg, shared),
        |p| p.queue(),
    )?;
    let store = stages.start_if(
        cfg.traceback.enabled,
        || StoreStage::start(cfg, shared),
        |s| s.input(),
    )?;
    stages.push(Summaries::start(cfg, shared)?);
    let hep = stages.start_if(
        cfg.export.hep.enabled,
        || HepExportStage::start(cfg, shared),
        |h| (h.exporter().tap(), h.exporter().detections()),
    )?;
    let (hep_tap, hep_detections) = hep.unzip();
    let workers_n = cfg.worker_count();
    // Campaign detection: shard threads fed by the workers, events to their own sink.
    let detection = match cfg.detect.enabled {
        true => {
            let path = opts
                .detections_out
                .clone()
                .unwrap_or_else(|| cfg.output.detections.clone());
            let sinks = DetectionSinks {
                path: &path,
                // DetectionEvents reach the spool from the detections sink (ahead of
                // CallRecords).
                push: push.clone(),
                hep: hep_detections,
            };
            Some(Detection::start(&cfg.detect, shared, sinks, workers_n)?)
        }
        false => None,
    };
    let feed = match detection {
        Some(mut d) => {
            let feed = d.take_feed();
            stages.push(d);
            feed
        }
        None => None,
    };
    let records_path = opts
        .records_out
        .clone()
        .unwrap_or_else(|| cfg.output.records.clone());
    let serialize = !records_path.is_empty() || push.is_some() || store.is_some();
    let sink = Sink::start(cfg, shared, &records_path, SinkOutputs { push, store })?;
    let records = sink.input();
    stages.push(sink);
    let workers = Workers::start(cfg, shared, records, serialize, feed.as_ref());
    drop(feed);
    let workers = workers?;
    let capture = Capture::start(cfg, shared, sources, &workers, hep_tap, opts.progress);
    stages.push(workers);
    stages.push(capture?);
    Ok(())
}

//! The stages at the end of the pipeline, as values `run` starts first and finishes last:
//! the traceback store writer, the collector push (spool and pusher) and the HEP exporter.
//! Each wraps a service that owns its threads; this file only gives them the stage shape and
//! publishes the store writer's totals.
//!
//! Whatever failed before them, their `finish` runs: the store commits its last batch and the
//! push appends its queue to the spool. Never starts anything the configuration turned off.

use super::messages::SinkRecord;
use super::run::PipelineError;
use super::stage::{join, Shared, Stage};
use crate::config::Config;
use crate::export::hep::HepExport;
use crate::export::push::{PushQueue, PushService};
use crate::health::{self, Component};
use crate::metrics::Metrics;
use crate::traceback::store::{spawn_writer, Store, StoreConfig, StoreError, WriterStats};
use crossbeam_channel::{bounded, Sender};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The store writer's totals, its health, and what was last published.
pub struct StoreStats {
    stats: Arc<WriterStats>,
    health: Arc<Component>,
    /// (errors, batches) at the last publish.
    seen: (u64, u64),
}

/// Publishes the store writer's totals; a write error since the last call marks the store
/// unhealthy until a batch commits again.
pub fn publish_store_stats(m: &Metrics, s: &mut StoreStats) {
    use std::sync::atomic::Ordering::Relaxed;
    let w = &s.stats;
    let (errors, batches) = (w.errors.load(Relaxed), w.batches.load(Relaxed));
    if errors > s.seen.0 {
        s.health.set_failed(format!(
            "{} store write errors (see the log)",
            errors - s.seen.0
        ));
    } else if batches > s.seen.1 {
        s.health.set_ok();
    }
    s.seen = (errors, batches);
    for (stat, v) in [
        ("inserted", &w.inserted),
        ("duplicates", &w.duplicates),
        ("batches", &w.batches),
        ("errors", &w.errors),
        ("partitions_dropped", &w.partitions_dropped),
        ("dict_full", &w.dict_full),
    ] {
        m.store
            .with_label_values(&[stat])
            .set(v.load(Relaxed) as i64);
    }
}

/// `[traceback]`: the SQLite writer thread behind its own bounded queue.
pub struct StoreStage {
    tx: Sender<Arc<SinkRecord>>,
    thread: JoinHandle<Result<(), StoreError>>,
    stats: StoreStats,
    metrics: Arc<Metrics>,
}

impl StoreStage {
    pub fn start(cfg: &Config, shared: &Shared) -> Result<Self, PipelineError> {
        let tb = &cfg.traceback;
        let store = Store::open(StoreConfig {
            dir: PathBuf::from(&tb.dir),
            retention_days: tb.retention_days,
            max_disk_mb: tb.max_disk_mb,
            batch_max: 1000,
            flush_interval: Duration::from_millis(tb.flush_ms),
        })?;
        let (tx, rx) = bounded(tb.queue_records);
        let stats = Arc::new(WriterStats::default());
        let thread = spawn_writer(store, rx, stats.clone(), shared.clock.clone());
        Ok(StoreStage {
            tx,
            thread,
            stats: StoreStats {
                stats,
                health: shared.health.register(health::TRACEBACK_STORE, true, ""),
                seen: (0, 0),
            },
            metrics: shared.metrics.clone(),
        })
    }

    /// The records sink's handle: the queue and the totals it publishes while idle.
    pub fn input(&self) -> (Sender<Arc<SinkRecord>>, StoreStats) {
        let stats = StoreStats {
            stats: self.stats.stats.clone(),
            health: self.stats.health.clone(),
            seen: (0, 0),
        };
        (self.tx.clone(), stats)
    }
}

impl Stage for StoreStage {
    fn name(&self) -> &'static str {
        "traceback store"
    }
    /// Once the records sink has dropped its sender: the writer commits its last batch.
    fn finish(self: Box<Self>) -> Result<(), PipelineError> {
        let StoreStage {
            tx,
            thread,
            mut stats,
            metrics,
        } = *self;
        drop(tx);
        let written = join(thread, "traceback store");
        stats.seen = (0, 0);
        publish_store_stats(&metrics, &mut stats);
        Ok(written??)
    }
}

/// `[push]`: the durable spool and the pusher.
pub struct PushStage(PushService);

impl PushStage {
    pub fn start(cfg: &Config, shared: &Shared) -> Result<Self, PipelineError> {
        Ok(PushStage(PushService::start(
            &cfg.push,
            &cfg.sensor.id,
            shared.metrics.clone(),
        )?))
    }

    pub fn queue(&self) -> PushQueue {
        self.0.queue()
    }
}

impl Stage for PushStage {
    fn name(&self) -> &'static str {
        "push"
    }
    /// The last producer (records or detections sink) has ended: spool what is queued, then
    /// drain for at most `push.drain_timeout_s`.
    fn finish(self: Box<Self>) -> Result<(), PipelineError> {
        self.0.finish();
        Ok(())
    }
}

/// `[export.hep]`: SIP messages of detected calls re-sent as HEP.
pub struct HepExportStage(HepExport);

impl HepExportStage {
    pub fn start(cfg: &Config, shared: &Shared) -> Result<Self, PipelineError> {
        Ok(HepExportStage(HepExport::start(
            &cfg.export.hep,
            shared.metrics.clone(),
        )?))
    }

    pub fn exporter(&self) -> &HepExport {
        &self.0
    }
}

impl Stage for HepExportStage {
    fn name(&self) -> &'static str {
        "HEP export"
    }
    fn finish(self: Box<Self>) -> Result<(), PipelineError> {
        self.0.finish();
        Ok(())
    }
}

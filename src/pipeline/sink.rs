//! The records sink: one thread (`sink-jsonl`) that takes every finished CallRecord from the
//! workers' bounded queue and fans it out to a list of [`RecordSink`]s (JSON lines, the
//! traceback store's queue, the collector push queue). Every 200 ms without a record it lets
//! each sink flush and publish its health.
//!
//! A sink that fails is dropped from the list and its error kept for `finish`: the others go
//! on (a full disk under the JSON lines file must not stop the traceback store). It never
//! blocks on a slow sink beyond the run's backpressure policy.

use super::messages::SinkRecord;
use super::outputs::{publish_store_stats, StoreStats};
use super::run::PipelineError;
use super::stage::{join, spawn, Shared, Stage};
use crate::backpressure::Backpressure;
use crate::config::Config;
use crate::export::jsonl::JsonlWriter;
use crate::export::push::PushQueue;
use crate::export::spool::Kind;
use crate::health::{self, Component};
use crate::metrics::latency::{LocalLatency, Stage as LatencyStage};
use crate::metrics::Metrics;
use crossbeam_channel::{bounded, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the sink waits for a record before it flushes and publishes health.
const IDLE: Duration = Duration::from_millis(200);

/// One destination of CallRecords.
pub trait RecordSink: Send {
    fn name(&self) -> &'static str;
    /// Takes one record; an error drops this sink for the rest of the run.
    fn write(&mut self, r: &Arc<SinkRecord>) -> Result<(), PipelineError>;
    /// No record for a while: flush, publish health.
    fn idle(&mut self) -> Result<(), PipelineError> {
        Ok(())
    }
    /// The workers are gone: flush what is buffered.
    fn finish(&mut self) -> Result<(), PipelineError> {
        self.idle()
    }
}

/// `output.records` (or `--out`): one JSON line per record.
pub struct JsonlSink {
    writer: JsonlWriter,
    health: Arc<Component>,
}

impl JsonlSink {
    fn failed(&self, e: crate::export::jsonl::JsonlError) -> PipelineError {
        self.health.set_failed(e.to_string());
        e.into()
    }
}

impl RecordSink for JsonlSink {
    fn name(&self) -> &'static str {
        "jsonl"
    }
    fn write(&mut self, r: &Arc<SinkRecord>) -> Result<(), PipelineError> {
        match &r.json {
            Some(j) => self.writer.write_json(j),
            None => self.writer.write(&r.record),
        }
        .map_err(|e| self.failed(e))
    }
    fn idle(&mut self) -> Result<(), PipelineError> {
        self.writer.flush().map_err(|e| self.failed(e))
    }
}

/// The collector push queue (in front of the durable spool).
pub struct PushSink {
    queue: PushQueue,
    backpressure: Backpressure,
    health: Arc<Component>,
    metrics: Arc<Metrics>,
}

impl RecordSink for PushSink {
    fn name(&self) -> &'static str {
        "push"
    }
    fn write(&mut self, r: &Arc<SinkRecord>) -> Result<(), PipelineError> {
        // Serializing plain structs into a Vec cannot fail.
        let bytes = match &r.json {
            Some(j) => j.clone(),
            None => serde_json::to_vec(&r.record).unwrap_or_default(),
        };
        self.queue.offer(Kind::CallRecord, bytes, self.backpressure);
        Ok(())
    }
    fn idle(&mut self) -> Result<(), PipelineError> {
        // Records stay in the spool meanwhile; the operator must fix the token.
        if self.metrics.push_auth_failing.get() != 0 {
            self.health
                .set_failed("the collector refuses our credentials (401/403)");
        } else {
            self.health.set_ok();
        }
        Ok(())
    }
}

/// The traceback store writer's bounded queue.
pub struct StoreSink {
    tx: Sender<Arc<SinkRecord>>,
    backpressure: Backpressure,
    stats: StoreStats,
    metrics: Arc<Metrics>,
}

impl RecordSink for StoreSink {
    fn name(&self) -> &'static str {
        "traceback_store"
    }
    fn write(&mut self, r: &Arc<SinkRecord>) -> Result<(), PipelineError> {
        if self.backpressure.send(&self.tx, r.clone()).is_err() {
            self.metrics
                .records_dropped
                .with_label_values(&["traceback_queue"])
                .inc();
        }
        Ok(())
    }
    fn idle(&mut self) -> Result<(), PipelineError> {
        publish_store_stats(&self.metrics, &mut self.stats);
        Ok(())
    }
    fn finish(&mut self) -> Result<(), PipelineError> {
        Ok(())
    }
}

/// Where the records sink hands records besides the JSON lines file.
#[derive(Default)]
pub struct SinkOutputs {
    pub push: Option<PushQueue>,
    pub store: Option<(Sender<Arc<SinkRecord>>, StoreStats)>,
}

/// The running records sink stage.
pub struct Sink {
    tx: Sender<SinkRecord>,
    thread: JoinHandle<Result<(), PipelineError>>,
}

impl Sink {
    /// Opens the JSON lines output (`records_path`: a path, "-" or "") and starts the thread.
    pub fn start(
        cfg: &Config,
        shared: &Shared,
        records_path: &str,
        outputs: SinkOutputs,
    ) -> Result<Sink, PipelineError> {
        let metrics = shared.metrics.clone();
        let jsonl_health = shared.health.register(health::SINK_JSONL, true, "");
        let mut sinks: Vec<Box<dyn RecordSink>> = Vec::new();
        if let Some(writer) = JsonlWriter::open(records_path)? {
            sinks.push(Box::new(JsonlSink {
                writer,
                health: jsonl_health,
            }));
        }
        if let Some(queue) = outputs.push {
            sinks.push(Box::new(PushSink {
                queue,
                backpressure: shared.backpressure,
                health: shared.health.register(health::PUSH, true, ""),
                metrics: metrics.clone(),
            }));
        }
        if let Some((tx, stats)) = outputs.store {
            sinks.push(Box::new(StoreSink {
                tx,
                backpressure: shared.backpressure,
                stats,
                metrics: metrics.clone(),
            }));
        }
        let (tx, rx) = bounded::<SinkRecord>(cfg.output.queue_records);
        let thread = spawn("sink-jsonl".into(), move || {
            let mut latency = LocalLatency::new(metrics.latency.clone());
            let mut first: Option<PipelineError> = None;
            let mut keep = |sinks: &mut Vec<Box<dyn RecordSink>>,
                            f: &mut dyn FnMut(&mut dyn RecordSink) -> Result<(), PipelineError>| {
                sinks.retain_mut(|s| match f(s.as_mut()) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::error!(sink = s.name(), error = %e, "records sink failed; the other sinks go on");
                        first.get_or_insert(e);
                        false
                    }
                });
            };
            loop {
                match rx.recv_timeout(IDLE) {
                    Ok(r) => {
                        let arrival = r.record.trace;
                        let r = Arc::new(r);
                        keep(&mut sinks, &mut |s| s.write(&r));
                        metrics.records_written.inc();
                        if let Some(a) = arrival {
                            latency.record_since(LatencyStage::Sink, a);
                            latency.maybe_merge();
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        keep(&mut sinks, &mut |s| s.idle());
                        latency.merge();
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            keep(&mut sinks, &mut |s| s.finish());
            latency.merge();
            first.map_or(Ok(()), Err)
        })?;
        Ok(Sink { tx, thread })
    }

    /// The workers' side of the queue (clone one per worker; the stage drops its own at
    /// finish).
    pub fn input(&self) -> Sender<SinkRecord> {
        self.tx.clone()
    }
}

impl Stage for Sink {
    fn name(&self) -> &'static str {
        "records sink"
    }
    /// Ends when the last worker has dropped its sender.
    fn finish(self: Box<Self>) -> Result<(), PipelineError> {
        let Sink { tx, thread } = *self;
        drop(tx);
        join(thread, "sink")?
    }
}

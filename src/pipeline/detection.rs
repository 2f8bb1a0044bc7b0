//! Detector shard threads: each owns an [`Engine`] and drains its bounded queue of feature
//! batches; events go to one `Sender<DetectionEvent>` read by the detections sink thread (JSON
//! lines, and the collector push queue when push is on). A shard stops when every worker's feed is gone, closing
//! its open detections as of the last time it saw. Rule thresholds follow SIGHUP reloads (the
//! shard compares the configuration generation once per batch).

use super::reload::LiveConfig;
use super::stage::{Shared, Stage};
use crate::backpressure::Backpressure;
use crate::config::DetectConfig;
use crate::detect::engine::Engine;
use crate::detect::events::DetectionIds;
use crate::detect::feed::{DetectFeed, DetectMsg, FeedBatch};
use crate::detect::kinds::{KEY_KINDS, KIND_COUNT};
use crate::detect::reorder::Reorder;
use crate::export::jsonl::{JsonlError, JsonlWriter};
use crate::export::push::PushQueue;
use crate::export::spool::Kind;
use crate::metrics::Metrics;
use crate::record::DetectionEvent;
use crossbeam_channel::{bounded, Receiver, Sender};
use std::sync::Arc;
use std::thread;

pub struct Shards {
    pub handles: Vec<thread::JoinHandle<()>>,
}

/// The running detection stage: the workers' feed (taken once, cloned per worker, then
/// dropped), the shard threads and the sink thread.
pub struct Detection {
    feed: Option<DetectFeed>,
    shards: Shards,
    sink: thread::JoinHandle<Result<(), JsonlError>>,
}

/// Where DetectionEvents go besides the metrics.
pub struct DetectionSinks<'a> {
    /// JSON lines file ("" writes nothing).
    pub path: &'a str,
    /// The collector's spool.
    pub push: Option<PushQueue>,
    /// The HEP exporter: (detection id, sample Call-IDs) of each opened detection.
    pub hep: Option<Sender<(String, Vec<String>)>>,
}

impl Detection {
    /// Starts the shards and the sink thread that hands every event to `sinks`; `workers`:
    /// how many feeds the shards merge.
    pub fn start(
        cfg: &DetectConfig,
        shared: &Shared,
        sinks: DetectionSinks<'_>,
        workers: usize,
    ) -> Result<Detection, super::PipelineError> {
        let DetectionSinks { path, push, hep } = sinks;
        let backpressure = shared.backpressure;
        let mut writer = JsonlWriter::open(path)?;
        let (tx, rx) = bounded::<DetectionEvent>(4096);
        let sink = thread::Builder::new()
            .name("sink-detections".into())
            .spawn(move || -> Result<(), JsonlError> {
                for ev in rx.iter() {
                    if let (Some(h), crate::record::DetectionState::Opened) = (&hep, ev.state) {
                        // The exporter's queue is bounded; a detection it cannot take is
                        // counted there as its messages never sent.
                        let _ = h.try_send((ev.detection_id.clone(), ev.sample_call_ids.clone()));
                    }
                    if let Some(q) = &push {
                        // Serializing plain structs into a Vec cannot fail.
                        let json = serde_json::to_vec(&ev).unwrap_or_default();
                        q.offer(Kind::Detection, json, backpressure);
                    }
                    if let Some(w) = writer.as_mut() {
                        w.write_value(&ev)?;
                        if rx.is_empty() {
                            // Events are rare and urgent: an operator tails this file.
                            w.flush()?;
                        }
                    }
                }
                if let Some(w) = writer.as_mut() {
                    w.flush()?;
                }
                Ok(())
            })
            .map_err(super::PipelineError::Spawn)?;
        let (feed, shards) = spawn(
            cfg,
            shared.sensor_id.clone(),
            shared.metrics.clone(),
            tx,
            backpressure,
            Some(shared.live.clone()),
            workers,
        )
        .map_err(super::PipelineError::Spawn)?;
        Ok(Detection {
            feed: Some(feed),
            shards,
            sink,
        })
    }

    /// The template of the workers' feeds (`for_source(i)`); the shards end when it and
    /// every feed made from it are gone.
    pub fn take_feed(&mut self) -> Option<DetectFeed> {
        self.feed.take()
    }
}

impl Stage for Detection {
    fn name(&self) -> &'static str {
        "detection"
    }

    /// After every worker has stopped (and dropped its feed): waits for the shards to close
    /// their detections and for the sink to write them.
    fn finish(self: Box<Self>) -> Result<(), super::PipelineError> {
        drop(self.feed);
        let mut panicked = false;
        for h in self.shards.handles {
            panicked |= h.join().is_err();
        }
        let sunk = self.sink.join();
        if panicked {
            return Err(super::PipelineError::ThreadPanicked("detector"));
        }
        match sunk {
            Ok(r) => Ok(r?),
            Err(_) => Err(super::PipelineError::ThreadPanicked("detections sink")),
        }
    }
}

/// Messages a shard may hold while it waits for a slower worker (beyond it, order is given up
/// for the oldest, counted). Workers cannot drift further apart than their input queues, a
/// few thousand calls, so this is only reached when a worker stalls.
const REORDER_LIMIT: usize = 1 << 16;

/// Starts `cfg.shards` detector threads; returns the template of the workers' feeds
/// (`for_source(i)` for each of the `workers`). `live`: where reloaded rule thresholds come
/// from (None: the thresholds of `cfg` for good).
pub fn spawn(
    cfg: &DetectConfig,
    sensor: Arc<str>,
    metrics: Arc<Metrics>,
    events: Sender<DetectionEvent>,
    backpressure: Backpressure,
    live: Option<Arc<LiveConfig>>,
    workers: usize,
) -> std::io::Result<(DetectFeed, Shards)> {
    let ids = DetectionIds::new(sensor);
    let (recycle_tx, recycle_rx) = bounded::<Vec<DetectMsg>>(64 * cfg.shards.max(1));
    let mut txs = Vec::new();
    let mut handles = Vec::new();
    for shard in 0..cfg.shards.max(1) {
        let (tx, rx) = bounded::<FeedBatch>(cfg.queue_batches);
        txs.push(tx);
        let engine = Engine::new(cfg, shard, cfg.shards.max(1), ids.clone());
        let (metrics, events, recycle) = (metrics.clone(), events.clone(), recycle_tx.clone());
        let live = live.clone();
        let reorder = Reorder::new(workers, REORDER_LIMIT);
        handles.push(
            thread::Builder::new()
                .name(format!("detect-{shard}"))
                .spawn(move || {
                    run_shard(
                        engine,
                        reorder,
                        rx,
                        recycle,
                        events,
                        metrics,
                        backpressure,
                        live,
                    )
                })?,
        );
    }
    let dropped = metrics.detect_dropped.with_label_values(&["feature_queue"]);
    Ok((
        DetectFeed::new(txs, recycle_rx, backpressure, dropped),
        Shards { handles },
    ))
}

fn publish(engine: &Engine, m: &Metrics, published: &mut [u64; KIND_COUNT]) {
    for kind in KEY_KINDS {
        let s = engine.table_stats(kind);
        let label = kind.as_str();
        m.detect_keys
            .with_label_values(&[label])
            .set(engine.keys(kind) as i64);
        let i = kind as usize;
        if s.evictions > published[i] {
            m.detect_key_evictions
                .with_label_values(&[label])
                .inc_by(s.evictions - published[i]);
            published[i] = s.evictions;
        }
    }
}

fn apply(engine: &mut Engine, msg: DetectMsg) {
    match msg {
        DetectMsg::Start(s) => engine.on_start(&s),
        DetectMsg::End(e) => engine.on_end(&e),
        DetectMsg::Tick(t) => engine.tick(t),
    }
}

#[allow(clippy::too_many_arguments)]
fn run_shard(
    mut engine: Engine,
    mut reorder: Reorder,
    rx: Receiver<FeedBatch>,
    recycle: Sender<Vec<DetectMsg>>,
    events: Sender<DetectionEvent>,
    metrics: Arc<Metrics>,
    backpressure: Backpressure,
    live: Option<Arc<LiveConfig>>,
) {
    let mut published = [0u64; KIND_COUNT];
    let mut generation = live.as_ref().map_or(0, |l| l.generation());
    let mut batches = 0u64;
    let emit = |engine: &mut Engine| {
        for ev in engine.take_events() {
            metrics
                .detections
                .with_label_values(&[&ev.rule, ev.state.as_str()])
                .inc();
            if backpressure.send(&events, ev).is_err() {
                metrics
                    .detect_dropped
                    .with_label_values(&["event_queue"])
                    .inc();
            }
        }
    };
    let forced = metrics.detect_reorder_forced.clone();
    for mut batch in rx.iter() {
        if let Some(l) = live.as_ref().filter(|l| l.generation() != generation) {
            generation = l.generation();
            engine.set_rules(&l.snapshot().detect.rules);
        }
        reorder.push(&mut batch);
        while let Some(msg) = reorder.pop() {
            apply(&mut engine, msg);
        }
        // Back to the workers for reuse; when they have enough, it is freed here.
        let _ = recycle.try_send(batch.msgs);
        if !engine.events().is_empty() {
            emit(&mut engine);
        }
        batches += 1;
        if batches % 64 == 0 {
            publish(&engine, &metrics, &mut published);
            forced.inc_by(std::mem::take(&mut reorder.forced));
        }
    }
    // Every feed is gone: what a worker could not announce (live, a full queue) goes now.
    reorder.close_all();
    while let Some(msg) = reorder.pop() {
        apply(&mut engine, msg);
    }
    forced.inc_by(reorder.forced);
    engine.finish();
    emit(&mut engine);
    publish(&engine, &metrics, &mut published);
}

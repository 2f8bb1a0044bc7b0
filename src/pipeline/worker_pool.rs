//! The workers stage: `sensor.workers` threads, each a [`Worker`] with its own dialog table,
//! its share of the pending verifications and its feed to the detectors; and the STIR/SHAKEN
//! service they share. The capture stage sends them batches through [`Workers::inputs`].
//!
//! Finishing tells every worker the capture's last time (`Shutdown(t)`), so each closes its
//! open calls as of it, and joins them. It never decides backpressure itself: the record
//! queue's policy is the run's.

use super::dispatch::Dispatcher;
use super::messages::{Batch, SinkRecord, WorkerMsg};
use super::run::PipelineError;
use super::stage::{join, spawn, Shared, Stage};
use super::verification::{publish_cache_stats, CacheCounters, Verification};
use super::worker::{RecordSender, Worker};
use crate::clock::Clock;
use crate::config::Config;
use crate::detect::feed::DetectFeed;
use crate::dialog::table::{DialogLimits, DialogTable};
use crate::shaken::service::ShakenService;
use crate::sip::message::ParseLimits;
use crossbeam_channel::{bounded, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub struct Workers {
    txs: Vec<Sender<WorkerMsg>>,
    recycled: Receiver<Batch>,
    threads: Vec<JoinHandle<()>>,
    shaken: Option<Arc<ShakenService>>,
    cache_published: Arc<Mutex<CacheCounters>>,
    shared: Arc<Shared>,
}

impl Workers {
    /// Builds the verification service (on packet time in replay) and starts the workers;
    /// `records`: the records sink's queue; `detect`: the detectors' feed template.
    pub fn start(
        cfg: &Config,
        shared: &Arc<Shared>,
        records: Sender<SinkRecord>,
        serialize: bool,
        detect: Option<&DetectFeed>,
    ) -> Result<Workers, PipelineError> {
        let shaken = if cfg.shaken.enabled {
            // In replay its clock is the capture's (certificate cache TTLs included).
            let clock: Arc<dyn Clock> = match &shared.packet_clock {
                Some(c) => c.clone(),
                None => shared.clock.clone(),
            };
            let svc = Arc::new(ShakenService::from_config(&cfg.shaken, clock)?);
            shared.live.attach_shaken(svc.clone());
            Some(svc)
        } else {
            None
        };
        let n = cfg.worker_count();
        let pending_per_worker = (cfg.shaken.max_pending / n).max(1);
        let cache_published = Arc::new(Mutex::new(CacheCounters::default()));
        let peers = shared.live.peers();
        let (recycle_tx, recycled) = bounded(n * (cfg.capture.queue_batches + 2));
        let limits = ParseLimits {
            max_headers: cfg.sip.max_headers,
            max_header_line: cfg.sip.max_header_line,
        };
        let dialog_limits = DialogLimits::for_worker(&cfg.dialog, n);
        let mut workers = Workers {
            txs: Vec::with_capacity(n),
            recycled,
            threads: Vec::with_capacity(n),
            shaken,
            cache_published,
            shared: shared.clone(),
        };
        for id in 0..n {
            let (tx, rx) = bounded::<WorkerMsg>(cfg.capture.queue_batches);
            workers.txs.push(tx);
            let records = RecordSender {
                tx: records.clone(),
                backpressure: shared.backpressure,
                serialize,
            };
            let (recycle, metrics, peers, sensor_id) = (
                recycle_tx.clone(),
                shared.metrics.clone(),
                peers.clone(),
                shared.sensor_id.clone(),
            );
            let detect = detect.map(|d| d.for_source(id));
            let verification = workers.shaken.as_ref().map(|svc| {
                let (tx, rx) = bounded::<String>(pending_per_worker);
                (
                    Verification::new(
                        svc.clone(),
                        metrics.clone(),
                        tx,
                        pending_per_worker,
                        workers.cache_published.clone(),
                    ),
                    rx,
                )
            });
            // On a spawn failure the workers already running see their queues close.
            workers.threads.push(spawn(format!("worker-{id}"), move || {
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
        Ok(workers)
    }

    /// A capture thread's hand-off to the workers, under the run's backpressure.
    pub fn dispatcher(&self, shared: &Shared) -> Dispatcher {
        Dispatcher::new(self.txs.clone(), self.recycled.clone(), shared.backpressure)
    }
}

impl Stage for Workers {
    fn name(&self) -> &'static str {
        "workers"
    }
    /// After capture: each worker closes its open calls as of capture's end and stops.
    fn finish(self: Box<Self>) -> Result<(), PipelineError> {
        let last = self.shared.capture_end();
        for tx in &self.txs {
            let _ = tx.send(WorkerMsg::Shutdown(last));
        }
        drop(self.txs);
        let mut result = Ok(());
        for w in self.threads {
            if let Err(e) = join(w, "worker") {
                result = result.and(Err(e));
            }
        }
        if let Some(svc) = &self.shaken {
            publish_cache_stats(svc, &self.shared.metrics, &self.cache_published);
        }
        result
    }
}

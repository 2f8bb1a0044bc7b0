//! Capture side of the hand-off: copies each framed SIP message into the batch of the worker
//! that owns its Call-ID, and sends full batches. Live capture drops (and counts) a batch whose
//! worker queue is full; replay waits.

use super::messages::{Batch, BatchItem, WorkerMsg};
pub use crate::backpressure::Backpressure;
use crate::capture::packet::SipPayload;
use crate::clock::Timestamp;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::time::Instant;

/// Shard choice must agree across capture threads (one call can be seen on two interfaces),
/// so the hash seeds are fixed rather than random per dispatcher.
fn shard_hasher() -> ahash::RandomState {
    ahash::RandomState::with_seeds(0x5eed_0001, 0x5eed_0002, 0x5eed_0003, 0x5eed_0004)
}

pub struct Dispatcher {
    workers: Vec<Sender<WorkerMsg>>,
    pending: Vec<Batch>,
    recycled: Receiver<Batch>,
    mode: Backpressure,
    hasher: ahash::RandomState,
    /// Messages lost to full worker queues (live only).
    pub dropped_messages: u64,
    pub workers_gone: bool,
    /// Arrival of the frame being decoded when it is sampled for stage latency; the first
    /// message it yields into a batch without a sample carries it.
    pub sample: Option<Instant>,
    /// Whether the current sample was attached to a message.
    pub sample_used: bool,
    /// Batches allocated because the recycle pool was empty.
    pub batches_allocated: u64,
    /// `[export.hep]`: every framed message is offered to the HEP exporter too.
    pub hep_tap: Option<crate::export::hep::HepTap>,
}

impl Dispatcher {
    pub fn new(
        workers: Vec<Sender<WorkerMsg>>,
        recycled: Receiver<Batch>,
        mode: Backpressure,
    ) -> Self {
        let pending = workers.iter().map(|_| Batch::with_capacity()).collect();
        Dispatcher {
            workers,
            pending,
            recycled,
            mode,
            hasher: shard_hasher(),
            dropped_messages: 0,
            workers_gone: false,
            sample: None,
            sample_used: false,
            batches_allocated: 0,
            hep_tap: None,
        }
    }

    pub fn shard_of(&self, call_id: &[u8]) -> usize {
        (self.hasher.hash_one(call_id) % self.workers.len() as u64) as usize
    }

    pub fn push(&mut self, p: &SipPayload<'_>) {
        if let Some(t) = &self.hep_tap {
            t.offer(p);
        }
        // A message without a Call-ID still goes to a worker, which counts it as malformed.
        let shard = match p.call_id {
            Some((s, e)) => self.shard_of(&p.bytes[s..e]),
            None => 0,
        };
        let batch = &mut self.pending[shard];
        if let (Some(arrival), None) = (self.sample, batch.sample) {
            batch.sample = Some((batch.items.len() as u32, arrival));
            self.sample_used = true;
        }
        batch.items.push(BatchItem {
            ts: p.ts,
            src: p.src,
            dst: p.dst,
            transport: p.transport,
            agent: p.agent,
            start: batch.buf.len() as u32,
            len: p.bytes.len() as u32,
        });
        batch.buf.extend_from_slice(p.bytes);
        if batch.is_full() {
            self.send(shard);
        }
    }

    fn fresh_batch(&mut self) -> Batch {
        self.recycled.try_recv().unwrap_or_else(|_| {
            self.batches_allocated += 1;
            Batch::with_capacity()
        })
    }

    fn send(&mut self, shard: usize) {
        let next = self.fresh_batch();
        let batch = std::mem::replace(&mut self.pending[shard], next);
        let n = batch.items.len() as u64;
        match self
            .mode
            .send(&self.workers[shard], WorkerMsg::Batch(batch))
        {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.dropped_messages += n,
            Err(TrySendError::Disconnected(_)) => self.workers_gone = true,
        }
    }

    /// Sends every partly filled batch (latency in live capture; completeness at the end).
    pub fn flush(&mut self) {
        for shard in 0..self.pending.len() {
            if !self.pending[shard].items.is_empty() {
                self.send(shard);
            }
        }
    }

    /// Flushes, then tells every worker the time. Live, a tick that does not fit is skipped: a
    /// worker that busy also expires calls from the timestamps of the messages it handles.
    pub fn tick(&mut self, now: Timestamp) {
        self.flush();
        for w in &self.workers {
            let gone = matches!(
                self.mode.send(w, WorkerMsg::Tick(now)),
                Err(TrySendError::Disconnected(_))
            );
            self.workers_gone |= gone;
        }
    }
}

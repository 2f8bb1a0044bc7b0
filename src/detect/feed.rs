//! The workers' side of the hand-off to the detector shards: call starts and ends are queued
//! locally and sent as one batch per shard per worker batch (a channel operation amortised
//! over many calls). Live: `try_send`, a full shard queue drops the batch and counts it, so
//! detection never slows capture. Replay: `send` waits, nothing is lost. Each batch says which
//! worker sent it and how far that worker's time has got, so the shard can merge the workers'
//! feeds into one order (`reorder`); a worker's feed says it is done when it is dropped.

use super::engine::shard_of;
use super::features::{CallEnd, CallKeys, CallStart};
use super::kinds::KEY_KINDS;
use crate::backpressure::Backpressure;
use crate::clock::Timestamp;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use prometheus::IntCounter;

pub enum DetectMsg {
    Start(CallStart),
    End(CallEnd),
    /// Stream time moved on (so quiet detections close without new calls).
    Tick(Timestamp),
}

/// One worker's messages for one shard, in that worker's order. `upto`: nothing the worker
/// sends later orders before it (`reorder::DONE` when the worker has stopped).
pub struct FeedBatch {
    pub source: usize,
    pub upto: Timestamp,
    pub msgs: Vec<DetectMsg>,
}

/// The feed `DetectFeed::new` returns: a template for `for_source`, never sending itself.
const TEMPLATE: usize = usize::MAX;

/// Time between ticks a worker sends to every shard.
const TICK_US: i64 = 1_000_000;

pub struct DetectFeed {
    source: usize,
    txs: Vec<Sender<FeedBatch>>,
    /// Emptied batches coming back from the shards: a batch is allocated and freed by the
    /// same thread (a free into another thread's malloc arena contends with its allocations).
    recycled: Receiver<Vec<DetectMsg>>,
    pending: Vec<Vec<DetectMsg>>,
    backpressure: Backpressure,
    dropped: IntCounter,
    last_tick: Timestamp,
    /// The latest time this feed promised (sent as `upto`).
    upto: Timestamp,
}

impl DetectFeed {
    /// The feed of worker `source` (numbered from 0, below the count the shards were given).
    pub fn for_source(&self, source: usize) -> Self {
        DetectFeed {
            source,
            txs: self.txs.clone(),
            recycled: self.recycled.clone(),
            pending: self.txs.iter().map(|_| Vec::new()).collect(),
            backpressure: self.backpressure,
            dropped: self.dropped.clone(),
            last_tick: Timestamp::ZERO,
            upto: Timestamp::ZERO,
        }
    }

    /// `recycled`: where shards return emptied batches (`crossbeam_channel::never()` if none).
    pub fn new(
        txs: Vec<Sender<FeedBatch>>,
        recycled: Receiver<Vec<DetectMsg>>,
        backpressure: Backpressure,
        dropped: IntCounter,
    ) -> Self {
        DetectFeed {
            source: TEMPLATE,
            pending: txs.iter().map(|_| Vec::new()).collect(),
            txs,
            recycled,
            backpressure,
            dropped,
            last_tick: Timestamp::ZERO,
            upto: Timestamp::ZERO,
        }
    }

    /// Shards owning at least one of the call's keys (a bit set; at most 64 shards).
    fn shards_of(&self, keys: &CallKeys) -> u64 {
        let n = self.txs.len();
        if n == 1 {
            return 1;
        }
        KEY_KINDS
            .iter()
            .filter_map(|&k| keys.hash(k))
            .fold(0u64, |m, h| m | 1 << shard_of(h, n))
    }

    pub fn start(&mut self, s: CallStart) {
        if self.pending.len() == 1 {
            self.pending[0].push(DetectMsg::Start(s));
            return;
        }
        let mask = self.shards_of(&s.keys);
        for (i, p) in self.pending.iter_mut().enumerate() {
            if mask & (1 << i) != 0 {
                p.push(DetectMsg::Start(s.clone()));
            }
        }
    }

    pub fn end(&mut self, e: CallEnd) {
        if self.pending.len() == 1 {
            self.pending[0].push(DetectMsg::End(e));
            return;
        }
        let mask = self.shards_of(&e.keys);
        for (i, p) in self.pending.iter_mut().enumerate() {
            if mask & (1 << i) != 0 {
                p.push(DetectMsg::End(e.clone()));
            }
        }
    }

    /// Sends what is queued (and a tick to every shard once a second of stream time), promising
    /// that nothing sent later is older than `now`.
    pub fn flush(&mut self, now: Timestamp) {
        if self.source == TEMPLATE {
            return;
        }
        let tick = now.0 - self.last_tick.0 >= TICK_US;
        if tick {
            self.last_tick = now;
        }
        self.upto = self.upto.max(now);
        self.send_pending(tick.then_some(now));
    }

    fn send_pending(&mut self, tick: Option<Timestamp>) {
        for (tx, p) in self.txs.iter().zip(self.pending.iter_mut()) {
            if let Some(t) = tick {
                p.push(DetectMsg::Tick(t));
            }
            if p.is_empty() {
                continue;
            }
            let fresh = self.recycled.try_recv().unwrap_or_default();
            let batch = FeedBatch {
                source: self.source,
                upto: self.upto,
                msgs: std::mem::replace(p, fresh),
            };
            if let Err(TrySendError::Full(b) | TrySendError::Disconnected(b)) =
                self.backpressure.send(tx, batch)
            {
                let calls = b
                    .msgs
                    .iter()
                    .filter(|m| !matches!(m, DetectMsg::Tick(_)))
                    .count();
                self.dropped.inc_by(calls as u64);
            }
        }
    }
}

impl Drop for DetectFeed {
    /// A stopped worker's last word to every shard: what it still held, and that nothing more
    /// comes (a shard would otherwise wait for it). Live, a full queue loses the word; the
    /// shard then releases what it holds when its buffer fills, or at the end.
    fn drop(&mut self) {
        if self.source == TEMPLATE {
            return;
        }
        self.upto = super::reorder::DONE;
        // Sent even when empty: the batch carries the promise.
        for (tx, p) in self.txs.iter().zip(self.pending.iter_mut()) {
            let batch = FeedBatch {
                source: self.source,
                upto: self.upto,
                msgs: std::mem::take(p),
            };
            let _ = self.backpressure.send(tx, batch);
        }
    }
}

//! The workers' side of the hand-off to the detector shards: call starts and ends are queued
//! locally and sent as one batch per shard per worker batch (a channel operation amortised
//! over many calls). Live: `try_send`, a full shard queue drops the batch and counts it, so
//! detection never slows capture. Replay: `send` waits, nothing is lost.

use super::engine::shard_of;
use super::features::{CallEnd, CallKeys, CallStart};
use super::kinds::KEY_KINDS;
use crate::clock::Timestamp;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use prometheus::IntCounter;

pub enum DetectMsg {
    Start(CallStart),
    End(CallEnd),
    /// Stream time moved on (so quiet detections close without new calls).
    Tick(Timestamp),
}

/// Time between ticks a worker sends to every shard.
const TICK_US: i64 = 1_000_000;

pub struct DetectFeed {
    txs: Vec<Sender<Vec<DetectMsg>>>,
    /// Emptied batches coming back from the shards: a batch is allocated and freed by the
    /// same thread (a free into another thread's malloc arena contends with its allocations).
    recycled: Receiver<Vec<DetectMsg>>,
    pending: Vec<Vec<DetectMsg>>,
    wait: bool,
    dropped: IntCounter,
    last_tick: Timestamp,
}

impl Clone for DetectFeed {
    fn clone(&self) -> Self {
        DetectFeed {
            txs: self.txs.clone(),
            recycled: self.recycled.clone(),
            pending: self.txs.iter().map(|_| Vec::new()).collect(),
            wait: self.wait,
            dropped: self.dropped.clone(),
            last_tick: Timestamp::ZERO,
        }
    }
}

impl DetectFeed {
    /// `wait`: replay semantics (block on a full queue) instead of live (drop and count).
    /// `recycled`: where shards return emptied batches (`crossbeam_channel::never()` if none).
    pub fn new(
        txs: Vec<Sender<Vec<DetectMsg>>>,
        recycled: Receiver<Vec<DetectMsg>>,
        wait: bool,
        dropped: IntCounter,
    ) -> Self {
        DetectFeed {
            pending: txs.iter().map(|_| Vec::new()).collect(),
            txs,
            recycled,
            wait,
            dropped,
            last_tick: Timestamp::ZERO,
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

    /// Sends what is queued (and a tick to every shard once a second of stream time).
    pub fn flush(&mut self, now: Timestamp) {
        let tick = now.0 - self.last_tick.0 >= TICK_US;
        if tick {
            self.last_tick = now;
        }
        for (tx, p) in self.txs.iter().zip(self.pending.iter_mut()) {
            if tick {
                p.push(DetectMsg::Tick(now));
            }
            if p.is_empty() {
                continue;
            }
            let fresh = self.recycled.try_recv().unwrap_or_default();
            let batch = std::mem::replace(p, fresh);
            if self.wait {
                let _ = tx.send(batch);
            } else if let Err(TrySendError::Full(b) | TrySendError::Disconnected(b)) =
                tx.try_send(batch)
            {
                let calls = b
                    .iter()
                    .filter(|m| !matches!(m, DetectMsg::Tick(_)))
                    .count();
                self.dropped.inc_by(calls as u64);
            }
        }
    }
}

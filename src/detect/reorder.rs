//! A detector shard's merge of its workers' feeds into one order that does not depend on thread
//! timing: each worker's messages arrive in that worker's order, stamped (by the shard) with an
//! order time that never goes back; the shard releases the message with the smallest (order
//! time, worker, arrival) only once every worker has promised (its batch's `upto`) that nothing
//! older will follow. So a replay with N workers gives the same DetectionEvents every time.
//!
//! It must never hold without bound: past `limit` held messages the oldest are released anyway
//! (counted in `forced`; those few lose the guarantee, never the call).

use super::feed::{DetectMsg, FeedBatch};
use crate::clock::Timestamp;
use std::collections::VecDeque;

/// The time a message orders by (its call's time; a tick's time).
fn time_of(m: &DetectMsg) -> Timestamp {
    match m {
        DetectMsg::Start(s) => s.at,
        DetectMsg::End(e) => e.at,
        DetectMsg::Tick(t) => *t,
    }
}

struct Source {
    queue: VecDeque<(Timestamp, DetectMsg)>,
    /// Order times from this worker never go below this (its last order time or promise).
    floor: Timestamp,
    /// What the worker promised: nothing it sends later orders before this.
    upto: Timestamp,
}

pub struct Reorder {
    sources: Vec<Source>,
    held: usize,
    limit: usize,
    /// Messages released before every worker had caught up (the buffer was full).
    pub forced: u64,
}

impl Reorder {
    /// `sources`: how many workers feed this shard (each `FeedBatch::source` is below it).
    pub fn new(sources: usize, limit: usize) -> Self {
        Reorder {
            sources: (0..sources.max(1))
                .map(|_| Source {
                    queue: VecDeque::new(),
                    floor: Timestamp::ZERO,
                    upto: Timestamp::ZERO,
                })
                .collect(),
            held: 0,
            limit: limit.max(1),
            forced: 0,
        }
    }

    /// Takes the batch's messages (the emptied batch stays with the caller for reuse).
    pub fn push(&mut self, batch: &mut FeedBatch) {
        // Sources are numbered by the pipeline below the count it gave; a stray number is
        // folded onto the last one rather than held for ever.
        let i = batch.source.min(self.sources.len() - 1);
        let src = &mut self.sources[i];
        self.held += batch.msgs.len();
        for m in batch.msgs.drain(..) {
            let t = time_of(&m).max(src.floor);
            src.floor = t;
            src.queue.push_back((t, m));
        }
        src.upto = src.upto.max(batch.upto);
        src.floor = src.floor.max(src.upto);
    }

    /// The next message in merged order, if it may go now: every worker has promised nothing
    /// earlier will come, or the buffer is over its limit.
    pub fn pop(&mut self) -> Option<DetectMsg> {
        let (i, t) = self
            .sources
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.queue.front().map(|(t, _)| (i, *t)))
            .min_by_key(|&(i, t)| (t, i))?;
        // Nothing can still sort before (t, i): every other worker has promised past t, or
        // promised exactly t and sorts after i on a tie.
        let due = self
            .sources
            .iter()
            .enumerate()
            .all(|(j, s)| s.upto > t || (s.upto == t && j >= i));
        if !due {
            if self.held <= self.limit {
                return None;
            }
            self.forced += 1;
        }
        self.held -= 1;
        self.sources[i].queue.pop_front().map(|(_, m)| m)
    }

    /// No more input: everything held may go.
    pub fn close_all(&mut self) {
        for s in &mut self.sources {
            s.upto = DONE;
        }
    }

    /// Messages held, waiting for a slower worker.
    pub fn held(&self) -> usize {
        self.held
    }
}

/// The promise a worker makes when it stops: nothing more will come.
pub const DONE: Timestamp = Timestamp(i64::MAX);

#[cfg(test)]
mod tests {
    use super::*;

    fn tick_batch(source: usize, upto: i64, ticks: &[i64]) -> FeedBatch {
        FeedBatch {
            source,
            upto: Timestamp(upto),
            msgs: ticks
                .iter()
                .map(|&t| DetectMsg::Tick(Timestamp(t)))
                .collect(),
        }
    }

    fn drain(r: &mut Reorder) -> Vec<i64> {
        std::iter::from_fn(|| r.pop())
            .map(|m| time_of(&m).0)
            .collect()
    }

    #[test]
    fn releases_in_time_order_only_behind_every_workers_promise() {
        let mut r = Reorder::new(2, 1000);
        r.push(&mut tick_batch(0, 30, &[10, 20, 30]));
        assert!(
            drain(&mut r).is_empty(),
            "worker 1 has promised nothing yet"
        );
        r.push(&mut tick_batch(1, 25, &[15, 25]));
        assert_eq!(drain(&mut r), vec![10, 15, 20, 25]);
        r.push(&mut tick_batch(1, DONE.0, &[]));
        assert_eq!(
            drain(&mut r),
            vec![30],
            "worker 0 promised 30, worker 1 is done"
        );
        r.push(&mut tick_batch(0, DONE.0, &[40]));
        assert_eq!(drain(&mut r), vec![40]);
        assert_eq!(r.held(), 0);
        assert_eq!(r.forced, 0);
    }

    #[test]
    fn the_same_messages_in_any_arrival_interleaving_come_out_in_one_order() {
        let orders = [[0usize, 1, 0, 1], [1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 1, 0]];
        let mut outs = Vec::new();
        for order in orders {
            let mut per = [
                vec![
                    tick_batch(0, 12, &[5, 12]),
                    tick_batch(0, DONE.0, &[13, 20]),
                ],
                vec![
                    tick_batch(1, 12, &[5, 11]),
                    tick_batch(1, DONE.0, &[12, 30]),
                ],
            ];
            let mut next = [0usize, 0];
            let mut r = Reorder::new(2, 1000);
            let mut out = Vec::new();
            for s in order {
                r.push(&mut per[s][next[s]]);
                next[s] += 1;
                out.extend(drain(&mut r));
            }
            outs.push(out);
        }
        assert!(outs.windows(2).all(|w| w[0] == w[1]), "{outs:?}");
        assert_eq!(outs[0], vec![5, 5, 11, 12, 12, 13, 20, 30]);
    }

    #[test]
    fn an_older_message_after_a_promise_orders_at_the_promise() {
        let mut r = Reorder::new(2, 1000);
        r.push(&mut tick_batch(0, 50, &[40]));
        r.push(&mut tick_batch(0, 60, &[30]));
        r.push(&mut tick_batch(1, DONE.0, &[45]));
        // The late 30 orders at worker 0's promise (50): it does not jump the queue.
        assert_eq!(drain(&mut r), vec![40, 45, 30]);
    }

    #[test]
    fn a_full_buffer_releases_the_oldest_and_counts_it() {
        let mut r = Reorder::new(2, 3);
        r.push(&mut tick_batch(0, 100, &[1, 2, 3, 4, 5]));
        assert_eq!(drain(&mut r), vec![1, 2]);
        assert_eq!(r.forced, 2);
        assert_eq!(r.held(), 3);
    }
}

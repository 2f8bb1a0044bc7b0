//! The contiguous-acknowledgement tracker of one spool class: which byte ranges are out for
//! delivery (in spool order), which of them the collector already acknowledged, and how far
//! the acknowledged prefix reaches without a hole. With several batches in flight a later one
//! may be acknowledged first; the spool's ack point may only move over delivered ranges.
//!
//! It also carries the batch boundaries of a previous run ([`InFlight::resume`]): after a crash
//! the ranges that were out are cut again at exactly the same places, so each one is resent
//! with the same Idempotency-Key and the collector recognises it.
//!
//! Pure bookkeeping, no I/O: it must never report an ack point past a range that is not
//! delivered, and never hold more ranges than its owner dispatched.

use super::spool::Position;
use std::collections::VecDeque;

#[derive(Debug)]
struct Range<T> {
    start: Position,
    end: Position,
    delivered: bool,
    tag: T,
}

/// Ranges out for delivery, oldest first; `T` is what the owner needs back when a range
/// becomes part of the acknowledged prefix (the spool keeps per-segment record counts).
#[derive(Debug)]
pub struct InFlight<T> {
    ack: Position,
    out: VecDeque<Range<T>>,
    /// Ends of batches a previous run had out, still to be cut again, ascending.
    resume: VecDeque<Position>,
}

impl<T> InFlight<T> {
    /// Nothing out; the next range starts at `ack`.
    pub fn new(ack: Position) -> Self {
        Self::resume(ack, Vec::new())
    }

    /// After a restart: `boundaries` are the ends of the ranges the previous run had out
    /// (what [`InFlight::boundaries`] returned then); those at or before `ack` are done.
    pub fn resume(ack: Position, mut boundaries: Vec<Position>) -> Self {
        boundaries.sort_unstable();
        boundaries.dedup();
        InFlight {
            ack,
            out: VecDeque::new(),
            resume: boundaries.into_iter().filter(|b| *b > ack).collect(),
        }
    }

    /// The contiguous acknowledged point.
    pub fn ack(&self) -> Position {
        self.ack
    }

    /// Where the next range starts: after the last one out, else at the ack point.
    pub fn cursor(&self) -> Position {
        self.out.back().map_or(self.ack, |r| r.end)
    }

    /// Where the next range must end, when a previous run cut one there.
    pub fn stop_at(&self) -> Option<Position> {
        self.resume.front().copied()
    }

    /// Ranges out (delivered or not) behind the ack point's hole.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Ranges out and not yet acknowledged.
    pub fn undelivered(&self) -> usize {
        self.out.iter().filter(|r| !r.delivered).count()
    }

    /// A range goes out. It starts at or after [`InFlight::cursor`] (later when records between
    /// were shed); a range that does not is ignored and false returned.
    pub fn dispatch(&mut self, start: Position, end: Position, tag: T) -> bool {
        if start < self.cursor() || end <= start {
            return false;
        }
        while self.resume.front().is_some_and(|b| *b <= end) {
            self.resume.pop_front();
        }
        self.out.push_back(Range {
            start,
            end,
            delivered: false,
            tag,
        });
        true
    }

    /// The range starting at `start` was acknowledged (or dead-lettered: it is done either
    /// way). Returns the tags of the ranges that joined the acknowledged prefix, oldest first,
    /// with the new ack point; None when the prefix did not move (a hole before this range, or
    /// an unknown or repeated acknowledgement).
    pub fn complete(&mut self, start: Position) -> Option<(Position, Vec<T>)> {
        let r = self.out.iter_mut().find(|r| r.start == start)?;
        r.delivered = true;
        let mut done = Vec::new();
        while self.out.front().is_some_and(|r| r.delivered) {
            let r = self.out.pop_front().expect("front checked");
            self.ack = self.ack.max(r.end);
            done.push(r.tag);
        }
        (!done.is_empty()).then_some((self.ack, done))
    }

    /// The ack point moved without us (the size cap shed segments): ranges wholly behind it
    /// are forgotten, delivered or not; their records are gone.
    pub fn skip_to(&mut self, ack: Position) {
        if ack <= self.ack {
            return;
        }
        self.ack = ack;
        while self.out.front().is_some_and(|r| r.end <= ack) {
            self.out.pop_front();
        }
        while self.resume.front().is_some_and(|b| *b <= ack) {
            self.resume.pop_front();
        }
    }

    /// What must survive a crash so the ranges out now are cut the same way again: their ends
    /// and the previous run's not yet re-cut, ascending.
    pub fn boundaries(&self) -> Vec<Position> {
        self.out
            .iter()
            .map(|r| r.end)
            .chain(self.resume.iter().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(offset: u64) -> Position {
        Position { segment: 0, offset }
    }

    /// Four ranges [0,10) [10,20) [20,30) [30,40) out, tagged 1..=4.
    fn four() -> InFlight<u32> {
        let mut f = InFlight::new(p(0));
        for (i, s) in [0, 10, 20, 30].into_iter().enumerate() {
            assert_eq!(f.cursor(), p(s));
            assert!(f.dispatch(p(s), p(s + 10), i as u32 + 1));
        }
        f
    }

    #[test]
    fn in_order_acks_move_the_point_one_range_at_a_time() {
        let mut f = four();
        assert_eq!(f.complete(p(0)), Some((p(10), vec![1])));
        assert_eq!(f.complete(p(10)), Some((p(20), vec![2])));
        assert_eq!(f.len(), 2);
        assert_eq!(f.cursor(), p(40));
    }

    #[test]
    fn a_later_ack_waits_for_the_earlier_ranges() {
        let mut f = four();
        assert_eq!(f.complete(p(30)), None, "the point must not pass [0,30)");
        assert_eq!(f.complete(p(10)), None);
        assert_eq!(f.ack(), p(0));
        assert_eq!(f.undelivered(), 2);
        // The first one closes the hole up to [20,30), which is still out.
        assert_eq!(f.complete(p(0)), Some((p(20), vec![1, 2])));
        assert_eq!(f.complete(p(20)), Some((p(40), vec![3, 4])));
        assert!(f.is_empty());
        assert_eq!(f.cursor(), p(40));
    }

    #[test]
    fn a_failed_range_in_the_middle_holds_the_point_until_it_is_delivered() {
        let mut f = four();
        // [10,20) keeps failing (it is retried, never completed) while the rest arrive.
        assert_eq!(f.complete(p(0)), Some((p(10), vec![1])));
        assert_eq!(f.complete(p(20)), None);
        assert_eq!(f.complete(p(30)), None);
        assert_eq!(f.ack(), p(10));
        // New ranges still go out behind it.
        assert!(f.dispatch(p(40), p(50), 5));
        assert_eq!(f.complete(p(40)), None);
        assert_eq!(f.ack(), p(10));
        assert_eq!(f.boundaries(), vec![p(20), p(30), p(40), p(50)]);
        assert_eq!(f.complete(p(10)), Some((p(50), vec![2, 3, 4, 5])));
    }

    #[test]
    fn repeated_unknown_and_overlapping_ranges_are_ignored() {
        let mut f = four();
        assert_eq!(f.complete(p(5)), None, "no range starts there");
        assert_eq!(f.complete(p(0)), Some((p(10), vec![1])));
        assert_eq!(f.complete(p(0)), None, "already part of the prefix");
        assert!(!f.dispatch(p(35), p(45), 9), "overlaps a range out");
        assert!(!f.dispatch(p(40), p(40), 9), "empty");
        assert_eq!(f.len(), 3);
    }

    #[test]
    fn after_a_restart_the_same_ranges_are_cut_again() {
        // Run 1: four out, [10,20) and [30,40) acknowledged, then a crash.
        let mut f = four();
        f.complete(p(10));
        f.complete(p(30));
        let saved = f.boundaries();
        assert_eq!(f.ack(), p(0));
        // Run 2 resumes from the persisted ack point and boundaries (in any order).
        let mut g: InFlight<()> = InFlight::resume(p(0), saved.into_iter().rev().collect());
        let mut cut = Vec::new();
        while let Some(end) = g.stop_at() {
            let start = g.cursor();
            assert!(g.dispatch(start, end, ()));
            cut.push((start, end));
        }
        assert_eq!(
            cut,
            vec![
                (p(0), p(10)),
                (p(10), p(20)),
                (p(20), p(30)),
                (p(30), p(40))
            ]
        );
        // Beyond them, ranges are cut freely again.
        assert!(g.dispatch(p(40), p(47), ()));
        assert_eq!(g.stop_at(), None);
    }

    #[test]
    fn boundaries_at_or_before_the_ack_point_are_done() {
        let g: InFlight<()> = InFlight::resume(p(20), vec![p(10), p(20), p(30), p(30)]);
        assert_eq!(g.boundaries(), vec![p(30)]);
        assert_eq!(g.stop_at(), Some(p(30)));
    }

    #[test]
    fn a_shed_moves_the_point_over_ranges_that_are_gone() {
        let mut f = four();
        f.complete(p(30));
        f.skip_to(Position {
            segment: 0,
            offset: 20,
        });
        assert_eq!(f.ack(), p(20));
        assert_eq!(f.len(), 2);
        assert_eq!(f.complete(p(0)), None, "gone with the shed");
        assert_eq!(f.complete(p(20)), Some((p(40), vec![3, 4])));
        // A range may start after a gap left by a shed.
        assert!(f.dispatch(p(60), p(70), 7));
    }
}

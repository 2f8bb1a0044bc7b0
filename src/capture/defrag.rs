//! IPv4 and IPv6 fragment reassembly: fragments arrive in any order and leave as one
//! upper-layer payload (what follows the IP header or the Fragment header).
//!
//! The table is bounded in datagrams and in buffered bytes; when either is full the oldest
//! pending datagram is evicted, and datagrams older than the timeout are expired. Overlapping
//! fragments whose bytes differ drop the whole datagram (an IDS evasion technique), and so do
//! fragments that disagree on where the datagram ends or that reach past 65535 bytes.
//! This module must never grow without bound, never trust an offset it has not bounded, never
//! allocate per fragment in steady state (buffers are recycled) and never panic on any input.

use crate::clock::Timestamp;
use ahash::RandomState;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// Largest reassembled payload: IPv4 total length and IPv6 payload length are 16-bit.
pub const MAX_DATAGRAM: usize = 65_535;

/// Most disjoint received ranges tracked per datagram. Legitimate traffic needs a handful
/// even in random order; more means a tiny-fragment flood, and the datagram is dropped.
pub const MAX_RANGES: usize = 64;

/// Recycled payload buffers kept for reuse.
const MAX_FREE_BUFFERS: usize = 64;

/// Bounds of the reassembly table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefragLimits {
    /// Datagrams pending at once.
    pub max_datagrams: usize,
    /// Total buffered payload bytes across pending datagrams.
    pub max_bytes: usize,
    /// Microseconds after its first fragment that a datagram is given up on.
    pub timeout_us: i64,
}

impl Default for DefragLimits {
    fn default() -> Self {
        DefragLimits {
            max_datagrams: 4096,
            max_bytes: 64 << 20,
            timeout_us: 30_000_000,
        }
    }
}

/// What makes fragments belong to the same datagram.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FragmentKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IPv4: the 16-bit Identification; IPv6: the 32-bit Fragment header Identification.
    pub id: u32,
    /// IPv4: the IP protocol; IPv6: the Fragment header's Next Header.
    pub proto: u8,
}

/// One fragment, borrowed from the frame it arrived in.
#[derive(Clone, Copy, Debug)]
pub struct Fragment<'a> {
    pub key: FragmentKey,
    /// Byte offset of `data` in the reassembled payload.
    pub offset: usize,
    /// More fragments follow (MF flag / M flag).
    pub more: bool,
    pub data: &'a [u8],
    pub ts: Timestamp,
}

/// A complete datagram payload. Hand `payload` back with [`Defragmenter::recycle`] when done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reassembled {
    pub key: FragmentKey,
    pub payload: Vec<u8>,
}

/// Result of [`Defragmenter::push`].
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Stored; the datagram still has holes (or the fragment was a duplicate).
    Pending,
    Complete(Reassembled),
    /// The fragment's datagram was dropped.
    Dropped(DefragError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DefragError {
    #[error("fragment reaches past 65535 bytes")]
    TooLarge,
    #[error("overlapping fragments carry different bytes")]
    OverlapConflict,
    #[error("fragments disagree on where the datagram ends")]
    Inconsistent,
    #[error("reassembly table full")]
    TableFull,
    #[error("too many disjoint fragment ranges")]
    TooManyHoles,
}

impl DefragError {
    /// Stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            DefragError::TooLarge => "frag_too_large",
            DefragError::OverlapConflict => "frag_overlap_conflict",
            DefragError::Inconsistent => "frag_inconsistent",
            DefragError::TableFull => "frag_table_full",
            DefragError::TooManyHoles => "frag_too_many_holes",
        }
    }
}

/// Counters; the owning thread publishes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DefragStats {
    pub completed: u64,
    pub timed_out: u64,
    /// Pending datagrams evicted to make room (table or byte budget full).
    pub evicted: u64,
    /// Fragments that were exact duplicates or overlapped with identical bytes.
    pub duplicates: u64,
    pub overlap_conflicts: u64,
    pub too_large: u64,
    pub inconsistent: u64,
    /// Datagrams dropped for having more than [`MAX_RANGES`] disjoint pieces.
    pub too_fragmented: u64,
}

/// Sorted, merged, disjoint `[start, end)` ranges of received bytes, stored inline.
#[derive(Clone, Copy, Debug)]
struct RangeSet {
    ranges: [(u32, u32); MAX_RANGES],
    len: usize,
}

impl RangeSet {
    const EMPTY: RangeSet = RangeSet {
        ranges: [(0, 0); MAX_RANGES],
        len: 0,
    };

    fn as_slice(&self) -> &[(u32, u32)] {
        self.ranges.get(..self.len).unwrap_or(&[])
    }

    /// Adds `[start, end)`, merging with overlapping or adjacent ranges. Fails (leaving the set
    /// unchanged) when the result would need more than [`MAX_RANGES`] ranges.
    fn insert(&mut self, start: u32, end: u32) -> Result<(), DefragError> {
        if start >= end {
            return Ok(());
        }
        let mut out = [(0u32, 0u32); MAX_RANGES];
        let mut n = 0usize;
        let mut push = |r: (u32, u32), n: &mut usize| -> Result<(), DefragError> {
            *out.get_mut(*n).ok_or(DefragError::TooManyHoles)? = r;
            *n += 1;
            Ok(())
        };
        let (mut s, mut e) = (start, end);
        let mut placed = false;
        for &(a, b) in self.as_slice() {
            if b < s {
                push((a, b), &mut n)?;
            } else if a > e {
                if !placed {
                    push((s, e), &mut n)?;
                    placed = true;
                }
                push((a, b), &mut n)?;
            } else {
                s = s.min(a);
                e = e.max(b);
            }
        }
        if !placed {
            push((s, e), &mut n)?;
        }
        self.ranges = out;
        self.len = n;
        Ok(())
    }

    fn covers(&self, total: usize) -> bool {
        match self.as_slice() {
            [] => total == 0,
            [(0, e)] => *e as usize == total,
            _ => false,
        }
    }
}

#[derive(Debug)]
struct Datagram {
    /// Creation order, to find the oldest and to tell stale order-queue entries apart.
    id: u64,
    first_ts: Timestamp,
    /// Bytes at their offsets; its length is the highest end received so far.
    buf: Vec<u8>,
    received: RangeSet,
    /// Set by the last fragment (more = false).
    total: Option<usize>,
}

/// Reassembles fragmented IP datagrams within fixed bounds.
#[derive(Debug)]
pub struct Defragmenter {
    limits: DefragLimits,
    table: HashMap<FragmentKey, Datagram, RandomState>,
    /// (id, key) in creation order; entries whose datagram is gone or replaced are skipped.
    order: VecDeque<(u64, FragmentKey)>,
    next_id: u64,
    bytes: usize,
    free: Vec<Vec<u8>>,
    stats: DefragStats,
}

impl Defragmenter {
    pub fn new(limits: DefragLimits) -> Self {
        Defragmenter {
            limits,
            table: HashMap::with_hasher(RandomState::new()),
            order: VecDeque::new(),
            next_id: 0,
            bytes: 0,
            free: Vec::new(),
            stats: DefragStats::default(),
        }
    }

    /// Adds one fragment. A datagram that completes is returned and forgotten.
    pub fn push(&mut self, frag: Fragment<'_>) -> Pushed {
        let Fragment {
            key,
            offset,
            more,
            data,
            ts,
        } = frag;
        let end = match offset.checked_add(data.len()) {
            Some(end) if end <= MAX_DATAGRAM => end,
            _ => {
                self.stats.too_large += 1;
                self.discard(&key);
                return Pushed::Dropped(DefragError::TooLarge);
            }
        };

        // An old datagram under the same key (IPv4 ids wrap) is stale: start afresh.
        if let Some(d) = self.table.get(&key) {
            if ts.0.saturating_sub(d.first_ts.0) > self.limits.timeout_us {
                self.stats.timed_out += 1;
                self.discard(&key);
            }
        }

        if !self.table.contains_key(&key) {
            while self.table.len() >= self.limits.max_datagrams.max(1) {
                if !self.evict_oldest(None) {
                    break;
                }
            }
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            let buf = self.free.pop().unwrap_or_default();
            self.table.insert(
                key,
                Datagram {
                    id,
                    first_ts: ts,
                    buf,
                    received: RangeSet::EMPTY,
                    total: None,
                },
            );
            self.order.push_back((id, key));
        }

        let held = self.table.get(&key).map_or(0, |d| d.buf.len());
        let growth = end.saturating_sub(held);
        while self.bytes.saturating_add(growth) > self.limits.max_bytes {
            if !self.evict_oldest(Some(key)) {
                break;
            }
        }
        if self.bytes.saturating_add(growth) > self.limits.max_bytes {
            self.stats.evicted += 1;
            self.discard(&key);
            return Pushed::Dropped(DefragError::TableFull);
        }

        let Some(d) = self.table.get_mut(&key) else {
            return Pushed::Pending;
        };
        match Self::apply(d, offset, end, more, data) {
            Ok(dup) => {
                if dup {
                    self.stats.duplicates += 1;
                }
                self.bytes = self.bytes.saturating_add(growth);
            }
            Err(e) => {
                match e {
                    DefragError::OverlapConflict => self.stats.overlap_conflicts += 1,
                    DefragError::Inconsistent => self.stats.inconsistent += 1,
                    DefragError::TooManyHoles => self.stats.too_fragmented += 1,
                    DefragError::TooLarge => self.stats.too_large += 1,
                    DefragError::TableFull => self.stats.evicted += 1,
                }
                self.discard(&key);
                return Pushed::Dropped(e);
            }
        }

        let done = d.total.is_some_and(|t| d.received.covers(t));
        if !done {
            return Pushed::Pending;
        }
        let Some(d) = self.table.remove(&key) else {
            return Pushed::Pending;
        };
        self.bytes = self.bytes.saturating_sub(d.buf.len());
        self.stats.completed += 1;
        self.compact_order();
        Pushed::Complete(Reassembled {
            key,
            payload: d.buf,
        })
    }

    /// Checks and stores one fragment. Returns whether it overlapped data already held
    /// (identically). On error nothing has been changed.
    fn apply(
        d: &mut Datagram,
        offset: usize,
        end: usize,
        more: bool,
        data: &[u8],
    ) -> Result<bool, DefragError> {
        if more {
            if d.total.is_some_and(|t| end > t) {
                return Err(DefragError::Inconsistent);
            }
        } else if d.total.is_some_and(|t| t != end) || d.buf.len() > end {
            return Err(DefragError::Inconsistent);
        }
        let mut dup = false;
        for &(a, b) in d.received.as_slice() {
            let (a, b) = (a as usize, b as usize);
            let lo = a.max(offset);
            let hi = b.min(end);
            if lo >= hi {
                continue;
            }
            let held = d.buf.get(lo..hi);
            let new = data.get(lo - offset..hi - offset);
            if held.is_none() || held != new {
                return Err(DefragError::OverlapConflict);
            }
            dup = true;
        }
        // Offsets are bounded by MAX_DATAGRAM, so they fit in u32.
        d.received.insert(offset as u32, end as u32)?;
        if d.buf.len() < end {
            d.buf.resize(end, 0);
        }
        if let Some(dst) = d.buf.get_mut(offset..end) {
            dst.copy_from_slice(data);
        }
        if !more {
            d.total = Some(end);
        }
        Ok(dup)
    }

    /// Drops datagrams whose first fragment is more than the timeout older than `now`.
    pub fn expire(&mut self, now: Timestamp) -> usize {
        let timeout = self.limits.timeout_us;
        let Self {
            table, free, bytes, ..
        } = self;
        let mut n = 0usize;
        table.retain(|_, d| {
            let keep = now.0.saturating_sub(d.first_ts.0) <= timeout;
            if !keep {
                n += 1;
                *bytes = bytes.saturating_sub(d.buf.len());
                recycle_into(free, std::mem::take(&mut d.buf));
            }
            keep
        });
        self.stats.timed_out += n as u64;
        self.compact_order();
        n
    }

    /// Takes back a completed payload's buffer for reuse (the free list is bounded).
    pub fn recycle(&mut self, buf: Vec<u8>) {
        recycle_into(&mut self.free, buf);
    }

    /// Datagrams waiting for fragments.
    pub fn pending(&self) -> usize {
        self.table.len()
    }

    /// Bytes held by pending datagrams (each counted up to its highest received end).
    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    pub fn stats(&self) -> &DefragStats {
        &self.stats
    }

    /// Removes a datagram without counting it anywhere.
    fn discard(&mut self, key: &FragmentKey) {
        if let Some(d) = self.table.remove(key) {
            self.bytes = self.bytes.saturating_sub(d.buf.len());
            recycle_into(&mut self.free, d.buf);
            self.compact_order();
        }
    }

    /// Evicts the oldest pending datagram other than `keep`. False when there is none.
    fn evict_oldest(&mut self, keep: Option<FragmentKey>) -> bool {
        let mut kept = None;
        let mut evicted = false;
        while let Some((id, key)) = self.order.pop_front() {
            if !matches!(self.table.get(&key), Some(d) if d.id == id) {
                continue;
            }
            if Some(key) == keep {
                kept = Some((id, key));
                continue;
            }
            if let Some(d) = self.table.remove(&key) {
                self.bytes = self.bytes.saturating_sub(d.buf.len());
                recycle_into(&mut self.free, d.buf);
            }
            self.stats.evicted += 1;
            evicted = true;
            break;
        }
        if let Some(k) = kept {
            self.order.push_front(k);
        }
        evicted
    }

    /// Keeps the order queue proportional to the table.
    fn compact_order(&mut self) {
        if self.order.len() > self.table.len().saturating_mul(2).saturating_add(32) {
            let table = &self.table;
            self.order
                .retain(|(id, key)| table.get(key).is_some_and(|d| d.id == *id));
        }
    }
}

fn recycle_into(free: &mut Vec<Vec<u8>>, mut buf: Vec<u8>) {
    if free.len() < MAX_FREE_BUFFERS && buf.capacity() > 0 && buf.capacity() <= 2 * MAX_DATAGRAM {
        buf.clear();
        free.push(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn key(id: u32) -> FragmentKey {
        FragmentKey {
            src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)),
            id,
            proto: 17,
        }
    }

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    /// Fragments of `data` cut every `size` bytes: (offset, more, slice).
    fn cut(data: &[u8], size: usize) -> Vec<(usize, bool, &[u8])> {
        let mut v = Vec::new();
        let mut off = 0;
        while off < data.len() {
            let end = (off + size).min(data.len());
            v.push((off, end < data.len(), &data[off..end]));
            off = end;
        }
        v
    }

    fn frag(k: FragmentKey, offset: usize, more: bool, data: &[u8], secs: i64) -> Fragment<'_> {
        Fragment {
            key: k,
            offset,
            more,
            data,
            ts: Timestamp::from_secs(secs),
        }
    }

    fn feed(d: &mut Defragmenter, k: FragmentKey, frags: &[(usize, bool, &[u8])]) -> Vec<Pushed> {
        frags
            .iter()
            .map(|&(o, m, s)| d.push(frag(k, o, m, s, 0)))
            .collect()
    }

    fn assert_completes_last(results: Vec<Pushed>, expected: &[u8]) {
        let n = results.len();
        for (i, r) in results.into_iter().enumerate() {
            if i + 1 < n {
                assert_eq!(r, Pushed::Pending, "fragment {i}");
            } else {
                match r {
                    Pushed::Complete(c) => assert_eq!(c.payload, expected),
                    other => panic!("last fragment gave {other:?}"),
                }
            }
        }
    }

    #[test]
    fn in_order() {
        let data = payload(4000);
        let mut d = Defragmenter::new(DefragLimits::default());
        assert_completes_last(feed(&mut d, key(1), &cut(&data, 1480)), &data);
        assert_eq!(d.pending(), 0);
        assert_eq!(d.buffered_bytes(), 0);
        assert_eq!(d.stats().completed, 1);
    }

    #[test]
    fn reverse_order() {
        let data = payload(5000);
        let mut frags = cut(&data, 1232);
        frags.reverse();
        let mut d = Defragmenter::new(DefragLimits::default());
        assert_completes_last(feed(&mut d, key(2), &frags), &data);
    }

    #[test]
    fn shuffled_order() {
        let data = payload(9000);
        let mut frags = cut(&data, 512);
        // Deterministic shuffle (LCG) so the test is reproducible.
        let mut x = 12345u64;
        for i in (1..frags.len()).rev() {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            frags.swap(i, (x >> 33) as usize % (i + 1));
        }
        let mut d = Defragmenter::new(DefragLimits::default());
        assert_completes_last(feed(&mut d, key(3), &frags), &data);
    }

    #[test]
    fn single_fragment_datagram_works() {
        let mut d = Defragmenter::new(DefragLimits::default());
        let r = d.push(frag(key(4), 0, false, b"whole", 0));
        assert_eq!(
            r,
            Pushed::Complete(Reassembled {
                key: key(4),
                payload: b"whole".to_vec()
            })
        );
    }

    #[test]
    fn duplicates_and_identical_overlap_accepted() {
        let data = payload(3000);
        let mut d = Defragmenter::new(DefragLimits::default());
        let k = key(5);
        assert_eq!(d.push(frag(k, 0, true, &data[..1000], 0)), Pushed::Pending);
        assert_eq!(d.push(frag(k, 0, true, &data[..1000], 0)), Pushed::Pending);
        // Overlaps 800..1000 with identical bytes.
        assert_eq!(
            d.push(frag(k, 800, true, &data[800..2000], 0)),
            Pushed::Pending
        );
        assert_eq!(d.stats().duplicates, 2);
        match d.push(frag(k, 2000, false, &data[2000..], 0)) {
            Pushed::Complete(c) => assert_eq!(c.payload, data),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn conflicting_overlap_drops_datagram() {
        let data = payload(3000);
        let mut evil = data[800..2000].to_vec();
        evil[100] ^= 0xff;
        let mut d = Defragmenter::new(DefragLimits::default());
        let k = key(6);
        assert_eq!(d.push(frag(k, 0, true, &data[..1000], 0)), Pushed::Pending);
        assert_eq!(
            d.push(frag(k, 800, true, &evil, 0)),
            Pushed::Dropped(DefragError::OverlapConflict)
        );
        assert_eq!(d.pending(), 0);
        assert_eq!(d.buffered_bytes(), 0);
        assert_eq!(d.stats().overlap_conflicts, 1);
        // The rest of the datagram does not complete a forged payload.
        assert_eq!(
            d.push(frag(k, 2000, false, &data[2000..], 0)),
            Pushed::Pending
        );
    }

    #[test]
    fn too_large_dropped() {
        let mut d = Defragmenter::new(DefragLimits::default());
        let k = key(7);
        assert_eq!(d.push(frag(k, 0, true, &[1; 1480], 0)), Pushed::Pending);
        assert_eq!(
            d.push(frag(k, 65528, false, &[0; 16], 0)),
            Pushed::Dropped(DefragError::TooLarge)
        );
        assert_eq!(d.pending(), 0);
        assert_eq!(d.stats().too_large, 1);
        assert_eq!(
            d.push(frag(k, usize::MAX, true, &[0; 16], 0)),
            Pushed::Dropped(DefragError::TooLarge)
        );
        // Exactly 65535 is fine.
        assert_eq!(d.push(frag(k, 65528, false, &[0; 7], 0)), Pushed::Pending);
    }

    #[test]
    fn inconsistent_ends_dropped() {
        let mut d = Defragmenter::new(DefragLimits::default());
        let k = key(8);
        assert_eq!(d.push(frag(k, 1000, false, &[0; 100], 0)), Pushed::Pending);
        assert_eq!(
            d.push(frag(k, 2000, false, &[0; 100], 0)),
            Pushed::Dropped(DefragError::Inconsistent)
        );
        assert_eq!(d.push(frag(k, 1000, false, &[0; 100], 0)), Pushed::Pending);
        assert_eq!(
            d.push(frag(k, 1096, true, &[0; 8], 0)),
            Pushed::Dropped(DefragError::Inconsistent)
        );
        // Data already beyond a late "last" fragment's end.
        assert_eq!(d.push(frag(k, 2000, true, &[0; 8], 0)), Pushed::Pending);
        assert_eq!(
            d.push(frag(k, 1000, false, &[0; 8], 0)),
            Pushed::Dropped(DefragError::Inconsistent)
        );
        assert_eq!(d.stats().inconsistent, 3);
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn timeout_expires_pending() {
        let mut d = Defragmenter::new(DefragLimits {
            timeout_us: 30_000_000,
            ..DefragLimits::default()
        });
        d.push(frag(key(9), 0, true, &[0; 8], 100));
        d.push(frag(key(10), 0, true, &[0; 8], 120));
        assert_eq!(
            d.expire(Timestamp::from_secs(130)),
            0,
            "exactly the timeout is kept"
        );
        assert_eq!(d.expire(Timestamp::from_secs(131)), 1);
        assert_eq!(d.pending(), 1);
        assert_eq!(d.buffered_bytes(), 8);
        assert_eq!(d.stats().timed_out, 1);
        assert_eq!(d.expire(Timestamp::from_secs(151)), 1);
        assert_eq!(d.pending(), 0);
        assert_eq!(d.buffered_bytes(), 0);
        // A stale datagram under a reused id is replaced, not merged into.
        d.push(frag(key(11), 0, true, &[1; 8], 0));
        let r = d.push(frag(key(11), 8, false, &[2; 8], 40));
        assert_eq!(r, Pushed::Pending);
        assert_eq!(d.stats().timed_out, 3);
    }

    #[test]
    fn table_full_evicts_oldest() {
        let mut d = Defragmenter::new(DefragLimits {
            max_datagrams: 3,
            ..DefragLimits::default()
        });
        for id in 0..3 {
            d.push(frag(key(id), 0, true, &[id as u8; 8], 0));
        }
        d.push(frag(key(3), 0, true, &[3; 8], 0));
        assert_eq!(d.pending(), 3);
        assert_eq!(d.stats().evicted, 1);
        // id 0 is gone (its tail no longer completes it); id 1 still completes.
        assert_eq!(d.push(frag(key(0), 8, false, &[0; 8], 0)), Pushed::Pending);
        assert_eq!(d.stats().evicted, 2, "re-creating id 0 evicted id 1");
        assert!(matches!(
            d.push(frag(key(2), 8, false, &[2; 8], 0)),
            Pushed::Complete(_)
        ));
        assert!(d.pending() <= 3);
    }

    #[test]
    fn byte_budget_evicts_oldest_and_never_exceeds() {
        let mut d = Defragmenter::new(DefragLimits {
            max_bytes: 10_000,
            ..DefragLimits::default()
        });
        for id in 0..20u32 {
            let r = d.push(frag(key(id), 0, true, &[7; 3000], 0));
            assert_eq!(r, Pushed::Pending);
            assert!(d.buffered_bytes() <= 10_000);
        }
        assert_eq!(d.pending(), 3);
        assert_eq!(d.stats().evicted, 17);
        // The newest three survive.
        assert!(matches!(
            d.push(frag(key(19), 3000, false, &[7; 8], 0)),
            Pushed::Complete(_)
        ));
        // A datagram that alone does not fit is refused.
        let mut small = Defragmenter::new(DefragLimits {
            max_bytes: 100,
            ..DefragLimits::default()
        });
        assert_eq!(
            small.push(frag(key(1), 0, true, &[0; 200], 0)),
            Pushed::Dropped(DefragError::TableFull)
        );
        assert_eq!(small.buffered_bytes(), 0);
        assert_eq!(small.pending(), 0);
    }

    #[test]
    fn ipv6_key_separates_datagrams() {
        let k6 = |id| FragmentKey {
            src: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            dst: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)),
            id,
            proto: 17,
        };
        let a = payload(2000);
        let b: Vec<u8> = a.iter().map(|x| x ^ 0x55).collect();
        let mut d = Defragmenter::new(DefragLimits::default());
        let big = 0x8000_0001;
        assert_eq!(
            d.push(frag(k6(big), 0, true, &a[..1232], 0)),
            Pushed::Pending
        );
        assert_eq!(d.push(frag(k6(1), 0, true, &b[..1232], 0)), Pushed::Pending);
        assert_eq!(d.pending(), 2);
        match d.push(frag(k6(big), 1232, false, &a[1232..], 0)) {
            Pushed::Complete(c) => {
                assert_eq!(c.key, k6(big));
                assert_eq!(c.payload, a);
            }
            other => panic!("{other:?}"),
        }
        match d.push(frag(k6(1), 1232, false, &b[1232..], 0)) {
            Pushed::Complete(c) => assert_eq!(c.payload, b),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn recycled_buffers_are_reused() {
        let data = payload(3000);
        let mut d = Defragmenter::new(DefragLimits::default());
        let frags = cut(&data, 1480);
        let Some(Pushed::Complete(c)) = feed(&mut d, key(1), &frags).pop() else {
            panic!()
        };
        let ptr = c.payload.as_ptr();
        d.recycle(c.payload);
        let Some(Pushed::Complete(c2)) = feed(&mut d, key(2), &frags).pop() else {
            panic!()
        };
        assert_eq!(
            c2.payload.as_ptr(),
            ptr,
            "the recycled allocation was reused"
        );
        assert_eq!(c2.payload, data);
        // The free list is bounded.
        for _ in 0..1000 {
            d.recycle(Vec::with_capacity(16));
        }
        assert_eq!(d.free.len(), MAX_FREE_BUFFERS);
    }

    #[test]
    fn tiny_fragment_flood_is_bounded() {
        let mut d = Defragmenter::new(DefragLimits::default());
        let k = key(12);
        let mut dropped = None;
        for i in 0..200usize {
            if let Pushed::Dropped(e) = d.push(frag(k, i * 16, true, &[0; 8], 0)) {
                dropped = Some((i, e));
                break;
            }
        }
        assert_eq!(dropped, Some((MAX_RANGES, DefragError::TooManyHoles)));
        assert_eq!(d.stats().too_fragmented, 1);
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn error_kinds_are_stable() {
        assert_eq!(DefragError::OverlapConflict.kind(), "frag_overlap_conflict");
        assert_eq!(DefragError::TableFull.kind(), "frag_table_full");
    }
}

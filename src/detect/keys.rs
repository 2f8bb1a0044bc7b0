//! The key table of one key kind: a Count-Min sketch counts every key (any number of distinct
//! keys, fixed memory); a key whose estimate reaches `promote_calls` earns full state
//! ([`KeyState`]: exact windows, samples, top peers/origids/SPCs), up to `max_keys`. When the
//! table is full, admission follows Space-Saving: the newcomer replaces the lightest sampled
//! key (calls in its 10-minute window) only if its own estimate is larger; keys with an open
//! detection are spared while others can go. Memory is bounded by the caps whatever the input.

use super::cms::RecentCounts;
use super::features::{OrigidStr, SpcStr};
use super::kinds::KeyKind;
use super::rules::{OpenEvent, RULE_COUNT};
use super::space_saving::SpaceSaving;
use super::window::{Window, WindowSpan, SPANS};
use crate::clock::Timestamp;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Destinations remembered per key for sequential dialling.
const RECENT_DESTS: usize = 8;
/// Call-IDs kept per rule and key (the event's `sample_call_ids`).
pub const SAMPLES: usize = 20;
/// Entries of each key's top lists (peers, origids, SPCs, fingerprints).
const TOP_K: usize = 6;
/// Keys inspected to find the lightest when the table is full.
const EVICTION_SAMPLE: usize = 32;
/// Count-Min epochs: estimates cover the current and the previous minute of stream time.
const EPOCH_US: i64 = 60_000_000;
/// A key unseen this long (and with no open detection) leaves the table.
pub const IDLE_US: i64 = 3_600_000_000;

pub type PeerItem = (Arc<str>, Option<Arc<str>>);

pub struct KeyState {
    pub kind: KeyKind,
    pub value: Box<str>,
    pub hash: u64,
    pub created: Timestamp,
    pub last_seen: Timestamp,
    pub windows: [Window; 3],
    /// The latest destinations (as numbers, a ring), for sequential dialling: a dialer's
    /// calls interleave with others' on a shared key, and a rotating User-Agent interleaves
    /// its own fingerprints.
    /// (destination, whether it followed one before it)
    recent_dests: [(u64, bool); RECENT_DESTS],
    recent_next: usize,
    pub samples: [VecDeque<Arc<str>>; RULE_COUNT],
    /// Fingerprint of each rule's latest sample call (to fold a rule open on it).
    pub sample_fp: [u64; RULE_COUNT],
    pub peers: SpaceSaving<PeerItem>,
    pub origids: SpaceSaving<OrigidStr>,
    pub spcs: SpaceSaving<SpcStr>,
    pub fingerprints: SpaceSaving<u64>,
    pub open: [Option<OpenEvent>; RULE_COUNT],
    /// When each rule last held before its detection closed: a window still holding calls
    /// from before then holds the closed detection's evidence, not a new campaign.
    pub closed_hold: [Timestamp; RULE_COUNT],
    pub last_eval: Timestamp,
    pub unevaluated: u32,
}

impl KeyState {
    fn new(kind: KeyKind, value: Box<str>, hash: u64, now: Timestamp) -> Self {
        KeyState {
            kind,
            value,
            hash,
            created: now,
            last_seen: now,
            windows: SPANS.map(|s| Window::new(s, now)),
            recent_dests: [(0, false); RECENT_DESTS],
            recent_next: 0,
            samples: Default::default(),
            sample_fp: [0; RULE_COUNT],
            peers: SpaceSaving::new(TOP_K),
            origids: SpaceSaving::new(TOP_K),
            spcs: SpaceSaving::new(TOP_K),
            fingerprints: SpaceSaving::new(TOP_K),
            open: Default::default(),
            closed_hold: [Timestamp::ZERO; RULE_COUNT],
            last_eval: Timestamp::ZERO,
            unevaluated: 0,
        }
    }

    pub fn window(&self, span: WindowSpan) -> &Window {
        &self.windows[span as usize]
    }

    pub fn advance(&mut self, now: Timestamp) {
        for w in self.windows.iter_mut() {
            w.advance(now);
        }
        self.last_seen = self.last_seen.max(now);
    }

    /// Whether `dest` continues a run: it is within `max_step` (and not equal) of one of the
    /// key's latest destinations, which itself followed an earlier one. Two near numbers are
    /// chance on a busy key (local calls into one exchange); three in a row are a dialer.
    /// Remembers `dest`.
    pub fn follows_recent_dest(&mut self, dest: u64, max_step: u64) -> bool {
        let mut near = false;
        let mut run = false;
        for &(prev, chained) in &self.recent_dests {
            let step = dest.abs_diff(prev);
            if prev != 0 && step >= 1 && step <= max_step {
                near = true;
                run |= chained;
            }
        }
        self.recent_dests[self.recent_next] = (dest, near);
        self.recent_next = (self.recent_next + 1) % RECENT_DESTS;
        run
    }

    /// Remembers a call that matched `rule` (a call reaches a rule's ring once: starts and
    /// ends feed different rules) and the call's fingerprint.
    pub fn sample(&mut self, rule: usize, call_id: &Arc<str>, fingerprint: u64) {
        self.sample_fp[rule] = fingerprint;
        let ring = &mut self.samples[rule];
        if ring.len() >= SAMPLES {
            ring.pop_front();
        }
        ring.push_back(call_id.clone());
    }

    fn weight(&self) -> u64 {
        u64::from(self.window(WindowSpan::M10).view().counts.calls)
    }

    pub fn has_open(&self) -> bool {
        self.open.iter().any(Option::is_some)
    }

    /// Approximate heap and inline bytes (for the memory-bound test and the gauge).
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.windows.iter().map(Window::bytes).sum::<usize>()
            + self.value.len()
            + self
                .samples
                .iter()
                .map(|r| r.len() * (16 + 64))
                .sum::<usize>()
            + TOP_K * 4 * 48
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    pub promoted: u64,
    pub evictions: u64,
    pub refused: u64,
    pub idle_dropped: u64,
}

pub struct KeyTable {
    kind: KeyKind,
    cap: usize,
    promote: u32,
    counts: RecentCounts,
    /// Key hash → slot (the keys are already well-mixed hashes: a fast hasher is enough).
    index: HashMap<u64, usize, ahash::RandomState>,
    slots: Vec<Option<KeyState>>,
    free: Vec<usize>,
    cursor: usize,
    pub stats: TableStats,
}

/// What `touch` did with a key.
pub enum Touch<'a> {
    /// Counted in the sketch only.
    Sketched,
    Full(&'a mut KeyState),
}

impl KeyTable {
    pub fn new(kind: KeyKind, cap: usize, sketch_width: usize, promote: u32) -> Self {
        KeyTable {
            kind,
            cap: cap.max(1),
            promote: promote.max(1),
            counts: RecentCounts::new(sketch_width, 4, EPOCH_US),
            index: HashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            cursor: 0,
            stats: TableStats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Counts one call of the key `hash`; returns its full state when it has (or earns) one.
    /// `evicted` receives a key pushed out to make room (its open detections must be closed).
    pub fn touch(
        &mut self,
        hash: u64,
        now: Timestamp,
        value: impl FnOnce() -> Box<str>,
        evicted: &mut dyn FnMut(KeyState),
    ) -> Touch<'_> {
        if let Some(&i) = self.index.get(&hash) {
            return match self.slots[i].as_mut() {
                Some(st) => Touch::Full(st),
                None => Touch::Sketched,
            };
        }
        let estimate = self.counts.add(hash, now.0);
        if estimate < self.promote {
            return Touch::Sketched;
        }
        if self.index.len() >= self.cap {
            match self.lightest() {
                Some((i, w)) if w < u64::from(estimate) => {
                    if let Some(old) = self.slots[i].take() {
                        self.index.remove(&old.hash);
                        self.free.push(i);
                        self.stats.evictions += 1;
                        evicted(old);
                    }
                }
                _ => {
                    self.stats.refused += 1;
                    return Touch::Sketched;
                }
            }
        }
        let st = KeyState::new(self.kind, value(), hash, now);
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(st);
                i
            }
            None => {
                self.slots.push(Some(st));
                self.slots.len() - 1
            }
        };
        self.index.insert(hash, i);
        self.stats.promoted += 1;
        match self.slots[i].as_mut() {
            Some(st) => Touch::Full(st),
            None => Touch::Sketched,
        }
    }

    /// The lightest of a rotating sample of keys, preferring keys without open detections.
    fn lightest(&mut self) -> Option<(usize, u64)> {
        let n = self.slots.len();
        if n == 0 {
            return None;
        }
        let mut best: Option<(usize, u64, bool)> = None;
        for step in 0..EVICTION_SAMPLE.min(n) {
            let i = (self.cursor + step) % n;
            let Some(st) = self.slots[i].as_ref() else {
                continue;
            };
            let (w, open) = (st.weight(), st.has_open());
            let better = match best {
                None => true,
                Some((_, bw, bopen)) => (open, w) < (bopen, bw),
            };
            if better {
                best = Some((i, w, open));
            }
        }
        self.cursor = (self.cursor + EVICTION_SAMPLE) % n;
        best.map(|(i, w, _)| (i, w))
    }

    /// Full state of a key, if it has one.
    pub fn get_mut(&mut self, hash: u64) -> Option<&mut KeyState> {
        let i = *self.index.get(&hash)?;
        self.slots[i].as_mut()
    }

    /// Every key with full state.
    pub fn states_mut(&mut self) -> impl Iterator<Item = &mut KeyState> {
        self.slots.iter_mut().flatten()
    }

    /// Drops keys idle for [`IDLE_US`] with no open detection.
    pub fn drop_idle(&mut self, now: Timestamp) {
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let idle = slot
                .as_ref()
                .is_some_and(|st| now.0 - st.last_seen.0 > IDLE_US && !st.has_open());
            if idle {
                if let Some(st) = slot.take() {
                    self.index.remove(&st.hash);
                    self.free.push(i);
                    self.stats.idle_dropped += 1;
                }
            }
        }
    }

    /// Bytes held: the sketches plus every full state.
    pub fn bytes(&self) -> usize {
        self.counts.bytes()
            + self.index.capacity() * 24
            + self.slots.capacity() * std::mem::size_of::<Option<KeyState>>()
            + self
                .slots
                .iter()
                .flatten()
                .map(KeyState::bytes)
                .sum::<usize>()
    }
}

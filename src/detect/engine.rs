//! One detector shard: applies call starts and ends to the keys it owns (by key hash), keeps
//! the windows, evaluates the rules and produces DetectionEvents (opened / updated / closed).
//! Time is the calls' time (capture time in replay); it never reads a clock. Single-threaded:
//! the shard thread owns it.

use super::events;
use super::features::{Attest, CallEnd, CallKeys, CallStart, KeyKind, Verstat, KEY_KINDS};
use super::hash::{hash_bytes, Hash64};
use super::keys::{KeyState, KeyTable, TableStats, Touch};
use super::nanp;
use super::rules::{self, Ctx, OpenEvent, Rule, RULES};
use crate::clock::Timestamp;
use crate::config::DetectConfig;
use crate::record::{DetectionEvent, DetectionState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A key's evaluation is due after this many new calls, or this much stream time.
const EVAL_CALLS: u32 = 4;
const EVAL_US: i64 = 1_000_000;
/// Open detections are checked for quiet, and idle keys dropped, this often (stream time).
const SWEEP_US: i64 = 1_000_000;

/// The hash that identifies (and shards) a key of one kind.
pub fn key_hash(keys: &CallKeys, kind: KeyKind) -> Option<u64> {
    let h = Hash64::seeded(kind as u64);
    match kind {
        KeyKind::Fingerprint => Some(h.u64(keys.fingerprint).finish()),
        KeyKind::Peer => Some(h.bytes(keys.peer.as_bytes()).finish()),
        KeyKind::Origid => keys
            .origid
            .as_deref()
            .map(|o| h.bytes(o.as_bytes()).finish()),
        KeyKind::OrigTn => keys.orig_tn.map(|t| h.bytes(t.as_bytes()).finish()),
    }
}

/// The shard a key belongs to.
pub fn shard_of(hash: u64, shards: usize) -> usize {
    (hash % shards.max(1) as u64) as usize
}

pub struct Engine {
    cfg: DetectConfig,
    shard: usize,
    shards: usize,
    sensor: Arc<str>,
    ids: Arc<AtomicU64>,
    tables: [KeyTable; 4],
    now: Timestamp,
    started: Option<Timestamp>,
    last_sweep: Timestamp,
    /// Events produced since the last `take_events`.
    out: Vec<DetectionEvent>,
}

impl Engine {
    pub fn new(
        cfg: &DetectConfig,
        shard: usize,
        shards: usize,
        sensor: Arc<str>,
        ids: Arc<AtomicU64>,
    ) -> Self {
        Engine {
            cfg: cfg.clone(),
            shard,
            shards: shards.max(1),
            sensor,
            ids,
            tables: KEY_KINDS
                .map(|k| KeyTable::new(k, cfg.max_keys, cfg.sketch_width, cfg.promote_calls)),
            now: Timestamp::ZERO,
            started: None,
            last_sweep: Timestamp::ZERO,
            out: Vec::new(),
        }
    }

    pub fn take_events(&mut self) -> Vec<DetectionEvent> {
        std::mem::take(&mut self.out)
    }

    pub fn events(&self) -> &[DetectionEvent] {
        &self.out
    }

    pub fn table_stats(&self, kind: KeyKind) -> TableStats {
        self.tables[kind as usize].stats
    }

    pub fn keys(&self, kind: KeyKind) -> usize {
        self.tables[kind as usize].len()
    }

    /// Bytes held by the sketches and key states of this shard.
    pub fn bytes(&self) -> usize {
        self.tables.iter().map(KeyTable::bytes).sum()
    }

    fn advance(&mut self, at: Timestamp) {
        if self.started.is_none() {
            self.started = Some(at);
            self.last_sweep = at;
        }
        if at > self.now {
            self.now = at;
        }
        if self.now.0 - self.last_sweep.0 >= SWEEP_US {
            self.last_sweep = self.now;
            self.sweep(false);
        }
    }

    /// Time moved on without calls for this shard.
    pub fn tick(&mut self, at: Timestamp) {
        if self.started.is_some() {
            self.advance(at);
        }
    }

    pub fn on_start(&mut self, s: &CallStart) {
        self.advance(s.at);
        let orig = s.keys.orig_tn;
        let dest_hash = s.dest_tn.map(|t| hash_bytes(t.as_bytes()));
        let orig_hash = orig.map(|t| hash_bytes(t.as_bytes()));
        let (neighbour, self_call) = match (orig, s.dest_tn) {
            (Some(o), Some(d)) => (nanp::neighbour(&o, &d), o == d),
            _ => (false, false),
        };
        let invalid = orig.and_then(|o| nanp::invalid_caller(&o)).is_some();
        let dest_num = s.dest_tn.as_ref().and_then(nanp::numeric);
        let max_step = self.cfg.rules.sequential_max_step;
        for kind in KEY_KINDS {
            let Some(h) = key_hash(&s.keys, kind) else {
                continue;
            };
            if shard_of(h, self.shards) != self.shard {
                continue;
            }
            let mut evicted = Vec::new();
            let touch = self.tables[kind as usize].touch(
                h,
                s.at,
                || s.keys.value(kind).unwrap_or_default().into_boxed_str(),
                &mut |old| evicted.push(old),
            );
            let Touch::Full(st) = touch else {
                self.close_evicted(evicted);
                continue;
            };
            st.advance(s.at);
            let sequential = match (st.last_dest, dest_num) {
                (Some(prev), Some(d)) => {
                    let step = d.abs_diff(prev);
                    step >= 1 && step <= max_step
                }
                _ => false,
            };
            if dest_num.is_some() {
                st.last_dest = dest_num;
            }
            for w in st.windows.iter_mut() {
                let c = w.counts_mut(s.at);
                c.calls += 1;
                c.unsigned += u32::from(s.unsigned);
                c.attest[match s.attest {
                    Attest::A => 0,
                    Attest::B => 1,
                    Attest::C => 2,
                    Attest::None => 3,
                }] += 1;
                c.verstat[match s.verstat {
                    Verstat::Passed => 0,
                    Verstat::Failed => 1,
                    Verstat::NoValidation => 2,
                    Verstat::None => 3,
                }] += 1;
                c.verify_failed += u32::from(s.verify_failed);
                c.neighbour += u32::from(neighbour);
                c.self_call += u32::from(self_call);
                c.invalid += u32::from(invalid);
                c.sequential += u32::from(sequential);
                c.replayed += u32::from(s.replayed);
                w.add_numbers(dest_hash, orig_hash);
            }
            let peer = &s.keys.peer;
            st.peers
                .add_with(peer, |(p, _), q| p == q, || (peer.clone(), s.ocn.clone()));
            if let Some(o) = s.keys.origid.as_deref() {
                st.origids.add_with(o, |a, b| &**a == b, || Box::from(o));
            }
            if let Some(spc) = s.spc.as_deref() {
                st.spcs.add_with(spc, |a, b| &**a == b, || Box::from(spc));
            }
            st.fingerprints.add(s.keys.fingerprint);
            let id = &s.call_id;
            let signals = [
                (Rule::NeighbourSpoofing, neighbour),
                (Rule::OrigidCallerChurn, true),
                (Rule::UnsignedFlood, s.unsigned),
                (Rule::InvalidCallerId, invalid),
                (Rule::SequentialDialling, sequential),
                (Rule::ReplayedPassport, s.replayed),
            ];
            for (rule, on) in signals {
                if on && rule.applies(kind) {
                    st.sample(rule as usize, id);
                }
            }
            st.unevaluated += 1;
            self.close_evicted(evicted);
            self.maybe_evaluate(kind, h);
        }
    }

    pub fn on_end(&mut self, e: &CallEnd) {
        self.advance(e.at);
        let r = &self.cfg.rules;
        let quick_cancel =
            e.cancelled && !e.answered && e.ring_ms.is_some_and(|ms| ms <= r.one_ring_max_ring_ms);
        let short = e.answered && e.duration_ms.is_some_and(|ms| ms < r.short_max_duration_ms);
        let not_found = matches!(e.final_code, Some(404) | Some(484));
        for kind in KEY_KINDS {
            let Some(h) = key_hash(&e.keys, kind) else {
                continue;
            };
            if shard_of(h, self.shards) != self.shard {
                continue;
            }
            // Outcomes only add to keys that already have full state (their start counted).
            let Some(st) = self.tables[kind as usize].get_mut(h) else {
                continue;
            };
            st.advance(e.at);
            for w in st.windows.iter_mut() {
                let c = w.counts_mut(e.at);
                c.ended += 1;
                c.answered += u32::from(e.answered);
                c.short_answered += u32::from(short);
                c.quick_cancel += u32::from(quick_cancel);
                c.not_found += u32::from(not_found);
                c.duration_ms += e.duration_ms.unwrap_or(0);
            }
            if quick_cancel && Rule::OneRing.applies(kind) {
                st.sample(Rule::OneRing as usize, &e.call_id);
            }
            if (short || !e.answered) && Rule::ShortCalls.applies(kind) {
                st.sample(Rule::ShortCalls as usize, &e.call_id);
            }
            st.unevaluated += 1;
            self.maybe_evaluate(kind, h);
        }
    }

    /// Evaluates the key's rules when due. Event times are the latest stream time seen (calls
    /// from several workers arrive slightly out of order; an event never goes back in time).
    fn maybe_evaluate(&mut self, kind: KeyKind, hash: u64) {
        let at = self.now;
        let update_us = (self.cfg.update_s as i64).saturating_mul(1_000_000);
        let due = self.tables[kind as usize]
            .get_mut(hash)
            .is_some_and(|st| st.unevaluated >= EVAL_CALLS || at.0 - st.last_eval.0 >= EVAL_US);
        if !due {
            return;
        }
        let folded = self.folded_rules(kind, hash);
        let ctx = Ctx {
            cfg: &self.cfg.rules,
            now: at,
            started: self.started.unwrap_or(at),
            warmup_us: (self.cfg.warmup_s as i64).saturating_mul(1_000_000),
        };
        let Some(st) = self.tables[kind as usize].get_mut(hash) else {
            return;
        };
        st.unevaluated = 0;
        st.last_eval = at;
        for rule in RULES {
            if !rule.applies(kind) {
                continue;
            }
            let Some(hit) = rules::check(rule, st, &ctx) else {
                continue;
            };
            let i = rule as usize;
            match st.open[i].as_mut() {
                None if folded[i] => {}
                None => {
                    let id = self.ids.fetch_add(1, Ordering::Relaxed) + 1;
                    let ev = events::build(
                        &self.sensor,
                        id,
                        DetectionState::Opened,
                        rule,
                        st,
                        &hit,
                        at,
                        None,
                    );
                    self.out.push(ev);
                    st.open[i] = Some(OpenEvent {
                        id,
                        last_emit: at,
                        last_hold: at,
                        hit,
                        samples: st.samples[i].iter().cloned().collect(),
                    });
                }
                Some(open) => {
                    open.last_hold = at;
                    open.hit = hit;
                    open.samples.clear();
                    open.samples.extend(st.samples[i].iter().cloned());
                    if at.0 - open.last_emit.0 >= update_us {
                        open.last_emit = at;
                        let (id, hit) = (open.id, open.hit.clone());
                        self.out.push(events::build(
                            &self.sensor,
                            id,
                            DetectionState::Updated,
                            rule,
                            st,
                            &hit,
                            at,
                            None,
                        ));
                    }
                }
            }
        }
    }

    /// Rules already open on the fingerprint that carries a caller ID's or origid's calls: the
    /// campaign is reported once, on its fingerprint, not again per rotating caller ID.
    fn folded_rules(&mut self, kind: KeyKind, hash: u64) -> [bool; rules::RULE_COUNT] {
        let mut folded = [false; rules::RULE_COUNT];
        if !matches!(kind, KeyKind::OrigTn | KeyKind::Origid) {
            return folded;
        }
        let Some(top) = self.tables[kind as usize]
            .get_mut(hash)
            .and_then(|st| st.fingerprints.top().first().map(|f| f.item))
        else {
            return folded;
        };
        let keys = CallKeys {
            fingerprint: top,
            peer: Arc::from(""),
            origid: None,
            orig_tn: None,
        };
        let Some(fp_hash) = key_hash(&keys, KeyKind::Fingerprint) else {
            return folded;
        };
        if let Some(fp) = self.tables[KeyKind::Fingerprint as usize].get_mut(fp_hash) {
            for (f, o) in folded.iter_mut().zip(fp.open.iter()) {
                *f = o.is_some();
            }
        }
        folded
    }

    /// Closes detections quiet for `quiet_s` (all of them when `all`), drops idle keys.
    fn sweep(&mut self, all: bool) {
        let quiet_us = (self.cfg.quiet_s as i64).saturating_mul(1_000_000);
        let now = self.now;
        for table in self.tables.iter_mut() {
            for st in table.states_mut() {
                for rule in RULES {
                    let i = rule as usize;
                    let due = st.open[i]
                        .as_ref()
                        .is_some_and(|o| all || now.0 - o.last_hold.0 >= quiet_us);
                    if due {
                        if let Some(o) = st.open[i].take() {
                            let at = if all { now } else { o.last_hold.max(now) };
                            self.out.push(events::build(
                                &self.sensor,
                                o.id,
                                DetectionState::Closed,
                                rule,
                                st,
                                &o.hit,
                                at,
                                Some(&o.samples),
                            ));
                        }
                    }
                }
            }
            if !all {
                table.drop_idle(now);
            }
        }
    }

    fn close_evicted(&mut self, evicted: Vec<KeyState>) {
        for mut st in evicted {
            for rule in RULES {
                if let Some(o) = st.open[rule as usize].take() {
                    self.out.push(events::build(
                        &self.sensor,
                        o.id,
                        DetectionState::Closed,
                        rule,
                        &st,
                        &o.hit,
                        self.now,
                        Some(&o.samples),
                    ));
                }
            }
        }
    }

    /// End of input: every open detection is closed as of the last time seen.
    pub fn finish(&mut self) {
        self.sweep(true);
    }
}

//! One detector shard: applies call starts and ends to the keys it owns (by key hash), keeps
//! the windows, evaluates the rules and produces DetectionEvents (opened / updated / closed).
//! Time is the calls' time (capture time in replay); it never reads a clock. Single-threaded:
//! the shard thread owns it.

use super::cms::RecentCounts;
use super::events::{self, DetectionIds};
use super::features::{Attest, CallEnd, CallStart, Verstat};
use super::hash::hash_bytes;
use super::keys::{KeyState, KeyTable, TableStats, Touch};
use super::kinds::{fingerprint_key_hash, Judge, KeyKind, KEY_KINDS, KIND_COUNT};
use super::nanp;
use super::rules::{self, Ctx, OpenEvent, Rule, RULES};
use super::window::WindowSpan;
use crate::clock::Timestamp;
use crate::config::{DetectConfig, DetectRules};
use crate::record::{DetectionEvent, DetectionState};
use std::collections::HashSet;
use std::sync::Arc;

/// A key's evaluation is due after this many new calls, or this much stream time. Keys judged
/// by bursts carry a peer's whole traffic: every 16 calls (still at least once a second).
const EVAL_CALLS: u32 = 4;
const EVAL_CALLS_BURST: u32 = 16;
const EVAL_US: i64 = 1_000_000;
/// A caller ID seen this often within the last one to two minutes is a line in use (a local
/// business calling its neighbours), not a spoofed neighbour's number.
const REPEAT_CALLER: u32 = 3;
/// Open detections are checked for quiet, and idle keys dropped, this often (stream time).
const SWEEP_US: i64 = 1_000_000;

/// The shard a key belongs to.
pub fn shard_of(hash: u64, shards: usize) -> usize {
    (hash % shards.max(1) as u64) as usize
}

pub struct Engine {
    cfg: DetectConfig,
    shard: usize,
    shards: usize,
    ids: Arc<DetectionIds>,
    tables: [KeyTable; KIND_COUNT],
    /// Every caller ID this shard sees, counted (for the neighbour signal).
    callers: RecentCounts,
    now: Timestamp,
    started: Option<Timestamp>,
    last_sweep: Timestamp,
    /// Events produced since the last `take_events`.
    out: Vec<DetectionEvent>,
    /// Keys with an open detection (kind, hash): the quiet sweep looks only at these.
    open_keys: HashSet<(usize, u64)>,
    last_idle_drop: Timestamp,
}

impl Engine {
    pub fn new(cfg: &DetectConfig, shard: usize, shards: usize, ids: Arc<DetectionIds>) -> Self {
        Engine {
            cfg: cfg.clone(),
            shard,
            shards: shards.max(1),
            ids,
            tables: KEY_KINDS
                .map(|k| KeyTable::new(k, cfg.max_keys, cfg.sketch_width, cfg.promote_calls)),
            // Two rows: an over-estimate only hides a neighbour call, never invents one.
            callers: RecentCounts::new(cfg.sketch_width, 2, 60_000_000),
            now: Timestamp::ZERO,
            started: None,
            last_sweep: Timestamp::ZERO,
            out: Vec::new(),
            open_keys: HashSet::new(),
            last_idle_drop: Timestamp::ZERO,
        }
    }

    /// New rule thresholds (a SIGHUP reload): judged from the next evaluation on; windows,
    /// keys and open detections carry over.
    pub fn set_rules(&mut self, rules: &DetectRules) {
        self.cfg.rules = rules.clone();
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
        self.tables.iter().map(KeyTable::bytes).sum::<usize>() + self.callers.bytes()
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
        let repeats = orig_hash.map_or(0, |h| self.callers.add(h, s.at.0));
        let (neighbour, self_call) = match (orig, s.dest_tn) {
            (Some(o), Some(d)) => (
                o == d || (nanp::neighbour(&o, &d) && repeats < REPEAT_CALLER),
                o == d,
            ),
            _ => (false, false),
        };
        let invalid = orig.and_then(|o| nanp::invalid_caller(&o)).is_some();
        let dest_num = s.dest_tn.as_ref().and_then(nanp::numeric);
        let max_step = self.cfg.rules.sequential_max_step;
        // One allocation per call for the samples, shared by every key and rule it joins.
        let mut shared_id: Option<Arc<str>> = None;
        for kind in KEY_KINDS {
            let Some(h) = s.keys.hash(kind) else {
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
            let sequential = dest_num.is_some_and(|d| st.follows_recent_dest(d, max_step));
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
                w.add_numbers(s.at, dest_hash, orig_hash);
            }
            let peer = &s.keys.peer;
            st.peers
                .add_with(peer, |(p, _), q| p == q, || (peer.clone(), s.ocn.clone()));
            if let Some(o) = s.keys.origid.as_ref() {
                st.origids
                    .add_with(o.as_str(), |a, b| a.as_str() == b, || *o);
            }
            if let Some(spc) = s.keys.signer.as_ref().map(|s| &s.spc) {
                st.spcs
                    .add_with(spc.as_str(), |a, b| a.as_str() == b, || *spc);
            }
            st.fingerprints.add(s.keys.fingerprint);
            let signals = [
                (Rule::NeighbourSpoofing, neighbour),
                (Rule::OrigidCallerChurn, true),
                (Rule::UnsignedFlood, s.unsigned),
                (Rule::InvalidCallerId, invalid),
                (Rule::SequentialDialling, sequential),
                (Rule::ReplayedPassport, s.replayed),
            ];
            for (rule, on) in signals {
                if on && kind.watches(rule) {
                    let id = shared_id.get_or_insert_with(|| Arc::from(s.call_id.as_str()));
                    st.sample(rule as usize, id, s.keys.fingerprint);
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
            let Some(h) = e.keys.hash(kind) else {
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
            let fp = e.keys.fingerprint;
            if quick_cancel && kind.watches(Rule::OneRing) {
                st.sample(Rule::OneRing as usize, &Arc::from(e.call_id.as_str()), fp);
            }
            // Where bursts are judged (many originators), samples are the short calls alone:
            // a busy peer's unanswered calls are everyone's.
            let unanswered_sample = !e.answered && kind.judge() != Judge::Burst;
            if (short || unanswered_sample) && kind.watches(Rule::ShortCalls) {
                st.sample(
                    Rule::ShortCalls as usize,
                    &Arc::from(e.call_id.as_str()),
                    fp,
                );
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
        let every = match kind.judge() {
            Judge::Burst => EVAL_CALLS_BURST,
            _ => EVAL_CALLS,
        };
        let due = self.tables[kind as usize]
            .get_mut(hash)
            .is_some_and(|st| st.unevaluated >= every || at.0 - st.last_eval.0 >= EVAL_US);
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
            if !kind.watches(rule) {
                continue;
            }
            let Some(hit) = rules::check(rule, st, &ctx) else {
                continue;
            };
            let i = rule as usize;
            // Only the hour-long window outlives a campaign's detection by long enough to
            // reopen it on the campaign's old calls plus background.
            let stale = hit.window == WindowSpan::M60
                && st
                    .window(hit.window)
                    .view()
                    .first_seen
                    .is_some_and(|f| f <= st.closed_hold[i]);
            match st.open[i].as_mut() {
                None if folded[i] || stale => {}
                None => {
                    let id = self.ids.next();
                    let ev = events::build(
                        &self.ids,
                        id,
                        DetectionState::Opened,
                        rule,
                        st,
                        &hit,
                        at,
                        None,
                    );
                    self.out.push(ev);
                    self.open_keys.insert((kind as usize, hash));
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
                            &self.ids,
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

    /// Rules already open on the fingerprint of the key's latest sample call for that rule:
    /// the campaign is reported once, on its fingerprint, not again per rotating caller ID,
    /// per origid or on its peer (the fingerprint's key may live on another shard: then it is
    /// reported there and here).
    fn folded_rules(&mut self, kind: KeyKind, hash: u64) -> [bool; rules::RULE_COUNT] {
        let mut folded = [false; rules::RULE_COUNT];
        if kind == KeyKind::Fingerprint {
            return folded;
        }
        let Some(fps) = self.tables[kind as usize]
            .get_mut(hash)
            .map(|st| st.sample_fp)
        else {
            return folded;
        };
        let fp_table = &mut self.tables[KeyKind::Fingerprint as usize];
        for (i, fp) in fps.iter().enumerate() {
            if let Some(st) = fp_table.get_mut(fingerprint_key_hash(*fp)) {
                folded[i] = st.open[i].is_some();
            }
        }
        folded
    }

    /// Closes detections quiet for `quiet_s` (all of them when `all`); drops idle keys once a
    /// minute of stream time.
    fn sweep(&mut self, all: bool) {
        let quiet_us = (self.cfg.quiet_s as i64).saturating_mul(1_000_000);
        let now = self.now;
        let keys: Vec<(usize, u64)> = self.open_keys.iter().copied().collect();
        for (kind, hash) in keys {
            let Some(st) = self.tables[kind].get_mut(hash) else {
                self.open_keys.remove(&(kind, hash));
                continue;
            };
            for rule in RULES {
                let i = rule as usize;
                let due = st.open[i]
                    .as_ref()
                    .is_some_and(|o| all || now.0 - o.last_hold.0 >= quiet_us);
                if !due {
                    continue;
                }
                if let Some(o) = st.open[i].take() {
                    st.closed_hold[i] = o.last_hold;
                    self.out.push(events::build(
                        &self.ids,
                        o.id,
                        DetectionState::Closed,
                        rule,
                        st,
                        &o.hit,
                        now,
                        Some(&o.samples),
                    ));
                }
            }
            if !st.has_open() {
                self.open_keys.remove(&(kind, hash));
            }
        }
        if !all && now.0 - self.last_idle_drop.0 >= 60_000_000 {
            self.last_idle_drop = now;
            for table in self.tables.iter_mut() {
                table.drop_idle(now);
            }
        }
    }

    fn close_evicted(&mut self, evicted: Vec<KeyState>) {
        for mut st in evicted {
            self.open_keys.remove(&(st.kind as usize, st.hash));
            for rule in RULES {
                if let Some(o) = st.open[rule as usize].take() {
                    self.out.push(events::build(
                        &self.ids,
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

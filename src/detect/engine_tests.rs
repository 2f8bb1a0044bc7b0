//! Rule tests on crafted call streams through the real [`Engine`]: each campaign kind fires
//! its rule within 60 s with the right peer and samples of its own calls; legitimate bulk
//! senders (a pharmacy's refill reminders, a school district's local notifications) and plain
//! background never fire; memory stays bounded with 1,000,000 distinct caller IDs.

use super::engine::Engine;
use super::events::DetectionIds;
use super::features::{
    Attest, CallEnd, CallIdStr, CallKeys, CallStart, OrigidStr, Signer, SpcStr, Verstat,
};
use super::kinds::KeyKind;
use crate::clock::Timestamp;
use crate::config::DetectConfig;
use crate::record::{DetectionEvent, DetectionState};
use crate::sip::tn::{canonicalize, Tn};
use std::sync::Arc;

const T0: i64 = 1_795_000_000;

/// Deterministic pseudo-random numbers (a 64-bit LCG; tests must not depend on a seed source).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A valid NANP number (drawn until the built-in table accepts it).
    fn number(&mut self) -> String {
        loop {
            let n = format!(
                "1{}{}{:04}",
                200 + self.below(800),
                200 + self.below(800),
                self.below(10_000)
            );
            if super::nanp::invalid_caller(&tn(&n)).is_none() {
                return n;
            }
        }
    }
}

fn tn(s: &str) -> Tn {
    canonicalize(s.as_bytes()).unwrap()
}

#[derive(Clone)]
struct Call {
    at: f64,
    id: String,
    peer: &'static str,
    fingerprint: u64,
    origid: Option<&'static str>,
    orig: String,
    dest: String,
    attest: Attest,
    replayed: bool,
    /// None: unanswered (480 after ring), Some(duration s).
    answered: Option<f64>,
    ring_s: f64,
    cancelled: bool,
    final_code: u16,
}

impl Call {
    fn signed(at: f64, id: String, peer: &'static str, fp: u64, origid: &'static str) -> Call {
        Call {
            at,
            id,
            peer,
            fingerprint: fp,
            origid: Some(origid),
            orig: String::new(),
            dest: String::new(),
            attest: Attest::A,
            replayed: false,
            answered: Some(60.0),
            ring_s: 8.0,
            cancelled: false,
            final_code: 200,
        }
    }

    fn keys(&self) -> CallKeys {
        CallKeys {
            fingerprint: self.fingerprint,
            peer: Arc::from(self.peer),
            signer: self.origid.map(|_| Signer {
                spc: SpcStr::new("111A"),
                attest: self.attest,
            }),
            origid: self.origid.map(OrigidStr::new),
            orig_tn: Some(tn(&self.orig)),
        }
    }

    fn start(&self) -> CallStart {
        CallStart {
            at: ts(self.at),
            call_id: CallIdStr::new(&self.id),
            keys: self.keys(),
            ocn: Some(Arc::from("1111")),
            dest_tn: Some(tn(&self.dest)),
            attest: self.attest,
            verstat: if self.origid.is_some() {
                Verstat::Passed
            } else {
                Verstat::NoValidation
            },
            unsigned: self.origid.is_none(),
            replayed: self.replayed,
            verify_failed: false,
        }
    }

    fn end_at(&self) -> f64 {
        self.at + self.ring_s + self.answered.unwrap_or(0.0)
    }

    fn end(&self) -> CallEnd {
        CallEnd {
            at: ts(self.end_at()),
            call_id: CallIdStr::new(&self.id),
            keys: self.keys(),
            answered: self.answered.is_some(),
            cancelled: self.cancelled,
            ring_ms: Some((self.ring_s * 1000.0) as u64),
            duration_ms: self.answered.map(|d| (d * 1000.0) as u64),
            final_code: Some(self.final_code),
        }
    }
}

fn ts(secs: f64) -> Timestamp {
    Timestamp(T0 * 1_000_000 + (secs * 1e6) as i64)
}

/// Feeds every start and end in time order; returns the events.
fn run(calls: &[Call]) -> Vec<DetectionEvent> {
    run_with(calls, &DetectConfig::default())
}

fn run_with(calls: &[Call], cfg: &DetectConfig) -> Vec<DetectionEvent> {
    let mut engine = Engine::new(cfg, 0, 1, DetectionIds::with_run(Arc::from("t"), "r"));
    let mut feed: Vec<(f64, bool, usize)> = Vec::new();
    for (i, c) in calls.iter().enumerate() {
        feed.push((c.at, true, i));
        feed.push((c.end_at(), false, i));
    }
    feed.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out = Vec::new();
    for (_, is_start, i) in feed {
        if is_start {
            engine.on_start(&calls[i].start());
        } else {
            engine.on_end(&calls[i].end());
        }
        out.extend(engine.take_events());
    }
    engine.finish();
    out.extend(engine.take_events());
    out
}

/// Realistic background: many callers at low rates through three peers, signed by many
/// origids, 40-70 % answered with minutes-long calls.
fn background(rng: &mut Lcg, from_s: f64, to_s: f64, per_s: f64) -> Vec<Call> {
    const ORIGIDS: [&str; 8] = [
        "bg-o1", "bg-o2", "bg-o3", "bg-o4", "bg-o5", "bg-o6", "bg-o7", "bg-o8",
    ];
    const PEERS: [&str; 3] = ["carrier-alpha", "carrier-bravo", "wholesale-charlie"];
    let mut calls = Vec::new();
    let n = ((to_s - from_s) * per_s) as usize;
    for i in 0..n {
        let at = from_s + i as f64 / per_s;
        let o = rng.below(8);
        let mut c = Call::signed(
            at,
            format!("bg-{i}"),
            PEERS[o as usize % 3],
            0,
            ORIGIDS[o as usize],
        );
        // Fingerprints per originating setup: 50 PBXs and phones behind each origid.
        c.fingerprint = 1000 + o * 50 + rng.below(50);
        c.orig = rng.number();
        c.dest = rng.number();
        c.attest = if rng.below(10) < 8 {
            Attest::A
        } else {
            Attest::B
        };
        c.ring_s = 4.0 + rng.below(20) as f64;
        if rng.below(100) < 55 {
            c.answered = Some(20.0 + rng.below(300) as f64);
        } else {
            c.answered = None;
            c.final_code = 480;
        }
        calls.push(c);
    }
    calls
}

fn opened(events: &[DetectionEvent]) -> Vec<&DetectionEvent> {
    events
        .iter()
        .filter(|e| e.state == DetectionState::Opened)
        .collect()
}

/// The campaign's first event: its rule, within 60 s, the right peer, only its own calls.
fn assert_detected(events: &[DetectionEvent], rule: &str, prefix: &str, start_s: f64, peer: &str) {
    let mine: Vec<&DetectionEvent> = opened(events)
        .into_iter()
        .filter(|e| e.sample_call_ids.iter().all(|c| c.starts_with(prefix)))
        .collect();
    let first = mine
        .iter()
        .find(|e| e.rule == rule)
        .unwrap_or_else(|| panic!("{rule} did not fire; events: {events:#?}"));
    let latency = (first.last_seen.0 - ts(start_s).0) as f64 / 1e6;
    assert!(latency <= 60.0, "{rule} after {latency} s");
    assert_eq!(first.peers[0].peer, peer);
    assert!(!first.sample_call_ids.is_empty() && first.sample_call_ids.len() <= 20);
    // No event anywhere on background calls.
    for e in opened(events) {
        let bg = e
            .sample_call_ids
            .iter()
            .filter(|c| c.starts_with("bg-"))
            .count();
        assert!(
            bg * 2 <= e.sample_call_ids.len(),
            "event on background: {e:#?}"
        );
    }
}

#[test]
fn background_alone_never_fires() {
    let mut rng = Lcg(1);
    let events = run(&background(&mut rng, 0.0, 1800.0, 20.0));
    assert!(events.is_empty(), "{events:#?}");
}

#[test]
fn legitimate_bulk_senders_never_fire() {
    let mut rng = Lcg(2);
    let mut calls = background(&mut rng, 0.0, 1800.0, 10.0);
    // A pharmacy: 3 stable A-attested caller IDs, one origid, 4 calls/s for 25 minutes to
    // random customers; ASR about 55 %, 30-90 s calls, unanswered ring out after 25 s.
    let pharmacy = ["12145550243", "12145550244", "12145550245"];
    for i in 0..6000 {
        let mut c = Call::signed(
            300.0 + i as f64 / 4.0,
            format!("rx-{i}"),
            "carrier-alpha",
            77,
            "pharmacy",
        );
        c.orig = pharmacy[i % 3].to_string();
        c.dest = rng.number();
        if rng.below(100) < 55 {
            c.answered = Some(30.0 + rng.below(60) as f64);
        } else {
            c.answered = None;
            c.ring_s = 25.0;
            c.final_code = 480;
        }
        calls.push(c);
    }
    // A school district: one caller ID, local parents (70 % in the school's own NPA-NXX),
    // 10 calls/s for 5 minutes; voicemail picks up many: short but answered calls.
    for i in 0..3000 {
        let mut c = Call::signed(
            600.0 + i as f64 / 10.0,
            format!("school-{i}"),
            "carrier-bravo",
            88,
            "district",
        );
        c.orig = "15125550300".into();
        c.dest = if rng.below(10) < 7 {
            format!("1512555{:04}", 1000 + rng.below(9000))
        } else {
            rng.number()
        };
        c.ring_s = 3.0 + rng.below(10) as f64;
        c.answered = if rng.below(100) < 60 {
            Some(15.0 + rng.below(40) as f64)
        } else {
            None
        };
        calls.push(c);
    }
    let events = run(&calls);
    assert!(events.is_empty(), "{events:#?}");
}

/// Background plus one campaign built by `make(i, at)`; `n` calls at `per_s` from `start_s`.
fn with_campaign(
    seed: u64,
    start_s: f64,
    n: usize,
    per_s: f64,
    mut make: impl FnMut(&mut Lcg, usize, f64) -> Call,
) -> Vec<DetectionEvent> {
    let mut rng = Lcg(seed);
    let mut calls = background(&mut rng, 0.0, start_s + n as f64 / per_s + 300.0, 10.0);
    for i in 0..n {
        calls.push(make(&mut rng, i, start_s + i as f64 / per_s));
    }
    run(&calls)
}

#[test]
fn neighbour_spoofing_fires() {
    let ev = with_campaign(3, 600.0, 300, 2.0, |rng, i, at| {
        let mut c = Call::signed(at, format!("nb-{i}"), "wholesale-charlie", 5, "nb-origid");
        c.attest = Attest::C;
        c.dest = rng.number();
        // The caller ID takes the callee's NPA-NXX with a random line.
        c.orig = format!("{}{:04}", &c.dest[..7], 1000 + rng.below(9000));
        c.answered = Some(40.0);
        c
    });
    assert_detected(&ev, "neighbour_spoofing", "nb-", 600.0, "wholesale-charlie");
}

#[test]
fn origid_caller_churn_fires() {
    let ev = with_campaign(4, 600.0, 300, 1.0, |rng, i, at| {
        let mut c = Call::signed(at, format!("ch-{i}"), "carrier-bravo", 6, "churn-origid");
        // The signer cannot vouch for caller IDs that change with every call: B.
        c.attest = Attest::B;
        c.orig = rng.number();
        c.dest = rng.number();
        c.answered = Some(90.0); // answered, long: outcomes arrive too late to matter
        c
    });
    assert_detected(&ev, "origid_caller_churn", "ch-", 600.0, "carrier-bravo");
}

/// Issue #13: a call centre (one PBX, one origid, 200 agents' DIDs of its own, A-attested,
/// answered long calls) churns caller IDs within a minute like a dialer, and stays quiet;
/// the same setup whose signer could not vouch for the numbers (B) and whose numbers never
/// repeat is the dialer, and fires.
#[test]
fn call_centre_churn_stays_quiet() {
    let mut rng = Lcg(14);
    let dids: Vec<String> = (0..200)
        .map(|i| format!("1312555{:04}", 2000 + i))
        .collect();
    let mut calls = background(&mut rng, 0.0, 1800.0, 10.0);
    for i in 0..1800 {
        let mut c = Call::signed(
            600.0 + i as f64 / 1.5,
            format!("cc-{i}"),
            "carrier-delta",
            21,
            "call-centre-pbx",
        );
        c.orig = dids[rng.below(200) as usize].clone();
        c.dest = rng.number();
        c.answered = (rng.below(100) < 75).then(|| 60.0 + rng.below(600) as f64);
        calls.push(c);
    }
    let events = run(&calls);
    assert!(events.is_empty(), "{events:#?}");
}

#[test]
fn unsigned_flood_fires_after_warmup_only_as_a_burst() {
    let ev = with_campaign(5, 900.0, 600, 5.0, |rng, i, at| {
        let mut c = Call::signed(at, format!("uf-{i}"), "carrier-alpha", 7, "x");
        c.origid = None;
        c.attest = Attest::None;
        c.orig = "12125550300".into();
        c.orig = rng.number();
        c.dest = rng.number();
        c.answered = Some(120.0);
        c
    });
    assert_detected(&ev, "unsigned_flood", "uf-", 900.0, "carrier-alpha");
}

#[test]
fn invalid_caller_id_fires() {
    let bad = [
        "19115550243",
        "12935550243",
        "13725550243",
        "12020550243",
        "18005550243",
        "12025550143",
    ];
    let ev = with_campaign(6, 600.0, 60, 0.5, |rng, i, at| {
        let mut c = Call::signed(at, format!("inv-{i}"), "carrier-bravo", 8, "inv-origid");
        c.orig = bad[i % bad.len()].into();
        c.dest = rng.number();
        c
    });
    assert_detected(&ev, "invalid_caller_id", "inv-", 600.0, "carrier-bravo");
}

#[test]
fn sequential_dialling_fires() {
    let ev = with_campaign(7, 600.0, 200, 2.0, |_, i, at| {
        let mut c = Call::signed(at, format!("seq-{i}"), "wholesale-charlie", 9, "seq-origid");
        c.orig = "17135550300".into();
        c.dest = format!("1303555{:04}", 2000 + i);
        c.answered = None;
        c.ring_s = 0.3;
        c.final_code = if i % 2 == 0 { 404 } else { 480 };
        c
    });
    assert_detected(
        &ev,
        "sequential_dialling",
        "seq-",
        600.0,
        "wholesale-charlie",
    );
}

#[test]
fn one_ring_fires() {
    let ev = with_campaign(8, 600.0, 200, 2.0, |rng, i, at| {
        let mut c = Call::signed(at, format!("ring-{i}"), "carrier-alpha", 10, "ring-origid");
        c.orig = rng.number();
        c.dest = rng.number();
        c.answered = None;
        c.cancelled = true;
        c.ring_s = 1.5;
        c.final_code = 487;
        c
    });
    assert_detected(&ev, "one_ring", "ring-", 600.0, "carrier-alpha");
}

#[test]
fn replayed_passport_fires() {
    let ev = with_campaign(9, 600.0, 40, 1.0, |rng, i, at| {
        let mut c = Call::signed(at, format!("rp-{i}"), "carrier-bravo", 11, "rp-origid");
        c.orig = "14045550300".into();
        c.dest = rng.number();
        c.replayed = i > 0;
        c
    });
    assert_detected(&ev, "replayed_passport", "rp-", 600.0, "carrier-bravo");
}

#[test]
fn short_calls_fire() {
    let ev = with_campaign(10, 600.0, 300, 2.0, |rng, i, at| {
        let mut c = Call::signed(at, format!("sh-{i}"), "wholesale-charlie", 12, "sh-origid");
        c.orig = rng.number();
        c.orig = "16175550300".into();
        c.dest = rng.number();
        if i % 10 == 0 {
            c.answered = Some(3.0);
            c.ring_s = 5.0;
        } else {
            c.answered = None;
            c.ring_s = 12.0;
            c.final_code = 480;
        }
        c
    });
    assert_detected(&ev, "short_calls", "sh-", 600.0, "wholesale-charlie");
}

#[test]
fn events_open_update_and_close() {
    // A replayed token on 200 calls over 200 s (each answered for 60 s): opened once, updated
    // each minute while the key's calls (starts, then ends up to 267 s) keep it holding,
    // closed 120 s after it last held, with one detection id throughout. Other traffic keeps
    // stream time moving to 600 s.
    let mut rng = Lcg(12);
    let mut calls = Vec::new();
    for i in 0..600 {
        let mut c = Call::signed(i as f64, format!("f-{i}"), "carrier-bravo", 2, "other");
        c.orig = "14045550301".into();
        c.dest = rng.number();
        calls.push(c);
    }
    for i in 0..200 {
        let mut c = Call::signed(i as f64, format!("rp-{i}"), "carrier-alpha", 1, "o");
        c.orig = "14045550300".into();
        c.dest = format!("1303555{:04}", 3000 + 7 * i);
        c.replayed = i > 0;
        calls.push(c);
    }
    let ev: Vec<DetectionEvent> = run(&calls)
        .into_iter()
        .filter(|e| e.rule == "replayed_passport" && e.key.kind == "fingerprint")
        .collect();
    let states: Vec<&str> = ev.iter().map(|e| e.state.as_str()).collect();
    assert_eq!(
        states,
        ["opened", "updated", "updated", "updated", "updated", "closed"]
    );
    assert!(ev.iter().all(|e| e.detection_id == ev[0].detection_id));
    // Full state from the third call (t = 2 s); the third replayed call in state is t = 4 s.
    assert_eq!(
        ev[0].last_seen,
        ts(4.0),
        "fires on the third replayed call in state"
    );
    assert_eq!(ev[0].first_seen, ts(2.0));
    assert_eq!(ev[0].calls, 3);
    assert_eq!(ev[1].last_seen, ts(64.0));
    assert_eq!(ev[4].last_seen, ts(244.0));
    // Last held at the last end (199 + 68 = 267 s); closed at the first sweep 120 s later.
    let closed = (ev[5].last_seen.0 - ts(267.0).0) as f64 / 1e6;
    assert!((120.0..=121.0).contains(&closed), "closed {closed} s after");
    let v = serde_json::to_value(&ev[0]).unwrap();
    assert_eq!(v["schema"], "shaken-sensor/detection/v1");
    assert_eq!(v["key"]["kind"], "fingerprint");
    assert_eq!(v["fingerprint"], "0000000000000001");
    assert_eq!(v["window"], "1m");
    assert_eq!(v["attest_mix"]["A"], 3);
    assert_eq!(v["verstat_mix"]["TN-Validation-Passed"], 3);
    assert_eq!(v["peers"][0]["ocn"], "1111");
    assert_eq!(v["evidence"]["replayed_calls"], 3.0);
    assert_eq!(
        v["sample_call_ids"],
        serde_json::json!(["rp-2", "rp-3", "rp-4"])
    );
}

/// `[detect.rules]` reloaded on SIGHUP reach a running engine: with replayed_min_calls raised
/// to 50 mid-stream, a replayed token on 40 calls that would fire stays quiet; set back, it
/// fires on the next calls.
#[test]
fn reloaded_rule_thresholds_apply_to_a_running_engine() {
    let mut engine = Engine::new(
        &DetectConfig::default(),
        0,
        1,
        DetectionIds::with_run(Arc::from("t"), "r"),
    );
    let mut rng = Lcg(16);
    let call = |rng: &mut Lcg, i: usize| {
        let mut c = Call::signed(i as f64, format!("rp-{i}"), "carrier-bravo", 11, "o");
        c.orig = "14045550300".into();
        c.dest = rng.number();
        c.replayed = true;
        c
    };
    let mut strict = DetectConfig::default().rules;
    strict.replayed_min_calls = 50;
    engine.set_rules(&strict);
    for i in 0..40 {
        engine.on_start(&call(&mut rng, i).start());
    }
    assert!(engine.take_events().is_empty());
    engine.set_rules(&DetectConfig::default().rules);
    for i in 40..45 {
        engine.on_start(&call(&mut rng, i).start());
    }
    let ev = engine.take_events();
    assert!(ev.iter().any(|e| e.rule == "replayed_passport"), "{ev:#?}");
}

#[test]
fn memory_stays_bounded_with_a_million_distinct_callers() {
    // The caller-ID key table (the kind with the most distinct keys) takes 1,000,000 distinct
    // caller IDs, 1,000 per second of capture time, plus a few heavy callers: its entries and
    // bytes stay under the caps, the cap is counted, and the heavy callers keep full state.
    use super::keys::{KeyTable, Touch};
    let cfg = DetectConfig::default();
    let mut table = KeyTable::new(
        KeyKind::OrigTn,
        cfg.max_keys,
        cfg.sketch_width,
        cfg.promote_calls,
    );
    let key = |i: u64| super::hash::Hash64::default().u64(i).finish();
    let mut sizes = Vec::new();
    let mut evicted_open = 0;
    for i in 0..1_000_000u64 {
        let at = ts(i as f64 / 1000.0);
        let _ = table.touch(key(i), at, || format!("{i}").into_boxed_str(), &mut |st| {
            evicted_open += usize::from(st.has_open());
        });
        // Ten heavy callers, each on every 50th call (20 calls per second each).
        if i % 50 == 0 {
            let h = key(10_000_000 + (i / 50) % 10);
            if let Touch::Full(st) = table.touch(h, at, || "heavy".into(), &mut |_| {}) {
                st.advance(at);
                st.windows[1].counts_mut(at).calls += 1;
            }
        }
        if (i + 1) % 250_000 == 0 {
            sizes.push(table.bytes());
        }
    }
    assert!(table.len() <= cfg.max_keys, "{}", table.len());
    // Sketches (2 epochs x 4 rows x 65,536 x 4 bytes = 2 MiB) plus max_keys states.
    let cap = 2 * 1024 * 1024 + cfg.max_keys * 16 * 1024;
    assert!(sizes.iter().all(|s| *s <= cap), "{sizes:?} > {cap}");
    // Full by 500,000 keys; then flat however many more distinct keys arrive.
    assert!(
        sizes[3] <= sizes[1] + sizes[1] / 10,
        "no growth with more keys: {sizes:?}"
    );
    assert_eq!(evicted_open, 0);
    for h in 0..10 {
        assert!(
            table.get_mut(key(10_000_000 + h)).is_some(),
            "heavy caller {h} kept"
        );
    }
    let s = table.stats;
    assert!(
        s.evictions + s.refused > 0,
        "the cap was hit and counted: {s:?}"
    );
}

#[test]
fn steady_unsigned_peers_never_fire() {
    // A TDM gateway peer that is always unsigned (~40 calls/min, one fingerprint) and a peer
    // with 30 % unsigned: steady rates through and after the warm-up are not floods.
    let mut rng = Lcg(13);
    let mut calls = background(&mut rng, 0.0, 1800.0, 5.0);
    for i in 0..1200 {
        let mut c = Call::signed(
            i as f64 * 1.5,
            format!("bg-tdm-{i}"),
            "legacy-foxtrot",
            3,
            "-",
        );
        c.origid = None;
        c.attest = Attest::None;
        c.orig = rng.number();
        c.dest = rng.number();
        calls.push(c);
    }
    let events = run(&calls);
    assert!(events.is_empty(), "{events:#?}");
}

/// Issue #13: the whole engine (every key kind) under 1,000,000 distinct caller IDs and
/// 1,000,000 distinct origids (a signer minting one per call), 500 calls per second through
/// four peers: every kind's table stays at or under `max_keys`, the bytes stop growing once
/// the tables are full, and no detection fires on this unremarkable traffic.
#[test]
fn engine_memory_is_flat_under_a_million_callers_and_origids() {
    let cfg = DetectConfig {
        max_keys: 256,
        ..DetectConfig::default()
    };
    let mut engine = Engine::new(&cfg, 0, 1, DetectionIds::with_run(Arc::from("t"), "r"));
    let peers = [
        "carrier-alpha",
        "carrier-bravo",
        "wholesale-charlie",
        "carrier-delta",
    ];
    let mut rng = Lcg(15);
    let mut sizes = Vec::new();
    let mut events = Vec::new();
    for i in 0..1_000_000u64 {
        let mut c = Call::signed(
            i as f64 / 500.0,
            format!("m-{i}"),
            peers[(i % 4) as usize],
            i % 64,
            "unused",
        );
        // Valid random NANP numbers: about 1,000,000 distinct callers (6.4e9 possible).
        c.orig = rng.number();
        c.dest = rng.number();
        let mut s = c.start();
        s.keys.origid = Some(OrigidStr::new(&format!(
            "{i:08x}-0000-4000-8000-000000000000"
        )));
        engine.on_start(&s);
        events.extend(
            engine
                .take_events()
                .into_iter()
                .map(|e| (e.rule, e.key.kind, e.key.value, e.evidence)),
        );
        if (i + 1) % 250_000 == 0 {
            sizes.push(engine.bytes());
        }
    }
    for kind in super::kinds::KEY_KINDS {
        assert!(engine.keys(kind) <= cfg.max_keys, "{kind:?}");
    }
    // A key seen once (each origid, each caller) earns full state only by a sketch collision
    // (a few in a million): the sketch counts them.
    assert!(
        engine.keys(KeyKind::Origid) < 200,
        "{}",
        engine.keys(KeyKind::Origid)
    );
    assert!(
        engine.keys(KeyKind::OrigTn) < 200,
        "{}",
        engine.keys(KeyKind::OrigTn)
    );
    assert_eq!(engine.keys(KeyKind::Peer), 4);
    assert!(
        sizes[3] <= sizes[1] + sizes[1] / 10,
        "no growth with more keys: {sizes:?}"
    );
    // Sketches (5 kinds x 2 epochs x 4 rows x 65,536 x 4 bytes = 10 MiB) plus the states.
    assert!(
        sizes[3] <= 10 * 1024 * 1024 + 5 * cfg.max_keys * 16 * 1024,
        "{sizes:?}"
    );
    assert!(events.is_empty(), "{events:?}");
}

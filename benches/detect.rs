//! Detector cost per call: one shard's Engine fed call starts and ends of background-like
//! traffic (many callers, 2,000 fingerprints, 40 origids, 4 peers), as the shard thread does.
//! Also the hand-off (DetectFeed batches over a crossbeam channel) without the engine.
//! Run: `cargo bench --bench detect`. Compare with benches/throughput.sh (detect.enabled).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use shaken_sensor::backpressure::Backpressure;
use shaken_sensor::clock::Timestamp;
use shaken_sensor::config::DetectConfig;
use shaken_sensor::detect::engine::Engine;
use shaken_sensor::detect::events::DetectionIds;
use shaken_sensor::detect::features::{
    Attest, CallEnd, CallIdStr, CallKeys, CallStart, OrigidStr, Signer, SpcStr, Verstat,
};
use shaken_sensor::detect::feed::{DetectFeed, FeedBatch};
use shaken_sensor::sip::tn::canonicalize;
use std::sync::Arc;

const CALLS: usize = 100_000;

fn stream() -> Vec<(CallStart, CallEnd)> {
    let mut x: u64 = 7;
    let mut next = move || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        x >> 33
    };
    let peers: Vec<Arc<str>> = ["alpha", "bravo", "charlie", "delta"]
        .iter()
        .map(|p| Arc::from(*p))
        .collect();
    (0..CALLS)
        .map(|i| {
            let at = Timestamp(1_795_000_000_000_000 + i as i64 * 20_000); // 50 calls/s
            let origid = next() % 40;
            let keys = CallKeys {
                fingerprint: origid * 50 + next() % 50,
                peer: peers[(origid % 4) as usize].clone(),
                signer: Some(Signer {
                    spc: SpcStr::new("111A"),
                    attest: Attest::A,
                }),
                origid: Some(OrigidStr::new(&format!("origid-{origid}"))),
                orig_tn: canonicalize(
                    format!("1{}", 2_000_000_000 + next() % 5_000_000).as_bytes(),
                ),
            };
            let call_id = CallIdStr::new(&format!("{i}@bench"));
            let dest =
                canonicalize(format!("1{}", 3_000_000_000 + next() % 7_000_000_000).as_bytes());
            let answered = next() % 100 < 55;
            let start = CallStart {
                at,
                call_id,
                keys: keys.clone(),
                ocn: None,
                dest_tn: dest,
                attest: Attest::A,
                verstat: Verstat::Passed,
                unsigned: false,
                replayed: false,
                verify_failed: false,
            };
            let end = CallEnd {
                at: Timestamp(at.0 + 30_000_000),
                call_id,
                keys,
                answered,
                cancelled: false,
                ring_ms: Some(6000),
                duration_ms: answered.then_some(60_000),
                final_code: Some(if answered { 200 } else { 480 }),
            };
            (start, end)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let calls = stream();
    let cfg = DetectConfig::default();
    let mut g = c.benchmark_group("detect");
    g.throughput(Throughput::Elements(CALLS as u64));
    g.sample_size(10);
    g.bench_function("engine_start_and_end_per_call", |b| {
        b.iter(|| {
            let mut e = Engine::new(&cfg, 0, 1, DetectionIds::with_run(Arc::from("b"), "b"));
            for (s, end) in &calls {
                e.on_start(s);
                e.on_end(end);
            }
            black_box(e.take_events().len())
        })
    });
    g.bench_function("feed_handoff_per_call", |b| {
        b.iter(|| {
            let (tx, rx) = crossbeam_channel::bounded::<FeedBatch>(1 << 16);
            let counter = prometheus::IntCounter::new("x", "x").unwrap();
            let template = DetectFeed::new(
                vec![tx],
                crossbeam_channel::never(),
                Backpressure::Wait,
                counter,
            );
            let mut feed = template.for_source(0);
            for (i, (s, end)) in calls.iter().enumerate() {
                feed.start(s.clone());
                feed.end(end.clone());
                if i % 32 == 31 {
                    feed.flush(s.at);
                }
            }
            drop(feed);
            drop(template);
            black_box(rx.try_iter().map(|b| b.msgs.len()).sum::<usize>())
        })
    });
    g.bench_function("engine_1m_distinct_callers_and_origids", |b| {
        b.iter(|| black_box(memory_figure(&calls, &cfg)))
    });
    g.finish();
}

/// Issue #13's memory figure: the engine's bytes (sketches and full-state keys, all kinds)
/// after 1,000,000 calls with distinct caller IDs and distinct origids (a fresh origid per
/// call), printed once per run next to the timings.
fn memory_figure(calls: &[(CallStart, CallEnd)], cfg: &DetectConfig) -> usize {
    let mut e = Engine::new(cfg, 0, 1, DetectionIds::with_run(Arc::from("b"), "b"));
    let mut at_250k = 0;
    for i in 0..1_000_000usize {
        let mut s = calls[i % calls.len()].0.clone();
        s.at = Timestamp(1_795_000_000_000_000 + i as i64 * 2_000); // 500 calls/s
        s.keys.origid = Some(OrigidStr::new(&format!("{i:08x}-0000-4000-8000-0000")));
        s.keys.orig_tn = canonicalize(format!("1{}", 2_125_550_000 + i as u64).as_bytes());
        e.on_start(&s);
        e.take_events();
        if i + 1 == 250_000 {
            at_250k = e.bytes();
        }
    }
    eprintln!(
        "detect/memory: {:.1} MiB after 250,000 and {:.1} MiB after 1,000,000 distinct callers \
         and origids (max_keys {} per kind)",
        at_250k as f64 / 1048576.0,
        e.bytes() as f64 / 1048576.0,
        cfg.max_keys
    );
    e.bytes()
}

criterion_group!(benches, bench);
criterion_main!(benches);

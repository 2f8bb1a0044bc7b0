//! Traceback store write rate and size on disk, format 2: `cargo bench --bench store`.
//!
//! Records are synthetic but shaped like a carrier edge's: six peers with their signers and
//! x5u, 87% signed, origids from a pool of 1,600 and fingerprints from 4,000, random 11-digit
//! numbers, UUID and `hex@host` Call-IDs, arrival up to a minute out of observed order (calls
//! are recorded when they end). First a plain run prints inserts/s and bytes per call for
//! 200,000 calls into a fresh partition, in commits of 1,000 (the writer's default) and 10,000; then
//! criterion measures a batch of 1,000 into a growing store.

use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use shaken_sensor::clock::Timestamp;
use shaken_sensor::record::Transport;
use shaken_sensor::record::{
    CallRecord, DialogOutcome, EndedBy, Endpoint, SdpTraits, ShakenResult, Upstream, CALL_SCHEMA,
};
use shaken_sensor::traceback::store::{Store, StoreConfig};
use std::sync::Arc;
use std::time::Instant;

/// 2026-11-18T00:00:00Z, µs.
const DAY0: i64 = 1_795_046_400_000_000;
const PEERS: [(&str, &str, &str, &str); 6] = [
    (
        "carrier-alpha",
        "1111",
        "111A",
        "https://cert.carrier-alpha.example/sti/111A.pem",
    ),
    (
        "carrier-bravo",
        "2222",
        "222B",
        "https://cert.carrier-bravo.example/sti/222B.pem",
    ),
    (
        "wholesale-charlie",
        "3333",
        "333C",
        "https://sti.wholesale-charlie.example/333C.pem",
    ),
    (
        "carrier-delta",
        "4444",
        "444D",
        "https://cert.carrier-delta.example/sti/444D.pem",
    ),
    (
        "intl-gateway-echo",
        "5555",
        "555E",
        "https://pki.gateway-echo.example/555E.pem",
    ),
    (
        "legacy-foxtrot",
        "6666",
        "666F",
        "https://cert.legacy-foxtrot.example/666F.pem",
    ),
];
const UAS: [&str; 4] = [
    "Sonus SBC",
    "Ribbon SBC 9.2",
    "Oracle ESBC 9.0",
    "Metaswitch Perimeta",
];

/// splitmix64: the same calls on every run.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn uuid(a: u64, b: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

fn call(i: u64) -> CallRecord {
    let r = |k: u64| mix(i.wrapping_mul(16).wrapping_add(k));
    let (peer, ocn, spc, x5u) = PEERS[(r(0) % 6) as usize];
    let p = (r(0) % 6) as u8;
    let src = format!("198.51.{}.{}", 100 + p, 10 + r(1) % 3);
    // 2,000 calls/s, recorded when they end: up to a minute out of order.
    let at = Timestamp(DAY0 + (i as i64) * 500 + (r(2) % 60_000_000) as i64);
    let orig = format!("1{}", 2_000_000_000 + r(3) % 7_999_999_999);
    let dest = format!("1{}", 2_000_000_000 + r(4) % 7_999_999_999);
    let signed = r(5) % 100 < 87;
    let answered = r(6) % 2 == 0;
    let ring_ms = 500 + r(7) % 20_000;
    let duration_ms = answered.then(|| r(8) % 600_000);
    let ended_at =
        Timestamp(at.0 + (ring_ms + duration_ms.unwrap_or(0)) as i64 * 1000 + (r(9) % 1000) as i64);
    let call_id = if r(10) % 2 == 0 {
        uuid(r(11), r(12))
    } else {
        format!("{:016x}@{src}", r(11))
    };
    CallRecord {
        schema: CALL_SCHEMA,
        record_id: format!("bench:{}", uuid(r(13), r(14))),
        sensor_id: Arc::from("bench"),
        observed_at: at,
        call_id,
        transport: Transport::Udp,
        src: Endpoint {
            ip: src.parse().expect("ip"),
            port: 5060,
        },
        dst: Endpoint {
            ip: "192.0.2.1".parse().expect("ip"),
            port: 5060,
        },
        upstream: Upstream {
            peer: Arc::from(peer),
            ocn: Some(Arc::from(ocn)),
        },
        from_user: Some(format!("+{orig}")),
        pai_user: Some(format!("+{orig}")),
        ruri_user: Some(dest.clone()),
        orig_tn: Some(orig),
        dest_tn: Some(dest),
        user_agent: Some(UAS[(r(0) % 4) as usize].into()),
        shaken: if signed {
            ShakenResult {
                verstat: Some("TN-Validation-Passed".into()),
                attest: Some(["A", "B", "C"][(r(15) % 3) as usize].into()),
                origid: Some(uuid(mix(r(15) % 1600), 7)),
                spc: Some(spc.into()),
                x5u: Some(x5u.into()),
                iat: Some(at.as_secs()),
                identity_headers: 1,
                ..ShakenResult::default()
            }
        } else {
            ShakenResult {
                verstat: Some("No-TN-Validation".into()),
                ..ShakenResult::default()
            }
        },
        dialog: DialogOutcome {
            final_code: Some(if answered { 200 } else { 486 }),
            answered,
            ring_ms: Some(ring_ms),
            duration_ms,
            ended_by: if answered {
                EndedBy::Caller
            } else {
                EndedBy::Callee
            },
            cancelled: false,
            ended_at,
        },
        sdp: Some(SdpTraits {
            origin_user: Some("-".into()),
            conn_addr: Some(src),
            codecs: vec!["PCMU/8000".into(), "telephone-event/8000".into()],
        }),
        fingerprint: Some(format!("{:016x}", mix(r(0) % 4000))),
        capture_agent: None,
        trace: None,
    }
}

const BATCH: u64 = 1000;

/// Bytes this process has caused to be written to storage so far (Linux), for write
/// amplification: WAL frames and checkpoints.
fn written() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|v| v.trim().parse().ok())
}

/// Plain runs: inserts/s, bytes per call on disk and bytes written per call, for a fresh
/// partition of 200,000 calls, with commits of 1,000 (the writer's default batch) and 10,000.
fn summary() {
    const CALLS: u64 = 200_000;
    for batch in [1000, 10_000] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(StoreConfig::new(dir.path())).expect("store");
        let batches: Vec<Vec<CallRecord>> = (0..CALLS / batch)
            .map(|b| (b * batch..(b + 1) * batch).map(call).collect())
            .collect();
        let w0 = written();
        let t = Instant::now();
        let mut n = 0;
        for b in &batches {
            n += store.insert_batch(b).expect("insert");
        }
        drop(store);
        let secs = t.elapsed().as_secs_f64();
        let wrote = written().zip(w0).map(|(a, b)| a.saturating_sub(b));
        let bytes: u64 = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").metadata().map(|m| m.len()).unwrap_or(0))
            .sum();
        println!(
            "store summary: batch {batch}: {n} calls in {secs:.2} s = {:.0} inserts/s; \
             {bytes} bytes on disk = {:.1} B/call; written {:.0} B/call",
            n as f64 / secs,
            bytes as f64 / n as f64,
            wrote.map_or(f64::NAN, |w| w as f64 / n as f64),
        );
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(StoreConfig::new(dir.path())).expect("store");
    let mut g = c.benchmark_group("store_insert");
    g.throughput(Throughput::Elements(BATCH));
    let mut i = 0u64;
    g.bench_function("batch_1000", |b| {
        b.iter_batched(
            || {
                i += BATCH;
                (i..i + BATCH).map(call).collect::<Vec<_>>()
            },
            |batch| store.insert_batch(&batch).expect("insert"),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    summary();
    benches();
    Criterion::default().configure_from_args().final_summary();
}

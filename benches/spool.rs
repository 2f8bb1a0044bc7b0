//! Spool append cost per record (a ~1.2 KB CallRecord-sized JSON), batches of 64, with each
//! fsync policy. `cargo bench --bench spool`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use shaken_sensor::export::spool::{FsyncPolicy, Kind, Spool, SpoolConfig};
use shaken_sensor::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;

fn record(i: u64) -> Vec<u8> {
    let mut r = format!(
        "{{\"schema\":\"shaken-sensor/call/v1\",\"record_id\":\"bench:{i:016x}\",\"pad\":\""
    )
    .into_bytes();
    r.resize(1200, b'x');
    r.extend_from_slice(b"\"}");
    r
}

fn bench(c: &mut Criterion) {
    const BATCH: u64 = 64;
    let mut g = c.benchmark_group("spool_append");
    g.throughput(Throughput::Elements(BATCH));
    for (name, fsync) in [
        ("every_batch", FsyncPolicy::EveryBatch),
        (
            "interval_1000ms",
            FsyncPolicy::Interval(Duration::from_millis(1000)),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(
            &SpoolConfig {
                dir: dir.path().to_path_buf(),
                max_bytes: 256 << 20,
                fsync,
            },
            Arc::new(Metrics::new()),
        )
        .unwrap();
        let mut i = 0u64;
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    i += BATCH;
                    (i..i + BATCH).map(record).collect::<Vec<_>>()
                },
                |batch| {
                    spool.append(Kind::CallRecord, &batch).unwrap();
                    spool.sync_if_due().unwrap();
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

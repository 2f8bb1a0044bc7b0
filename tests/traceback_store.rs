//! Traceback store on real SQLite files in a temporary directory: inserts across days, queries
//! (canonical and non-canonical numbers, unknown calls, duplicates), crash safety under SIGKILL
//! (the test re-executes itself as the writer it kills), retention by age and disk cap, the
//! writer thread's flush guarantees, and hostile query parameters.
//!
//! It must never depend on wall-clock timing tighter than a few seconds (it polls).

use shaken_sensor::clock::{ManualClock, Timestamp};
use shaken_sensor::record::Transport;
use shaken_sensor::record::{
    CallRecord, DialogOutcome, EndedBy, Endpoint, ShakenResult, Upstream, CALL_SCHEMA,
};
use shaken_sensor::traceback::query::{answer, Reader, TracebackQuery, MAX_RESULTS};
use shaken_sensor::traceback::store::{spawn_writer, Store, StoreConfig, WriterStats};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DAY1: &str = "2026-11-28T23:59:30Z";
const DAY2: &str = "2026-11-29T00:00:30Z";

fn ts(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).expect("test time")
}

fn record(id: &str, at: Timestamp, orig: &str, dest: &str, peer: &str) -> CallRecord {
    CallRecord {
        schema: CALL_SCHEMA,
        record_id: format!("edge-1:{id}"),
        sensor_id: Arc::from("edge-1"),
        observed_at: at,
        call_id: format!("{id}@198.51.100.10"),
        transport: Transport::Udp,
        src: Endpoint {
            ip: "198.51.100.10".parse().expect("ip"),
            port: 5060,
        },
        dst: Endpoint {
            ip: "192.0.2.1".parse().expect("ip"),
            port: 5060,
        },
        upstream: Upstream {
            peer: Arc::from(peer),
            ocn: Some(Arc::from("1111")),
        },
        orig_tn: Some(orig.to_string()),
        dest_tn: Some(dest.to_string()),
        from_user: Some(format!("+{orig}")),
        pai_user: None,
        ruri_user: Some(format!("+{dest}")),
        user_agent: Some("Sonus SBC".into()),
        shaken: ShakenResult {
            verstat: Some("TN-Validation-Passed".into()),
            attest: Some("A".into()),
            origid: Some("e32f4189-cb86-460f-bb92-bd3acb89f29c".into()),
            spc: Some("111A".into()),
            x5u: Some("https://certs.example/111A.pem".into()),
            iat: Some(at.as_secs()),
            identity_headers: 1,
            ..ShakenResult::default()
        },
        dialog: DialogOutcome {
            final_code: Some(200),
            answered: true,
            ring_ms: Some(5210),
            duration_ms: Some(48_230),
            ended_by: EndedBy::Caller,
            cancelled: false,
            ended_at: at,
        },
        sdp: None,
        fingerprint: None,
        capture_agent: None,
        trace: None,
    }
}

fn cfg(dir: &Path) -> StoreConfig {
    StoreConfig::new(dir)
}

fn q(orig: Option<&str>, dest: &str, at: &str, window: Option<&str>) -> TracebackQuery {
    TracebackQuery::parse(orig, Some(dest), Some(at), window).expect("valid query")
}

fn ids(calls: &[serde_json::Value]) -> Vec<String> {
    calls
        .iter()
        .map(|c| c["record_id"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn insert_across_days_and_query() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(cfg(tmp.path())).expect("open");
    let (d1, d2) = (ts(DAY1), ts(DAY2));
    let recs = vec![
        record("a", d1, "12025550143", "13035550177", "carrier-alpha"),
        record("b", d2, "12025550143", "13035550177", "carrier-bravo"),
        record("c", d2, "14045550100", "13035550177", "carrier-alpha"),
        record(
            "d",
            Timestamp(d2.0 + 3_600_000_000),
            "12025550143",
            "13035550177",
            "x",
        ),
        record("e", d2, "12025550143", "13125550199", "carrier-alpha"),
    ];
    assert_eq!(store.insert_batch(&recs).expect("insert"), 5);
    let parts = store.partitions();
    let names: Vec<&str> = parts.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(
        names,
        ["calls-2026-11-28.sqlite", "calls-2026-11-29.sqlite"]
    );
    assert!(parts.iter().all(|p| p.1 > 0));

    // Duplicates (same record_id) are ignored, within a batch and across batches.
    let again = vec![recs[0].clone(), recs[1].clone(), recs[1].clone()];
    assert_eq!(store.insert_batch(&again).expect("insert dups"), 0);

    let reader = Reader::open(tmp.path()).expect("reader");
    let at = "2026-11-29T00:00:00Z";
    // By dest and time window, across the day boundary, oldest first; "d" is an hour out.
    let calls = reader
        .query(&q(None, "13035550177", at, Some("60")))
        .expect("query");
    assert_eq!(ids(&calls), ["edge-1:a", "edge-1:b", "edge-1:c"]);
    // By orig and dest, with non-canonical input.
    let calls = reader
        .query(&q(
            Some("+1 (202) 555-0143"),
            "+1 (303) 555-0177",
            at,
            Some("60"),
        ))
        .expect("query");
    assert_eq!(ids(&calls), ["edge-1:a", "edge-1:b"]);
    // The answer carries the upstream peer and the SHAKEN result.
    assert_eq!(calls[1]["upstream"]["peer"], "carrier-bravo");
    assert_eq!(calls[1]["upstream"]["ocn"], "1111");
    assert_eq!(calls[1]["shaken"]["verstat"], "TN-Validation-Passed");
    assert_eq!(calls[1]["shaken"]["attest"], "A");
    assert_eq!(calls[1]["src"]["ip"], "198.51.100.10");
    assert_eq!(calls[1]["observed_at"], "2026-11-29T00:00:30.000000Z");
    // The default window (300 s) and the larger one reaching "d".
    let calls = reader
        .query(&q(None, "3035550177", at, None))
        .expect("query");
    assert_eq!(calls.len(), 3);
    let calls = reader
        .query(&q(None, "3035550177", at, Some("3630")))
        .expect("q");
    assert_eq!(calls.len(), 4);

    // Unknown calls and times with no partition: empty, not an error.
    assert!(reader
        .query(&q(None, "19995550000", at, None))
        .expect("q")
        .is_empty());
    let far = "2020-01-01T00:00:00Z";
    assert!(reader
        .query(&q(None, "13035550177", far, None))
        .expect("q")
        .is_empty());
    // The reader never creates a partition.
    assert!(!tmp.path().join("calls-2020-01-01.sqlite").exists());
    assert!(!tmp.path().join("calls-2019-12-31.sqlite").exists());

    let a = answer(
        &reader,
        &q(Some("2025550143"), "3035550177", at, Some("60")),
    )
    .expect("a");
    assert_eq!(a["query"]["orig"], "12025550143");
    assert_eq!(a["query"]["dest"], "13035550177");
    assert_eq!(a["query"]["at"], "2026-11-29T00:00:00.000000Z");
    assert_eq!(a["query"]["window_s"], 60);
    assert_eq!(a["calls"].as_array().map(Vec::len), Some(2));
    assert_eq!(a["truncated"], false);
    let none = answer(&reader, &q(None, "19995550000", at, None)).expect("a");
    assert_eq!(none["calls"], serde_json::json!([]));
    assert_eq!(none["query"]["orig"], serde_json::Value::Null);

    // Reader on a missing directory: a typed error.
    let err = Reader::open(&tmp.path().join("nope")).err().expect("error");
    assert_eq!(err.kind(), "store_missing");
}

#[test]
fn answers_are_capped_and_say_truncated() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(cfg(tmp.path())).expect("open");
    let at = ts(DAY2);
    let recs: Vec<CallRecord> = (0..MAX_RESULTS + 5)
        .map(|i| {
            let t = Timestamp(at.0 + i as i64 * 1000);
            record(&format!("r{i}"), t, "12025550143", "13035550177", "p")
        })
        .collect();
    assert_eq!(store.insert_batch(&recs).expect("insert"), MAX_RESULTS + 5);
    let reader = Reader::open(tmp.path()).expect("reader");
    let query = q(None, "13035550177", DAY2, Some("10"));
    let calls = reader.query(&query).expect("query");
    assert_eq!(calls.len(), MAX_RESULTS);
    assert_eq!(calls[0]["record_id"], "edge-1:r0");
    let a = answer(&reader, &query).expect("answer");
    assert_eq!(a["truncated"], true);
    assert_eq!(a["calls"].as_array().map(Vec::len), Some(MAX_RESULTS));
}

const CRASH_ENV: &str = "SHAKEN_TRACEBACK_CRASH_CHILD_DIR";
const CRASH_TEST: &str = "crash_safety_after_sigkill";
const CRASH_BATCH: usize = 200;

fn crash_record(i: usize) -> CallRecord {
    // Two days, alternating, so every batch touches two partitions.
    let base = ts(DAY1);
    let t = Timestamp(base.0 + (i % 2) as i64 * 60_000_000 + i as i64);
    record(&format!("crash-{i}"), t, "12025550143", "13035550177", "p")
}

/// Child mode: write batches forever, printing the total committed after each commit.
fn crash_child(dir: &str) {
    let mut store = Store::open(cfg(Path::new(dir))).expect("child open");
    let mut next = 0usize;
    loop {
        let batch: Vec<CallRecord> = (next..next + CRASH_BATCH).map(crash_record).collect();
        store.insert_batch(&batch).expect("child insert");
        next += CRASH_BATCH;
        println!("committed {next}");
        if next > 10_000_000 {
            return;
        }
    }
}

#[test]
fn crash_safety_after_sigkill() {
    if let Ok(dir) = std::env::var(CRASH_ENV) {
        crash_child(&dir);
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = std::process::Command::new(exe)
        .args([CRASH_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CRASH_ENV, tmp.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut committed = 0usize;
    let mut seen = 0;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if let Some(n) = line.strip_prefix("committed ") {
            committed = n.trim().parse().expect("count");
            seen += 1;
            if seen >= 20 {
                break;
            }
        }
    }
    child.kill().expect("SIGKILL the writer");
    let status = child.wait().expect("wait");
    assert!(!status.success(), "the child was killed, not finished");
    assert!(committed >= 20 * CRASH_BATCH, "child printed {committed}");

    // Reopen on the same store: recovery, then every printed commit is there.
    let mut store = Store::open(cfg(tmp.path())).expect("reopen");
    let parts = store.partitions();
    assert_eq!(parts.len(), 2, "{parts:?}");
    let mut found = HashSet::new();
    for (name, _) in &parts {
        let conn = rusqlite::Connection::open(tmp.path().join(name)).expect("open partition");
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity_check");
        assert_eq!(check, "ok", "{name}");
        // Format 2 keeps a record id that is not `sensor:uuid` as text.
        let mut stmt = conn
            .prepare("SELECT rid FROM call UNION ALL SELECT rid FROM call_x")
            .expect("prepare");
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).expect("rows");
        for id in rows {
            found.insert(id.expect("row"));
        }
    }
    for i in 0..committed {
        assert!(
            found.contains(&format!("edge-1:crash-{i}")),
            "record {i} lost"
        );
    }
    // And the store keeps working after the crash.
    let more: Vec<CallRecord> = (committed..committed + 10).map(crash_record).collect();
    store.insert_batch(&more).expect("insert after recovery");
}

#[test]
fn retention_drops_old_partitions_keeps_today() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut c = cfg(tmp.path());
    c.retention_days = 2;
    let mut store = Store::open(c).expect("open");
    let now = ts("2026-11-29T12:00:00Z");
    let day = |n: i64| Timestamp(now.0 - n * 86_400_000_000);
    for n in [5, 3, 2, 1, 0] {
        let r = record(&format!("d{n}"), day(n), "12025550143", "13035550177", "p");
        store.insert_batch(&[r]).expect("insert");
    }
    let dropped = store.enforce_retention(now).expect("retention");
    assert_eq!(
        dropped,
        ["calls-2026-11-24.sqlite", "calls-2026-11-26.sqlite"]
    );
    let names: Vec<String> = store.partitions().into_iter().map(|p| p.0).collect();
    assert_eq!(
        names,
        [
            "calls-2026-11-27.sqlite",
            "calls-2026-11-28.sqlite",
            "calls-2026-11-29.sqlite"
        ]
    );
    for gone in &dropped {
        for suffix in ["", "-wal", "-shm"] {
            assert!(!tmp.path().join(format!("{gone}{suffix}")).exists());
        }
    }
    // Nothing more to drop; a second run is a no-op.
    assert!(store.enforce_retention(now).expect("retention").is_empty());
    // Retention 0 with a zero disk cap: everything but today goes, today stays.
    drop(store);
    let mut c = cfg(tmp.path());
    c.retention_days = 0;
    c.max_disk_mb = 0;
    let mut store = Store::open(c).expect("open");
    let dropped = store.enforce_retention(now).expect("retention");
    assert_eq!(dropped.len(), 2);
    let names: Vec<String> = store.partitions().into_iter().map(|p| p.0).collect();
    assert_eq!(names, ["calls-2026-11-29.sqlite"]);
    // The kept partition still takes writes.
    let r = record("late", now, "12025550143", "13035550177", "p");
    assert_eq!(store.insert_batch(&[r]).expect("insert"), 1);
}

#[test]
fn disk_cap_drops_oldest_first() {
    const MIB: u64 = 1024 * 1024;
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(cfg(tmp.path())).expect("open");
    let now = ts("2026-11-29T12:00:00Z");
    // Three past days of > 1 MiB each, and today.
    for n in [3i64, 2, 1, 0] {
        let t0 = Timestamp(now.0 - n * 86_400_000_000);
        // About 100 bytes a call on disk (format 2): 12,000 calls make > 1 MiB.
        let recs: Vec<CallRecord> = (0..12_000)
            .map(|i| {
                let t = Timestamp(t0.0 + i * 1000);
                record(&format!("d{n}-{i}"), t, "12025550143", "13035550177", "p")
            })
            .collect();
        store.insert_batch(&recs).expect("insert");
    }
    drop(store); // checkpoints the WAL files: sizes stay put from here on
    let parts = Store::open(cfg(tmp.path())).expect("open").partitions();
    assert_eq!(parts.len(), 4);
    assert!(parts[0].1 > MIB, "{parts:?}");
    let total: u64 = parts.iter().map(|p| p.1).sum();
    // A cap that holds everything but the oldest partition.
    let cap_mb = (total - parts[0].1) / MIB + 1;
    assert!(cap_mb * MIB < total);
    let mut c = cfg(tmp.path());
    c.max_disk_mb = cap_mb;
    let mut store = Store::open(c).expect("open");
    let dropped = store.enforce_retention(now).expect("retention");
    assert_eq!(dropped, [parts[0].0.clone()]);
    assert_eq!(store.partitions().len(), 3);
}

fn poll<F: FnMut() -> bool>(within: Duration, mut f: F) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    f()
}

#[test]
fn writer_thread_flushes_on_interval_and_on_close() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut c = cfg(tmp.path());
    c.flush_interval = Duration::from_millis(200);
    c.retention_days = 1;
    // An old partition, dropped by the writer's retention run at start.
    let now = ts(DAY2);
    let mut store = Store::open(c.clone()).expect("open");
    let old = record(
        "old",
        ts("2026-11-01T00:00:00Z"),
        "12025550143",
        "13035550177",
        "p",
    );
    store.insert_batch(&[old]).expect("insert");
    drop(store);

    let store = Store::open(c).expect("open");
    let (tx, rx) = crossbeam_channel::bounded(100);
    let stats = Arc::new(WriterStats::default());
    let clock = Arc::new(ManualClock::new(now));
    let handle = spawn_writer(store, rx, Arc::clone(&stats), clock);
    let reader = Reader::open(tmp.path()).expect("reader");
    let query = q(None, "13035550177", DAY2, Some("60"));

    for i in 0..5 {
        let r = record(&format!("w{i}"), now, "12025550143", "13035550177", "p");
        tx.send(r).expect("send");
    }
    // Submitted records show up within flush_interval (polling, with generous slack).
    let seen = poll(Duration::from_secs(5), || {
        reader.query(&query).map(|c| c.len() == 5).unwrap_or(false)
    });
    assert!(seen, "records not flushed within the interval");
    assert_eq!(stats.partitions_dropped.load(Ordering::Relaxed), 1);

    // A duplicate and three more, then the channel closes: the last batch is flushed.
    tx.send(record("w0", now, "12025550143", "13035550177", "p"))
        .expect("send");
    for i in 5..8 {
        let r = record(&format!("w{i}"), now, "12025550143", "13035550177", "p");
        tx.send(r).expect("send");
    }
    drop(tx);
    handle
        .join()
        .expect("writer thread")
        .expect("writer result");
    assert_eq!(reader.query(&query).expect("query").len(), 8);
    assert_eq!(stats.inserted.load(Ordering::Relaxed), 8);
    assert_eq!(stats.duplicates.load(Ordering::Relaxed), 1);
    assert_eq!(stats.errors.load(Ordering::Relaxed), 0);
    assert!(stats.batches.load(Ordering::Relaxed) >= 2);
}

/// orig, dest, at, window_s, and the parameter the error must name.
type Case<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    &'a str,
);

#[test]
fn hostile_query_input_names_the_parameter() {
    let at = Some("2026-11-29T14:03:07Z");
    let dest = Some("13035550177");
    let cases: [Case; 12] = [
        (None, None, at, None, "dest"),
        (None, Some(""), at, None, "dest"),
        (None, Some("alice"), at, None, "dest"),
        (None, Some("+1303555017x"), at, None, "dest"),
        (Some("12025550143abc"), dest, at, None, "orig"),
        (Some("123456789012345678901234"), dest, at, None, "orig"),
        (None, dest, None, None, "at"),
        (None, dest, Some("yesterday"), None, "at"),
        (None, dest, Some("2026-11-29T14:03:07"), None, "at"),
        (None, dest, at, Some("1000000000"), "window_s"),
        (None, dest, at, Some("99999999999999999999999"), "window_s"),
        (None, dest, at, Some("-5"), "window_s"),
    ];
    for (orig, dest, at, window, param) in cases {
        let err = TracebackQuery::parse(orig, dest, at, window).expect_err(param);
        assert_eq!(err.param, param, "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("parameter `{param}`: ")),
            "{err}"
        );
        assert_eq!(err.kind(), format!("query_bad_{param}"));
    }
    let err = TracebackQuery::parse(None, dest, at, Some("86401")).expect_err("window");
    assert_eq!(err.param, "window_s");
    let ok = TracebackQuery::parse(Some(""), dest, at, Some("86400")).expect("max window");
    assert_eq!(ok.window_s, 86_400);
    assert_eq!(ok.orig, None);
    assert_eq!(ok.at, ts("2026-11-29T14:03:07Z"));
    let ok = TracebackQuery::parse(None, Some("(303) 555-0177"), at, None).expect("default");
    assert_eq!(ok.window_s, 300);
    assert_eq!(ok.dest, "13035550177");
}

//! The spool against real files in a temporary directory: round trips, restart and resume,
//! torn tails, the size cap's shedding order, and acks that race a shed.

use super::*;

fn open(dir: &Path, max_bytes: u64) -> (Spool, Arc<Metrics>) {
    let m = Arc::new(Metrics::new());
    let s = Spool::open(
        &SpoolConfig {
            dir: dir.to_path_buf(),
            max_bytes,
            fsync: FsyncPolicy::EveryBatch,
        },
        m.clone(),
    )
    .unwrap();
    (s, m)
}

fn rec(i: usize) -> Vec<u8> {
    format!("{{\"record_id\":\"r{i}\"}}").into_bytes()
}

fn read_all(s: &Spool, kind: Kind) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(b) = s.read_batch(kind, 7, 1 << 20).unwrap() {
        out.extend(b.records.iter().cloned());
        s.ack(&b).unwrap();
    }
    out
}

#[test]
fn records_come_back_in_order_and_ack_empties_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let (s, m) = open(dir.path(), 1 << 20);
    let recs: Vec<Vec<u8>> = (0..20).map(rec).collect();
    s.append(Kind::CallRecord, &recs).unwrap();
    s.append(Kind::Detection, &[b"{\"d\":1}"]).unwrap();
    assert_eq!(s.pending(Kind::CallRecord), 20);
    assert_eq!(
        m.spool_records.with_label_values(&["call"]).get(),
        20,
        "gauge follows"
    );
    assert_eq!(read_all(&s, Kind::CallRecord), recs);
    assert_eq!(read_all(&s, Kind::Detection), vec![b"{\"d\":1}".to_vec()]);
    assert_eq!(s.pending(Kind::CallRecord), 0);
    assert!(s
        .read_batch(Kind::CallRecord, 10, 1 << 20)
        .unwrap()
        .is_none());
}

#[test]
fn a_batch_respects_both_limits_but_holds_at_least_one_record() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(dir.path(), 1 << 20);
    let recs: Vec<Vec<u8>> = (0..10).map(rec).collect();
    s.append(Kind::CallRecord, &recs).unwrap();
    let b = s.read_batch(Kind::CallRecord, 3, 1 << 20).unwrap().unwrap();
    assert_eq!(b.records, recs[..3]);
    // 15-byte records: 40 bytes hold two.
    let b = s.read_batch(Kind::CallRecord, 100, 40).unwrap().unwrap();
    assert_eq!(b.records, recs[..2]);
    let b = s.read_batch(Kind::CallRecord, 100, 1).unwrap().unwrap();
    assert_eq!(b.records, recs[..1]);
}

#[test]
fn restart_resumes_after_the_last_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let recs: Vec<Vec<u8>> = (0..30).map(rec).collect();
    let id;
    {
        let (s, _) = open(dir.path(), 1 << 20);
        id = s.id().to_string();
        s.append(Kind::CallRecord, &recs).unwrap();
        let b = s
            .read_batch(Kind::CallRecord, 10, 1 << 20)
            .unwrap()
            .unwrap();
        s.ack(&b).unwrap();
        // Read but never acknowledged: must come again (at-least-once).
        let _unacked = s
            .read_batch(Kind::CallRecord, 10, 1 << 20)
            .unwrap()
            .unwrap();
    }
    let (s, _) = open(dir.path(), 1 << 20);
    assert_eq!(s.id(), id, "the spool keeps its identity");
    assert_eq!(s.pending(Kind::CallRecord), 20);
    assert_eq!(read_all(&s, Kind::CallRecord), recs[10..]);
}

fn only_segment(dir: &Path, kind: Kind) -> PathBuf {
    let segs: Vec<PathBuf> = fs::read_dir(dir.join(kind.as_str()))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    assert_eq!(segs.len(), 1, "{segs:?}");
    segs[0].clone()
}

#[test]
fn a_torn_tail_is_truncated_counted_and_appending_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let recs: Vec<Vec<u8>> = (0..3).map(rec).collect();
    {
        let (s, _) = open(dir.path(), 1 << 20);
        s.append(Kind::CallRecord, &recs).unwrap();
    }
    // SIGKILL in the middle of a frame: a header promising 100 bytes, then 5 of them.
    let seg = only_segment(dir.path(), Kind::CallRecord);
    let good_len = fs::metadata(&seg).unwrap().len();
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&100u32.to_le_bytes()).unwrap();
    f.write_all(&[0u8; 12]).unwrap();
    f.write_all(b"{\"rec").unwrap();
    drop(f);
    let (s, m) = open(dir.path(), 1 << 20);
    assert_eq!(m.spool_torn_tail.get(), 1);
    assert_eq!(fs::metadata(&seg).unwrap().len(), good_len);
    assert_eq!(s.pending(Kind::CallRecord), 3);
    s.append(Kind::CallRecord, &[rec(3)]).unwrap();
    let all: Vec<Vec<u8>> = (0..4).map(rec).collect();
    assert_eq!(read_all(&s, Kind::CallRecord), all);
}

#[test]
fn a_corrupt_last_frame_fails_its_crc_and_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (s, _) = open(dir.path(), 1 << 20);
        s.append(Kind::Detection, &[rec(0), rec(1)]).unwrap();
    }
    let seg = only_segment(dir.path(), Kind::Detection);
    let mut bytes = fs::read(&seg).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0xff;
    fs::write(&seg, &bytes).unwrap();
    let (s, m) = open(dir.path(), 1 << 20);
    assert_eq!(m.spool_torn_tail.get(), 1);
    assert_eq!(read_all(&s, Kind::Detection), vec![rec(0)]);
}

/// 1,000-byte payloads: 1,016-byte frames. A 64 KiB cap gives 16 KiB segments, which roll after
/// 17 frames (17,272 bytes).
fn payload(i: usize) -> Vec<u8> {
    let mut p = format!("{{\"record_id\":\"r{i:05}\",\"pad\":\"").into_bytes();
    p.resize(999, b'x');
    p.push(b'}');
    p
}

#[test]
fn the_cap_sheds_the_oldest_call_records_and_keeps_detections() {
    let dir = tempfile::tempdir().unwrap();
    let (s, m) = open(dir.path(), 64 * 1024);
    s.append(Kind::Detection, &[payload(90_000), payload(90_001)])
        .unwrap();
    for i in 0..62 {
        s.append(Kind::CallRecord, &[payload(i)]).unwrap();
    }
    // 2 detections (2,032 bytes) + 62 calls (62,992): 65,024 <= 65,536, nothing shed yet.
    assert_eq!(m.records_shed.with_label_values(&["call"]).get(), 0);
    s.append(Kind::CallRecord, &[payload(62)]).unwrap();
    // The 63rd call crosses the cap: the oldest call segment (17 records) goes.
    assert_eq!(m.records_shed.with_label_values(&["call"]).get(), 17);
    assert_eq!(m.records_shed.with_label_values(&["detection"]).get(), 0);
    assert_eq!(s.pending(Kind::CallRecord), 46);
    assert_eq!(s.pending(Kind::Detection), 2);
    assert!(s.bytes(Kind::CallRecord) + s.bytes(Kind::Detection) <= 64 * 1024);
    let calls = read_all(&s, Kind::CallRecord);
    assert_eq!(calls.first(), Some(&payload(17)));
    assert_eq!(calls.len(), 46);
    assert_eq!(read_all(&s, Kind::Detection).len(), 2);
}

#[test]
fn detections_are_shed_only_when_no_call_record_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let (s, m) = open(dir.path(), 64 * 1024);
    s.append(Kind::CallRecord, &[payload(0)]).unwrap();
    for i in 0..64 {
        s.append(Kind::Detection, &[payload(1000 + i)]).unwrap();
    }
    // 1 call + 64 detections = 66,040 > 65,536: the call goes first (1 record), then the
    // detections fit again (65,024).
    assert_eq!(m.records_shed.with_label_values(&["call"]).get(), 1);
    assert_eq!(m.records_shed.with_label_values(&["detection"]).get(), 0);
    s.append(Kind::Detection, &[payload(2000)]).unwrap();
    assert_eq!(m.records_shed.with_label_values(&["detection"]).get(), 17);
    assert_eq!(s.pending(Kind::Detection), 65 - 17);
}

#[test]
fn an_ack_after_its_segment_was_shed_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (s, m) = open(dir.path(), 64 * 1024);
    for i in 0..20 {
        s.append(Kind::CallRecord, &[payload(i)]).unwrap();
    }
    let in_flight = s.read_batch(Kind::CallRecord, 5, 1 << 20).unwrap().unwrap();
    for i in 20..70 {
        s.append(Kind::CallRecord, &[payload(i)]).unwrap();
    }
    let shed = m.records_shed.with_label_values(&["call"]).get();
    assert_eq!(shed, 17);
    s.ack(&in_flight).unwrap();
    assert_eq!(s.pending(Kind::CallRecord), 70 - 17);
    let rest = read_all(&s, Kind::CallRecord);
    assert_eq!(rest.len(), 53);
    assert_eq!(rest[0], payload(17));
}

#[test]
fn too_large_a_record_is_refused_and_a_tiny_cap_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(dir.path(), 1 << 20);
    let big = vec![b'x'; MAX_RECORD_BYTES + 1];
    assert!(matches!(
        s.append(Kind::CallRecord, &[big]),
        Err(SpoolError::TooLarge(_))
    ));
    assert_eq!(s.pending(Kind::CallRecord), 0);
    let err = Spool::open(
        &SpoolConfig {
            dir: dir.path().join("x"),
            max_bytes: 1000,
            fsync: FsyncPolicy::EveryBatch,
        },
        Arc::new(Metrics::new()),
    );
    assert!(matches!(err, Err(SpoolError::CapTooSmall(1000))));
}

#[test]
fn batches_cut_by_bytes_across_segments_miss_and_repeat_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // 64 KiB segments of 65 frames; 2,500 bytes per batch hold two 1,000-byte records, so
    // batches end inside segments and others straddle two.
    let (s, _) = open(dir.path(), 1 << 20);
    let recs: Vec<Vec<u8>> = (0..100).map(payload).collect();
    for r in &recs {
        s.append(Kind::CallRecord, &[r]).unwrap();
    }
    let mut got = Vec::new();
    while let Some(b) = s.read_batch(Kind::CallRecord, 100, 2500).unwrap() {
        assert!(b.records.len() <= 2);
        got.extend(b.records.iter().cloned());
        s.ack(&b).unwrap();
    }
    assert_eq!(got.len(), 100);
    assert_eq!(got, recs);
    assert_eq!(s.pending(Kind::CallRecord), 0);
}

#[test]
fn several_batches_out_move_the_ack_only_over_a_contiguous_delivered_run() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(dir.path(), 1 << 20);
    let recs: Vec<Vec<u8>> = (0..40).map(rec).collect();
    s.append(Kind::CallRecord, &recs).unwrap();
    let out: Vec<Batch> = (0..4)
        .map(|_| {
            s.next_batch(Kind::CallRecord, 10, 1 << 20)
                .unwrap()
                .unwrap()
        })
        .collect();
    assert!(s
        .next_batch(Kind::CallRecord, 10, 1 << 20)
        .unwrap()
        .is_none());
    for (i, b) in out.iter().enumerate() {
        assert_eq!(
            b.records,
            recs[i * 10..(i + 1) * 10],
            "each batch starts where the last ended"
        );
    }
    assert_eq!(s.in_flight(Kind::CallRecord), 4);
    // The last and the third arrive first: nothing is acknowledged on disk yet.
    s.delivered(&out[3]).unwrap();
    s.delivered(&out[2]).unwrap();
    assert_eq!(s.pending(Kind::CallRecord), 40);
    assert_eq!(read_ack(&dir.path().join("call/ack")), out[0].start);
    // The first closes part of the hole; the second (say, retrying) still holds the rest.
    s.delivered(&out[0]).unwrap();
    assert_eq!(s.pending(Kind::CallRecord), 30);
    assert_eq!(read_ack(&dir.path().join("call/ack")), out[0].end);
    s.delivered(&out[1]).unwrap();
    assert_eq!(s.pending(Kind::CallRecord), 0);
    assert_eq!(read_ack(&dir.path().join("call/ack")), out[3].end);
    assert_eq!(s.in_flight(Kind::CallRecord), 0);
}

#[test]
fn after_a_crash_the_batches_that_were_out_are_cut_at_the_same_places() {
    let dir = tempfile::tempdir().unwrap();
    let recs: Vec<Vec<u8>> = (0..50).map(rec).collect();
    let cut_before: Vec<(Position, Position)>;
    {
        let (s, _) = open(dir.path(), 1 << 20);
        s.append(Kind::CallRecord, &recs[..15]).unwrap();
        // A short batch at the tail (only 15 records there yet), then more appended.
        let a = s
            .next_batch(Kind::CallRecord, 10, 1 << 20)
            .unwrap()
            .unwrap();
        let b = s
            .next_batch(Kind::CallRecord, 10, 1 << 20)
            .unwrap()
            .unwrap();
        assert_eq!(b.records.len(), 5);
        s.append(Kind::CallRecord, &recs[15..]).unwrap();
        let c = s
            .next_batch(Kind::CallRecord, 10, 1 << 20)
            .unwrap()
            .unwrap();
        // Only the third is acknowledged before the crash.
        s.delivered(&c).unwrap();
        cut_before = [&a, &b, &c].iter().map(|x| (x.start, x.end)).collect();
    }
    let (s, _) = open(dir.path(), 1 << 20);
    assert_eq!(s.pending(Kind::CallRecord), 50);
    let again: Vec<Batch> = (0..3)
        .map(|_| {
            s.next_batch(Kind::CallRecord, 10, 1 << 20)
                .unwrap()
                .unwrap()
        })
        .collect();
    assert_eq!(
        again.iter().map(|x| (x.start, x.end)).collect::<Vec<_>>(),
        cut_before,
        "same ranges, so the same Idempotency-Keys"
    );
    assert_eq!(again[1].records, recs[10..15]);
    // Past them batches are full again.
    let d = s
        .next_batch(Kind::CallRecord, 10, 1 << 20)
        .unwrap()
        .unwrap();
    assert_eq!(d.records, recs[25..35]);
    for b in again.iter().chain([&d]) {
        s.delivered(b).unwrap();
    }
    assert_eq!(s.pending(Kind::CallRecord), 15);
}

//! The compact store format (format 2) answers exactly what the record JSON format answered:
//! a labelled scenario (signed and unsigned calls from six carriers) and the sample captures
//! (TCP, IPv6) are replayed with `--store`, and every call's traceback answer is compared with
//! the JSON lines the same replay wrote, which are what format 1 stored and returned. A
//! format-1 partition made by the previous release (tests/data/store-v1) still answers, takes
//! new rows beside its old ones, and never stores one of its records twice.

mod common;

use serde_json::Value;
use shaken_sensor::clock::Timestamp;
use shaken_sensor::record::Transport;
use shaken_sensor::record::{
    CallRecord, DialogOutcome, EndedBy, Endpoint, ShakenResult, Upstream, CALL_SCHEMA,
};
use shaken_sensor::traceback::query::{answer, Reader, TracebackQuery};
use shaken_sensor::traceback::store::{Store, StoreConfig};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

fn query(orig: Option<&str>, dest: &str, at: &str, window: &str) -> TracebackQuery {
    TracebackQuery::parse(orig, Some(dest), Some(at), Some(window)).expect("valid query")
}

fn calls(reader: &Reader, q: &TracebackQuery) -> Vec<Value> {
    let a = answer(reader, q).expect("answer");
    assert_eq!(a["truncated"], false);
    a["calls"].as_array().expect("calls").clone()
}

/// Oldest first; calls of the same µs in record id order (the formats may order ties apart).
fn in_order(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by(|a, b| {
        let key = |c: &Value| (c["observed_at"].to_string(), c["record_id"].to_string());
        key(a).cmp(&key(b))
    });
    v
}

/// Every record with a called number is answered, byte for byte, by a query at its own time
/// (with and without the calling number), and a wider window answers exactly the records of
/// that number inside it.
fn assert_same_answers(store: &Path, records: &[Value]) -> usize {
    let reader = Reader::open(store).expect("reader");
    let mut by_dest: HashMap<&str, Vec<&Value>> = HashMap::new();
    for r in records {
        if let Some(d) = r["dest_tn"].as_str() {
            by_dest.entry(d).or_default().push(r);
        }
    }
    let mut checked = 0;
    for (i, r) in records.iter().enumerate() {
        let Some(dest) = r["dest_tn"].as_str() else {
            continue;
        };
        let at = r["observed_at"].as_str().expect("observed_at");
        let t = Timestamp::parse_rfc3339(at).expect("time").0;
        let same = |c: &&&Value, window_us: i64, orig: Option<&str>| {
            let ct = Timestamp::parse_rfc3339(c["observed_at"].as_str().unwrap_or("")).map(|t| t.0);
            ct.is_some_and(|ct| (ct - t).abs() <= window_us)
                && orig.is_none_or(|o| c["orig_tn"].as_str() == Some(o))
        };
        let expect = |window_us: i64, orig: Option<&str>| {
            in_order(
                by_dest[dest]
                    .iter()
                    .filter(|c| same(c, window_us, orig))
                    .map(|c| (*c).clone())
                    .collect(),
            )
        };
        let got = in_order(calls(&reader, &query(None, dest, at, "0")));
        assert_eq!(got, expect(0, None), "record {i} at its own time");
        let exact = got.iter().find(|c| c["record_id"] == r["record_id"]);
        assert_eq!(
            exact.map(|c| serde_json::to_string(c).ok()),
            Some(serde_json::to_string(r).ok()),
            "record {i}: JSON differs"
        );
        if let Some(orig) = r["orig_tn"].as_str() {
            let got = in_order(calls(&reader, &query(Some(orig), dest, at, "0")));
            assert_eq!(got, expect(0, Some(orig)), "record {i} with orig");
        }
        // A wider window on every 50th record (each answer is a few hundred calls at most).
        if i % 50 == 0 {
            let got = in_order(calls(&reader, &query(None, dest, at, "600")));
            assert_eq!(got, expect(600_000_000, None), "record {i}, 600 s window");
        }
        checked += 1;
    }
    checked
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("records")
        .lines()
        .map(|l| serde_json::from_str(l).expect("record line"))
        .collect()
}

#[test]
fn every_replayed_call_is_answered_exactly_as_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scen = dir.path().join("scenario");
    let made = Command::new(common::bin())
        .args([
            "scenario",
            "--background",
            "1500",
            "--duration-s",
            "400",
            "--out",
        ])
        .arg(&scen)
        .output()
        .expect("run scenario");
    assert!(
        made.status.success(),
        "scenario (needs the openssl CLI): {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let store = dir.path().join("store");
    let out = dir.path().join("records.jsonl");
    let status = Command::new(common::bin())
        .arg("replay")
        .arg("--config")
        .arg(scen.join("sensor.toml"))
        .arg(scen.join("scenario.pcap"))
        .arg(common::pcap("tcp-answered.pcap"))
        .arg(common::pcap("ipv6-answered.pcap"))
        .arg(common::pcap("udp-outcomes.pcap"))
        .arg("--store")
        .arg(&store)
        .arg("--out")
        .arg(&out)
        .arg("-q")
        .status()
        .expect("replay");
    assert!(status.success());
    let records = read_jsonl(&out);
    assert!(records.len() > 5000, "{} records", records.len());
    let signed = records
        .iter()
        .filter(|r| r["shaken"]["verstat"] == "TN-Validation-Passed")
        .count();
    assert!(signed > 1000, "{signed} signed calls");
    assert!(records.iter().any(|r| r["transport"] == "tcp"));
    let checked = assert_same_answers(&store, &records);
    assert!(checked > 5000, "{checked} records checked");
    // No record was kept as JSON: every partition is format 2 only.
    for entry in std::fs::read_dir(&store).expect("store") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("sqlite") {
            continue;
        }
        let db = rusqlite::Connection::open(&path).expect("open");
        let legacy: i64 = db
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'calls'",
                [],
                |r| r.get(0),
            )
            .expect("schema");
        assert_eq!(legacy, 0, "{}", path.display());
    }
}

fn copy_v1(to: &Path) -> Vec<Value> {
    let data = common::repo().join("tests/data/store-v1");
    std::fs::create_dir_all(to).expect("mkdir");
    std::fs::copy(
        data.join("calls-2026-11-29.sqlite"),
        to.join("calls-2026-11-29.sqlite"),
    )
    .expect("copy partition");
    read_jsonl(&data.join("records.jsonl"))
}

fn new_call(id: &str, at: Timestamp, dest: &str) -> CallRecord {
    CallRecord {
        schema: CALL_SCHEMA,
        record_id: id.into(),
        sensor_id: Arc::from("v1"),
        observed_at: at,
        call_id: "after-upgrade@lab".into(),
        transport: Transport::Udp,
        src: Endpoint {
            ip: "127.0.0.1".parse().expect("ip"),
            port: 5060,
        },
        dst: Endpoint {
            ip: "127.0.0.2".parse().expect("ip"),
            port: 5060,
        },
        upstream: Upstream {
            peer: Arc::from("lab"),
            ocn: Some(Arc::from("4321")),
        },
        orig_tn: Some("12025550143".into()),
        dest_tn: Some(dest.into()),
        from_user: Some("+12025550143".into()),
        pai_user: None,
        ruri_user: Some(dest.into()),
        user_agent: None,
        shaken: ShakenResult::default(),
        dialog: DialogOutcome {
            final_code: Some(200),
            answered: true,
            ring_ms: Some(1000),
            duration_ms: Some(2000),
            ended_by: EndedBy::Caller,
            cancelled: false,
            ended_at: Timestamp(at.0 + 3_000_000),
        },
        sdp: None,
        fingerprint: None,
        capture_agent: None,
        trace: None,
    }
}

#[test]
fn format_one_partitions_still_answer_and_take_new_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let records = copy_v1(&store);
    assert_eq!(records.len(), 29);
    assert_eq!(assert_same_answers(&store, &records), 29);

    // The writer of this version on the same partition: a record the old format already has
    // is not stored again; a new one lands beside the old rows and both are answered in order.
    let old = &records[0];
    let dest = old["dest_tn"].as_str().expect("dest");
    let at = Timestamp::parse_rfc3339(old["observed_at"].as_str().expect("at")).expect("t");
    let mut again = new_call(old["record_id"].as_str().expect("id"), at, dest);
    again.call_id = old["call_id"].as_str().expect("cid").into();
    let fresh = new_call("v1:after-upgrade", Timestamp(at.0 + 1), dest);
    let mut w = Store::open(StoreConfig::new(&store)).expect("open store");
    assert_eq!(w.insert_batch(&[again]).expect("insert"), 0);
    assert_eq!(
        w.insert_batch(std::slice::from_ref(&fresh))
            .expect("insert"),
        1
    );
    assert_eq!(
        w.insert_batch(std::slice::from_ref(&fresh))
            .expect("insert"),
        0
    );
    drop(w);

    let reader = Reader::open(&store).expect("reader");
    let at_s = old["observed_at"].as_str().expect("at");
    let got = calls(&reader, &query(None, dest, at_s, "1"));
    let ids: Vec<&str> = got.iter().filter_map(|c| c["record_id"].as_str()).collect();
    let pos_old = ids.iter().position(|i| *i == old["record_id"]);
    let pos_new = ids.iter().position(|i| *i == "v1:after-upgrade");
    assert!(
        pos_old.is_some() && pos_new.is_some() && pos_old < pos_new,
        "{ids:?}"
    );
    assert_eq!(
        ids.iter().filter(|i| **i == old["record_id"]).count(),
        1,
        "{ids:?}"
    );
    let expect = serde_json::to_value(&fresh).expect("json");
    assert_eq!(got[pos_new.unwrap_or(0)], expect);
    // Old and new rows answer together.
    let mut all = records.clone();
    all.push(expect);
    assert_eq!(assert_same_answers(&store, &all), 30);
    let db = rusqlite::Connection::open(store.join("calls-2026-11-29.sqlite")).expect("open");
    let ok: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(ok, "ok");
}

#[test]
fn calls_beyond_the_slots_of_one_microsecond_and_times_before_1970_are_kept_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let at = Timestamp::parse_rfc3339("2026-11-29T10:00:00.000001Z").expect("t");
    let dest = "13035550177";
    let burst: Vec<CallRecord> = (0..40)
        .map(|i| new_call(&format!("v1:burst-{i}"), at, dest))
        .collect();
    let early = new_call("v1:before-1970", Timestamp(-5), dest);
    let mut w = Store::open(StoreConfig::new(dir.path())).expect("open store");
    assert_eq!(w.insert_batch(&burst[..25]).expect("insert"), 25);
    assert_eq!(w.insert_batch(&burst).expect("insert"), 15);
    assert_eq!(
        w.insert_batch(std::slice::from_ref(&early))
            .expect("insert"),
        1
    );
    assert_eq!(
        w.insert_batch(std::slice::from_ref(&early))
            .expect("insert"),
        0
    );
    drop(w);
    let reader = Reader::open(dir.path()).expect("reader");
    let got = calls(
        &reader,
        &query(None, dest, "2026-11-29T10:00:00.000001Z", "0"),
    );
    let want: Vec<Value> = burst
        .iter()
        .map(|r| serde_json::to_value(r).expect("json"))
        .collect();
    // Stored order: the first 16 in the µs's slots, the rest beside them, all in order.
    assert_eq!(got, want);
    let got = calls(&reader, &query(None, dest, "1970-01-01T00:00:00Z", "1"));
    assert_eq!(got, [serde_json::to_value(&early).expect("json")]);
}

#[test]
fn a_full_dictionary_stores_strings_literally_counts_them_and_still_answers() {
    use shaken_sensor::traceback::codec::DICT_MAX;
    let dir = tempfile::tempdir().expect("tempdir");
    let at = Timestamp::parse_rfc3339("2026-11-29T10:00:00Z").expect("t");
    let dest = "13035550177";
    // Each call brings a new user agent (a new profile) and a new origid: two dictionary
    // entries a call, so the dictionary fills halfway through.
    let n = DICT_MAX as i64 / 2 + 500;
    let batch: Vec<CallRecord> = (0..n)
        .map(|i| {
            let mut c = new_call(&format!("v1:full-{i}"), Timestamp(at.0 + i * 1000), dest);
            c.user_agent = Some(format!("ua-{i}"));
            c.shaken.origid = Some(format!("origid-{i}"));
            c
        })
        .collect();
    let mut w = Store::open(StoreConfig::new(dir.path())).expect("open store");
    for chunk in batch.chunks(5000) {
        w.insert_batch(chunk).expect("insert");
    }
    assert!(w.literal_strings() >= 500, "{}", w.literal_strings());
    drop(w);
    let reader = Reader::open(dir.path()).expect("reader");
    for r in [&batch[0], &batch[batch.len() / 2], &batch[batch.len() - 1]] {
        let got = calls(
            &reader,
            &query(None, dest, &r.observed_at.to_rfc3339(), "0"),
        );
        assert_eq!(got, [serde_json::to_value(r).expect("json")]);
    }
}

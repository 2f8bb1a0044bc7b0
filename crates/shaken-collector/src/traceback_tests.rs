//! Tests of the traceback rule and walk on a real in-memory SQLite database (records stored
//! through `Db::store`, as ingest does), with the clock given per call.

use super::*;
use crate::db::{Db, Incoming};
use crate::providers::NewProvider;
use std::path::Path;

#[test]
fn the_rule_names_the_next_hop_the_origin_or_the_gateway() {
    let reg = |o: &str| (o == "7404").then_some(4);
    assert_eq!(
        classify(Some("transit-charlie"), Some("7404"), reg),
        Upstream::Peer(4)
    );
    // No peer (the sensor writes "unknown" or nothing): the provider's customer.
    assert_eq!(classify(Some("unknown"), None, reg), Upstream::Customer);
    assert_eq!(classify(None, Some(""), reg), Upstream::Customer);
    // A named peer without an OCN: a foreign carrier behind this gateway.
    assert_eq!(
        classify(Some("foreign-carrier"), None, reg),
        Upstream::Foreign
    );
    assert_eq!(
        classify(Some("x"), Some("9999"), reg),
        Upstream::Unregistered("9999".into())
    );
}

struct Net {
    db: Db,
    ids: Vec<i64>,
}

/// term (sensor) <- mid (sensor) <- dark (no sensor) <- orig (sensor).
fn net() -> Net {
    let mut db = Db::open(Path::new(":memory:")).unwrap();
    let mut ids = Vec::new();
    for (name, ocn) in [
        ("term", "1001"),
        ("mid", "1002"),
        ("dark", "1003"),
        ("orig", "1004"),
    ] {
        ids.push(
            db.add_provider(&NewProvider {
                name: name.into(),
                ocns: vec![ocn.into()],
                ..Default::default()
            })
            .unwrap(),
        );
        if name != "dark" {
            db.issue_token(name, name).unwrap();
        }
    }
    Net { db, ids }
}

fn rec(sensor: &str, n: u32, at: &str, peer: &str, ocn: Option<&str>, pp: &str) -> Incoming {
    let body = json_record(sensor, n, at, peer, ocn, pp);
    Incoming {
        record_id: format!("{sensor}:{n}"),
        kind: "call",
        sensor_id: Some(sensor.into()),
        body,
    }
}

fn json_record(sensor: &str, n: u32, at: &str, peer: &str, ocn: Option<&str>, pp: &str) -> String {
    serde_json::json!({
        "schema": "shaken-sensor/call/v1", "record_id": format!("{sensor}:{n}"),
        "sensor_id": sensor, "observed_at": at, "orig_tn": "12125550100",
        "dest_tn": "13125550199", "upstream": {"peer": peer, "ocn": ocn},
        "shaken": {"spc": "100A", "origid": pp, "iat": 1}
    })
    .to_string()
}

fn subject() -> Subject {
    Subject {
        orig: "12125550100".into(),
        dest: "13125550199".into(),
        at: "2026-11-18T11:00:00Z".into(),
    }
}

const T0: i64 = 1_795_000_000_000_000;

#[test]
fn a_chain_stops_at_the_dark_provider_continues_on_its_answer_and_prefers_the_passport() {
    let mut n = net();
    n.db.store(
        None,
        "d",
        &[
            rec("term", 1, "2026-11-18T11:00:01Z", "mid", Some("1002"), "p1"),
            // Two records of the same orig/dest at mid: the nearer in time carries another
            // PASSporT; the exact match wins.
            rec(
                "mid",
                1,
                "2026-11-18T11:00:00.500Z",
                "dark",
                Some("1003"),
                "p1",
            ),
            rec(
                "mid",
                2,
                "2026-11-18T11:00:00.900Z",
                "dark",
                Some("1003"),
                "p2",
            ),
            rec("orig", 1, "2026-11-18T10:59:59.900Z", "unknown", None, "p1"),
            // Out of the window: no evidence.
            rec("orig", 2, "2026-11-18T11:01:00Z", "unknown", None, "p1"),
        ],
    )
    .unwrap();
    let tuning = Tuning {
        window_us: 5_000_000,
        deadline_us: 60_000_000,
    };
    let c = n.db.conn();
    let id = start(c, &subject(), tuning, Timestamp(T0)).unwrap();
    let v = get(c, id, Timestamp(T0)).unwrap();
    assert_eq!(v.status, "awaiting");
    let hops: Vec<(&str, &str, Option<&str>)> = v
        .hops
        .iter()
        .map(|h| (h.provider.as_str(), h.role.as_str(), h.record_id.as_deref()))
        .collect();
    assert_eq!(
        hops,
        [
            ("term", "terminating", Some("term:1")),
            ("mid", "intermediate", Some("mid:1")),
            ("dark", "awaiting", None)
        ]
    );
    let rid = v.awaiting.as_ref().unwrap().id;
    // Only dark may answer; an OCN is required.
    let a = Answer {
        upstream_ocn: Some("1004".into()),
        origin: None,
    };
    assert!(matches!(
        answer(c, rid, Some(n.ids[0]), &a, tuning, Timestamp(T0)),
        Err(TracebackError::NotYours)
    ));
    let bad = Answer {
        upstream_ocn: None,
        origin: Some("elsewhere".into()),
    };
    assert!(matches!(
        answer(c, rid, Some(n.ids[2]), &bad, tuning, Timestamp(T0)),
        Err(TracebackError::Invalid { .. })
    ));
    let empty = Answer {
        upstream_ocn: Some(String::new()),
        origin: None,
    };
    assert!(matches!(
        answer(c, rid, Some(n.ids[2]), &empty, tuning, Timestamp(T0)),
        Err(TracebackError::Invalid {
            field: "upstream_ocn",
            ..
        })
    ));
    answer(c, rid, Some(n.ids[2]), &a, tuning, Timestamp(T0 + 1)).unwrap();
    let v = get(c, id, Timestamp(T0 + 2)).unwrap();
    assert_eq!(v.status, "complete");
    assert_eq!(v.origin.as_deref(), Some("orig"));
    assert_eq!(v.origin_kind.as_deref(), Some("customer"));
    assert_eq!(v.hops[2].role, "intermediate");
    assert_eq!(v.hops[2].answer.as_deref(), Some("upstream_ocn 1004"));
    assert_eq!(v.hops[3].role, "originating");
    assert_eq!(v.hops[3].record_id.as_deref(), Some("orig:1"));
    assert!(matches!(
        answer(c, rid, Some(n.ids[2]), &a, tuning, Timestamp(T0 + 3)),
        Err(TracebackError::Answered)
    ));
}

#[test]
fn a_missed_deadline_marks_the_hop_non_responsive_by_the_clock_given() {
    let mut n = net();
    n.db.store(
        None,
        "d",
        &[rec(
            "term",
            1,
            "2026-11-18T11:00:01Z",
            "dark",
            Some("1003"),
            "p",
        )],
    )
    .unwrap();
    let tuning = Tuning {
        window_us: 5_000_000,
        deadline_us: 10_000_000,
    };
    let c = n.db.conn();
    let id = start(c, &subject(), tuning, Timestamp(T0)).unwrap();
    assert_eq!(
        get(c, id, Timestamp(T0 + 10_000_000)).unwrap().status,
        "awaiting"
    );
    let v = get(c, id, Timestamp(T0 + 10_000_001)).unwrap();
    assert_eq!(v.status, "non_responsive");
    assert_eq!(v.hops[1].role, "non_responsive");
    let r = requests(c, Some(n.ids[2]), true, Timestamp(T0 + 10_000_001)).unwrap();
    assert_eq!(r[0].status, "non_responsive");
    assert!(
        requests(c, Some(n.ids[2]), false, Timestamp(T0 + 10_000_001))
            .unwrap()
            .is_empty()
    );
    // A late answer still continues the chain, and is kept as late.
    let a = Answer {
        upstream_ocn: None,
        origin: Some("customer".into()),
    };
    answer(
        c,
        r[0].id,
        Some(n.ids[2]),
        &a,
        tuning,
        Timestamp(T0 + 20_000_000),
    )
    .unwrap();
    let v = get(c, id, Timestamp(T0 + 20_000_000)).unwrap();
    assert_eq!(
        (v.status.as_str(), v.origin.as_deref()),
        ("complete", Some("dark"))
    );
    let r = requests(c, None, true, Timestamp(T0 + 20_000_000)).unwrap();
    assert_eq!(r[0].status, "answered_late");
}

#[test]
fn a_call_nobody_recorded_and_bad_subjects_are_refused_and_migration_runs_once() {
    let mut n = net();
    let c = n.db.conn();
    assert!(matches!(
        start(c, &subject(), Tuning::default(), Timestamp(T0)),
        Err(TracebackError::NoRecord { .. })
    ));
    let mut s = subject();
    s.orig = "+12125550100".into();
    assert!(matches!(
        start(c, &s, Tuning::default(), Timestamp(T0)),
        Err(TracebackError::Invalid { field: "orig", .. })
    ));
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    migrate(c).unwrap();
}

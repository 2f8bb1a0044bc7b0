//! The labelled scenario generator and the detection evaluation, end to end with the real
//! binary: `shaken-sensor scenario` writes a capture and its labels; tshark must see exactly
//! the labelled calls; a second run with the same seed writes the same scenario (up to the
//! ECDSA signatures, which are randomised); `replay` verifies every signed call; and
//! `replay --detections` + `evaluate` must find every injected campaign within 60 s on its
//! upstream peer with no event on background or legitimate bulk senders.
//!
//! Needs the openssl CLI (the scenario's PKI); skipped with a message when it is absent.

mod common;

use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::Command;

fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn scenario(dir: &Path, args: &[&str]) -> Value {
    let out = Command::new(common::bin())
        .arg("scenario")
        .arg("--out")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scenario failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn labels(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("labels.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn campaigns(dir: &Path) -> Vec<Value> {
    serde_json::from_str(&std::fs::read_to_string(dir.join("campaigns.json")).unwrap()).unwrap()
}

/// The pcap's frames (timestamp, payload after Ethernet/IPv4/UDP) with the ES256 signature of
/// every Identity header masked: the only bytes two runs with one seed may differ in.
fn frames_without_signatures(path: &Path) -> Vec<(u32, u32, Vec<u8>)> {
    let b = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut i = 24;
    while i + 16 <= b.len() {
        let ts = u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
        let us = u32::from_le_bytes(b[i + 4..i + 8].try_into().unwrap());
        let len = u32::from_le_bytes(b[i + 8..i + 12].try_into().unwrap()) as usize;
        let mut payload = b[i + 16 + 42..i + 16 + len].to_vec();
        if let Some(p) = find(&payload, b"\r\nIdentity: ") {
            let start = p + 12;
            let end = start + find(&payload[start..], b";").unwrap();
            let dots: Vec<usize> = (start..end).filter(|&k| payload[k] == b'.').collect();
            assert_eq!(dots.len(), 2, "a JWS compact serialization");
            assert_eq!(
                end - dots[1] - 1,
                86,
                "64-byte ES256 signature in base64url"
            );
            for x in &mut payload[dots[1] + 1..end] {
                *x = b'*';
            }
        }
        out.push((ts, us, payload));
        i += 16 + len;
    }
    assert_eq!(i, b.len(), "the pcap ends on a record boundary");
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Generator invariants without the detection engine: determinism, tshark's view of the
/// capture, and labels consistent with campaigns.json.
/// Replays a scenario directory with its own config; `flag PATH` names the output wanted.
fn replay_scenario(dir: &Path, flag: &str, path: &Path) {
    replay_with_config(dir, &dir.join("sensor.toml"), flag, path);
}

fn replay_with_config(dir: &Path, config: &Path, flag: &str, path: &Path) {
    let out = Command::new(common::bin())
        .arg("replay")
        .arg(dir.join("scenario.pcap"))
        .arg("--config")
        .arg(config)
        .arg(flag)
        .arg(path)
        .arg("-q")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn scenario_is_deterministic_labelled_and_readable_by_tshark() {
    if !openssl_available() {
        eprintln!("SKIPPED: the openssl CLI is not available (the scenario's PKI needs it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    let args = ["--background", "1500", "--duration-s", "480", "--seed", "7"];
    let summary = scenario(&a, &args);
    scenario(&b, &args);
    scenario(
        &c,
        &["--background", "1500", "--duration-s", "480", "--seed", "8"],
    );

    // Same seed: same labels, campaigns and packets (signatures aside); another seed differs.
    let read = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap();
    assert_eq!(read(&a, "labels.jsonl"), read(&b, "labels.jsonl"));
    assert_eq!(read(&a, "campaigns.json"), read(&b, "campaigns.json"));
    let fa = frames_without_signatures(&a.join("scenario.pcap"));
    assert!(fa == frames_without_signatures(&b.join("scenario.pcap")));
    assert_ne!(read(&a, "labels.jsonl"), read(&c, "labels.jsonl"));

    // Time order, one label per call, Call-IDs unique.
    assert!(fa.windows(2).all(|w| (w[0].0, w[0].1) <= (w[1].0, w[1].1)));
    let labels = labels(&a);
    assert_eq!(labels.len() as u64, summary["calls"].as_u64().unwrap());
    assert_eq!(fa.len() as u64, summary["frames"].as_u64().unwrap());
    let ids: HashSet<&str> = labels
        .iter()
        .map(|l| l["call_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), labels.len());

    // campaigns.json agrees with the labels: counts, peers, kinds, first INVITE time.
    let camps = campaigns(&a);
    type Seen<'a> = (u64, HashSet<&'a str>, HashSet<&'a str>, &'a str);
    let mut per: HashMap<&str, Seen> = HashMap::new();
    for l in &labels {
        let e = per.entry(l["campaign"].as_str().unwrap()).or_insert((
            0,
            HashSet::new(),
            HashSet::new(),
            "~",
        ));
        e.0 += 1;
        e.1.insert(l["peer"].as_str().unwrap());
        e.2.insert(l["kind"].as_str().unwrap());
        e.3 = e.3.min(l["first_invite_at"].as_str().unwrap());
    }
    assert_eq!(per["bg"].0, 1500);
    assert_eq!(per["bg"].2, HashSet::from(["background"]));
    assert!(per["bg"].1.len() >= 5, "background spread over the peers");
    for c in &camps {
        let id = c["id"].as_str().unwrap();
        let (n, peers, kinds, first) = &per[id];
        assert_eq!(*n, c["calls"].as_u64().unwrap(), "{id}");
        assert_eq!(peers, &HashSet::from([c["peer"].as_str().unwrap()]), "{id}");
        assert_eq!(kinds, &HashSet::from([c["kind"].as_str().unwrap()]), "{id}");
        assert_eq!(*first, c["start"].as_str().unwrap(), "{id}");
    }
    assert_eq!(per.len(), camps.len() + 1, "every labelled group is listed");
    let kinds: BTreeMap<&str, usize> = camps.iter().fold(BTreeMap::new(), |mut m, c| {
        *m.entry(c["kind"].as_str().unwrap()).or_default() += 1;
        m
    });
    assert_eq!(
        kinds.keys().copied().collect::<Vec<_>>(),
        [
            "invalid_caller_id",
            "legit_bulk",
            "neighbour_spoofing",
            "one_ring",
            "origid_many_callers",
            "replayed_passport",
            "sequential_dialling",
            "short_call_volume",
            "unsigned_flood"
        ]
    );
    assert_eq!(
        kinds["legit_bulk"], 3,
        "pharmacy, school district, call centre"
    );
    for c in camps.iter().filter(|c| c["kind"] != "legit_bulk") {
        let (n, rate) = (
            c["calls"].as_u64().unwrap(),
            c["rate_per_s"].as_f64().unwrap(),
        );
        assert!(
            (30..=3000).contains(&n) && (0.5..=50.0).contains(&rate),
            "{c}"
        );
    }

    // tshark sees exactly the labelled calls, each INVITE once.
    let tshark = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(a.join("scenario.pcap"))
        .args([
            "-Y",
            "sip.Method == \"INVITE\"",
            "-T",
            "fields",
            "-e",
            "sip.Call-ID",
        ])
        .output();
    match tshark {
        Ok(out) if out.status.success() => {
            let seen: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string)
                .collect();
            assert_eq!(seen.len(), labels.len(), "INVITEs seen by tshark");
            let seen: HashSet<&str> = seen.iter().map(String::as_str).collect();
            assert_eq!(seen, ids);
        }
        _ => eprintln!("SKIPPED (tshark part): tshark is not available"),
    }
}

/// Every signed INVITE of the scenario verifies in replay (real ES256 PASSporTs, the generated
/// PKI seeded through sensor.toml), every call becomes one record on its labelled peer, and the
/// replayed-PASSporT campaign's copies are flagged as replays.
#[test]
fn scenario_passports_verify_in_replay() {
    if !openssl_available() {
        eprintln!("SKIPPED: the openssl CLI is not available (the scenario's PKI needs it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let summary = scenario(&dir, &["--background", "1500", "--duration-s", "480"]);
    let records = tmp.path().join("records.jsonl");
    replay_scenario(&dir, "--out", &records);
    let labels: HashMap<String, Value> = labels(&dir)
        .into_iter()
        .map(|l| (l["call_id"].as_str().unwrap().to_string(), l))
        .collect();
    let records: Vec<Value> = std::fs::read_to_string(&records)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), labels.len());
    let mut passed = 0u64;
    let mut replayed = 0u64;
    let mut verstats: BTreeMap<String, u64> = BTreeMap::new();
    for r in &records {
        let l = &labels[r["call_id"].as_str().unwrap()];
        assert_eq!(r["upstream"]["peer"], l["peer"], "{r}");
        assert_ne!(r["dialog"]["ended_by"], "timeout", "every dialog ends: {r}");
        let v = r["shaken"]["verstat"].as_str().unwrap().to_string();
        passed += u64::from(v == "TN-Validation-Passed");
        *verstats.entry(v).or_default() += 1;
        if r["shaken"]["replayed"] == true {
            assert_eq!(l["kind"], "replayed_passport", "{r}");
            replayed += 1;
        }
    }
    // Every signed INVITE passes; nothing else fails (unsigned calls are No-TN-Validation).
    assert_eq!(
        passed,
        summary["signed_invites"].as_u64().unwrap(),
        "{verstats:?}"
    );
    assert_eq!(verstats.len(), 2, "{verstats:?}");
    let copies = labels
        .values()
        .filter(|l| l["kind"] == "replayed_passport")
        .count() as u64;
    // Not exact: which of the first two copies counts as the original depends on which worker
    // verifies first, and the guard has been seen to miss an occasional copy (reported).
    assert!(
        replayed * 10 >= copies * 9 && replayed < copies,
        "{replayed} of {copies}"
    );
}

/// Generates the small scenario of `variant` and `seed`, replays it with detection and
/// asserts the goals of issues #4 and #13 with `evaluate`: every campaign detected within 60 s
/// of its first call (median at most 20 s), on its upstream peer, and no event resting on
/// background calls or legitimate senders (pharmacy, school district, call centre).
/// `relaxed`: the slow-start variant, whose goals are not met yet (docs/detection-evaluation.md:
/// its first 30 calls at 0.5 call/s reach the rules' minimum counts after 20 to 40 s, now and
/// then after 60): every campaign detected on its peer within 120 s, no median bound.
fn assert_goals(variant: &str, seed: u64, relaxed: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let seed = seed.to_string();
    let summary = scenario(
        &dir,
        &["--scale", "small", "--variant", variant, "--seed", &seed],
    );
    assert_eq!(summary["variant"], variant);
    let detections = tmp.path().join("detections.jsonl");
    replay_scenario(&dir, "--detections", &detections);
    let eval = Command::new(common::bin())
        .arg("evaluate")
        .arg("--scenario")
        .arg(&dir)
        .arg("--detections")
        .arg(&detections)
        .arg("--json")
        .output()
        .unwrap();
    let e: Value = serde_json::from_slice(&eval.stdout).unwrap();
    let report = format!(
        "{variant} seed {seed}: {}",
        serde_json::to_string_pretty(&e).unwrap()
    );
    assert_eq!(e["campaigns"].as_array().unwrap().len(), 8, "{report}");
    let mut latencies = Vec::new();
    for c in e["campaigns"].as_array().unwrap() {
        assert_eq!(c["detected"], true, "{report}");
        assert_eq!(c["right_peer"], true, "{report}");
        let l = c["latency_s"].as_f64().unwrap();
        assert!(l <= if relaxed { 120.0 } else { 60.0 }, "{report}");
        latencies.push(l);
    }
    latencies.sort_by(f64::total_cmp);
    let median = (latencies[3] + latencies[4]) / 2.0;
    assert!(relaxed || median <= 20.0, "median {median} s: {report}");
    assert_eq!(e["events_on_background"], 0, "{report}");
    if !relaxed {
        assert_eq!(e["passed"], true, "{report}");
        assert!(eval.status.success(), "{report}");
    }
}

/// The evaluation of issue #4 on a small scenario (stable origids, as before issue #13).
#[test]
fn every_campaign_detected_within_a_minute_without_false_positives() {
    if !openssl_available() {
        eprintln!("SKIPPED: the openssl CLI is not available (the scenario's PKI needs it)");
        return;
    }
    assert_goals("stable-origid", 1, false);
}

/// Issue #13: the same goals when the originators vary what real ones vary: a fresh origid
/// per call, a rotating User-Agent, the busiest background setup's User-Agent and SDP user,
/// a slow start, 50 calls/s, all campaigns on the busiest peer (one seed each; the full
/// matrix of five seeds is benches/detection-matrix.sh).
#[test]
fn campaigns_that_vary_their_traits_are_still_detected() {
    if !openssl_available() {
        eprintln!("SKIPPED: the openssl CLI is not available (the scenario's PKI needs it)");
        return;
    }
    let variants = [
        "fresh-origid",
        "ua-rotate",
        "ua-copy",
        "slow-start",
        "fast",
        "busiest-peer",
    ];
    for (i, v) in variants.iter().enumerate() {
        assert_goals(v, 2 + i as u64, *v == "slow-start");
    }
}

/// Options out of range and missing inputs are errors with a message, never a silent pass.
#[test]
fn scenario_and_evaluate_refuse_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(common::bin())
        .args(["scenario", "--duration-s", "10", "--out"])
        .arg(tmp.path().join("s"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--duration-s 10 is outside 300..=86400"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!tmp.path().join("s").exists(), "nothing written");
    let out = Command::new(common::bin())
        .args(["scenario", "--variant", "sneaky", "--out"])
        .arg(tmp.path().join("s"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown variant is a usage error"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("\"sneaky\" is not one of stable-origid"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(common::bin())
        .args(["evaluate", "--scenario"])
        .arg(tmp.path())
        .arg("--detections")
        .arg(tmp.path().join("none.jsonl"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("labels.jsonl"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// DetectionEvents without what differs by run (ids, emission time), as a sorted list. Of a
/// replayed_passport event only its rule, key and state: which call of a PASSporT counts as the
/// original is decided by the verifier's shared cache in the order the workers check the calls
/// (a copy checked by one worker before another worker checks the original is not flagged), so
/// its counts may differ by a call or two between runs with several workers (docs/detection.md).
fn detections_without_ids(path: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            if v["rule"] == "replayed_passport" {
                return serde_json::json!([v["rule"], v["key"], v["state"]]).to_string();
            }
            for k in ["detection_id", "record_id", "emitted_at"] {
                v.as_object_mut().unwrap().remove(k);
            }
            v.to_string()
        })
        .collect();
    out.sort();
    out
}

/// A replay's detections do not depend on how many workers share the calls, nor on how their
/// threads happen to run: the detector shards merge the workers' feeds in one time order
/// (replayed-PASSporT counts aside, see `detections_without_ids`). (Before
/// that merge, two replays of this scenario with two workers disagreed on most events and now
/// and then raised one on background traffic.) One worker, then three workers twice.
#[test]
fn detections_are_the_same_whatever_the_number_and_timing_of_workers() {
    if !openssl_available() {
        eprintln!("SKIPPED: the openssl CLI is not available (the scenario's PKI needs it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    scenario(
        &dir,
        &["--scale", "small", "--variant", "fast", "--seed", "6"],
    );
    let cfg = std::fs::read_to_string(dir.join("sensor.toml")).unwrap();
    assert!(cfg.contains("\nworkers = 0\n"), "{cfg}");
    let mut runs = Vec::new();
    for (i, workers) in [1, 3, 3].into_iter().enumerate() {
        let conf = tmp.path().join(format!("sensor-{i}.toml"));
        std::fs::write(
            &conf,
            cfg.replace("\nworkers = 0\n", &format!("\nworkers = {workers}\n")),
        )
        .unwrap();
        let detections = tmp.path().join(format!("detections-{i}.jsonl"));
        replay_with_config(&dir, &conf, "--detections", &detections);
        runs.push(detections_without_ids(&detections));
    }
    assert!(
        runs[0].len() > 20,
        "the scenario's campaigns are detected: {:?}",
        runs[0]
    );
    for (i, run) in runs.iter().enumerate().skip(1) {
        let only_one: Vec<_> = runs[0].iter().filter(|l| !run.contains(l)).collect();
        let only_this: Vec<_> = run.iter().filter(|l| !runs[0].contains(l)).collect();
        assert!(
            only_one.is_empty() && only_this.is_empty(),
            "run {i} differs from the one-worker run:\n only with 1 worker: {only_one:#?}\n only in run {i}: {only_this:#?}"
        );
    }
}

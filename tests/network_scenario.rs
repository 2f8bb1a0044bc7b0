//! The multi-carrier network scenario (`shaken-sensor scenario --network`), end to end with
//! the real binary, openssl, tshark and the real sensor: the same seed writes the same bytes;
//! tshark reads every provider's capture without a malformed packet and sees exactly the legs
//! the ground truth gives that provider (Call-IDs and interconnect addresses); each capture
//! replayed through `shaken-sensor replay` with its own sensor.toml gives one CallRecord per
//! leg whose upstream peer and verification (signed, kept, re-signed, dropped, none) are the
//! ground truth's for that hop; and every campaign is detected by each sensor on its route.
//!
//! Needs the openssl CLI (the scenario's PKI; skipped with a message when absent) and tshark
//! (installed by .ci/run).

mod common;

use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn network(dir: &Path, seed: &str) -> Value {
    let out = Command::new(common::bin())
        .args(["scenario", "--network", "--seed", seed, "--out"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scenario --network failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

fn tshark(pcap: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"])
        .arg(pcap)
        .args(["-Y", filter, "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd
        .output()
        .expect("tshark is needed by this test (.ci/run installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// The sensor providers' names, from providers.json.
fn sensors(dir: &Path) -> Vec<String> {
    json(&dir.join("providers.json"))
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["has_sensor"] == true)
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

/// (provider, Call-ID) -> (call, hop) over the ground truth.
fn hop_index(calls: &[Value]) -> HashMap<(String, String), (&Value, &Value)> {
    let mut m = HashMap::new();
    for c in calls {
        for h in c["hops"].as_array().unwrap() {
            let key = (
                h["provider"].as_str().unwrap().to_string(),
                h["call_id"].as_str().unwrap().to_string(),
            );
            assert!(
                m.insert(key, (c, h)).is_none(),
                "a Call-ID once per provider"
            );
        }
    }
    m
}

#[test]
fn network_scenario_is_deterministic_and_consistent_on_the_wire() {
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
    let summary = network(&a, "5");
    network(&b, "5");
    network(&c, "6");

    // Same seed, same bytes: every file but the certificates (openssl's CA signatures are
    // random) and the absolute paths in the sensor.toml files.
    let listing = files(&a);
    assert_eq!(listing, files(&b));
    let mut compared = 0;
    for f in &listing {
        let name = f.to_string_lossy();
        if name.starts_with("certs/") && !name.ends_with(".key.der") {
            continue;
        }
        let (x, y) = (
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
        );
        if name.ends_with("sensor.toml") {
            let x = String::from_utf8(x)
                .unwrap()
                .replace(&*a.to_string_lossy(), "D");
            let y = String::from_utf8(y)
                .unwrap()
                .replace(&*b.to_string_lossy(), "D");
            assert_eq!(x, y, "{name}");
        } else {
            assert!(x == y, "{name} differs between two runs with one seed");
        }
        compared += 1;
    }
    assert!(compared >= 8 * 2 + 4 + 9, "{compared} files compared");
    let calls_a = std::fs::read(a.join("calls.jsonl")).unwrap();
    assert_ne!(calls_a, std::fs::read(c.join("calls.jsonl")).unwrap());
    assert_ne!(
        std::fs::read(a.join("providers/transit-charlie/edge.pcap")).unwrap(),
        std::fs::read(c.join("providers/transit-charlie/edge.pcap")).unwrap()
    );

    // The graph: six or more providers, every role, one without a sensor and no capture.
    let providers = json(&a.join("providers.json"));
    let providers = providers.as_array().unwrap();
    assert!(providers.len() >= 6);
    let roles: HashSet<&str> = providers
        .iter()
        .map(|p| p["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        HashSet::from(["originating", "gateway", "intermediate", "terminating"])
    );
    let blind: Vec<&str> = providers
        .iter()
        .filter(|p| p["has_sensor"] == false)
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(blind.len(), 1);
    assert!(!a.join("providers").join(blind[0]).exists());
    let ocns: HashSet<&str> = providers
        .iter()
        .map(|p| p["ocn"].as_str().unwrap())
        .collect();
    assert_eq!(ocns.len(), providers.len());

    let calls = jsonl(&a.join("calls.jsonl"));
    assert_eq!(calls.len() as u64, summary["calls"].as_u64().unwrap());
    let index = hop_index(&calls);
    // Every hop's upstream is the previous hop's provider and its downstream the next one.
    for c in &calls {
        let hops = c["hops"].as_array().unwrap();
        let route: Vec<&str> = c["route"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        assert_eq!(hops.len(), route.len());
        assert_eq!(c["origin"], route[0]);
        for (k, h) in hops.iter().enumerate() {
            assert_eq!(h["provider"], route[k]);
            let up = if k == 0 {
                Value::Null
            } else {
                route[k - 1].into()
            };
            let down = route.get(k + 1).map_or(Value::Null, |&d| d.into());
            assert_eq!(h["upstream"], up);
            assert_eq!(h["downstream"], down);
            if k > 0 {
                assert!(h["invite_at"].as_str() > hops[k - 1]["invite_at"].as_str());
            }
        }
    }

    // tshark: no malformed packet in any capture, and exactly the ground truth's legs for
    // that provider: each INVITE's Call-ID once, from the hop's sender to its receiver.
    for name in sensors(&a) {
        let pcap = a.join("providers").join(&name).join("edge.pcap");
        let bad = tshark(
            &pcap,
            "_ws.malformed || _ws.expert.severity >= \"error\"",
            &["frame.number"],
        );
        assert!(
            bad.is_empty(),
            "{name}: malformed frames {:?}",
            &bad[..bad.len().min(5)]
        );
        let sip = tshark(
            &pcap,
            "sip",
            &["sip.Method", "sip.Call-ID", "ip.src", "ip.dst"],
        );
        let edge = summary["edges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["provider"] == name.as_str())
            .unwrap();
        assert_eq!(
            sip.len() as u64,
            edge["frames"].as_u64().unwrap(),
            "{name}: every frame is SIP"
        );
        let invites: Vec<&[String]> = sip
            .iter()
            .filter(|r| r[0] == "INVITE")
            .map(|r| &r[1..])
            .collect();
        let expected: HashSet<&String> = index
            .keys()
            .filter(|(p, _)| *p == name)
            .map(|(_, id)| id)
            .collect();
        assert_eq!(invites.len(), expected.len(), "{name}: one INVITE per leg");
        for row in &invites {
            let (_, h) = index
                .get(&(name.clone(), row[0].clone()))
                .unwrap_or_else(|| panic!("{name}: INVITE {} is in no hop", row[0]));
            assert_eq!(h["src"], row[1].as_str(), "{name} {}", row[0]);
            assert_eq!(h["dst"], row[2].as_str(), "{name} {}", row[0]);
        }
    }
}

/// Call-ID -> Identity header value (None when absent) of every INVITE in a capture written
/// by the generator (Ethernet/IPv4/UDP, one SIP message per frame).
fn invite_identities(pcap: &Path) -> HashMap<String, Option<String>> {
    let b = std::fs::read(pcap).unwrap();
    let mut out = HashMap::new();
    let mut i = 24;
    while i + 16 <= b.len() {
        let len = u32::from_le_bytes(b[i + 8..i + 12].try_into().unwrap()) as usize;
        let sip = String::from_utf8_lossy(&b[i + 16 + 42..i + 16 + len]).to_string();
        i += 16 + len;
        if !sip.starts_with("INVITE ") {
            continue;
        }
        let header = |name: &str| {
            sip.split("\r\n")
                .find_map(|l| l.strip_prefix(name).map(str::to_string))
        };
        let id = header("Call-ID: ").expect("an INVITE has a Call-ID");
        assert!(out.insert(id, header("Identity: ")).is_none());
    }
    assert_eq!(i, b.len(), "the capture ends on a record boundary");
    out
}

/// Replays one provider's capture with its sensor.toml; returns (records, detections).
fn replay(dir: &Path, name: &str, out: &Path) -> (Vec<Value>, Vec<Value>) {
    let p = dir.join("providers").join(name);
    let (records, dets) = (
        out.join(format!("{name}.jsonl")),
        out.join(format!("{name}-det.jsonl")),
    );
    let run = Command::new(common::bin())
        .arg("replay")
        .arg(p.join("edge.pcap"))
        .arg("--config")
        .arg(p.join("sensor.toml"))
        .arg("--out")
        .arg(&records)
        .arg("--detections")
        .arg(&dets)
        .arg("-q")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    (jsonl(&records), jsonl(&dets))
}

#[test]
fn each_sensor_sees_its_hop_and_detects_the_campaigns_on_its_route() {
    if !openssl_available() {
        eprintln!("SKIPPED: the openssl CLI is not available (the scenario's PKI needs it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    network(&dir, "11");
    let calls = jsonl(&dir.join("calls.jsonl"));
    let index = hop_index(&calls);
    let campaigns = json(&dir.join("campaigns.json"));
    let campaigns = campaigns.as_array().unwrap();
    assert!(campaigns.len() >= 3);
    // What the hops of all sensors showed, to check every treatment was exercised.
    let mut treatments: BTreeMap<String, u64> = BTreeMap::new();
    let mut detections: HashMap<String, Vec<Value>> = HashMap::new();
    for name in sensors(&dir) {
        let (records, dets) = replay(&dir, &name, tmp.path());
        let legs = index.keys().filter(|(p, _)| *p == name).count();
        assert_eq!(records.len(), legs, "{name}: one CallRecord per leg");
        for r in &records {
            let id = r["call_id"].as_str().unwrap();
            let (c, h) = index
                .get(&(name.clone(), id.to_string()))
                .unwrap_or_else(|| panic!("{name}: record of {id} is in no hop"));
            // The upstream the platform will follow: the previous provider, with its OCN; a
            // customer is no peer ("unknown"); the gateway's foreign carrier has no OCN.
            let (peer, ocn) = match h["upstream_kind"].as_str().unwrap() {
                "provider" => (h["upstream"].clone(), h["upstream_ocn"].clone()),
                "foreign" => ("foreign-carrier".into(), Value::Null),
                _ => ("unknown".into(), Value::Null),
            };
            assert_eq!(r["upstream"]["peer"], peer, "{name} {id}");
            assert_eq!(r["upstream"]["ocn"], ocn, "{name} {id}");
            assert_eq!(r["src"]["ip"], h["src"], "{name} {id}");
            assert_eq!(r["dst"]["ip"], h["dst"], "{name} {id}");
            assert_eq!(r["orig_tn"], c["orig_tn"], "{name} {id}");
            assert_eq!(r["dest_tn"], c["dest_tn"], "{name} {id}");
            let s = &r["shaken"];
            let identity = h["identity"].as_str().unwrap();
            *treatments.entry(identity.to_string()).or_default() += 1;
            match identity {
                "signed" | "kept" | "resigned" => {
                    assert_eq!(
                        s["verstat"], "TN-Validation-Passed",
                        "{name} {id} {identity}"
                    );
                    assert_eq!(s["spc"], h["spc"], "{name} {id} {identity}");
                    assert_eq!(s["attest"], h["attest"], "{name} {id} {identity}");
                    assert_eq!(s["origid"], h["origid"], "{name} {id} {identity}");
                    assert_eq!(s["iat"], h["iat"], "{name} {id} {identity}");
                    assert_eq!(s["replayed"], false, "{name} {id}");
                    assert_eq!(s["identity_headers"], 1, "{name} {id}");
                }
                _ => {
                    assert_ne!(
                        s["verstat"], "TN-Validation-Passed",
                        "{name} {id} {identity}"
                    );
                    assert!(s["spc"].is_null() && s["attest"].is_null(), "{name} {id}");
                    assert_eq!(s["identity_headers"], 0, "{name} {id} {identity}");
                }
            }
        }
        detections.insert(name, dets);
    }
    // On the wire: a kept header is the previous leg's bytes, a re-signed one is not, and
    // none/dropped legs carry none (where both hops have a sensor).
    let wire: HashMap<String, HashMap<String, Option<String>>> = sensors(&dir)
        .into_iter()
        .map(|n| {
            let ids = invite_identities(&dir.join("providers").join(&n).join("edge.pcap"));
            (n, ids)
        })
        .collect();
    let mut kept_compared = 0;
    for c in &calls {
        let hops = c["hops"].as_array().unwrap();
        let at = |k: usize| -> Option<&Option<String>> {
            let h = &hops[k];
            wire.get(h["provider"].as_str().unwrap())
                .map(|m| &m[h["call_id"].as_str().unwrap()])
        };
        for (k, hop) in hops.iter().enumerate() {
            let Some(here) = at(k) else { continue };
            let identity = hop["identity"].as_str().unwrap();
            assert_eq!(
                here.is_some(),
                matches!(identity, "signed" | "kept" | "resigned"),
                "{identity} at {}",
                hop["provider"]
            );
            if let (true, Some(before)) = (k > 0, k.checked_sub(1).and_then(at)) {
                match identity {
                    "kept" => {
                        assert_eq!(here, before, "a kept header is the same bytes");
                        kept_compared += 1;
                    }
                    "resigned" => assert_ne!(here, before),
                    _ => {}
                }
            }
        }
    }
    assert!(kept_compared > 100, "{kept_compared} kept headers compared");

    for t in ["none", "signed", "kept", "resigned", "dropped"] {
        assert!(
            treatments.get(t).copied().unwrap_or(0) > 0,
            "no hop with {t}: {treatments:?}"
        );
    }
    // A re-signed hop names the intermediate's certificate and a lower attestation than the
    // hop before it; a dropped one follows a signed one over the TDM-like interconnect.
    let links = json(&dir.join("interconnects.json"));
    let tdm: Vec<(&str, &str)> = links
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["tdm"] == true)
        .map(|l| (l["from"].as_str().unwrap(), l["to"].as_str().unwrap()))
        .collect();
    assert_eq!(tdm.len(), 1);
    for c in &calls {
        let hops = c["hops"].as_array().unwrap();
        for k in 1..hops.len() {
            match hops[k]["identity"].as_str().unwrap() {
                "resigned" => {
                    assert_ne!(hops[k]["spc"], hops[k - 1]["spc"]);
                    assert!(
                        hops[k]["attest"].as_str() > hops[k - 1]["attest"].as_str()
                            || hops[k]["attest"] == "C"
                    );
                }
                "dropped" => {
                    assert!(!hops[k - 1]["spc"].is_null());
                    assert_eq!(
                        (
                            hops[k]["upstream"].as_str().unwrap(),
                            hops[k]["provider"].as_str().unwrap()
                        ),
                        tdm[0]
                    );
                }
                _ => {}
            }
        }
    }

    // Every campaign is detected at each provider on its route that has a sensor: an opened
    // DetectionEvent there names one of the campaign's Call-IDs of that hop.
    for camp in campaigns {
        let id = camp["id"].as_str().unwrap();
        let mut seen_at = 0;
        for p in camp["route"].as_array().unwrap() {
            let p = p.as_str().unwrap();
            let Some(dets) = detections.get(p) else {
                continue;
            };
            let ids: HashSet<&str> = calls
                .iter()
                .filter(|c| c["campaign"] == id)
                .flat_map(|c| c["hops"].as_array().unwrap())
                .filter(|h| h["provider"] == p)
                .map(|h| h["call_id"].as_str().unwrap())
                .collect();
            assert!(!ids.is_empty());
            let hit = dets.iter().any(|d| {
                d["state"] == "opened"
                    && d["sample_call_ids"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|s| ids.contains(s.as_str().unwrap()))
            });
            assert!(hit, "campaign {id} not detected at {p}");
            seen_at += 1;
        }
        assert!(seen_at >= 3, "{id}: detected at {seen_at} sensors");
    }
}

#[test]
fn network_options_out_of_range_are_refused_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let run = |args: &[&str]| {
        Command::new(common::bin())
            .args(["scenario", "--network", "--out"])
            .arg(&dir)
            .args(args)
            .output()
            .unwrap()
    };
    let short = run(&["--duration-s", "300"]);
    assert!(!short.status.success());
    assert!(
        String::from_utf8_lossy(&short.stderr).contains("--duration-s 300"),
        "{}",
        String::from_utf8_lossy(&short.stderr)
    );
    assert!(!dir.exists(), "nothing written for a refused option");
    let variant = run(&["--variant", "fast"]);
    assert_eq!(
        variant.status.code(),
        Some(2),
        "--variant is the single-sensor scenario's"
    );
    let huge = run(&["--background", "5000000"]);
    assert!(!huge.status.success());
    assert!(String::from_utf8_lossy(&huge.stderr).contains("--background 5000000"));
}

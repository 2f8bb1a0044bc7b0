//! Automated cross-carrier traceback end to end (issue #14 items 3 and 6), real binaries on
//! 127.0.0.1: the network scenario (small, fewer background calls) -> every provider of
//! providers.json registered in a real `shaken-collector` with a token per sensor (and a
//! portal token for the provider without one) -> each provider's edge capture replayed
//! through a real `shaken-sensor` pushing to the collector -> tracebacks of sampled calls from
//! calls.jsonl over HTTP, checked against the ground truth: the chain is the route backwards,
//! each hop's evidence is that provider's record with the right upstream OCN, and it ends at
//! the right origin, or at transit-delta (no sensor) with an open request. The sensorless
//! provider answers through the API and the chain completes; a request left unanswered past
//! its (short) deadline marks the hop non-responsive.
//!
//! Needs the openssl CLI (the scenario's PKI; skipped with a message when absent).

mod common;

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN: &str = "itg-analyst-token";
/// The request deadline the collector is started with (seconds).
const DEADLINE_S: u64 = 8;

struct Collector {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli(db: &Path, args: &[&str]) -> String {
    let out = Command::new(common::collector_bin())
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn call(c: &Collector, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    let (status, text) = common::http(
        c.addr,
        method,
        path,
        Some(token),
        body.as_deref().map(str::as_bytes),
        "",
    );
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}

/// The providers a traceback of `c` must name, terminating first, as far as it can go on its
/// own: up to and including the first provider without a sensor.
fn expected_chain(c: &Value) -> (Vec<&Value>, bool) {
    let hops: Vec<&Value> = c["hops"].as_array().unwrap().iter().rev().collect();
    match hops.iter().position(|h| h["has_sensor"] == false) {
        Some(i) => (hops[..=i].to_vec(), true),
        None => (hops, false),
    }
}

/// Checks the hops of traceback `tb` against the ground-truth hops `want` (terminating first):
/// providers, evidence (the provider's own record) and upstream OCNs.
fn check_record_hops(tb: &Value, want: &[&Value], what: &str) {
    let got = tb["hops"].as_array().unwrap();
    assert!(got.len() >= want.len(), "{what}: {tb}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g["provider"], w["provider"], "{what}: hop {i}: {tb}");
        if w["has_sensor"] == false {
            continue;
        }
        let rid = g["record_id"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: {tb}"));
        assert!(
            rid.starts_with(&format!("{}:", w["provider"].as_str().unwrap())),
            "{what}: hop {i} evidence {rid} is not its provider's record"
        );
        assert_eq!(
            g["upstream_ocn"], w["upstream_ocn"],
            "{what}: hop {i}: {tb}"
        );
        let role = if w["upstream"].is_null() {
            if w["upstream_kind"] == "foreign" {
                "gateway"
            } else {
                "originating"
            }
        } else if i == 0 {
            "terminating"
        } else {
            "intermediate"
        };
        assert_eq!(g["role"], role, "{what}: hop {i}: {tb}");
    }
}

fn check_complete(tb: &Value, c: &Value, what: &str) {
    assert_eq!(tb["status"], "complete", "{what}: {tb}");
    assert_eq!(tb["origin"], c["origin"], "{what}: {tb}");
    assert_eq!(tb["origin_kind"], c["origin_kind"], "{what}: {tb}");
    let route = c["route"].as_array().unwrap();
    assert_eq!(
        tb["hops"].as_array().unwrap().len(),
        route.len(),
        "{what}: {tb}"
    );
}

#[test]
fn campaign_calls_are_traced_across_carriers_and_the_sensorless_hop_answers_or_misses() {
    if !Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("skipped: no openssl CLI (the scenario's PKI needs it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let net = tmp.path().join("net");
    let out = Command::new(common::bin())
        .args([
            "scenario",
            "--network",
            "--seed",
            "5",
            "--background",
            "600",
        ])
        .arg("--out")
        .arg(&net)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let providers: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(net.join("providers.json")).unwrap())
            .unwrap();
    let calls: Vec<Value> = std::fs::read_to_string(net.join("calls.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    // The registry, from providers.json.
    let db = tmp.path().join("itg.sqlite");
    let mut sensor_tokens = Vec::new();
    let mut portal = std::collections::HashMap::new();
    for p in &providers {
        let name = p["name"].as_str().unwrap();
        cli(
            &db,
            &[
                "provider",
                "add",
                "--name",
                name,
                "--ocn",
                p["ocn"].as_str().unwrap(),
                "--rmd",
                p["rmd"].as_str().unwrap(),
            ],
        );
        if p["has_sensor"] == true {
            let t = cli(
                &db,
                &["provider", "token", "--provider", name, "--sensor", name],
            );
            sensor_tokens.push((name.to_string(), t));
        }
        let t = cli(&db, &["provider", "portal-token", "--provider", name]);
        portal.insert(name.to_string(), t);
    }
    assert!(sensor_tokens.len() >= 6, "{sensor_tokens:?}");
    assert!(providers.iter().any(|p| p["has_sensor"] == false));

    let mut child = Command::new(common::collector_bin())
        .args(["--bind", "127.0.0.1:0", "--request-deadline-s"])
        .arg(DEADLINE_S.to_string())
        .arg("--db")
        .arg(&db)
        .env("SHAKEN_COLLECTOR_TOKEN", ADMIN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = common::collector_addr(&mut child);
    let col = Collector { child, addr };

    // Every sensor replays its edge capture and pushes to the collector with its own token.
    for (name, token) in &sensor_tokens {
        let dir = net.join("providers").join(name);
        let mut cfg = std::fs::read_to_string(dir.join("sensor.toml")).unwrap();
        assert!(!cfg.contains("[push]"));
        // Detection on (the default): DetectionEvents go up under the sensor's token too.
        cfg.push_str(&format!(
            "\n[push]\nenabled = true\nurl = \"http://{addr}\"\nallow_http = true\ntoken = \"{token}\"\n\
             spool_dir = \"{}\"\nbackoff_initial_ms = 50\nbackoff_max_ms = 400\ndrain_timeout_s = 60\n",
            dir.join("spool").display()
        ));
        std::fs::write(dir.join("push.toml"), cfg).unwrap();
        let out = Command::new(common::bin())
            .arg("replay")
            .arg(dir.join("edge.pcap"))
            .arg("--config")
            .arg(dir.join("push.toml"))
            .arg("--out")
            .arg(dir.join("records.jsonl"))
            .arg("-q")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Everything the sensors recorded reached the collector.
    let legs = calls
        .iter()
        .flat_map(|c| c["hops"].as_array().unwrap())
        .filter(|h| h["has_sensor"] == true)
        .count();
    let mut stored = 0;
    let mut after = 0;
    loop {
        let (s, page) = call(
            &col,
            "GET",
            &format!("/v1/records?limit=1000&after={after}"),
            ADMIN,
            None,
        );
        assert_eq!(s, 200);
        let n = page["records"].as_array().unwrap().len();
        if n == 0 {
            break;
        }
        stored += n;
        after = page["next"].as_i64().unwrap();
    }
    assert_eq!(stored, legs, "one CallRecord per leg with a sensor");
    // The campaigns the sensors detected arrived too: a DetectionEvent has no sensor_id, and the
    // collector reads its sensor from its detection id for the token's provider check.
    let (s, page) = call(&col, "GET", "/v1/detections?limit=1000", ADMIN, None);
    assert_eq!(s, 200);
    let detections = page["records"].as_array().unwrap();
    assert!(
        !detections.is_empty(),
        "no DetectionEvent reached the collector"
    );
    let (_, metrics) = common::http(col.addr, "GET", "/metrics", None, None, "");
    assert!(
        !metrics.lines().any(
            |l| l.starts_with("shaken_collector_provider_mismatch_total") && !l.ends_with(" 0")
        ),
        "a batch was refused: {metrics}"
    );

    // Samples: five calls of each campaign (spread over it) and five background calls.
    let mut samples: Vec<&Value> = Vec::new();
    let mut kinds: Vec<&str> = calls
        .iter()
        .map(|c| c["campaign"].as_str().unwrap())
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    for k in &kinds {
        let of: Vec<&Value> = calls.iter().filter(|c| c["campaign"] == *k).collect();
        samples.extend((0..5).map(|i| of[i * (of.len() - 1) / 4]));
    }
    assert!(kinds.len() >= 4, "{kinds:?}");

    let mut awaiting = Vec::new();
    let mut complete = 0;
    for c in &samples {
        let what = format!("call {} ({})", c["call"], c["campaign"]);
        let (s, tb) = call(
            &col,
            "POST",
            "/v1/tracebacks",
            ADMIN,
            Some(json!({"orig": c["orig_tn"], "dest": c["dest_tn"], "at": c["first_invite_at"]})),
        );
        assert_eq!(s, 201, "{what}: {tb}");
        let (want, stops) = expected_chain(c);
        check_record_hops(&tb, &want, &what);
        if stops {
            let delta = want.last().unwrap();
            assert_eq!(tb["status"], "awaiting", "{what}: {tb}");
            assert_eq!(tb["hops"].as_array().unwrap().len(), want.len(), "{what}");
            assert_eq!(
                tb["awaiting"]["provider"], delta["provider"],
                "{what}: {tb}"
            );
            assert_eq!(tb["awaiting"]["status"], "open");
        } else {
            check_complete(&tb, c, &what);
            complete += 1;
        }
        // The same chain again, by id.
        let (s, again) = call(
            &col,
            "GET",
            &format!("/v1/tracebacks/{}", tb["id"]),
            ADMIN,
            None,
        );
        assert_eq!((s, &again), (200, &tb), "{what}");
        if stops {
            awaiting.push((*c, tb));
        }
    }
    assert!(complete >= 5, "{complete} complete");
    let (_, metrics) = common::http(col.addr, "GET", "/metrics", None, None, "");
    for (status, n) in [("complete", complete), ("awaiting", awaiting.len())] {
        let line = format!("shaken_collector_tracebacks_total{{status=\"{status}\"}} {n}");
        assert!(metrics.lines().any(|l| l == line), "no {line}: {metrics}");
    }
    assert!(awaiting.len() >= 5, "{} awaiting", awaiting.len());

    // A sensor token cannot start a traceback (only the analyst's token is taken there: 401);
    // a call nobody recorded is 404.
    let (s, _) = call(
        &col,
        "POST",
        "/v1/tracebacks",
        &sensor_tokens[0].1,
        Some(json!({"orig": "12125550100", "dest": "13125550100", "at": "2026-11-18T11:00:00Z"})),
    );
    assert_eq!(s, 401);
    let (s, e) = call(
        &col,
        "POST",
        "/v1/tracebacks",
        ADMIN,
        Some(json!({"orig": "12125550100", "dest": "13125550100", "at": "2026-11-18T11:00:00Z"})),
    );
    assert_eq!(s, 404, "{e}");
    let (s, e) = call(
        &col,
        "POST",
        "/v1/tracebacks",
        ADMIN,
        Some(json!({"orig": "+1212", "dest": "13125550100", "at": "x"})),
    );
    assert_eq!(s, 400, "{e}");

    // transit-delta sees its open requests with its portal token; another provider sees none
    // of them and cannot answer them.
    let delta = awaiting[0].1["awaiting"]["provider"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, open) = call(&col, "GET", "/v1/requests", &portal[&delta], None);
    assert_eq!(s, 200);
    let open_ids: Vec<i64> = open["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    for (_, tb) in &awaiting {
        assert!(open_ids.contains(&tb["awaiting"]["id"].as_i64().unwrap()));
    }
    let (s, other) = call(&col, "GET", "/v1/requests", &portal["term-golf"], None);
    assert_eq!(s, 200);
    assert_eq!(other["requests"].as_array().unwrap().len(), 0, "{other}");

    // Delta answers all but the last one with the upstream the ground truth names.
    let (missed, answered) = awaiting.split_last().unwrap();
    for (c, tb) in answered {
        let what = format!("call {} ({})", c["call"], c["campaign"]);
        let rid = tb["awaiting"]["id"].as_i64().unwrap();
        let hop = c["hops"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["provider"] == delta.as_str())
            .unwrap();
        let path = format!("/v1/requests/{rid}/answer");
        let (s, _) = call(
            &col,
            "POST",
            &path,
            &portal["term-golf"],
            Some(json!({"upstream_ocn": hop["upstream_ocn"]})),
        );
        assert_eq!(s, 403, "{what}: another provider's request");
        let (s, done) = call(
            &col,
            "POST",
            &path,
            &portal[&delta],
            Some(json!({"upstream_ocn": hop["upstream_ocn"]})),
        );
        assert_eq!(s, 200, "{what}: {done}");
        check_complete(&done, c, &what);
        let want: Vec<&Value> = c["hops"].as_array().unwrap().iter().rev().collect();
        check_record_hops(&done, &want, &what);
        let delta_hop = &done["hops"][want.iter().position(|h| h["has_sensor"] == false).unwrap()];
        assert_eq!(
            delta_hop["answer"],
            format!("upstream_ocn {}", hop["upstream_ocn"].as_str().unwrap())
        );
        assert_eq!(delta_hop["upstream_ocn"], hop["upstream_ocn"]);
        let (s, _) = call(
            &col,
            "POST",
            &path,
            &portal[&delta],
            Some(json!({"upstream_ocn": hop["upstream_ocn"]})),
        );
        assert_eq!(s, 409, "{what}: answered twice");
    }

    // The last one is never answered: past its deadline the hop is non-responsive.
    let id = missed.1["id"].as_i64().unwrap();
    let started = Instant::now();
    let tb = loop {
        let (s, tb) = call(&col, "GET", &format!("/v1/tracebacks/{id}"), ADMIN, None);
        assert_eq!(s, 200);
        if tb["status"] != "awaiting" {
            break tb;
        }
        assert!(
            started.elapsed() < Duration::from_secs(DEADLINE_S + 30),
            "still awaiting: {tb}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(tb["status"], "non_responsive", "{tb}");
    let last = tb["hops"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["provider"], delta.as_str());
    assert_eq!(last["role"], "non_responsive");
    let (_, all) = call(&col, "GET", "/v1/requests?all=true", &portal[&delta], None);
    let states: Vec<&str> = all["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        states.iter().filter(|s| **s == "non_responsive").count(),
        1,
        "{all}"
    );
    assert_eq!(
        states.iter().filter(|s| **s == "answered").count(),
        answered.len()
    );

    // The non-cooperative list names delta (and only delta), with the reason, in JSON and CSV.
    let (s, nc) = call(&col, "GET", "/v1/providers/noncooperative", ADMIN, None);
    assert_eq!(s, 200, "{nc}");
    let named: Vec<&Value> = nc["providers"].as_array().unwrap().iter().collect();
    assert_eq!(named.len(), 1, "{nc}");
    assert_eq!(named[0]["provider"], delta.as_str());
    assert_eq!(named[0]["requests_never_answered"], 1);
    assert!(
        named[0]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("missed the deadline"),
        "{nc}"
    );
    let (s, csv) = common::http(
        col.addr,
        "GET",
        "/v1/providers/noncooperative?format=csv",
        Some(ADMIN),
        None,
        "",
    );
    assert_eq!(s, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[1].starts_with(&format!("\"{delta}\",\"7505\",1,0,{},", answered.len())),
        "{csv}"
    );
    // Scorecards by OCN: delta's requests; the campaigns' origins as originators.
    let (s, card) = call(&col, "GET", "/v1/providers/7505/scorecard", ADMIN, None);
    assert_eq!(s, 200, "{card}");
    assert_eq!(card["requests_answered_in_time"], answered.len());
    assert_eq!(card["as_intermediate"], answered.len());
    let bravo = samples
        .iter()
        .filter(|c| c["origin"] == "orig-bravo")
        .count();
    let (_, card) = call(
        &col,
        "GET",
        "/v1/providers/orig-bravo/scorecard",
        ADMIN,
        None,
    );
    assert!(card["as_originator"].as_u64().unwrap() >= 1, "{card}");
    assert!(
        card["as_originator"].as_u64().unwrap() <= bravo as u64,
        "{card}"
    );
    let (s, _) = call(
        &col,
        "GET",
        "/v1/providers/noncooperative",
        &portal[&delta],
        None,
    );
    assert_eq!(s, 401, "a provider's token reads no scorecards");

    // The CLI reads the same tracebacks and requests from the database.
    let shown: Value =
        serde_json::from_str(&cli(&db, &["traceback", "show", "--id", &id.to_string()])).unwrap();
    assert_eq!(shown["status"], "non_responsive");
    assert_eq!(shown["hops"], tb["hops"]);
    let listed = cli(&db, &["traceback", "requests", "--all"]);
    assert_eq!(listed.lines().count(), awaiting.len(), "{listed}");
    assert_eq!(cli(&db, &["traceback", "requests"]), "", "none open");
    let (c, _) = &answered[0];
    let again: Value = serde_json::from_str(&cli(
        &db,
        &[
            "traceback",
            "start",
            "--orig",
            c["orig_tn"].as_str().unwrap(),
            "--dest",
            c["dest_tn"].as_str().unwrap(),
            "--at",
            c["first_invite_at"].as_str().unwrap(),
        ],
    ))
    .unwrap();
    assert_eq!(
        again["status"], "awaiting",
        "a new traceback asks delta again: {again}"
    );
}

//! Operability at the process level: `replay --http ADDR --hold` serves /metrics and /healthz
//! over real HTTP on 127.0.0.1, and the scraped counters equal the replay's own summary; the
//! summary has per-stage latency; per-packet problems are logged as periodic summaries, never
//! one line per packet.

mod common;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A plain HTTP/1.1 GET; (status, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    common::http(addr, "GET", path, None, None, "")
}

/// Sum of every sample of a metric family (`name{...} value` and `name value` lines).
fn family_sum(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
        .sum()
}

fn sample(metrics: &str, sample: &str) -> Option<u64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(sample)
            .and_then(|r| r.strip_prefix(' '))
            .map(|v| v.parse::<f64>().unwrap() as u64)
    })
}

fn json_logs(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

#[test]
fn metrics_scraped_over_http_after_a_replay_equal_its_summary() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sensor.toml");
    std::fs::write(
        &cfg,
        "[sensor]\nworkers = 2\n[log]\nformat = \"json\"\n[[peers]]\nname = \"lab\"\ncidrs = [\"127.0.0.0/8\"]\n",
    )
    .unwrap();
    let summary_path = dir.path().join("summary.json");
    let out = dir.path().join("records.jsonl");
    let pcaps: Vec<_> = [
        "udp-outcomes.pcap",
        "udp-answered.pcap",
        "udp-fragmented.pcap",
        "tcp-answered.pcap",
        "ipv6-answered.pcap",
        "malformed.pcap",
    ]
    .iter()
    .map(|p| common::pcap(p))
    .collect();
    let mut child = Command::new(common::bin())
        .arg("replay")
        .args(&pcaps)
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .arg("--summary-json")
        .arg(&summary_path)
        .args(["--http", "127.0.0.1:0", "--hold", "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut child = common::KillOnDrop(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut log = Vec::new();
    let mut addr: Option<SocketAddr> = None;
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("replay never held; log: {}", log.join("\n")));
        log.push(line.clone());
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let msg = v["fields"]["message"].as_str().unwrap_or("");
        if msg == "http server listening" {
            addr = Some(v["fields"]["addr"].as_str().unwrap().parse().unwrap());
        }
        if msg.starts_with("replay done; serving") {
            break;
        }
    }
    let addr = addr.expect("the server logged its address");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(&summary_path).unwrap()).unwrap();

    let (status, metrics) = get(addr, "/metrics");
    assert_eq!(status, 200);
    let n = |k: &str| summary[k].as_u64().unwrap();
    assert!(n("packets") > 400, "{summary}");
    assert_eq!(
        sample(&metrics, "shaken_sensor_packets_total{source=\"file\"}"),
        Some(n("packets"))
    );
    assert_eq!(
        family_sum(&metrics, "shaken_sensor_sip_messages_total"),
        n("sip_messages")
    );
    assert_eq!(
        sample(&metrics, "shaken_sensor_invites_total"),
        Some(n("invites"))
    );
    assert_eq!(
        sample(&metrics, "shaken_sensor_records_written_total"),
        Some(n("records_written"))
    );
    let records = std::fs::read_to_string(&out).unwrap().lines().count() as u64;
    assert_eq!(records, n("records_written"));
    // Every new call gets exactly one verdict: unsigned ones "No-TN-Validation", attest none.
    let verdicts: u64 = summary["verifications"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(verdicts, n("calls"));
    for (key, count) in summary["verifications"].as_object().unwrap() {
        let (verstat, attest) = key.rsplit_once('.').unwrap();
        assert_eq!(
            sample(
                &metrics,
                &format!(
                    "shaken_sensor_verifications_total{{attest=\"{attest}\",verstat=\"{verstat}\"}}"
                )
            ),
            count.as_u64(),
            "{key}"
        );
    }
    assert_eq!(
        family_sum(&metrics, "shaken_sensor_verifications_total"),
        verdicts
    );
    assert_eq!(
        family_sum(&metrics, "shaken_sensor_decode_errors_total"),
        summary["decode_errors"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>()
    );
    // Stage latency: the Prometheus histogram and the summary count the same samples.
    let lat = summary["stage_latency"].as_object().unwrap();
    for stage in ["decode", "parse"] {
        let samples = lat[stage]["samples"].as_u64().unwrap();
        assert!(samples > 0, "{stage}: {summary}");
        assert_eq!(
            sample(
                &metrics,
                &format!("shaken_sensor_stage_latency_seconds_count{{stage=\"{stage}\"}}")
            ),
            Some(samples),
            "{stage}"
        );
        let l = &lat[stage];
        let p = |k: &str| l[k].as_f64().unwrap();
        assert!(
            p("p50_us") <= p("p90_us") && p("p90_us") <= p("p99_us") && p("p99_us") <= p("max_us")
        );
    }
    // Capture from files ends: the sensor says it is not ready, and why.
    let (status, body) = get(addr, "/healthz");
    assert_eq!(status, 503, "{body}");
    let h: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["status"], "unavailable");
    assert_eq!(h["components"]["capture"]["ok"], false);
    assert_eq!(h["components"]["capture"]["reason"], "replay finished");
    assert_eq!(h["components"]["sink_jsonl"]["ok"], true);

    Command::new("kill")
        .arg("-TERM")
        .arg(child.0.id().to_string())
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "replay --hold ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn per_packet_problems_are_summarised_not_logged_one_by_one() {
    let r = common::replay(
        &[&common::pcap("malformed.pcap")],
        "[sensor]\nworkers = 2\n[log]\nformat = \"json\"\n",
    );
    let decode_errors: u64 = r.summary["decode_errors"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(decode_errors >= 10, "{}", r.summary);
    let lines: Vec<String> = r.stderr.lines().map(str::to_string).collect();
    let logs = json_logs(&lines);
    let summaries: Vec<&Value> = logs
        .iter()
        .filter(|v| v["fields"]["message"] == "per-packet problems since the last summary")
        .collect();
    // The replay takes far less than one summary interval: exactly the final summary.
    assert_eq!(summaries.len(), 1, "{}", r.stderr);
    let s = &summaries[0];
    assert_eq!(s["level"], "WARN");
    let expected = |key: &str| {
        r.summary[key]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(s["fields"]["decode_errors"], expected("decode_errors"));
    assert_eq!(
        s["fields"]["sip_parse_errors"],
        expected("sip_parse_errors")
    );
    // Nothing else is logged per packet: apart from the summary, no line mentions a problem.
    let others: Vec<&Value> = logs
        .iter()
        .filter(|v| v["level"] == "WARN" || v["level"] == "ERROR")
        .filter(|v| v["fields"]["message"] != "per-packet problems since the last summary")
        .collect();
    assert!(others.is_empty(), "{others:?}");
    assert_eq!(r.metric("shaken_sensor_log_summaries_total"), 1.0);
}

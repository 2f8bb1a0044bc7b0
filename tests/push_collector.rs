//! Collector push end to end, with real processes on 127.0.0.1: `shaken-sensor replay` with
//! `[push]` enabled against the `shaken-collector` binary (SQLite, fault injection). Checks
//! exactly-once arrival at the deduplicating collector through outages, SIGKILL, 500s, 429s
//! with Retry-After, timeouts, a refused batch (dead-letter) and a wrong token.

mod common;

use serde_json::Value;
use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "collector-token-1";

struct Collector {
    child: Child,
    addr: SocketAddr,
    db: PathBuf,
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collector(db: &Path, bind: &str, args: &[&str]) -> Collector {
    let mut child = Command::new(common::collector_bin())
        .args(["--bind", bind, "--token", TOKEN, "--test-faults", "--db"])
        .arg(db)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = common::collector_addr(&mut child);
    Collector {
        child,
        addr,
        db: db.to_path_buf(),
    }
}

impl Collector {
    /// (rows, distinct record ids) in the collector's database.
    fn counts(&self) -> (i64, i64) {
        let db = rusqlite::Connection::open(&self.db).unwrap();
        db.busy_timeout(Duration::from_secs(5)).unwrap();
        db.query_row(
            "SELECT count(*), count(DISTINCT record_id) FROM records",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    }

    fn ids(&self) -> HashSet<String> {
        let db = rusqlite::Connection::open(&self.db).unwrap();
        let mut q = db.prepare("SELECT record_id FROM records").unwrap();
        let ids = q
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        ids
    }

    fn metric(&self, sample: &str) -> f64 {
        metric(
            &http(self.addr, "GET", "/metrics", None, None, None).1,
            sample,
        )
    }

    fn set_faults(&self, json: &str) {
        let (status, body) = http(self.addr, "POST", "/admin/faults", None, Some(json), None);
        assert_eq!(status, 200, "{body}");
    }
}

/// One raw HTTP/1.1 request; (status, body).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
    extra_headers: Option<&str>,
) -> (u16, String) {
    http_bytes(
        addr,
        method,
        path,
        token,
        body.map(str::as_bytes),
        extra_headers,
    )
}

fn http_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
    extra_headers: Option<&str>,
) -> (u16, String) {
    common::http(addr, method, path, token, body, extra_headers.unwrap_or(""))
}

/// The value of one sample line of a Prometheus text; 0 when absent.
fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(sample)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Sensor {
    dir: tempfile::TempDir,
}

struct ReplayRun {
    ids: Vec<String>,
    /// Bytes of JSON of all records (without newlines).
    json_bytes: usize,
    metrics: String,
    elapsed: Duration,
}

impl Sensor {
    fn new() -> Sensor {
        Sensor {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes the configuration: push to `port` with `token`, fast backoff, and `extra` keys
    /// of the [push] section (replacing the ones set here).
    /// Detection is off: these tests count CallRecords exactly (detections reaching the
    /// collector are tested in tests/replay_detection.rs).
    fn configure(&self, port: u16, token: &str, extra: &str) -> PathBuf {
        let cfg = self.path("sensor.toml");
        let base = format!(
            "url = \"http://127.0.0.1:{port}\"\nallow_http = true\ntoken = \"{token}\"\n\
             spool_dir = \"{}\"\ndead_letter_dir = \"{}\"\nbackoff_initial_ms = 50\n\
             backoff_max_ms = 400\ntimeout_ms = 2000\ndrain_timeout_s = 60\n",
            self.path("spool").display(),
            self.path("dead-letter").display()
        );
        let overridden: Vec<&str> = extra
            .lines()
            .filter_map(|l| l.split('=').next())
            .map(str::trim)
            .collect();
        let kept: String = base
            .lines()
            .filter(|l| !overridden.contains(&l.split('=').next().unwrap_or("").trim()))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(
            &cfg,
            format!(
                "[sensor]\nid = \"push-test\"\nworkers = 2\n[detect]\nenabled = false\n[push]\nenabled = true\n{kept}{extra}"
            ),
        )
        .unwrap();
        cfg
    }

    fn spawn_replay(&self, pcap: &Path, tag: &str) -> Child {
        Command::new(common::bin())
            .arg("replay")
            .arg(pcap)
            .arg("--config")
            .arg(self.path("sensor.toml"))
            .arg("--out")
            .arg(self.path(&format!("{tag}.jsonl")))
            .arg("--metrics-out")
            .arg(self.path(&format!("{tag}.metrics")))
            .arg("-q")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn finish(&self, child: Child, tag: &str, started: Instant) -> ReplayRun {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "replay failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let elapsed = started.elapsed();
        let out = std::fs::read_to_string(self.path(&format!("{tag}.jsonl"))).unwrap();
        let json_bytes = out.lines().map(str::len).sum();
        let ids = out
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["record_id"].as_str().unwrap().to_string()
            })
            .collect();
        let metrics = std::fs::read_to_string(self.path(&format!("{tag}.metrics"))).unwrap();
        ReplayRun {
            ids,
            json_bytes,
            metrics,
            elapsed,
        }
    }

    fn replay(&self, pcap: &Path, tag: &str) -> ReplayRun {
        let started = Instant::now();
        let child = self.spawn_replay(pcap, tag);
        self.finish(child, tag, started)
    }
}

/// A synthetic capture of `calls` full dialogs, or None (the caller skips, saying why).
fn generated(dir: &Path, calls: u32) -> Option<PathBuf> {
    let pcap = dir.join(format!("calls-{calls}.pcap"));
    let ok = Command::new("python3")
        .arg(common::repo().join("benches/gen_calls.py"))
        .arg(&pcap)
        .arg(calls.to_string())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(pcap)
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn all_in(ids: &[String], at: &HashSet<String>) -> bool {
    ids.iter().all(|id| at.contains(id))
}

#[test]
fn collector_down_during_the_replay_then_up_every_record_arrives_once() {
    let sensor = Sensor::new();
    let Some(pcap) = generated(sensor.dir.path(), 3000) else {
        eprintln!("SKIPPED: python3 could not generate the capture");
        return;
    };
    let port = free_port();
    // 16 MiB cap: 1 MiB segments, so batches, cut by bytes before 500 records, end inside
    // segments and straddle them.
    sensor.configure(port, TOKEN, "spool_max_mb = 16\nbatch_max_bytes = 150000\n");
    let started = Instant::now();
    let mut child = sensor.spawn_replay(&pcap, "run");
    // Down until the sensor has failed to deliver at least once (a closed port), however long
    // a loaded machine takes to get there.
    let mut log = common::StderrLines::of(&mut child);
    assert!(
        log.wait_for("will retry", Duration::from_secs(120)),
        "no failed delivery logged: {}",
        log.text()
    );
    let db = sensor.path("collector.sqlite");
    let c = collector(&db, &format!("127.0.0.1:{port}"), &[]);
    let run = sensor.finish(child, "run", started);
    assert_eq!(run.ids.len(), 3000);
    assert_eq!(c.counts(), (3000, 3000));
    assert!(all_in(&run.ids, &c.ids()));
    assert!(
        metric(
            &run.metrics,
            "shaken_sensor_push_batches_total{outcome=\"retry\"}"
        ) >= 1.0
    );
    assert_eq!(
        metric(
            &run.metrics,
            "shaken_sensor_push_records_total{outcome=\"delivered\"}"
        ),
        3000.0
    );
    // At most 150,000 bytes of JSON per batch.
    let batches = metric(
        &run.metrics,
        "shaken_sensor_push_batches_total{outcome=\"delivered\"}",
    );
    assert!(
        batches >= run.json_bytes.div_ceil(150_000) as f64,
        "{batches} batches for {} bytes",
        run.json_bytes
    );
    assert_eq!(
        metric(&run.metrics, "shaken_sensor_spool_records{class=\"call\"}"),
        0.0
    );
    assert_eq!(c.metric("shaken_collector_records_ingested_total"), 3000.0);
}

#[test]
fn sigkill_in_the_middle_of_pushing_then_restart_loses_nothing() {
    let sensor = Sensor::new();
    let Some(pcap) = generated(sensor.dir.path(), 4000) else {
        eprintln!("SKIPPED: python3 could not generate the capture");
        return;
    };
    // A slow collector: 20 batches of 200, 250 ms each.
    let c = collector(
        &sensor.path("collector.sqlite"),
        "127.0.0.1:0",
        &["--delay-ms", "250"],
    );
    sensor.configure(c.addr.port(), TOKEN, "batch_max_records = 200\n");
    let mut child = sensor.spawn_replay(&pcap, "killed");
    wait_until("the first deliveries", Duration::from_secs(60), || {
        c.counts().0 >= 400
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let delivered_before = c.counts().0;
    assert!(
        delivered_before < 4000,
        "the kill came after the end ({delivered_before})"
    );
    c.set_faults("{}");
    // Restart on the same spool with the same capture: what was spooled is delivered, the
    // records replayed again are absorbed by the collector's deduplication.
    let run = sensor.replay(&pcap, "restarted");
    assert_eq!(run.ids.len(), 4000);
    assert_eq!(c.counts(), (4000, 4000));
    assert!(all_in(&run.ids, &c.ids()));
    let dups = c.metric("shaken_collector_duplicates_total{by=\"record_id\"}")
        + c.metric("shaken_collector_duplicates_total{by=\"idempotency_key\"}");
    assert!(
        dups >= delivered_before as f64,
        "{dups} duplicates, {delivered_before} delivered before the kill"
    );
    assert_eq!(
        metric(&run.metrics, "shaken_sensor_spool_records{class=\"call\"}"),
        0.0
    );
}

#[test]
fn server_errors_and_rate_limits_are_retried_honouring_retry_after() {
    let sensor = Sensor::new();
    let c = collector(
        &sensor.path("collector.sqlite"),
        "127.0.0.1:0",
        &[
            "--fail-next",
            "2",
            "--rate-limit-next",
            "1",
            "--retry-after",
            "2",
        ],
    );
    sensor.configure(c.addr.port(), TOKEN, "");
    let run = sensor.replay(&common::pcap("udp-outcomes.pcap"), "run");
    let n = run.ids.len() as i64;
    assert!(n > 0);
    assert_eq!(c.counts(), (n, n));
    assert_eq!(
        metric(
            &run.metrics,
            "shaken_sensor_push_batches_total{outcome=\"retry\"}"
        ),
        3.0
    );
    // Usually one batch; two when the pusher took the first records before the rest were
    // spooled. Either way the collector answered 200 to each delivered batch, once.
    let delivered = metric(
        &run.metrics,
        "shaken_sensor_push_batches_total{outcome=\"delivered\"}",
    );
    assert!(delivered >= 1.0);
    assert_eq!(
        c.metric("shaken_collector_batches_total{status=\"500\"}"),
        2.0
    );
    assert_eq!(
        c.metric("shaken_collector_batches_total{status=\"429\"}"),
        1.0
    );
    assert_eq!(
        c.metric("shaken_collector_batches_total{status=\"200\"}"),
        delivered
    );
    // Backoff alone (50 ms doubling, capped at 400 ms) would be done well within a second.
    assert!(
        run.elapsed >= Duration::from_secs(2),
        "Retry-After: 2 not honoured ({:?})",
        run.elapsed
    );
}

#[test]
fn timeouts_are_retried_until_the_collector_answers_in_time() {
    let sensor = Sensor::new();
    let c = collector(
        &sensor.path("collector.sqlite"),
        "127.0.0.1:0",
        &["--delay-ms", "3000"],
    );
    sensor.configure(c.addr.port(), TOKEN, "timeout_ms = 300\n");
    let started = Instant::now();
    let child = sensor.spawn_replay(&common::pcap("udp-outcomes.pcap"), "run");
    std::thread::sleep(Duration::from_millis(1200));
    c.set_faults("{}");
    let run = sensor.finish(child, "run", started);
    let n = run.ids.len() as i64;
    assert_eq!(c.counts(), (n, n));
    assert!(
        metric(
            &run.metrics,
            "shaken_sensor_push_batches_total{outcome=\"retry\"}"
        ) >= 2.0,
        "{}",
        run.metrics
    );
    assert_eq!(
        metric(
            &run.metrics,
            "shaken_sensor_push_records_total{outcome=\"delivered\"}"
        ),
        n as f64
    );
}

#[test]
fn a_refused_batch_goes_to_the_dead_letter_folder_and_the_rest_is_delivered() {
    let sensor = Sensor::new();
    let c = collector(
        &sensor.path("collector.sqlite"),
        "127.0.0.1:0",
        &["--reject-next", "1"],
    );
    sensor.configure(c.addr.port(), TOKEN, "batch_max_records = 4\n");
    let run = sensor.replay(&common::pcap("udp-outcomes.pcap"), "run");
    let files: Vec<PathBuf> = std::fs::read_dir(sensor.path("dead-letter"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let mut lines = text.lines();
    let head: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(head["dead_letter"]["status"], 400);
    assert_eq!(head["dead_letter"]["class"], "call");
    // A batch holds at most batch_max_records; the pusher may take the first one before all
    // four records are spooled (records arrive as calls end).
    let k = head["dead_letter"]["records"].as_u64().unwrap() as usize;
    assert!((1..=4).contains(&k), "{head}");
    assert!(head["dead_letter"]["reason"]
        .as_str()
        .unwrap()
        .contains("injected fault"));
    let dead: Vec<String> = lines
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["record_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    // The first request to arrive was refused: one batch, k records in spool order (with
    // several batches out it need not be the first one).
    assert!(run.ids.windows(k).any(|w| w == dead), "{dead:?}");
    let at = c.ids();
    assert!(dead.iter().all(|id| !at.contains(id)));
    let rest: Vec<String> = run
        .ids
        .iter()
        .filter(|id| !dead.contains(id))
        .cloned()
        .collect();
    assert!(all_in(&rest, &at));
    let n = (run.ids.len() - k) as i64;
    assert_eq!(c.counts(), (n, n));
    assert_eq!(
        metric(
            &run.metrics,
            "shaken_sensor_push_batches_total{outcome=\"dead_letter\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &run.metrics,
            "shaken_sensor_push_records_total{outcome=\"dead_letter\"}"
        ),
        k as f64
    );
}

#[test]
fn a_wrong_token_keeps_the_records_until_restarted_with_the_right_one() {
    let sensor = Sensor::new();
    let c = collector(&sensor.path("collector.sqlite"), "127.0.0.1:0", &[]);
    sensor.configure(
        c.addr.port(),
        "not-the-token",
        "drain_timeout_s = 2\nbackoff_max_ms = 300\n",
    );
    let first = sensor.replay(&common::pcap("udp-outcomes.pcap"), "wrong");
    let n = first.ids.len();
    assert_eq!(c.counts(), (0, 0));
    assert_eq!(
        metric(&first.metrics, "shaken_sensor_push_auth_failing"),
        1.0
    );
    assert!(
        metric(
            &first.metrics,
            "shaken_sensor_push_batches_total{outcome=\"auth_failed\"}"
        ) >= 1.0
    );
    assert_eq!(
        metric(
            &first.metrics,
            "shaken_sensor_spool_records{class=\"call\"}"
        ),
        n as f64
    );
    assert!(c.metric("shaken_collector_batches_total{status=\"401\"}") >= 1.0);
    // Fixed token, restart, another capture: the kept records go first, then the new ones.
    sensor.configure(c.addr.port(), TOKEN, "");
    let second = sensor.replay(&common::pcap("udp-answered.pcap"), "right");
    let m = second.ids.len();
    assert!(m > 0);
    assert_eq!(c.counts(), ((n + m) as i64, (n + m) as i64));
    let at = c.ids();
    assert!(all_in(&first.ids, &at) && all_in(&second.ids, &at));
    assert_eq!(
        metric(&second.metrics, "shaken_sensor_push_auth_failing"),
        0.0
    );
}

/// `shaken-collector --db DB provider ARGS` (the registry CLI); its stdout, trimmed.
fn provider_cli(db: &Path, args: &[&str]) -> String {
    let out = Command::new(common::collector_bin())
        .arg("--db")
        .arg(db)
        .arg("provider")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "provider {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn a_provider_token_delivers_only_its_own_sensors_records() {
    let sensor = Sensor::new();
    let db = sensor.path("collector.sqlite");
    provider_cli(&db, &["add", "--name", "Alpha", "--ocn", "111A"]);
    provider_cli(&db, &["add", "--name", "Bravo", "--ocn", "222B"]);
    // The sensor's `sensor.id` is "push-test": Alpha's sensor.
    let alpha = provider_cli(
        &db,
        &["token", "--provider", "Alpha", "--sensor", "push-test"],
    );
    let bravo = provider_cli(&db, &["token", "--provider", "Bravo", "--sensor", "edge-b"]);
    let c = collector(&db, "127.0.0.1:0", &[]);
    // Bravo's token on this sensor's records: refused (403), kept, counted on both sides.
    sensor.configure(
        c.addr.port(),
        &bravo,
        "drain_timeout_s = 2\nbackoff_max_ms = 300\n",
    );
    let first = sensor.replay(&common::pcap("udp-outcomes.pcap"), "bravo");
    let n = first.ids.len();
    assert_eq!(c.counts(), (0, 0));
    assert_eq!(
        metric(&first.metrics, "shaken_sensor_push_auth_failing"),
        1.0
    );
    assert!(c.metric("shaken_collector_provider_mismatch_total{reason=\"other_provider\"}") >= 1.0);
    assert!(c.metric("shaken_collector_batches_total{status=\"403\"}") >= 1.0);
    // Alpha's token: the kept records go first, then the new ones, each once.
    sensor.configure(c.addr.port(), &alpha, "");
    let second = sensor.replay(&common::pcap("udp-answered.pcap"), "alpha");
    let m = second.ids.len();
    assert!(m > 0);
    assert_eq!(c.counts(), ((n + m) as i64, (n + m) as i64));
    let at = c.ids();
    assert!(all_in(&first.ids, &at) && all_in(&second.ids, &at));
}

#[test]
fn collector_ingest_api_auth_encodings_dedup_and_inspection() {
    let dir = tempfile::tempdir().unwrap();
    let c = collector(&dir.path().join("c.sqlite"), "127.0.0.1:0", &[]);
    let line = |id: &str| {
        format!("{{\"schema\":\"shaken-sensor/call/v1\",\"record_id\":\"{id}\",\"sensor_id\":\"s1\"}}\n")
    };
    let body = format!("{}{}", line("a"), line("b"));
    // No token, wrong token.
    assert_eq!(
        http(c.addr, "POST", "/v1/ingest", None, Some(&body), None).0,
        401
    );
    assert_eq!(
        http(
            c.addr,
            "POST",
            "/v1/ingest",
            Some("nope"),
            Some(&body),
            None
        )
        .0,
        401
    );
    // Plain body with a key.
    let (s, b) = http(
        c.addr,
        "POST",
        "/v1/ingest",
        Some(TOKEN),
        Some(&body),
        Some("Idempotency-Key: k1\r\n"),
    );
    assert_eq!((s, b.as_str()), (200, "{\"accepted\":2,\"duplicates\":0}"));
    // The same key again: 200, nothing inserted.
    let (s, b) = http(
        c.addr,
        "POST",
        "/v1/ingest",
        Some(TOKEN),
        Some(&body),
        Some("Idempotency-Key: k1\r\n"),
    );
    assert_eq!(s, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&b).unwrap()["seen_batch"],
        true
    );
    // Gzip, one known and one new record, another key.
    let det = "{\"schema\":\"shaken-sensor/detection/v1\",\"detection_id\":\"d1\",\"state\":\"opened\",\"last_seen\":\"t1\"}\n";
    let gz = common::gzip(format!("{}{}{det}", line("b"), line("c")).as_bytes());
    let (s, b) = http_bytes(
        c.addr,
        "POST",
        "/v1/ingest",
        Some(TOKEN),
        Some(&gz),
        Some("Idempotency-Key: k2\r\nContent-Encoding: gzip\r\n"),
    );
    assert_eq!((s, b.as_str()), (200, "{\"accepted\":2,\"duplicates\":1}"));
    // A bad line: 400 naming it, nothing of the batch stored.
    let bad = format!("{}{{\"schema\":\"shaken-sensor/call/v1\"}}\n", line("d"));
    let (s, b) = http(c.addr, "POST", "/v1/ingest", Some(TOKEN), Some(&bad), None);
    assert_eq!(s, 400);
    assert_eq!(serde_json::from_str::<Value>(&b).unwrap()["line"], 2);
    assert_eq!(c.counts(), (4, 4));
    // Inspection.
    let (s, b) = http(
        c.addr,
        "GET",
        "/v1/records?limit=2",
        Some(TOKEN),
        None,
        None,
    );
    assert_eq!(s, 200);
    let v: Value = serde_json::from_str(&b).unwrap();
    let ids: Vec<&str> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["record_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b"]);
    let next = v["next"].as_i64().unwrap();
    let (_, b) = http(
        c.addr,
        "GET",
        &format!("/v1/records?after={next}"),
        Some(TOKEN),
        None,
        None,
    );
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["records"].as_array().unwrap().len(), 1);
    assert_eq!(v["records"][0]["record_id"], "c");
    let (_, b) = http(c.addr, "GET", "/v1/detections", Some(TOKEN), None, None);
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["records"][0]["detection_id"], "d1");
    assert_eq!(http(c.addr, "GET", "/v1/records", None, None, None).0, 401);
    assert_eq!(http(c.addr, "GET", "/healthz", None, None, None).0, 200);
    assert_eq!(c.metric("shaken_collector_records_ingested_total"), 4.0);
    assert_eq!(
        c.metric("shaken_collector_duplicates_total{by=\"record_id\"}"),
        1.0
    );
    assert_eq!(
        c.metric("shaken_collector_duplicates_total{by=\"idempotency_key\"}"),
        2.0
    );
    assert_eq!(
        c.metric("shaken_collector_batches_total{status=\"401\"}"),
        2.0
    );
    assert_eq!(
        c.metric("shaken_collector_batches_total{status=\"400\"}"),
        1.0
    );
}

/// A batch's class, start and end (segment, offset), as its Idempotency-Key names them.
type KeyRange = (String, (u64, u64), (u64, u64));

/// The range of each batch the collector stored, from its Idempotency-Key
/// `sensor:spool:class:S.O-S.O`.
fn stored_ranges(db: &Path) -> Vec<KeyRange> {
    let db = rusqlite::Connection::open(db).unwrap();
    let mut q = db.prepare("SELECT idempotency_key FROM batches").unwrap();
    let keys: Vec<String> = q
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let pos = |s: &str| {
        let (a, b) = s.split_once('.').unwrap();
        (a.parse().unwrap(), b.parse().unwrap())
    };
    keys.iter()
        .map(|k| {
            let parts: Vec<&str> = k.split(':').collect();
            let (start, end) = parts[3].split_once('-').unwrap();
            (parts[2].to_string(), pos(start), pos(end))
        })
        .collect()
}

/// No two stored batches of a class overlap: every resend used the key of its first attempt.
fn assert_disjoint(mut ranges: Vec<KeyRange>) {
    ranges.sort();
    for w in ranges.windows(2) {
        if w[0].0 == w[1].0 {
            assert!(
                w[1].1 >= w[0].2,
                "overlapping batches {:?} and {:?}",
                w[0],
                w[1]
            );
        }
    }
}

#[test]
fn collector_killed_with_several_batches_in_flight_then_restarted_every_record_once() {
    let sensor = Sensor::new();
    let Some(pcap) = generated(sensor.dir.path(), 3000) else {
        eprintln!("SKIPPED: python3 could not generate the capture");
        return;
    };
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let db = sensor.path("collector.sqlite");
    // Slow answers, so the four batches allowed out at once are all out when it dies.
    let c = collector(&db, &bind, &["--delay-ms", "300"]);
    sensor.configure(port, TOKEN, "batch_max_records = 100\nmax_in_flight = 4\n");
    let started = Instant::now();
    let child = sensor.spawn_replay(&pcap, "run");
    wait_until(
        "several requests in flight and some delivered",
        Duration::from_secs(60),
        || c.metric("shaken_collector_http_connections_active") >= 3.0 && c.counts().0 >= 200,
    );
    drop(c); // SIGKILL with requests out
    std::thread::sleep(Duration::from_millis(300));
    let c = collector(&db, &bind, &[]);
    let run = sensor.finish(child, "run", started);
    assert_eq!(run.ids.len(), 3000);
    assert_eq!(c.counts(), (3000, 3000));
    assert!(all_in(&run.ids, &c.ids()));
    // Nothing went under a second key: every batch row inserted all its records.
    let rusq = rusqlite::Connection::open(&db).unwrap();
    let partial: i64 = rusq
        .query_row(
            "SELECT count(*) FROM batches WHERE inserted != records",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(partial, 0, "a range was resent under another key");
    assert_disjoint(stored_ranges(&db));
    assert!(metric(&run.metrics, "shaken_sensor_push_in_flight_full_total") > 0.0);
    assert_eq!(
        metric(&run.metrics, "shaken_sensor_spool_records{class=\"call\"}"),
        0.0
    );
}

#[test]
fn sigkill_with_a_failed_batch_before_delivered_ones_resends_them_under_the_same_keys() {
    let sensor = Sensor::new();
    let Some(pcap) = generated(sensor.dir.path(), 3000) else {
        eprintln!("SKIPPED: python3 could not generate the capture");
        return;
    };
    let c = collector(&sensor.path("collector.sqlite"), "127.0.0.1:0", &[]);
    // The first request to arrive fails and waits 15-30 s for its retry; the batches after it
    // are delivered meanwhile, so the ack point stays before the failed one.
    c.set_faults(r#"{"fail_next": 1, "delay_ms": 50}"#);
    sensor.configure(
        c.addr.port(),
        TOKEN,
        "batch_max_records = 100\nmax_in_flight = 4\nbackoff_initial_ms = 30000\nbackoff_max_ms = 60000\n",
    );
    let mut child = sensor.spawn_replay(&pcap, "killed");
    wait_until(
        "deliveries past the failed batch",
        Duration::from_secs(60),
        || c.counts().0 >= 600,
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let delivered_before = c.counts().0;
    assert!(delivered_before < 3000, "the kill came after the end");
    c.set_faults("{}");
    sensor.configure(
        c.addr.port(),
        TOKEN,
        "batch_max_records = 100\nmax_in_flight = 4\n",
    );
    // The restart replays the capture again (its records are absorbed per record id); first
    // it resends the spool from the ack point, cut as before.
    let run = sensor.replay(&pcap, "restarted");
    assert_eq!(c.counts(), (3000, 3000));
    assert!(all_in(&run.ids, &c.ids()));
    // The batches delivered behind the hole came again with their old keys: whole batches
    // recognised by key, at least the 600 - 300 records beyond the (at most three) batches
    // before the failed one.
    let by_key = c.metric("shaken_collector_duplicates_total{by=\"idempotency_key\"}");
    assert!(by_key >= 300.0, "{by_key} records recognised by key");
    assert_disjoint(stored_ranges(&sensor.path("collector.sqlite")));
    assert_eq!(
        metric(&run.metrics, "shaken_sensor_spool_records{class=\"call\"}"),
        0.0
    );
}

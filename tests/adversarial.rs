//! Adversarial captures (pcaps/make-adversarial.py) replayed through the real binary with small
//! caps: each must exit 0 without a panic, keep its peak memory within a fixed budget over the
//! same binary's baseline, and show in its metrics the very limit the capture attacks.
//! The x5u captures run against local listeners on 127.0.0.1 only: the private-address one
//! asserts that nothing ever connects, the huge-body one that the fetch stops at max_bytes.
//! These tests must never reach past 127.0.0.1/::1 and never run longer than about a minute.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Peak RSS a replay may use above the baseline replay (a 70-frame capture, same config).
/// The caps below allow at most ~1 MiB of fragments, 4 MiB of TCP buffers, 1,000 calls
/// (~0.6 MiB) and 8 queued batches per worker; the rest is allocator slack.
const BUDGET_KB: u64 = 16 * 1024;

/// Small caps, so that each flood overruns them many times over.
const CONFIG: &str = r#"
[sensor]
id = "adversarial"
workers = 2
[capture]
queue_batches = 8
[capture.defrag]
max_datagrams = 2048
max_bytes_mb = 1
timeout_s = 30
[capture.tcp]
max_streams = 1024
max_stream_kb = 64
max_total_mb = 4
[dialog]
max_dialogs = 1000
[output]
records = ""
[shaken]
max_pending = 100
"#;

struct Run {
    metrics: String,
    stderr: String,
    peak_rss_kb: u64,
    secs: f64,
}

impl Run {
    /// Sum of every sample of `family` whose labels contain all of `labels` (`k="v"` pairs).
    fn sum(&self, family: &str, labels: &[&str]) -> f64 {
        self.metrics
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                let (base, lbl) = match name.split_once('{') {
                    Some((b, rest)) => (b, rest.trim_end_matches('}')),
                    None => (name, ""),
                };
                let parts: Vec<&str> = lbl.split(',').collect();
                (base == family && labels.iter().all(|want| parts.contains(want)))
                    .then(|| value.parse::<f64>().ok())
                    .flatten()
            })
            .sum()
    }

    fn get(&self, family: &str, labels: &[&str]) -> u64 {
        self.sum(family, labels) as u64
    }
}

fn generate(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let out = Command::new("python3")
        .arg(common::repo().join("pcaps/make-adversarial.py"))
        .arg(dir)
        .args(["--only", name])
        .args(extra)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "make-adversarial.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join(format!("{name}.pcap"))
}

/// Replays `pcap` under `/usr/bin/time` (exact peak RSS); without it, polls VmHWM.
fn replay(pcap: &Path, config: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sensor.toml");
    std::fs::write(&cfg, config).unwrap();
    let metrics = dir.path().join("metrics.txt");
    let time_out = dir.path().join("time.txt");
    let use_time = Path::new("/usr/bin/time").exists();
    let mut cmd = if use_time {
        let mut c = Command::new("/usr/bin/time");
        c.arg("-f").arg("%M").arg("-o").arg(&time_out);
        c.arg(common::bin());
        c
    } else {
        Command::new(common::bin())
    };
    cmd.arg("replay")
        .arg(pcap)
        .arg("--config")
        .arg(&cfg)
        .arg("--quiet")
        .arg("--metrics-out")
        .arg(&metrics)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let mut stderr_pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr_pipe.read_to_string(&mut s);
        s
    });
    let mut polled_kb = 0;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if !use_time {
            polled_kb = polled_kb.max(vm_hwm_kb(child.id()).unwrap_or(0));
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "replay of {} did not finish",
            pcap.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let secs = start.elapsed().as_secs_f64();
    let stderr = reader.join().unwrap();
    assert!(status.success(), "replay failed ({status:?}): {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let peak_rss_kb = if use_time {
        std::fs::read_to_string(&time_out)
            .unwrap()
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .expect("time -f %M wrote the peak RSS")
    } else {
        polled_kb
    };
    Run {
        metrics: std::fs::read_to_string(&metrics).unwrap(),
        stderr,
        peak_rss_kb,
        secs,
    }
}

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Peak RSS of the same binary and config on a small, benign capture (measured once).
fn baseline_kb() -> u64 {
    static B: OnceLock<u64> = OnceLock::new();
    *B.get_or_init(|| replay(&common::pcap("udp-answered.pcap"), CONFIG).peak_rss_kb)
}

fn check_memory(name: &str, run: &Run) {
    let base = baseline_kb();
    eprintln!(
        "{name}: peak RSS {} KiB (baseline {base} KiB, +{} KiB), {:.1} s",
        run.peak_rss_kb,
        run.peak_rss_kb.saturating_sub(base),
        run.secs
    );
    assert!(
        run.peak_rss_kb <= base + BUDGET_KB,
        "{name}: peak RSS {} KiB exceeds baseline {base} KiB + {BUDGET_KB} KiB",
        run.peak_rss_kb
    );
}

const REASM: &str = "shaken_sensor_reassembly_events_total";

#[test]
fn fragment_flood_stays_within_the_fragment_caps() {
    let dir = tempfile::tempdir().unwrap();
    let run = replay(&generate(dir.path(), "frag-flood", &[]), CONFIG);
    check_memory("frag-flood", &run);
    let ev = |e: &str| run.get(REASM, &["table=\"defrag\"", &format!("event=\"{e}\"")]);
    // 30,000 datagrams that never complete, plus the 100 tiny-piece ones (re-created by their
    // pieces after the drop): the byte cap (1 MiB) binds before the table cap (2,048), so all
    // but what 1 MiB holds are evicted, and the byte gauge sits at the cap.
    let evicted = ev("evicted");
    let pending = run.get("shaken_sensor_fragments_pending", &[]);
    assert_eq!(evicted + pending, 30_100, "{}", run.metrics);
    assert!(evicted >= 29_000, "evicted {evicted}");
    assert!(pending <= 2048);
    assert_eq!(run.get("shaken_sensor_fragment_bytes", &[]), 1 << 20);
    // Every datagram of 80 disjoint pieces is dropped at the 65th.
    assert_eq!(ev("too_fragmented"), 100);
    assert_eq!(
        run.get(
            "shaken_sensor_decode_errors_total",
            &["kind=\"frag_too_many_holes\""]
        ),
        100
    );
    assert_eq!(ev("completed"), 0);
}

#[test]
fn hundred_thousand_partial_tcp_streams_stay_within_the_stream_caps() {
    let dir = tempfile::tempdir().unwrap();
    let run = replay(&generate(dir.path(), "tcp-streams", &[]), CONFIG);
    check_memory("tcp-streams", &run);
    let ev = |e: &str| run.get(REASM, &["table=\"tcp\"", &format!("event=\"{e}\"")]);
    // 100,001 streams through a 1,024-stream table.
    let evicted = ev("stream_evicted");
    assert!(evicted >= 100_001 - 1_024, "stream_evicted {evicted}");
    // Every stream's second segment comes after a 400-byte hole.
    assert!(ev("out_of_order") >= 100_000, "{}", run.metrics);
    // The stream whose header block never ends is cut at max_message_bytes and its bytes
    // are dropped.
    assert!(ev("framing_error") >= 1, "{}", run.metrics);
    assert!(ev("bytes_discarded") >= 65_535, "{}", run.metrics);
    assert_eq!(ev("message"), 0);
    assert!(run.sum("shaken_sensor_tcp_streams_active", &[]) <= 1024.0);
    assert!(run.sum("shaken_sensor_tcp_buffered_bytes", &[]) <= f64::from(4 << 20));
}

#[test]
fn header_bombs_are_refused_by_kind() {
    let dir = tempfile::tempdir().unwrap();
    let run = replay(&generate(dir.path(), "header-bombs", &[]), CONFIG);
    check_memory("header-bombs", &run);
    let perr = |k: &str| {
        run.get(
            "shaken_sensor_sip_parse_errors_total",
            &[&format!("kind=\"{k}\"")],
        )
    };
    // 20 INVITEs with 5,000 headers and 20 with 3,000 compact Identity headers: max_headers.
    assert_eq!(perr("sip_too_many_headers"), 40, "{}", run.metrics);
    // 20 INVITEs with a 60,000-byte header line: max_header_line.
    assert_eq!(perr("sip_header_line_too_long"), 20, "{}", run.metrics);
    // 20 INVITEs with 200 Identity headers: parsed, the Identity list overflows (8 kept).
    assert_eq!(
        run.get(
            "shaken_sensor_verification_events_total",
            &["event=\"identity_overflow\""]
        ),
        20,
        "{}",
        run.metrics
    );
    // Every UDP INVITE (8 kinds x 20) is either parsed or refused with a counted reason.
    let parsed = run.get("shaken_sensor_invites_total", &[]);
    let refused = run.get("shaken_sensor_sip_parse_errors_total", &[]);
    assert_eq!(parsed + refused, 160, "{}", run.metrics);
    // The TCP header block that never ends.
    assert!(
        run.get(REASM, &["table=\"tcp\"", "event=\"framing_error\""]) >= 1,
        "{}",
        run.metrics
    );
}

#[test]
fn hundred_thousand_unanswered_invites_stay_within_the_dialog_cap() {
    let dir = tempfile::tempdir().unwrap();
    let run = replay(&generate(dir.path(), "dialogs", &[]), CONFIG);
    check_memory("dialogs", &run);
    let calls = |by: &str| {
        run.get(
            "shaken_sensor_calls_total",
            &[&format!("ended_by=\"{by}\"")],
        )
    };
    assert_eq!(run.get("shaken_sensor_invites_total", &[]), 100_000);
    // Two workers with 500 calls each: every INVITE past the first 1,000 evicts the oldest.
    assert_eq!(calls("evicted"), 99_000, "{}", run.metrics);
    // The replay closes the last 1,000 at its end: every call gets exactly one record.
    assert_eq!(
        run.get("shaken_sensor_calls_total", &[]),
        100_000,
        "{}",
        run.metrics
    );
}

/// Accepts on 127.0.0.1 and counts every connection (none is expected).
struct Sentinel {
    port: u16,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Sentinel {
    fn start() -> Sentinel {
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        // The same port on ::1 when the host has IPv6 loopback.
        let v6 = TcpListener::bind(("::1", port)).ok();
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        for l in std::iter::once(v4).chain(v6) {
            l.set_nonblocking(true).unwrap();
            let (c, s) = (connections.clone(), stop.clone());
            std::thread::spawn(move || {
                while !s.load(Ordering::SeqCst) {
                    if let Ok((_conn, _)) = l.accept() {
                        c.fetch_add(1, Ordering::SeqCst);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
        }
        Sentinel {
            port,
            connections,
            stop,
        }
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[test]
fn x5u_at_private_addresses_is_refused_without_connecting() {
    let sentinel = Sentinel::start();
    let dir = tempfile::tempdir().unwrap();
    let pcap = generate(
        dir.path(),
        "x5u-private",
        &["--x5u-port", &sentinel.port.to_string()],
    );
    let run = replay(&pcap, CONFIG);
    check_memory("x5u-private", &run);
    let kinds: BTreeMap<&str, u64> = ["scheme", "userinfo", "private_address"]
        .into_iter()
        .map(|k| {
            (
                k,
                run.get(
                    "shaken_sensor_cert_fetch_errors_total",
                    &[&format!("kind=\"{k}\"")],
                ),
            )
        })
        .collect();
    // http://127.0.0.1; two userinfo URLs; 127.0.0.1, 10.0.0.1, [::1], 169.254.169.254 and
    // localhost over https.
    assert_eq!(
        kinds,
        BTreeMap::from([("private_address", 5), ("scheme", 1), ("userinfo", 2)]),
        "{}",
        run.metrics
    );
    assert_eq!(
        run.get("shaken_sensor_cert_fetch_errors_total", &[]),
        8,
        "nothing else failed: {}",
        run.metrics
    );
    assert_eq!(
        run.get(
            "shaken_sensor_verification_failures_total",
            &["code=\"436\""]
        ),
        8,
        "{}",
        run.metrics
    );
    // Give a stray connection time to be accepted before looking.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(sentinel.connections.load(Ordering::SeqCst), 0);
}

/// Serves an endless body (`/huge.pem`, no Content-Length) or a declared 100 MB one
/// (`/huge.pem-len`) on 127.0.0.1; counts the bytes each connection managed to send.
fn endless_server() -> (u16, Arc<AtomicU64>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent = Arc::new(AtomicU64::new(0));
    let conns = Arc::new(AtomicUsize::new(0));
    let (s, c) = (sent.clone(), conns.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { continue };
            c.fetch_add(1, Ordering::SeqCst);
            let s = s.clone();
            std::thread::spawn(move || serve_endless(&mut stream, &s));
        }
    });
    (port, sent, conns)
}

fn serve_endless(stream: &mut TcpStream, sent: &AtomicU64) {
    let mut req = [0u8; 2048];
    let n = stream.read(&mut req).unwrap_or(0);
    let with_len = String::from_utf8_lossy(&req[..n]).contains("huge.pem-len");
    let head = if with_len {
        "HTTP/1.1 200 OK\r\nContent-Length: 104857600\r\nConnection: close\r\n\r\n"
    } else {
        "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
    };
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    let chunk = vec![b'A'; 64 << 10];
    let _ = stream.set_write_timeout(Some(Duration::from_secs(20)));
    for _ in 0..1600 {
        // 1,600 x 64 KiB = 100 MiB, unless the client hangs up first.
        if stream.write_all(&chunk).is_err() {
            return;
        }
        sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
    }
}

#[test]
fn x5u_huge_body_stops_at_max_bytes() {
    let (port, sent, conns) = endless_server();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}/huge.pem");
    let pcap = generate(dir.path(), "x5u-huge", &["--huge-url", &url]);
    let config = format!(
        "{CONFIG}[shaken.x5u]\nallow_http = true\nallowed_hosts = [\"127.0.0.1:{port}\"]\n\
         max_bytes = 65536\ntimeout_ms = 10000\n"
    );
    let run = replay(&pcap, &config);
    check_memory("x5u-huge", &run);
    assert_eq!(conns.load(Ordering::SeqCst), 2, "one fetch per URL");
    assert_eq!(
        run.get(
            "shaken_sensor_cert_fetch_errors_total",
            &["kind=\"too_large\""]
        ),
        2,
        "{}",
        run.metrics
    );
    assert_eq!(
        run.get(
            "shaken_sensor_verification_failures_total",
            &["code=\"436\""]
        ),
        2
    );
    // The client hung up long before 2 x 100 MiB: what was sent is max_bytes plus what the
    // loopback socket buffers absorbed.
    let sent = sent.load(Ordering::SeqCst);
    assert!(sent < 32 << 20, "server sent {sent} bytes");
    let _ = run.stderr;
}

/// The live variant: `shaken-sensor run` captures on lo while the script injects a (scaled
/// down) fragment flood and the header bombs through an AF_PACKET socket. Needs root; skipped
/// otherwise. Other traffic on lo may add to the counts, so they are lower bounds.
#[test]
fn live_injection_on_loopback_hits_the_same_limits() {
    if !common::is_root() {
        eprintln!("SKIPPED: live injection needs root (AF_PACKET on lo)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let frag = generate(dir.path(), "frag-flood", &["--scale", "0.05"]);
    let bombs = generate(dir.path(), "header-bombs", &["--scale", "0.05"]);
    let cfg = dir.path().join("sensor.toml");
    std::fs::write(
        &cfg,
        format!(
            "{}[traceback]\nenabled = false\n[http]\nbind = \"\"\n",
            CONFIG.replace(
                "[capture]\n",
                "[capture]\ninterfaces = [\"lo\"]\nbuffer_size_mb = 8\n"
            )
        ),
    )
    .unwrap();
    let metrics = dir.path().join("metrics.txt");
    let mut sensor = Command::new(common::bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--metrics-out")
        .arg(&metrics)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = sensor.id();
    let mut log = common::StderrLines::of(&mut sensor);
    if !log.wait_for("capture running", Duration::from_secs(20)) {
        let _ = sensor.kill();
        let _ = sensor.wait();
        panic!("sensor never reported capture running: {}", log.text());
    }
    let inject = Command::new("python3")
        .arg(common::repo().join("pcaps/make-adversarial.py"))
        .args(["--inject", "lo"])
        .arg(&frag)
        .arg(&bombs)
        .output()
        .unwrap();
    assert!(
        inject.status.success(),
        "{}",
        String::from_utf8_lossy(&inject.stderr)
    );
    // Let the capture thread drain, watching the high-water mark meanwhile.
    let mut peak_kb = 0;
    let settle = Instant::now() + Duration::from_secs(2);
    while Instant::now() < settle {
        peak_kb = peak_kb.max(vm_hwm_kb(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(10));
    }
    peak_kb = peak_kb.max(vm_hwm_kb(pid).unwrap_or(0));
    Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    let stop = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = sensor.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > stop {
            let _ = sensor.kill();
            panic!("sensor did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "sensor exit {status:?}: {}", log.text());
    let stderr = log.text();
    assert!(!stderr.contains("panicked"));
    let run = Run {
        metrics: std::fs::read_to_string(&metrics).unwrap(),
        stderr,
        peak_rss_kb: peak_kb,
        secs: 0.0,
    };
    eprintln!("live: peak RSS {peak_kb} KiB (VmHWM polled)");
    // Live capture also maps libpcap's kernel ring (capture.buffer_size_mb = 8 here).
    assert!(peak_kb > 0 && peak_kb <= baseline_kb() + BUDGET_KB + 8 * 1024);
    let ev = |e: &str| run.get(REASM, &["table=\"defrag\"", &format!("event=\"{e}\"")]);
    // 1,500 incomplete datagrams of 1 KiB against a 1 MiB budget; 5 tiny-piece datagrams.
    assert!(ev("evicted") >= 500, "{}", run.metrics);
    assert!(ev("too_fragmented") >= 5, "{}", run.metrics);
    let perr = |k: &str| {
        run.get(
            "shaken_sensor_sip_parse_errors_total",
            &[&format!("kind=\"{k}\"")],
        )
    };
    assert!(perr("sip_too_many_headers") >= 2, "{}", run.metrics);
    assert!(perr("sip_header_line_too_long") >= 1, "{}", run.metrics);
    assert!(
        run.get(
            "shaken_sensor_verification_events_total",
            &["event=\"identity_overflow\""]
        ) >= 1,
        "{}",
        run.stderr
    );
}

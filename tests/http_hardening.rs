//! The HTTP layer (src/httpd) and the collector's ingest path under hostile and careless
//! clients, against the real binaries on 127.0.0.1 (issue #18): trickled headers, stalled
//! bodies, connection floods under a low `ulimit -n`, stalled unauthenticated uploads,
//! SIGTERM with stalled clients, idempotency conflicts, multi-member gzip, ids per kind,
//! verbatim records, long lines. Every wait is bounded; clients are counted in tens.

mod common;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "hardening-token";

fn sample_in(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

struct Proc {
    child: common::KillOnDrop,
    addr: SocketAddr,
}

impl Proc {
    fn metric(&self, sample: &str) -> f64 {
        let (_, text) = common::http(self.addr, "GET", "/metrics", None, None, "");
        sample_in(&text, sample)
    }

    /// [`Proc::metric`], None when the server turned the request away.
    fn try_metric(&self, sample: &str) -> Option<f64> {
        let (_, text) = common::try_http(self.addr, "GET", "/metrics", None, None, "").ok()?;
        Some(sample_in(&text, sample))
    }

    /// A /proc/PID/status memory line (`VmRSS`, `VmHWM`), kB.
    fn mem_kb(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.0.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    }

    fn rss_kb(&self) -> u64 {
        self.mem_kb("VmRSS")
    }

    fn sigterm(&self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.0.id() as i32, libc::SIGTERM) };
    }

    /// Seconds until the process exited, or None after `limit`.
    fn exits_within(&mut self, limit: Duration) -> Option<Duration> {
        let t = Instant::now();
        while t.elapsed() < limit {
            if self.child.0.try_wait().unwrap().is_some() {
                return Some(t.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

/// The collector with `args`, its open-file limit set to `nofile` in its own process only.
fn collector(db: &Path, args: &[&str], nofile: Option<u64>) -> Proc {
    let mut cmd = Command::new(common::collector_bin());
    cmd.args(["--bind", "127.0.0.1:0", "--token", TOKEN, "--db"])
        .arg(db)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(n) = nofile {
        // SAFETY: setrlimit only, between fork and exec, in the child.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: n,
                    rlim_max: n,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().unwrap();
    let addr = common::collector_addr(&mut child);
    Proc {
        child: common::KillOnDrop(child),
        addr,
    }
}

/// `shaken-sensor replay --http --hold` over a small capture with `http` as its [http] section:
/// the sensor's HTTP server as it runs in production, on its own process.
fn sensor(dir: &Path, http: &str) -> Proc {
    let config = dir.join("sensor.toml");
    std::fs::write(
        &config,
        format!("[sensor]\nworkers = 1\n[log]\nformat = \"json\"\n[http]\ntoken = \"{TOKEN}\"\n{http}\n"),
    )
    .unwrap();
    let mut child = Command::new(common::bin())
        .args([
            "replay",
            "--quiet",
            "--hold",
            "--http",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&config)
        .arg(common::pcap("udp-outcomes.pcap"))
        .args(["--store"])
        .arg(dir.join("store"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut addr = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if v["fields"]["message"] == "http server listening" {
            addr = v["fields"]["addr"].as_str().and_then(|a| a.parse().ok());
            break;
        }
    }
    let addr = addr.expect("the sensor names its HTTP address");
    // Keep draining stderr so the sensor never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Proc {
        child: common::KillOnDrop(child),
        addr,
    }
}

/// Whether the server closed (or answered on) `s` within `limit`, and when.
fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while t.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(_) => return Some(t.elapsed()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(t.elapsed()),
        }
    }
    None
}

/// Sends a header one byte every 300 ms; how long until the server cut it off (None: not
/// within 12 s).
fn trickle_header(addr: SocketAddr) -> Option<Duration> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 1024];
    while t.elapsed() < Duration::from_secs(12) {
        if s.write_all(b"a").is_err() {
            return Some(t.elapsed());
        }
        match s.read(&mut buf) {
            Ok(_) => return Some(t.elapsed()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(t.elapsed()),
        }
    }
    None
}

#[test]
fn slowloris_headers_are_cut_off_after_the_header_timeout_on_both_servers() {
    let dir = tempfile::tempdir().unwrap();
    let c = collector(
        &dir.path().join("c.sqlite"),
        &["--header-timeout-s", "2"],
        None,
    );
    let cut = trickle_header(c.addr).expect("collector kept a trickling client for 12 s");
    assert!(cut >= Duration::from_millis(1500), "cut after {cut:?}");
    assert_eq!(
        c.metric("shaken_collector_http_timeouts_total{phase=\"header\"}"),
        1.0
    );
    let s = sensor(dir.path(), "header_timeout_s = 2");
    let cut = trickle_header(s.addr).expect("sensor kept a trickling client for 12 s");
    assert!(cut >= Duration::from_millis(1500), "cut after {cut:?}");
    assert_eq!(
        s.metric("shaken_sensor_http_timeouts_total{phase=\"header\"}"),
        1.0
    );
}

#[test]
fn a_stalled_body_is_cut_off_after_the_body_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let c = collector(
        &dir.path().join("c.sqlite"),
        &["--body-timeout-s", "2"],
        None,
    );
    let mut s = TcpStream::connect(c.addr).unwrap();
    write!(
        s,
        "POST /v1/ingest HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 1000\r\n\r\n{{\"schema\""
    )
    .unwrap();
    let t = Instant::now();
    let mut resp = String::new();
    s.set_read_timeout(Some(Duration::from_secs(12))).unwrap();
    let _ = s.read_to_string(&mut resp);
    assert!(
        resp.starts_with("HTTP/1.1 408"),
        "{resp:?} after {:?}",
        t.elapsed()
    );
    assert_eq!(
        c.metric("shaken_collector_http_timeouts_total{phase=\"body\"}"),
        1.0
    );
    assert_eq!(
        c.metric("shaken_collector_batches_total{status=\"408\"}"),
        1.0
    );
}

#[test]
fn an_idle_kept_alive_connection_is_closed_after_keepalive_idle_s() {
    let dir = tempfile::tempdir().unwrap();
    let c = collector(
        &dir.path().join("c.sqlite"),
        &["--keepalive-idle-s", "1", "--header-timeout-s", "60"],
        None,
    );
    let mut s = TcpStream::connect(c.addr).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(s.read(&mut buf).unwrap() > 0);
    let closed = closed_within(&mut s, Duration::from_secs(10)).expect("idle connection kept");
    assert!(closed <= Duration::from_secs(4), "closed after {closed:?}");
    assert_eq!(
        c.metric("shaken_collector_http_timeouts_total{phase=\"idle\"}"),
        1.0
    );
}

#[test]
fn requests_beyond_max_in_flight_get_503() {
    let dir = tempfile::tempdir().unwrap();
    let c = collector(
        &dir.path().join("c.sqlite"),
        &["--max-in-flight", "1", "--delay-ms", "1500"],
        None,
    );
    let addr = c.addr;
    let slow = std::thread::spawn(move || {
        common::http(addr, "POST", "/v1/ingest", Some(TOKEN), Some(b""), "").0
    });
    std::thread::sleep(Duration::from_millis(400));
    let (status, body) = common::http(c.addr, "GET", "/healthz", None, None, "");
    assert_eq!(status, 503, "{body}");
    assert_eq!(slow.join().unwrap(), 200);
    assert_eq!(
        c.metric("shaken_collector_http_requests_rejected_total{reason=\"overloaded\"}"),
        1.0
    );
}

#[test]
fn a_connection_flood_under_a_low_ulimit_is_refused_quickly_and_sigterm_still_ends_the_process() {
    let dir = tempfile::tempdir().unwrap();
    // 128 descriptors: the cap is lowered to 64 (128 minus the reserve), below the limit.
    let mut c = collector(
        &dir.path().join("c.sqlite"),
        &[
            "--max-connections",
            "1000",
            "--header-timeout-s",
            "60",
            "--keepalive-idle-s",
            "60",
            "--drain-timeout-s",
            "2",
        ],
        Some(128),
    );
    let flood: Vec<TcpStream> = (0..150)
        .map(|_| TcpStream::connect(c.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    // A new client is answered or turned away at once, never left hanging.
    let mut probe = TcpStream::connect(c.addr).unwrap();
    probe
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let t = closed_within(&mut probe, Duration::from_secs(8)).expect("probe left hanging");
    assert!(t < Duration::from_secs(2), "probe answered after {t:?}");
    drop(flood);
    // Once the flood is gone, service is back and the refusals were counted.
    // (Until the server has seen the flood's closes it may still be at its cap and turn the
    // metrics request away too.)
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let n = c.try_metric("shaken_collector_http_connections_refused_total{reason=\"cap\"}");
        if n.is_some_and(|n| n > 0.0) || Instant::now() > deadline {
            break n.unwrap_or(0.0);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(refused >= 80.0, "{refused} refused");
    assert_eq!(
        common::http(c.addr, "GET", "/healthz", None, None, "").0,
        200
    );
    // Stalled clients (half a request each) do not keep SIGTERM from ending the process.
    let stalled: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut s = TcpStream::connect(c.addr).unwrap();
            let _ = s.write_all(b"POST /v1/ingest HTTP/1.1\r\nHost: t\r\n");
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    c.sigterm();
    let exited = c
        .exits_within(Duration::from_secs(10))
        .expect("collector still running 10 s after SIGTERM");
    assert!(exited < Duration::from_secs(5), "exited after {exited:?}");
    drop(stalled);
}

#[test]
fn the_sensor_exits_on_sigterm_within_the_drain_deadline_while_clients_stall() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sensor(
        dir.path(),
        "header_timeout_s = 60\nkeepalive_idle_s = 60\ndrain_timeout_s = 2",
    );
    // One request in progress whose body never comes, and idle connections.
    let mut stalled: Vec<TcpStream> = (0..10)
        .map(|_| TcpStream::connect(s.addr).unwrap())
        .collect();
    write!(
        stalled[0],
        "POST /v1/traceback HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 100\r\n\r\n{{"
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    s.sigterm();
    let exited = s
        .exits_within(Duration::from_secs(15))
        .expect("sensor still running 15 s after SIGTERM");
    assert!(exited < Duration::from_secs(6), "exited after {exited:?}");
}

#[test]
fn stalled_unauthenticated_uploads_do_not_grow_memory() {
    let dir = tempfile::tempdir().unwrap();
    let c = collector(&dir.path().join("c.sqlite"), &[], None);
    let before = c.rss_kb();
    // 20 uploads at once without a token, each declaring 16 MB and sending 4 MB (or until
    // the server stops taking them) before stalling.
    let addr = c.addr;
    let uploads: Vec<_> = (0..20)
        .map(|_| {
            std::thread::spawn(move || {
                let chunk = vec![b'x'; 64 << 10];
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
                let _ = s.write_all(
                    b"POST /v1/ingest HTTP/1.1\r\nHost: t\r\nContent-Length: 16000000\r\n\r\n",
                );
                for _ in 0..64 {
                    if s.write_all(&chunk).is_err() {
                        break;
                    }
                }
                s
            })
        })
        .collect();
    let uploads: Vec<TcpStream> = uploads.into_iter().map(|t| t.join().unwrap()).collect();
    std::thread::sleep(Duration::from_millis(500));
    let after = c.rss_kb();
    assert!(
        after.saturating_sub(before) < 30 * 1024,
        "RSS grew from {before} kB to {after} kB"
    );
    // Each was refused from its header alone.
    assert_eq!(
        c.metric("shaken_collector_http_requests_rejected_total{reason=\"unauthorized\"}"),
        20.0
    );
    drop(uploads);
}

fn line(kind: &str, id: &str) -> String {
    format!(
        "{{\"schema\":\"shaken-sensor/{kind}/v1\",\"record_id\":\"{id}\",\"sensor_id\":\"s1\"}}\n"
    )
}

fn ingest(c: &Proc, body: &[u8], headers: &str) -> (u16, Value) {
    let (s, b) = common::http(
        c.addr,
        "POST",
        "/v1/ingest",
        Some(TOKEN),
        Some(body),
        headers,
    );
    (s, serde_json::from_str(&b).unwrap_or(Value::Null))
}

#[test]
fn ingest_never_answers_2xx_for_records_it_did_not_store() {
    let dir = tempfile::tempdir().unwrap();
    let c = collector(&dir.path().join("c.sqlite"), &[], None);
    // A known key with another body: 409, nothing stored, counted.
    let (s, _) = ingest(&c, line("call", "a").as_bytes(), "Idempotency-Key: k1\r\n");
    assert_eq!(s, 200);
    let (s, v) = ingest(&c, line("call", "b").as_bytes(), "Idempotency-Key: k1\r\n");
    assert_eq!(s, 409, "{v}");
    // The same body again is still a harmless repeat.
    let (s, v) = ingest(&c, line("call", "a").as_bytes(), "Idempotency-Key: k1\r\n");
    assert_eq!((s, &v["seen_batch"]), (200, &Value::Bool(true)));
    assert_eq!(
        c.metric("shaken_collector_idempotency_conflicts_total"),
        1.0
    );
    // An empty batch does not use up its key.
    let (s, v) = ingest(&c, b"\n", "Idempotency-Key: k2\r\n");
    assert_eq!((s, &v["accepted"]), (200, &Value::from(0)));
    let (s, v) = ingest(&c, line("call", "c").as_bytes(), "Idempotency-Key: k2\r\n");
    assert_eq!((s, &v["accepted"]), (200, &Value::from(1)), "{v}");
    // Several gzip members (concatenated compressed chunks): every record is read.
    let mut gz = common::gzip(line("call", "d").as_bytes());
    gz.extend(common::gzip(line("call", "e").as_bytes()));
    gz.extend(common::gzip(line("call", "f").as_bytes()));
    let (s, v) = ingest(&c, &gz, "Content-Encoding: gzip\r\n");
    assert_eq!((s, &v["accepted"]), (200, &Value::from(3)), "{v}");
    // Ids are unique per kind: a detection with a call's id is not a duplicate.
    let (s, v) = ingest(&c, line("detection", "a").as_bytes(), "");
    assert_eq!((s, &v["accepted"]), (200, &Value::from(1)), "{v}");
    let (_, b) = common::http(c.addr, "GET", "/v1/detections", Some(TOKEN), None, "");
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["records"][0]["record_id"], "a");
    let (_, b) = common::http(c.addr, "GET", "/v1/records", Some(TOKEN), None, "");
    let v: Value = serde_json::from_str(&b).unwrap();
    let ids: Vec<&str> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["record_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "c", "d", "e", "f"]);
}

#[test]
fn records_are_served_verbatim_in_bounded_pages_and_long_lines_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = collector(
        &dir.path().join("c.sqlite"),
        &["--max-line-kb", "64", "--max-response-mb", "1"],
        None,
    );
    // Key order and a big integer a re-serialization would change.
    let exact = "{\"zeta\":1,\"schema\":\"shaken-sensor/call/v1\",\"record_id\":\"big\",\"n\":123456789012345678901234567890,\"a\":[1.50]}";
    let (s, _) = ingest(&c, format!("{exact}\n").as_bytes(), "");
    assert_eq!(s, 200);
    let (_, b) = common::http(c.addr, "GET", "/v1/records", Some(TOKEN), None, "");
    assert!(b.contains(exact), "{b}");
    // Pages stay near the response cap: 3 records of 600 KB each come one per page.
    let pad = "x".repeat(600 << 10);
    let big: String = (0..3)
        .map(|i| {
            format!("{{\"schema\":\"shaken-sensor/call/v1\",\"record_id\":\"p{i}\",\"pad\":\"{pad}\"}}\n")
        })
        .collect();
    let (s, v) = ingest(&c, big.as_bytes(), "");
    assert_eq!(s, 413, "a 600 KB line is over the 64 KiB line cap: {v}");
    assert_eq!(v["line"], 1);
    assert_eq!(
        c.metric("shaken_collector_batches_total{status=\"413\"}"),
        1.0
    );
    let c2 = collector(
        &dir.path().join("c2.sqlite"),
        &["--max-line-kb", "1024", "--max-response-mb", "1"],
        None,
    );
    let (s, _) = ingest(&c2, big.as_bytes(), "");
    assert_eq!(s, 200);
    let (_, b) = common::http(
        c2.addr,
        "GET",
        "/v1/records?limit=10",
        Some(TOKEN),
        None,
        "",
    );
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(
        v["records"].as_array().unwrap().len(),
        1,
        "one 600 KB record per 1 MiB page"
    );
    assert!(b.len() < (1 << 20) + 4096);
}

#[test]
fn a_huge_record_line_is_parsed_in_about_its_own_size() {
    let dir = tempfile::tempdir().unwrap();
    let c = collector(
        &dir.path().join("c.sqlite"),
        &["--max-line-kb", "16384"],
        None,
    );
    let before = c.mem_kb("VmHWM");
    // One 15 MB line, most of it an array of zeros the collector has no use for.
    let mut body = b"{\"schema\":\"shaken-sensor/call/v1\",\"record_id\":\"x\",\"pad\":[".to_vec();
    body.extend(b"0,".repeat(7_500_000));
    body.extend(b"0]}\n");
    let (s, v) = ingest(&c, &body, "");
    assert_eq!((s, &v["accepted"]), (200, &Value::from(1)), "{v}");
    // The body, its copy as the stored record and the SQLite page cache: a few times 15 MB,
    // not the ~280 MB a JSON tree of 7.5 million numbers takes.
    let peak = c.mem_kb("VmHWM");
    assert!(
        peak.saturating_sub(before) < 120 * 1024,
        "peak RSS grew from {before} kB to {peak} kB"
    );
}

#[test]
fn the_collector_token_can_come_from_the_environment_out_of_ps() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::collector_bin())
        .args(["--bind", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("c.sqlite"))
        .env("SHAKEN_COLLECTOR_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = common::collector_addr(&mut child);
    let c = Proc {
        addr,
        child: common::KillOnDrop(child),
    };
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", c.child.0.id())).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains(TOKEN));
    let (s, _) = ingest(&c, line("call", "a").as_bytes(), "");
    assert_eq!(s, 200);
}

#[test]
fn refusals_are_logged_once_per_interval_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::collector_bin())
        .args(["--bind", "127.0.0.1:0", "--token", TOKEN, "--db"])
        .arg(dir.path().join("c.sqlite"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = common::collector_addr(&mut child);
    for _ in 0..5 {
        let (s, _) = common::http(addr, "POST", "/v1/ingest", Some("wrong"), Some(b"{}"), "");
        assert_eq!(s, 401);
    }
    let mut c = Proc {
        addr,
        child: common::KillOnDrop(child),
    };
    assert_eq!(
        c.metric("shaken_collector_http_requests_rejected_total{reason=\"unauthorized\"}"),
        5.0
    );
    c.sigterm();
    c.exits_within(Duration::from_secs(10)).expect("exits");
    let mut err = String::new();
    c.child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let lines = err.lines().filter(|l| l.contains("refused (401")).count();
    assert_eq!(lines, 1, "{err}");
}

#[test]
fn check_config_refuses_devices_and_pipes_as_anchors_or_certs() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.pem");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for (shaken, key, why) in [
        (
            "trust_anchors = [\"/dev/zero\"]".to_string(),
            "shaken.trust_anchors",
            "a device",
        ),
        (
            format!(
                "certs = [{{ url = \"https://cert.example/a.pem\", file = \"{}\" }}]",
                fifo.display()
            ),
            "shaken.certs[0].file",
            "a pipe",
        ),
        (
            format!(
                "enabled = false\n[push]\nenabled = true\nurl = \"https://127.0.0.1:1\"\ntoken_file = \"{}\"\nspool_dir = \"{}\"",
                fifo.display(),
                dir.path().join("spool").display()
            ),
            "push.token_file",
            "a pipe",
        ),
    ] {
        let config = dir.path().join("sensor.toml");
        std::fs::write(&config, format!("[shaken]\n{shaken}\n")).unwrap();
        let mut child = Command::new(common::bin())
            .args(["check-config", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while child.try_wait().unwrap().is_none() && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{shaken}: {err}");
        assert!(err.contains(key) && err.contains(why), "{shaken}: {err}");
    }
    // The configuration file itself is read the same way.
    let out = Command::new(common::bin())
        .args(["check-config", "--config", "/dev/zero"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a regular file"));
}

#[test]
fn the_traceback_command_refuses_impossible_dates_naming_at() {
    let dir = tempfile::tempdir().unwrap();
    for at in [
        "2026-11-31T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-11-29T14:03:07+24:00",
    ] {
        let out = Command::new(common::bin())
            .args(["traceback", "--store"])
            .arg(dir.path())
            .args(["--dest", "13035550118", "--at", at])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{at}: {err}");
        assert!(err.contains("parameter `at`"), "{at}: {err}");
    }
}

//! Shared helpers for the integration tests: run the real binary, read its JSON output.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_shaken-sensor"))
}

/// The `shaken-collector` binary. It is another package of the workspace, so cargo gives this
/// package no `CARGO_BIN_EXE_` for it: the first call builds it (`cargo build -p
/// shaken-collector`, same profile and target directory as this test's sensor binary; a no-op
/// after `cargo test --workspace`) and every call returns its path beside the sensor's.
pub fn collector_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = bin().parent().unwrap().to_path_buf();
            let mut cargo = Command::new(env!("CARGO"));
            cargo
                .current_dir(repo())
                .args(["build", "--quiet", "--locked", "-p", "shaken-collector"])
                .args(["--bin", "shaken-collector", "--target-dir"])
                .arg(dir.parent().unwrap());
            if dir.file_name().is_some_and(|d| d == "release") {
                cargo.arg("--release");
            }
            let status = cargo.status().expect("run cargo to build shaken-collector");
            assert!(status.success(), "cargo build -p shaken-collector failed");
            let exe = dir.join("shaken-collector");
            assert!(exe.is_file(), "no {} after the build", exe.display());
            exe
        })
        .clone()
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn pcap(name: &str) -> PathBuf {
    repo().join("pcaps").join(name)
}

/// `../shared/thirdparty` beside the repository, or None (the caller skips, saying why).
pub fn thirdparty() -> Option<PathBuf> {
    let p = repo().join("..").join("shared").join("thirdparty");
    p.is_dir().then_some(p)
}

pub struct Replay {
    pub records: Vec<Value>,
    pub summary: Value,
    pub stderr: String,
    /// The Prometheus text the replay wrote at its end.
    pub metrics: String,
}

impl Replay {
    pub fn sip_kind(&self, kind: &str) -> u64 {
        self.summary["sip_by_kind"][kind].as_u64().unwrap_or(0)
    }

    pub fn count(&self, key: &str) -> u64 {
        self.summary[key]
            .as_u64()
            .unwrap_or_else(|| panic!("summary has no {key}: {}", self.summary))
    }

    /// The value of one sample line of the metrics text, e.g.
    /// `shaken_sensor_verification_failures_total{code="403"}`; 0 when absent.
    pub fn metric(&self, sample: &str) -> f64 {
        self.metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(sample)
                    .and_then(|rest| rest.strip_prefix(' '))
            })
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }

    pub fn records_where(&self, f: impl Fn(&Value) -> bool) -> usize {
        self.records.iter().filter(|r| f(r)).count()
    }
}

/// Replays `files` with the given TOML configuration text (written to a temp file).
pub fn replay(files: &[&Path], config: &str) -> Replay {
    replay_with(files, config, &[])
}

/// Like [`replay`], with extra command-line arguments.
pub fn replay_with(files: &[&Path], config: &str, extra: &[&str]) -> Replay {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sensor.toml");
    std::fs::write(&cfg, config).unwrap();
    let out = dir.path().join("records.jsonl");
    let summary = dir.path().join("summary.json");
    let metrics = dir.path().join("metrics.txt");
    let result = Command::new(bin())
        .arg("replay")
        .args(files)
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .arg("--summary-json")
        .arg(&summary)
        .arg("--metrics-out")
        .arg(&metrics)
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    assert!(result.status.success(), "replay failed: {stderr}");
    let records = std::fs::read_to_string(&out)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each output line is JSON"))
        .collect();
    let summary = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let metrics = std::fs::read_to_string(&metrics).unwrap();
    Replay {
        records,
        summary,
        stderr,
        metrics,
    }
}

pub const DEFAULT_CONFIG: &str = "[sensor]\nid = \"test-sensor\"\nworkers = 2\n";

/// Runs `shaken-sensor traceback --store STORE ARGS...` and returns its JSON answer.
pub fn traceback(store: &Path, args: &[&str]) -> Value {
    let out = Command::new(bin())
        .arg("traceback")
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// One frame: capture time in µs, source IPv4, destination IPv4, SIP message.
pub type UdpFrame = (i64, [u8; 4], [u8; 4], Vec<u8>);

/// Writes a classic pcap (Ethernet/IPv4/UDP, port 5060 both ways, one frame per message).
pub fn write_udp_pcap(path: &Path, messages: &[UdpFrame]) {
    use std::io::Write;
    let mut out = vec![
        0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0,
    ];
    for (i, (ts, src, dst, payload)) in messages.iter().enumerate() {
        let udp_len = 8 + payload.len();
        let mut ip = vec![0x45, 0, 0, 0, (i >> 8) as u8, i as u8, 0, 0, 64, 17, 0, 0];
        ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
        ip.extend_from_slice(src);
        ip.extend_from_slice(dst);
        let mut frame = vec![0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 8, 0];
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&5060u16.to_be_bytes());
        frame.extend_from_slice(&5060u16.to_be_bytes());
        frame.extend_from_slice(&(udp_len as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(payload);
        let len = frame.len() as u32;
        out.extend_from_slice(&((ts / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((ts % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&frame);
    }
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(&out))
        .unwrap();
}

/// Kills (and reaps) a child process when the test ends, however it ends.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request to a server of ours on 127.0.0.1 (`Connection: close`); a body is
/// sent as JSON unless `extra_headers` (whole `Name: value\r\n` lines) say otherwise.
/// Returns (status, body).
pub fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
    extra_headers: &str,
) -> (u16, String) {
    try_http(addr, method, path, token, body, extra_headers).unwrap()
}

/// [`http`], with a refused or reset connection as an error (a server at its connection cap
/// turns a client away that way).
pub fn try_http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
    extra_headers: &str,
) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str(extra_headers);
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    if let Some(b) = body {
        s.write_all(b)?;
    }
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// sipp's built-in UAS answering every call on 127.0.0.1:`port`, stopped with the guard
/// (and by sipp itself after `timeout_s`).
pub fn sipp_uas(port: u16, timeout_s: u32) -> KillOnDrop {
    let uas = Command::new("sipp")
        .args([
            "-sn",
            "uas",
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-nostdin",
        ])
        .args(["-timeout", &format!("{timeout_s}s")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    KillOnDrop(uas)
}

/// Live capture and raw sockets need root; tests that need them say SKIPPED otherwise.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// A tool a test drives (sipp, tshark, ...) is on the PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The JSON lines a command of ours printed on stdout, after checking it succeeded.
pub fn json_lines(what: &str, out: std::process::Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The address a `shaken-collector` child (stdout piped) says it listens on, from its first line.
pub fn collector_addr(child: &mut std::process::Child) -> std::net::SocketAddr {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("collector said {line:?}"))
        .parse()
        .unwrap()
}

/// `data` as one gzip member.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// A child's stderr read line by line on a thread, for tests that wait for what a daemon logs
/// (e.g. "capture running") and print its log when an assertion fails.
pub struct StderrLines {
    rx: std::sync::mpsc::Receiver<String>,
    lines: Vec<String>,
}

impl StderrLines {
    /// Takes `child`'s piped stderr.
    pub fn of(child: &mut std::process::Child) -> StderrLines {
        use std::io::BufRead;
        let stderr = child.stderr.take().expect("the child's stderr is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        StderrLines {
            rx,
            lines: Vec::new(),
        }
    }

    /// Whether a line containing `needle` arrives within `within` (false when the time runs
    /// out or the child closed its stderr first).
    pub fn wait_for(&mut self, needle: &str, within: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        while let Ok(line) = self
            .rx
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            let found = line.contains(needle);
            self.lines.push(line);
            if found {
                return true;
            }
        }
        false
    }

    /// Everything logged so far, one line each.
    pub fn text(&mut self) -> String {
        self.lines.extend(self.rx.try_iter());
        self.lines.join("\n")
    }
}

/// `shaken-sensor run --config CFG --out OUT`, once it has logged "capture running" (within
/// 20 s, or the test fails with its log); killed when the guard drops.
pub fn run_until_capturing(cfg: &Path, out: &Path) -> (KillOnDrop, StderrLines) {
    let mut child = Command::new(bin())
        .args(["run", "--config"])
        .arg(cfg)
        .arg("--out")
        .arg(out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("shaken-sensor starts");
    let mut log = StderrLines::of(&mut child);
    let sensor = KillOnDrop(child);
    assert!(
        log.wait_for("capture running", std::time::Duration::from_secs(20)),
        "sensor never reported capture running: {}",
        log.text()
    );
    (sensor, log)
}

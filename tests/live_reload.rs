//! SIGHUP reload while capturing live on the loopback interface: new `[[peers]]` apply to the
//! next calls without restarting capture; a broken file is refused, counted in
//! `config_reloads_total{result="failure"}`, and the previous configuration stays in force.
//! Needs root (raw capture) and sipp; skipped with a message otherwise. Traffic stays on
//! 127.0.0.1.

mod common;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const UAS_PORT: u16 = 15080;
const UAC_PORT: u16 = 15081;
const CALLS: usize = 5;

fn config(dir: &Path, peer: &str) -> String {
    format!(
        "[sensor]\nid = \"reload-test\"\nworkers = 2\n[log]\nformat = \"json\"\n\
         [capture]\ninterfaces = [\"lo\"]\nsip_ports = [{UAS_PORT}]\n\
         [traceback]\nenabled = false\ndir = \"{store}\"\n[http]\nbind = \"127.0.0.1:0\"\n\
         [[peers]]\nname = \"{peer}\"\nocn = \"4242\"\ncidrs = [\"127.0.0.0/8\"]\n",
        store = dir.join("store").display()
    )
}

/// Waits for a JSON log line whose message starts with `prefix`; returns it.
fn wait_log(rx: &Receiver<String>, log: &mut Vec<String>, prefix: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no log line {prefix:?}; log:\n{}", log.join("\n")));
        log.push(line.clone());
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            if v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(prefix))
            {
                return v;
            }
        }
    }
}

fn sipp_calls() {
    let mut uac = Command::new("sipp")
        .args([
            "-sn",
            "uac",
            &format!("127.0.0.1:{UAS_PORT}"),
            "-i",
            "127.0.0.1",
            "-p",
            &UAC_PORT.to_string(),
            "-s",
            "13035550177",
            "-m",
            &CALLS.to_string(),
            "-r",
            "20",
            "-d",
            "100",
            "-nostdin",
            "-timeout",
            "30s",
            "-timeout_error",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(35);
    loop {
        if let Some(s) = uac.try_wait().unwrap() {
            assert!(s.success(), "sipp uac failed: {s:?}");
            return;
        }
        if Instant::now() > deadline {
            let _ = uac.kill();
            panic!("sipp uac did not finish");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Peers of the records written so far, waiting until there are `n` of them.
fn peers_of_records(out: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(out).unwrap_or_default();
        let records: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if records.len() >= n || Instant::now() > deadline {
            return records
                .iter()
                .map(|r| r["upstream"]["peer"].as_str().unwrap().to_string())
                .collect();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// (status, body) of a GET.
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    common::http(addr, "GET", path, None, None, "")
}

fn hup(pid: u32) {
    assert!(Command::new("kill")
        .arg("-HUP")
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success());
}

#[test]
fn sighup_applies_new_peers_and_refuses_a_broken_file_without_stopping_capture() {
    if !common::is_root() || !common::have("sipp") {
        eprintln!("SKIPPED: live capture needs root and sipp (apt-get install sip-tester)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sensor.toml");
    std::fs::write(&cfg, config(dir.path(), "before")).unwrap();
    let out = dir.path().join("records.jsonl");
    let mut sensor = Command::new(common::bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = sensor.stderr.take().unwrap();
    let sensor = common::KillOnDrop(sensor);
    let pid = sensor.0.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let listening = wait_log(&rx, &mut log, "http server listening");
    let addr: SocketAddr = listening["fields"]["addr"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    wait_log(&rx, &mut log, "capture running");

    let _uas = common::sipp_uas(UAS_PORT, 90);

    sipp_calls();
    assert_eq!(peers_of_records(&out, CALLS), vec!["before"; CALLS]);
    // Capturing, sink writing: ready.
    let (status, health) = http_get(addr, "/healthz");
    assert_eq!(status, 200, "{health}");
    let body: Value = serde_json::from_str(&health).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"status": "ok", "components": {"capture": {"ok": true}, "sink_jsonl": {"ok": true}}})
    );

    // New peers: the next calls are attributed to them; capture never stopped.
    std::fs::write(&cfg, config(dir.path(), "after")).unwrap();
    hup(pid);
    let reloaded = wait_log(&rx, &mut log, "configuration reloaded");
    assert_eq!(reloaded["fields"]["generation"], 1);
    // Only the peers changed, and the log says they apply live.
    assert_eq!(reloaded["fields"]["applied_live"], "peers", "{reloaded}");
    sipp_calls();
    let peers = peers_of_records(&out, 2 * CALLS);
    assert_eq!(peers[..CALLS], vec!["before"; CALLS]);
    assert_eq!(peers[CALLS..], vec!["after"; CALLS]);

    // A broken file: refused, counted, the old configuration stays.
    std::fs::write(
        &cfg,
        config(dir.path(), "broken").replace("127.0.0.0/8", "127.0.0.0/99"),
    )
    .unwrap();
    hup(pid);
    let failed = wait_log(&rx, &mut log, "configuration reload failed");
    assert!(
        failed["fields"]["error"]
            .as_str()
            .unwrap()
            .contains("127.0.0.0/99"),
        "{failed}"
    );
    sipp_calls();
    let peers = peers_of_records(&out, 3 * CALLS);
    assert_eq!(peers[2 * CALLS..], vec!["after"; CALLS]);
    let (_, m) = http_get(addr, "/metrics");
    assert!(
        m.contains("shaken_sensor_config_reloads_total{result=\"success\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("shaken_sensor_config_reloads_total{result=\"failure\"} 1\n"),
        "{m}"
    );
    // One capture the whole time: packets kept flowing into the same counter, no restart.
    assert_eq!(
        log.iter().filter(|l| l.contains("capture running")).count(),
        1
    );
    assert!(Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success());
    let mut sensor = sensor;
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = sensor.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "sensor did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    assert_eq!(peers_of_records(&out, 3 * CALLS).len(), 3 * CALLS);
}

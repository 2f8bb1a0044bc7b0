//! The daemon's main job with what the project ships (issue 19): `shaken-sensor run` with
//! config/sensor.toml as shipped (interface "any", `bpf_filter = "auto"`), only its store,
//! spool and dead-letter paths pointed into a temp dir that does not exist yet, while sipp
//! places calls to the shipped SIP port 5080; one CallRecord per call. Then the same through
//! the systemd unit's own command lines (ExecStartPre, ExecStart) with the binary and config
//! paths substituted.
//!
//! Runs as root inside a network namespace the test creates, so "any" there sees only this
//! test's traffic (other tests may run sipp on the host's lo at the same time) and the
//! shipped HTTP port 9464 cannot collide with anything. Records are counted by the Call-IDs
//! of this test's sipp (its pid). Skipped, saying why, without root, sipp or `ip`.

mod common;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CALLS: usize = 10;

/// A network namespace with its loopback up, deleted on drop.
struct Netns(String);

impl Netns {
    fn new(name: String) -> Self {
        let ok = |args: &[&str]| {
            let st = Command::new("ip").args(args).status().unwrap();
            assert!(st.success(), "ip {}", args.join(" "));
        };
        ok(&["netns", "add", &name]);
        let ns = Netns(name);
        ok(&["netns", "exec", &ns.0, "ip", "link", "set", "lo", "up"]);
        ns
    }

    /// A command run inside the namespace.
    fn cmd(&self, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).arg(program);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// The shipped configuration with only the state paths moved under `dir`.
fn shipped_config(dir: &Path) -> std::path::PathBuf {
    let mut text = std::fs::read_to_string(common::repo().join("config/sensor.toml")).unwrap();
    for (key, sub) in [
        ("dir", "store"),
        ("spool_dir", "spool"),
        ("dead_letter_dir", "dead-letter"),
    ] {
        let shipped = format!("{key} = \"/var/lib/shaken-sensor/{sub}\"");
        assert!(
            text.contains(&shipped),
            "config/sensor.toml no longer has {shipped}"
        );
        let state = dir.join("state").join(sub);
        text = text.replace(&shipped, &format!("{key} = \"{}\"", state.display()));
    }
    let path = dir.join("sensor.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The unit's command line for `key`, split on spaces, with the installed paths replaced.
fn unit_command(key: &str, config: &Path) -> Vec<String> {
    let unit =
        std::fs::read_to_string(common::repo().join("systemd/shaken-sensor.service")).unwrap();
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("the unit has no {key}"));
    line.split_whitespace()
        .map(|w| match w {
            "/usr/local/bin/shaken-sensor" => common::bin().display().to_string(),
            "/etc/shaken-sensor/sensor.toml" => config.display().to_string(),
            other => other.to_string(),
        })
        .collect()
}

/// Starts the sensor (`argv` after the binary) in `ns`, places CALLS sipp calls to port 5080
/// there, stops it with SIGTERM and returns the CallRecords of this test's calls.
fn run_and_call(ns: &Netns, argv: &[String]) -> Vec<Value> {
    let mut sensor = ns
        .cmd(Path::new(&argv[0]))
        .args(&argv[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = sensor.stdout.take().unwrap();
    let stderr = sensor.stderr.take().unwrap();
    let mut sensor = common::KillOnDrop(sensor);
    let records = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut log = Vec::new();
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                let running = line.contains("capture running");
                log.push(line);
                if running {
                    break;
                }
            }
            Err(_) => panic!("the sensor never started capturing:\n{}", log.join("\n")),
        }
    }

    let sipp = Path::new("sipp");
    let uas = ns
        .cmd(sipp)
        .args(["-sn", "uas", "-i", "127.0.0.1", "-p", "5080", "-nostdin"])
        .args(["-timeout", "60s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _uas = common::KillOnDrop(uas);
    std::thread::sleep(Duration::from_millis(300));
    let mut uac = ns
        .cmd(sipp)
        .args([
            "-sn",
            "uac",
            "127.0.0.1:5080",
            "-i",
            "127.0.0.1",
            "-p",
            "15081",
        ])
        .args(["-m", &CALLS.to_string(), "-r", "10", "-d", "200"])
        .args(["-nostdin", "-timeout", "40s", "-timeout_error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // `ip netns exec` execs sipp: the pid is sipp's, and so is the Call-ID suffix.
    let uac_pid = uac.id();
    let status = uac.wait().unwrap();
    assert!(status.success(), "sipp uac failed: {status:?}");
    std::thread::sleep(Duration::from_millis(700));

    Command::new("kill")
        .args(["-TERM", &sensor.0.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = sensor.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the sensor did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    log.extend(rx.try_iter());
    assert!(status.success(), "sensor {status:?}:\n{}", log.join("\n"));
    let mine = format!("-{uac_pid}@");
    records
        .join()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).expect("stdout holds JSON lines only"))
        .filter(|r| r["call_id"].as_str().is_some_and(|c| c.contains(&mine)))
        .collect()
}

fn assert_one_record_per_call(records: &[Value], what: &str) {
    let mut ids: Vec<&str> = records
        .iter()
        .map(|r| r["call_id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        (records.len(), ids.len()),
        (CALLS, CALLS),
        "{what}: {records:?}"
    );
    for r in records {
        assert_eq!(r["schema"], "shaken-sensor/call/v1");
        assert_eq!(r["dialog"]["answered"], true, "{what}: {r}");
        assert_eq!(r["dialog"]["ended_by"], "caller", "{what}: {r}");
        // The shipped example peer for 127.0.0.0/8.
        assert_eq!(r["upstream"]["peer"], "loopback-lab", "{what}: {r}");
    }
}

#[test]
fn shipped_config_and_systemd_command_lines_capture_on_any() {
    if !common::is_root() || !common::have("sipp") || !common::have("ip") {
        eprintln!("SKIPPED: needs root, sipp and ip (a network namespace, live capture on any)");
        return;
    }
    let ns = Netns::new(format!("shk{}", std::process::id() % 100_000));

    // 1. As a new operator runs it by hand.
    let dir = tempfile::tempdir().unwrap();
    let config = shipped_config(dir.path());
    let argv = [
        common::bin().display().to_string(),
        "run".into(),
        "--config".into(),
        config.display().to_string(),
    ];
    let records = run_and_call(&ns, &argv);
    assert_one_record_per_call(&records, "run --config (shipped)");
    // The store directory named by the config did not exist: `run` created it and wrote there.
    let store = dir.path().join("state/store");
    let partitions = std::fs::read_dir(&store)
        .map(|d| d.count())
        .unwrap_or_else(|e| panic!("{}: {e}", store.display()));
    assert!(partitions > 0, "no partition in {}", store.display());

    // 2. As the systemd unit runs it: ExecStartPre must pass, then ExecStart captures.
    let dir = tempfile::tempdir().unwrap();
    let config = shipped_config(dir.path());
    let pre = unit_command("ExecStartPre", &config);
    let out = Command::new(&pre[0]).args(&pre[1..]).output().unwrap();
    assert!(
        out.status.success() && out.stdout == b"ok\n",
        "ExecStartPre {pre:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let start = unit_command("ExecStart", &config);
    let records = run_and_call(&ns, &start);
    assert_one_record_per_call(&records, "ExecStart");
}

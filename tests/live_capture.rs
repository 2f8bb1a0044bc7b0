//! Live capture end to end: `shaken-sensor run` on the loopback interface while sipp (a real
//! SIP load generator) places N answered calls through it. Needs root (raw capture) and sipp;
//! skipped with a message otherwise. Traffic stays on 127.0.0.1.

mod common;

use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn wait_with_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    None
}

#[test]
fn live_loopback_capture_records_every_sipp_call() {
    if !common::is_root() || !common::have("sipp") {
        eprintln!("SKIPPED: live capture needs root and sipp (apt-get install sip-tester)");
        return;
    }
    const CALLS: usize = 20;
    const UAS_PORT: u16 = 15070;
    const UAC_PORT: u16 = 15071;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sensor.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sensor]\nid = \"live-test\"\nworkers = 2\n[capture]\ninterfaces = [\"lo\"]\nsip_ports = [{UAS_PORT}]\n\
             [traceback]\ndir = \"{store}\"\n[http]\nbind = \"127.0.0.1:0\"\n\
             [[peers]]\nname = \"lab\"\nocn = \"9999\"\ncidrs = [\"127.0.0.0/8\"]\n",
            store = dir.path().join("store").display()
        ),
    )
    .unwrap();
    let out = dir.path().join("records.jsonl");
    let (mut sensor, mut log) = common::run_until_capturing(&cfg, &out);

    let _uas = common::sipp_uas(UAS_PORT, 60);
    let mut uac = Command::new("sipp")
        .args([
            "-sn",
            "uac",
            &format!("127.0.0.1:{UAS_PORT}"),
            "-i",
            "127.0.0.1",
            "-p",
            &UAC_PORT.to_string(),
        ])
        // The called number, so the calls can be looked up in the traceback store.
        .args(["-s", "13035550177"])
        .args([
            "-m",
            &CALLS.to_string(),
            "-r",
            "20",
            "-d",
            "200",
            "-nostdin",
            "-timeout",
            "40s",
            "-timeout_error",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status =
        wait_with_timeout(&mut uac, Duration::from_secs(45)).expect("sipp uac did not finish");
    assert!(status.success(), "sipp uac failed: {status:?}");
    std::thread::sleep(Duration::from_millis(500));

    Command::new("kill")
        .arg("-TERM")
        .arg(sensor.0.id().to_string())
        .status()
        .unwrap();
    let status = wait_with_timeout(&mut sensor.0, Duration::from_secs(15))
        .expect("sensor did not stop on SIGTERM");
    assert!(status.success(), "sensor exit {status:?}: {}", log.text());

    let records: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        records.len(),
        CALLS,
        "one record per call; log: {}",
        log.text()
    );
    for r in &records {
        assert_eq!(r["schema"], "shaken-sensor/call/v1");
        assert_eq!(r["transport"], "udp");
        assert_eq!(r["dialog"]["answered"], true, "{r}");
        assert_eq!(r["dialog"]["final_code"], 200, "{r}");
        assert_eq!(r["dialog"]["ended_by"], "caller", "{r}");
        assert!(r["dialog"]["duration_ms"].as_u64().unwrap() >= 150, "{r}");
        assert_eq!(r["upstream"]["peer"], "lab");
        assert_eq!(r["upstream"]["ocn"], "9999");
        assert_eq!(r["dst"]["port"], UAS_PORT);
    }
    // SIGTERM flushed the traceback store too: every call is answered from it.
    let first = &records[0];
    assert_eq!(first["dest_tn"], "13035550177");
    let store = dir.path().join("store");
    let at = first["observed_at"].as_str().unwrap();
    let answer = common::traceback(
        &store,
        &["--dest", "+1 303 555 0177", "--at", at, "--window-s", "600"],
    );
    assert_eq!(
        answer["calls"].as_array().unwrap().len(),
        CALLS,
        "every call is in the store: {answer}"
    );
    let mut ids: Vec<&str> = records
        .iter()
        .map(|r| r["call_id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), CALLS, "distinct Call-IDs");
}

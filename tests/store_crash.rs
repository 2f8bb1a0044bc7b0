//! SIGKILL during a replay that writes the traceback store, then a restart on the same store:
//! every partition passes `PRAGMA integrity_check`, and replaying again completes the store
//! without duplicates (records are keyed by their stable record_id).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn count_and_check(store: &std::path::Path) -> i64 {
    let mut total = 0;
    for entry in std::fs::read_dir(store).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("sqlite") {
            continue;
        }
        let db = rusqlite::Connection::open(&path).unwrap();
        let ok: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok", "{}", path.display());
        total += db
            .query_row(
                "SELECT (SELECT count(*) FROM call) + (SELECT count(*) FROM call_x)",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap_or(0);
    }
    total
}

#[test]
fn kill_9_during_replay_then_restart_on_the_same_store() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("calls.pcap");
    let gen = Command::new("python3")
        .arg(common::repo().join("benches/gen_calls.py"))
        .arg(&pcap)
        .arg("30000")
        .status();
    if !matches!(gen, Ok(s) if s.success()) {
        eprintln!("SKIPPED: python3 could not generate the capture");
        return;
    }
    let store = dir.path().join("store");
    let cfg = dir.path().join("sensor.toml");
    std::fs::write(&cfg, "[sensor]\nworkers = 2\n[traceback]\nflush_ms = 50\n").unwrap();
    let replay = || {
        Command::new(common::bin())
            .arg("replay")
            .arg(&pcap)
            .arg("--config")
            .arg(&cfg)
            .arg("--store")
            .arg(&store)
            .args(["--out", "", "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut child = replay();
    // Kill once some batches are committed, well before the end.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let committed = store.is_dir() && std::fs::read_dir(&store).unwrap().count() > 0;
        if committed || Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(150));
    let finished_before_kill = child.try_wait().unwrap().is_some();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let after_kill = count_and_check(&store);
    eprintln!("records stored before the kill: {after_kill} of 30000");
    assert!(after_kill <= 30_000);
    if finished_before_kill {
        eprintln!("note: the replay finished before the kill on this machine");
    }
    // Restart on the same store: the replay completes it, record ids absorb the repeats.
    let status = replay().wait().unwrap();
    assert!(status.success());
    assert_eq!(
        count_and_check(&store),
        30_000,
        "{after_kill} were stored before the kill"
    );
}

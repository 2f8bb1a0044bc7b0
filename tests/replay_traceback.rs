//! The traceback store end to end: replay sample captures with the store enabled, then answer
//! traceback requests with `shaken-sensor traceback` (read-only, no daemon) for known calls.

mod common;

use common::{pcap, traceback};
use std::process::Command;

#[test]
fn replayed_calls_are_answered_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let config = "[sensor]\nid = \"tb\"\nworkers = 2\n[[peers]]\nname = \"lab\"\nocn = \"4321\"\ncidrs = [\"127.0.0.0/8\"]\n";
    let r = common::replay_with(
        &[&pcap("udp-outcomes.pcap")],
        config,
        &["--store", store.to_str().unwrap()],
    );
    assert_eq!(r.records.len(), 14);
    assert_eq!(
        r.metric(r#"shaken_sensor_traceback_store{stat="inserted"}"#),
        14.0,
        "{}",
        r.metrics
    );
    let busy = r
        .records
        .iter()
        .find(|c| c["call_id"] == "outcome-busy-1@uac.shaken-sensor.test")
        .unwrap();
    let at = busy["observed_at"].as_str().unwrap();
    let orig = busy["orig_tn"].as_str().unwrap();
    let dest = busy["dest_tn"].as_str().unwrap();
    // Numbers as a traceback request writes them: with '+' and separators.
    let pretty_dest = format!(
        "+{} ({}) {}-{}",
        &dest[..1],
        &dest[1..4],
        &dest[4..7],
        &dest[7..]
    );
    let a = traceback(
        &store,
        &[
            "--orig",
            &format!("+{orig}"),
            "--dest",
            &pretty_dest,
            "--at",
            at,
            "--window-s",
            "60",
        ],
    );
    let calls = a["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{a}");
    assert_eq!(calls[0]["call_id"], "outcome-busy-1@uac.shaken-sensor.test");
    assert_eq!(calls[0]["upstream"]["peer"], "lab");
    assert_eq!(calls[0]["upstream"]["ocn"], "4321");
    assert_eq!(calls[0]["dialog"]["final_code"], 486);
    assert_eq!(calls[0]["shaken"]["verstat"], "No-TN-Validation");
    // By destination alone, every call to that number in the window.
    let a = traceback(&store, &["--dest", dest, "--at", at]);
    assert_eq!(a["calls"].as_array().unwrap().len(), 1);
    // An unknown call is an empty answer, not an error.
    let a = traceback(&store, &["--dest", "+13035559999", "--at", at]);
    assert_eq!(a["calls"].as_array().unwrap().len(), 0);
    // Bad input names the parameter.
    let out = Command::new(common::bin())
        .args(["traceback", "--store"])
        .arg(&store)
        .args(["--dest", "+13035550114", "--at", "yesterday"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("at"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue #20: a stage failing late (here the records' JSON lines output, on a full disk) must
/// not skip draining the traceback store and the push spool. The same replay with a working
/// output names the calls; after the failing one every call is in the store and in the spool,
/// and the failure is still reported.
#[test]
fn a_failing_records_output_still_drains_the_store_and_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let good = common::replay(&[&pcap("udp-outcomes.pcap")], common::DEFAULT_CONFIG);
    assert_eq!(good.records.len(), 14);
    let store = dir.path().join("store");
    let spool = dir.path().join("spool");
    let cfg = dir.path().join("sensor.toml");
    // Nothing listens on port 1: every record stays in the spool after a short drain.
    std::fs::write(
        &cfg,
        format!(
            "[sensor]\nid = \"test-sensor\"\nworkers = 2\n[push]\nenabled = true\n\
             url = \"http://127.0.0.1:1\"\nallow_http = true\ntoken = \"t\"\n\
             spool_dir = \"{}\"\ndead_letter_dir = \"{}\"\ndrain_timeout_s = 1\n",
            spool.display(),
            dir.path().join("dead").display()
        ),
    )
    .unwrap();
    let out = Command::new(common::bin())
        .arg("replay")
        .arg(pcap("udp-outcomes.pcap"))
        .arg("--config")
        .arg(&cfg)
        .args(["--out", "/dev/full", "--quiet", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the output failure is reported");
    assert!(stderr.contains("/dev/full"), "{stderr}");
    for r in &good.records {
        let a = traceback(
            &store,
            &[
                "--dest",
                r["dest_tn"].as_str().unwrap(),
                "--at",
                r["observed_at"].as_str().unwrap(),
                "--window-s",
                "60",
            ],
        );
        let ids: Vec<&str> = a["calls"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["call_id"].as_str())
            .collect();
        assert!(
            ids.contains(&r["call_id"].as_str().unwrap()),
            "{} missing from the store: {a}",
            r["call_id"]
        );
    }
    let spooled = shaken_sensor::export::spool::Spool::open(
        &shaken_sensor::export::spool::SpoolConfig {
            dir: spool,
            max_bytes: 1 << 30,
            fsync: shaken_sensor::export::spool::FsyncPolicy::EveryBatch,
        },
        std::sync::Arc::new(shaken_sensor::metrics::Metrics::new()),
    )
    .unwrap();
    assert_eq!(
        spooled.pending(shaken_sensor::export::spool::Kind::CallRecord),
        14
    );
}

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

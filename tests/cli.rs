//! The command line as an operator meets it: `check-config` on the shipped file and on broken
//! ones (exit status 2, the file, the key and the problem named), and usage errors.

mod common;

use std::process::Command;

fn check(path: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(common::bin())
        .arg("check-config")
        .arg("--config")
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn shipped_config_is_ok() {
    let (code, stdout, _) = check(&common::repo().join("config/sensor.toml"));
    assert_eq!((code, stdout.trim()), (0, "ok"));
}

#[test]
fn broken_configs_exit_2_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    for (body, key) in [
        ("[capture]\nsnaplen = 5\n", "capture.snaplen"),
        ("[capture]\nsnap_len = 65535\n", "snap_len"),
        (
            "[[peers]]\nname = \"a\"\ncidrs = [\"300.1.1.1/8\"]\n",
            "peers[0].cidrs[0]",
        ),
        ("[shaken.x5u]\ntimeout_ms = 0\n", "shaken.x5u.timeout_ms"),
        ("[shaken]\ncrl = \"sometimes\"\n", "crl"),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, body).unwrap();
        let (code, _, stderr) = check(&path);
        assert_eq!(code, 2, "{body}: {stderr}");
        assert!(stderr.contains(&path.display().to_string()), "{stderr}");
        assert!(stderr.contains(key), "{body}: {stderr} lacks {key}");
    }
    let (code, _, stderr) = check(&dir.path().join("missing.toml"));
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot read"), "{stderr}");
}

#[test]
fn unreadable_capture_is_a_clear_error() {
    let out = Command::new(common::bin())
        .args(["replay", "/nonexistent/x.pcap", "-q"])
        .output()
        .unwrap();
    // A file the operator named that cannot be opened is a usage problem (issue 12): status 2.
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/x.pcap"), "{stderr}");
}

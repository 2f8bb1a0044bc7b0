//! The shipped systemd unit: the hardening the operator guide promises is really in the file,
//! its ExecStartPre accepts the shipped configuration, and — where systemd-analyze exists —
//! `systemd-analyze verify` passes and the offline security exposure stays at or under the
//! score README quotes.

mod common;

use std::process::Command;

fn unit() -> String {
    std::fs::read_to_string(common::repo().join("systemd/shaken-sensor.service")).unwrap()
}

/// Every value of `key=` in the unit, in order.
fn values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .map(str::to_string)
        .collect()
}

fn one(unit: &str, key: &str) -> String {
    let v = values(unit, key);
    assert_eq!(v.len(), 1, "{key}= must appear once: {v:?}");
    v[0].clone()
}

#[test]
fn unit_runs_as_a_dedicated_user_with_only_the_capture_capabilities() {
    let u = unit();
    assert_eq!(one(&u, "User"), "shaken-sensor");
    assert_eq!(one(&u, "Group"), "shaken-sensor");
    assert!(values(&u, "DynamicUser").is_empty());
    let mut ambient: Vec<String> = one(&u, "AmbientCapabilities")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    ambient.sort();
    assert_eq!(ambient, ["CAP_NET_ADMIN", "CAP_NET_RAW"]);
    let mut bounding: Vec<String> = one(&u, "CapabilityBoundingSet")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    bounding.sort();
    assert_eq!(bounding, ambient);
    assert_eq!(one(&u, "NoNewPrivileges"), "yes");
    assert_eq!(one(&u, "ProtectSystem"), "strict");
    assert_eq!(one(&u, "ProtectHome"), "yes");
    assert_eq!(one(&u, "Restart"), "on-failure");
    assert_eq!(one(&u, "ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(one(&u, "LimitCORE"), "0");
    for key in ["LimitNOFILE", "MemoryMax", "TasksMax"] {
        assert!(!one(&u, key).is_empty(), "{key}");
    }
    // Store and spool are state directories (the only writable paths).
    let state: Vec<String> = one(&u, "StateDirectory")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(
        state,
        [
            "shaken-sensor",
            "shaken-sensor/store",
            "shaken-sensor/spool"
        ]
    );
    let cfg = shaken_sensor::config::Config::default();
    assert_eq!(cfg.traceback.dir, "/var/lib/shaken-sensor/store");
    // The user file names the same user.
    let sysusers =
        std::fs::read_to_string(common::repo().join("systemd/shaken-sensor.sysusers.conf"))
            .unwrap();
    assert!(sysusers.lines().any(|l| l.starts_with("u shaken-sensor ")));
}

#[test]
fn exec_start_pre_checks_the_configuration() {
    let u = unit();
    let pre = one(&u, "ExecStartPre");
    let args: Vec<&str> = pre.split_whitespace().collect();
    assert_eq!(
        args,
        [
            "/usr/local/bin/shaken-sensor",
            "check-config",
            "--config",
            "/etc/shaken-sensor/sensor.toml"
        ]
    );
    // The same command on the shipped configuration succeeds...
    let ok = Command::new(common::bin())
        .args(&args[1..3])
        .arg(common::repo().join("config/sensor.toml"))
        .output()
        .unwrap();
    assert!(ok.status.success(), "{ok:?}");
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "ok\n");
    // ...and fails on a broken one, so systemd never starts a sensor with it.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("sensor.toml");
    std::fs::write(&bad, "[capture]\nqueue_batchs = 1\n").unwrap();
    let out = Command::new(common::bin())
        .args(&args[1..3])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn systemd_analyze_verify_and_security_exposure() {
    let have = Command::new("sh")
        .args(["-c", "command -v systemd-analyze"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        eprintln!("SKIPPED: systemd-analyze not installed");
        return;
    }
    // verify insists that ExecStart binaries exist: point them at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shaken-sensor.service");
    let bin = common::bin();
    std::fs::write(
        &path,
        unit().replace("/usr/local/bin/shaken-sensor", bin.to_str().unwrap()),
    )
    .unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&security.stdout);
    let Some(score) = text
        .lines()
        .find_map(|l| l.split("shaken-sensor.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.parse::<f64>().ok())
    else {
        // systemd older than 252 has no --offline: nothing to compare.
        eprintln!("SKIPPED: no offline security score: {text}");
        return;
    };
    // README quotes 1.8 ("OK"); a change that weakens the sandbox must update both.
    assert!(score <= 1.8, "exposure {score} > 1.8:\n{text}");
}

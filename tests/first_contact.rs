//! The first five minutes of a new operator (issue 12): each mistake or missing piece they
//! are likely to meet gives one line on stderr that names what is wrong and what to do, and
//! exit status 2. Missing libpcap cannot be tested here: the binary links it dynamically, so
//! the loader refuses to start it before any of our code runs (docs/operator-guide.md says
//! what that looks like and what to install).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// (exit status, stdout, stderr) of the sensor with `args`.
fn sensor(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(common::bin()).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The one line our code printed (the log lines of `run` come before it).
fn last_line(stderr: &str) -> &str {
    stderr.lines().last().unwrap_or("")
}

/// A directory others (the `nobody` user) can read, holding a config for live capture on
/// `iface` that writes nothing outside the directory and serves no HTTP.
fn live_config(iface: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let mut perm = std::fs::metadata(dir.path()).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(dir.path(), perm).unwrap();
    let cfg = dir.path().join("sensor.toml");
    std::fs::write(
        &cfg,
        format!(
            "[capture]\ninterfaces = [\"{iface}\"]\nsip_ports = [15990]\n\
             [traceback]\nenabled = false\n[http]\nbind = \"\"\n"
        ),
    )
    .unwrap();
    (dir, cfg)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_config_path_that_does_not_exist() {
    for cmd in ["run", "check-config", "replay"] {
        let mut args = vec![cmd, "--config", "/nonexistent/sensor.toml"];
        if cmd == "replay" {
            args.push("pcaps/udp-outcomes.pcap");
        }
        let (code, _, stderr) = sensor(&args);
        assert_eq!(code, Some(2), "{cmd}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{cmd}: {stderr}");
        assert!(
            stderr.contains("/nonexistent/sensor.toml: cannot read")
                && stderr.contains("pass --config FILE"),
            "{cmd}: {stderr}"
        );
    }
}

#[test]
fn an_interface_that_does_not_exist() {
    let (_dir, cfg) = live_config("shaken-nope0");
    // check-config (the unit's ExecStartPre) says so before `run` is even tried.
    let (code, _, stderr) = sensor(&["check-config", "--config", s(&cfg)]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: key `capture.interfaces`", cfg.display()))
            && stderr.contains("interface shaken-nope0 does not exist"),
        "{stderr}"
    );
    let (code, _, stderr) = sensor(&["run", "--config", s(&cfg)]);
    assert_eq!(code, Some(2), "{stderr}");
    let line = last_line(&stderr);
    assert!(
        line.contains("interface shaken-nope0 does not exist")
            && line.contains("lo")
            && line.contains(&format!("fix capture.interfaces in {}", cfg.display())),
        "{stderr}"
    );
}

#[test]
fn no_permission_to_capture() {
    let (_dir, cfg) = live_config("lo");
    let bin = common::bin();
    let out = if common::is_root() {
        if !common::have("runuser") {
            eprintln!("SKIPPED: no runuser to drop root (util-linux)");
            return;
        }
        // `nobody` has no capabilities: what a new user meets running the binary by hand.
        Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(&bin)
            .args(["run", "--config", s(&cfg)])
            .output()
            .unwrap()
    } else {
        Command::new(&bin)
            .args(["run", "--config", s(&cfg)])
            .output()
            .unwrap()
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(0) {
        eprintln!("SKIPPED: this user may capture (CAP_NET_RAW), nothing to refuse");
        return;
    }
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let line = last_line(&stderr);
    assert!(
        line.contains("no permission to capture on interface lo")
            && line.contains("run as root")
            && line.contains("CAP_NET_RAW"),
        "{stderr}"
    );
}

#[test]
fn a_pcap_that_is_not_a_pcap() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("calls.pcap");
    std::fs::write(&text, "this is a log file, not a capture\n").unwrap();
    let (code, stdout, stderr) = sensor(&["replay", s(&text), "-q"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} is not a pcap or pcapng capture",
            text.display()
        )) && stderr.contains("tcpdump -w"),
        "{stderr}"
    );
    // A capture cut short in its header is not a capture either.
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, [0xd4, 0xc3, 0xb2, 0xa1, 2, 0]).unwrap();
    let (code, _, stderr) = sensor(&["replay", s(&cut), "-q"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("is not a pcap or pcapng capture"),
        "{stderr}"
    );
}

#[test]
fn own_peer_colliding_with_the_shipped_example_peers() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sensor.toml");
    let shipped = std::fs::read_to_string(common::repo().join("config/sensor.toml")).unwrap();
    // What a new operator does: copy the shipped file and append their interconnect.
    std::fs::write(
        &cfg,
        format!(
            "{shipped}\n[[peers]]\nname = \"loopback-lab\"\nocn = \"4242\"\ncidrs = [\"10.9.0.0/16\"]\n"
        ),
    )
    .unwrap();
    let (code, _, stderr) = sensor(&["check-config", "--config", s(&cfg)]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("{}: key `peers[2].name`", cfg.display()))
            && stderr.contains("duplicate peer name \"loopback-lab\" (also peers[1])")
            && stderr.contains("delete the example [[peers]] blocks"),
        "{stderr}"
    );
}

#[test]
fn check_config_compiles_the_bpf_filter_with_libpcap() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sensor.toml");
    for (body, iface) in [
        // libpcap has no VLAN support on the Linux cooked link type of "any" (issue 19).
        (
            "[capture]\ninterfaces = [\"any\"]\nbpf_filter = \"vlan and udp port 5060\"\n",
            "any",
        ),
        (
            "[capture]\ninterfaces = [\"lo\"]\nbpf_filter = \"udp port five\"\n",
            "lo",
        ),
    ] {
        std::fs::write(&cfg, body).unwrap();
        let (code, stdout, stderr) = sensor(&["check-config", "--config", s(&cfg)]);
        assert_eq!(code, Some(2), "{body}: {stdout}{stderr}");
        assert!(
            stderr.contains(&format!("{}: key `capture.bpf_filter`", cfg.display()))
                && stderr.contains(&format!("on interface {iface}")),
            "{stderr}"
        );
    }
    // "auto" suits every link type, the shipped "any" included.
    std::fs::write(
        &cfg,
        "[capture]\ninterfaces = [\"any\", \"lo\"]\nbpf_filter = \"auto\"\n",
    )
    .unwrap();
    let (code, stdout, stderr) = sensor(&["check-config", "--config", s(&cfg)]);
    assert_eq!((code, stdout.trim()), (Some(0), "ok"), "{stderr}");
}

#[test]
fn verify_prints_a_line_for_every_input_it_could_not_judge() {
    let dir = tempfile::tempdir().unwrap();
    let notsip = dir.path().join("notes.txt");
    std::fs::write(&notsip, "hello\n").unwrap();
    let register = dir.path().join("register.sip");
    std::fs::write(
        &register,
        "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
         From: <sip:a@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: reg-1\r\n\
         CSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    let options_pcap = dir.path().join("options.pcap");
    common::write_udp_pcap(
        &options_pcap,
        &[(
            1_700_000_000_000_000,
            [127, 0, 0, 1],
            [127, 0, 0, 2],
            b"OPTIONS sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK2\r\n\
              From: <sip:a@example.com>;tag=2\r\nTo: <sip:b@example.com>\r\nCall-ID: opt-1\r\n\
              CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
                .to_vec(),
        )],
    );
    let missing = dir.path().join("missing.sip");
    let (code, stdout, stderr) = sensor(&[
        "verify",
        s(&notsip),
        s(&register),
        s(&options_pcap),
        s(&missing),
        s(&common::pcap("udp-outcomes.pcap")),
    ]);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let skipped: Vec<(&str, &str)> = lines
        .iter()
        .filter_map(|l| Some((l["input"].as_str()?, l["skipped"].as_str()?)))
        .collect();
    assert_eq!(
        skipped,
        [
            (s(&notsip), "not_sip"),
            (s(&register), "not_invite"),
            (s(&options_pcap), "no_invite"),
            (s(&missing), "unreadable"),
        ],
        "{stdout}"
    );
    // The sample capture's INVITEs are judged (unsigned) as before.
    let judged = lines.iter().filter(|l| l.get("skipped").is_none()).count();
    assert!(judged >= 14, "{stdout}");
    // Two inputs were not SIP or a capture at all: the status says so, in one line.
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        last_line(&stderr).contains("2 of 5 inputs were neither a SIP message nor a pcap"),
        "{stderr}"
    );
}

#[test]
fn the_http_port_is_taken() {
    let (dir, _) = live_config("lo");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let cfg = dir.path().join("http.toml");
    std::fs::write(
        &cfg,
        format!("[capture]\ninterfaces = [\"lo\"]\n[traceback]\nenabled = false\n[http]\nbind = \"{addr}\"\n"),
    )
    .unwrap();
    let (code, _, stderr) = sensor(&["run", "--config", s(&cfg)]);
    assert_eq!(code, Some(2), "{stderr}");
    let line = last_line(&stderr);
    assert!(
        line.contains(&format!("http.bind {addr}"))
            && line.contains(&format!("set http.bind in {}", cfg.display())),
        "{stderr}"
    );
}

#[test]
fn a_store_directory_that_cannot_be_created() {
    if !common::is_root() {
        eprintln!("SKIPPED: the store is opened after the capture, which needs root");
        return;
    }
    let (dir, _) = live_config("lo");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let cfg = dir.path().join("store.toml");
    std::fs::write(
        &cfg,
        format!(
            "[capture]\ninterfaces = [\"lo\"]\nsip_ports = [15990]\n[http]\nbind = \"\"\n\
             [traceback]\ndir = \"{}/store\"\n",
            file.display()
        ),
    )
    .unwrap();
    let (code, _, stderr) = sensor(&["run", "--config", s(&cfg)]);
    assert_eq!(code, Some(2), "{stderr}");
    let line = last_line(&stderr);
    assert!(
        line.contains(&format!("{}/store", file.display()))
            && line.contains(&format!("set traceback.dir in {}", cfg.display())),
        "{stderr}"
    );
}

#[test]
fn trust_anchors_that_do_not_exist() {
    let (code, _, stderr) = sensor(&[
        "verify",
        "--trust-anchors",
        "/nonexistent/sti-ca.pem",
        "pcaps/udp-outcomes.pcap",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    let line = last_line(&stderr);
    assert!(
        line.contains("/nonexistent/sti-ca.pem") && line.contains("check --trust-anchors"),
        "{stderr}"
    );
}

//! The "any" pseudo-interface hands over a packet once per interface it crosses (issue 19): a
//! host routing SIP between two interfaces captures every packet twice. The sensor drops such
//! copies on Linux cooked captures, so one call is one record, and counts them.
//!
//! Two captures: the project's real SLL and SLL2 samples (sipp + tcpdump on "any") with every
//! frame written twice as a router would show it (the copy on another interface index or
//! direction, TTL one less, checksum rewritten); and, as root, a capture taken by tcpdump on
//! "any" in a network namespace that routes sipp calls between two others.

mod common;

use common::{pcap, replay, DEFAULT_CONFIG};
use std::path::Path;
use std::process::{Command, Stdio};

/// One pcap record: its 16-byte header and the frame.
type Record = (Vec<u8>, Vec<u8>);

/// A classic little-endian pcap: the file header and the records.
fn read_pcap(path: &Path) -> (Vec<u8>, Vec<Record>) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(
        &b[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "little-endian classic pcap"
    );
    let mut frames = Vec::new();
    let mut off = 24;
    while off + 16 <= b.len() {
        let caplen = u32::from_le_bytes(b[off + 8..off + 12].try_into().unwrap()) as usize;
        frames.push((
            b[off..off + 16].to_vec(),
            b[off + 16..off + 16 + caplen].to_vec(),
        ));
        off += 16 + caplen;
    }
    (b[..24].to_vec(), frames)
}

fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The frame as the second interface of a router shows it.
fn routed_copy(linktype: u32, frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    let ip = match linktype {
        // SLL2: interface index at 4..8.
        276 => {
            f[7] = f[7].wrapping_add(1);
            20
        }
        // SLL v1: no interface index; the packet type says outgoing.
        113 => {
            f[1] = 4;
            16
        }
        other => panic!("not a Linux cooked capture: {other}"),
    };
    assert_eq!(f[ip] >> 4, 4, "IPv4 samples");
    let ihl = usize::from(f[ip] & 0x0f) * 4;
    f[ip + 8] -= 1;
    f[ip + 10] = 0;
    f[ip + 11] = 0;
    let c = ipv4_checksum(&f[ip..ip + ihl]);
    f[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
    f
}

fn write_doubled(src: &Path, dst: &Path) -> usize {
    let (header, frames) = read_pcap(src);
    let linktype = u32::from_le_bytes(header[20..24].try_into().unwrap());
    let mut out = header;
    for (h, f) in &frames {
        out.extend_from_slice(h);
        out.extend_from_slice(f);
        // Same time plus 3 µs; same lengths.
        let mut h2 = h.clone();
        let usec = u32::from_le_bytes(h2[4..8].try_into().unwrap()) + 3;
        h2[4..8].copy_from_slice(&usec.to_le_bytes());
        out.extend_from_slice(&h2);
        out.extend_from_slice(&routed_copy(linktype, f));
    }
    std::fs::write(dst, out).unwrap();
    frames.len()
}

#[test]
fn every_packet_twice_on_any_is_still_one_record_per_call() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["linux-sll2.pcap", "linux-sll.pcap"] {
        let once = replay(&[&pcap(name)], DEFAULT_CONFIG);
        let doubled = dir.path().join(name);
        let frames = write_doubled(&pcap(name), &doubled);
        let twice = replay(&[&doubled], DEFAULT_CONFIG);
        assert_eq!(once.records.len(), 5, "{name}");
        assert_eq!(twice.records.len(), 5, "{name}: {:?}", twice.records);
        let ids = |r: &common::Replay| {
            let mut v: Vec<String> = r
                .records
                .iter()
                .map(|c| c["record_id"].as_str().unwrap().to_string())
                .collect();
            v.sort();
            v
        };
        assert_eq!(ids(&once), ids(&twice), "{name}: the same calls");
        assert_eq!(
            once.count("sip_messages"),
            twice.count("sip_messages"),
            "{name}: no message counted twice"
        );
        assert_eq!(
            twice.metric("shaken_sensor_duplicate_packets_total"),
            frames as f64,
            "{name}"
        );
        assert_eq!(twice.count("duplicate_packets"), frames as u64, "{name}");
        assert_eq!(once.metric("shaken_sensor_duplicate_packets_total"), 0.0);
        // With the copy filter off every message is taken twice (the dialog table then
        // treats the second as a retransmission of the first): what the filter prevents.
        let off = replay(
            &[&doubled],
            &format!("{DEFAULT_CONFIG}[capture]\ndedup_window_ms = 0\n"),
        );
        assert_eq!(
            off.count("sip_messages"),
            2 * once.count("sip_messages"),
            "{name}"
        );
    }
}

/// Runs `ip` (or fails the test with its error).
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Three network namespaces: sipp calls from 10.91.1.2 (namespace A) to 10.91.2.2 (namespace
/// B) through namespace R, which routes between its two veths (forwarding on in R only);
/// tcpdump on "any" in R sees each packet on both of them. Nothing touches the host's own
/// interfaces or settings.
struct RoutedLab {
    tag: String,
}

impl RoutedLab {
    fn new() -> Self {
        let lab = RoutedLab {
            tag: format!("sc{}", std::process::id() % 100_000),
        };
        for s in ['a', 'r', 'b'] {
            ip(&["netns", "add", &lab.ns(s)]);
        }
        let r = lab.ns('r');
        let in_ns = |ns: &str, args: &[&str]| {
            let mut v = vec!["netns", "exec", ns, "ip"];
            v.extend_from_slice(args);
            ip(&v);
        };
        in_ns(&r, &["link", "set", "lo", "up"]);
        for (side, net) in [('a', "1"), ('b', "2")] {
            let ns = lab.ns(side);
            let (rif, nif) = (format!("{}r{side}", lab.tag), format!("{}n{side}", lab.tag));
            ip(&[
                "link", "add", &rif, "netns", &r, "type", "veth", "peer", "name", &nif, "netns",
                &ns,
            ]);
            in_ns(
                &r,
                &["addr", "add", &format!("10.91.{net}.1/24"), "dev", &rif],
            );
            in_ns(&r, &["link", "set", &rif, "up"]);
            in_ns(
                &ns,
                &["addr", "add", &format!("10.91.{net}.2/24"), "dev", &nif],
            );
            in_ns(&ns, &["link", "set", &nif, "up"]);
            in_ns(&ns, &["link", "set", "lo", "up"]);
            in_ns(
                &ns,
                &["route", "add", "default", "via", &format!("10.91.{net}.1")],
            );
        }
        let fwd = Command::new("ip")
            .args([
                "netns",
                "exec",
                &r,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ])
            .status()
            .unwrap();
        assert!(fwd.success(), "enabling forwarding in namespace {r}");
        lab
    }

    fn ns(&self, side: char) -> String {
        format!("{}{side}", self.tag)
    }
}

impl Drop for RoutedLab {
    fn drop(&mut self) {
        // Deleting the namespaces deletes their veths.
        for s in ['a', 'r', 'b'] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(s)])
                .status();
        }
    }
}

#[test]
fn routed_calls_captured_on_any_by_tcpdump_are_one_record_each() {
    if !common::is_root() || !common::have("sipp") || !common::have("tcpdump") {
        eprintln!("SKIPPED: needs root, sipp and tcpdump (network namespaces, capture on any)");
        return;
    }
    const CALLS: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    let lab = RoutedLab::new();
    let cap = dir.path().join("any.pcap");
    let tcpdump = Command::new("ip")
        .args(["netns", "exec", &lab.ns('r'), "tcpdump"])
        .args(["-i", "any", "-y", "LINUX_SLL2", "-U", "-w"])
        .arg(&cap)
        .args(["udp and net 10.91.0.0/16"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let tcpdump = common::KillOnDrop(tcpdump);
    std::thread::sleep(std::time::Duration::from_millis(700));
    let uas = Command::new("ip")
        .args(["netns", "exec", &lab.ns('b'), "sipp", "-sn", "uas"])
        .args([
            "-i",
            "10.91.2.2",
            "-p",
            "5060",
            "-nostdin",
            "-timeout",
            "30s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _uas = common::KillOnDrop(uas);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let uac = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.ns('a'),
            "sipp",
            "-sn",
            "uac",
            "10.91.2.2:5060",
        ])
        .args(["-i", "10.91.1.2", "-p", "5061", "-m", &CALLS.to_string()])
        .args([
            "-r",
            "10",
            "-d",
            "100",
            "-nostdin",
            "-timeout",
            "20s",
            "-timeout_error",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(uac.success(), "sipp uac: {uac:?}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let _ = Command::new("kill")
        .args(["-INT", &tcpdump.0.id().to_string()])
        .status();
    std::thread::sleep(std::time::Duration::from_millis(500));
    drop(tcpdump);

    let r = replay(&[&cap], DEFAULT_CONFIG);
    assert_eq!(r.records.len(), CALLS, "{:?}", r.records);
    for rec in &r.records {
        assert_eq!(rec["dialog"]["answered"], true, "{rec}");
    }
    // Every SIP packet crossed both host-side interfaces: half of them are copies.
    let packets = r.count("packets") as f64;
    let copies = r.metric("shaken_sensor_duplicate_packets_total");
    assert!(
        packets > 0.0 && copies * 2.0 == packets,
        "{copies} copies of {packets} packets"
    );
}

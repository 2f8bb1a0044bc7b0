//! HEP input proved against Kamailio: Kamailio 5.6 proxies calls from a sipp UAC to a sipp UAS
//! on 127.0.0.1, signs the INVITEs it forwards with `secsipid` (a test STI certificate made by
//! openssl at test time) and mirrors every message as HEPv3 (`siptrace`) to `shaken-sensor run`
//! fed by HEP alone. tcpdump records the same calls on lo. Needs root, kamailio (with the
//! secsipid modules), sipp, tcpdump and openssl; SKIPPED otherwise. Ports 2516x are this test's
//! own, so other sipp traffic on lo does not mix in.

mod common;
mod common_pki;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KAMAILIO_PORT: u16 = 25160;
const UAS_PORT: u16 = 25162;
const UAC_PORT: u16 = 25164;
const HEP_PORT: u16 = 25166;
const AUTH_KEY: &str = "kamailio-test-key";
const X5U: &str = "https://certs.test.invalid/sp.pem";
/// (caller, callee); callers starting 1999 are forwarded unsigned by the Kamailio config.
const CALLS: [(&str, &str); 8] = [
    ("12025550143", "13035550177"),
    ("12025550144", "13035550178"),
    ("19995550100", "13035550179"),
    ("12025550145", "13035550180"),
    ("12025550146", "13035550181"),
    ("19995550101", "13035550182"),
    ("12025550147", "13035550183"),
    ("12025550148", "13035550184"),
];

fn wait_with_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn signal(child: &Child, sig: &str) {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
}

/// The Kamailio configuration docs/hep.md shows, with this test's ports and files.
fn kamailio_config(key: &Path) -> String {
    let doc = std::fs::read_to_string(common::repo().join("docs/hep.md")).unwrap();
    let block = doc
        .split("<!-- kamailio-test-config -->")
        .nth(1)
        .and_then(|b| b.split("<!-- /kamailio-test-config -->").next())
        .expect("docs/hep.md has the kamailio-test-config block");
    let cfg = block
        .trim()
        .trim_start_matches("```")
        .trim_end_matches("```")
        .trim();
    cfg.replace("KAMAILIO_PORT", &KAMAILIO_PORT.to_string())
        .replace("SENSOR_HEP_ADDR", &format!("127.0.0.1:{HEP_PORT}"))
        .replace("HEP_AUTH_KEY", AUTH_KEY)
        .replace("X5U_URL", X5U)
        .replace("SIGNING_KEY_PEM", &key.display().to_string())
        .replace("UAS_PORT", &UAS_PORT.to_string())
}

/// A sipp UAC scenario with numeric From/To from the -inf CSV (sipp's built-in UAC calls from
/// "sipp", which is no telephone number), following Kamailio's Record-Route.
fn uac_scenario() -> String {
    let headers = |method: &str, cseq: u32, to_tag: &str, routes: &str| {
        format!(
            "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n\
             From: <sip:[field0]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]\n\
             To: <sip:[field1]@127.0.0.1:{UAS_PORT}>{to_tag}\n\
             Call-ID: [call_id]\n{routes}\
             CSeq: {cseq} {method}\n\
             Contact: <sip:[field0]@[local_ip]:[local_port]>\n\
             Max-Forwards: 70\n"
        )
    };
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="numbered UAC through Kamailio">
  <send retrans="500"><![CDATA[
INVITE sip:[field1]@127.0.0.1:{UAS_PORT} SIP/2.0
{invite}User-Agent: sipp-hep-test
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
{ack}Content-Length: 0

]]></send>
  <pause milliseconds="300"/>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
{bye}Content-Length: 0

]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"#,
        invite = headers("INVITE", 1, "", ""),
        ack = headers("ACK", 1, "[peer_tag_param]", "[routes]\n"),
        bye = headers("BYE", 2, "[peer_tag_param]", "[routes]\n"),
    )
}

fn records(path: &Path) -> Vec<Value> {
    let mut v: Vec<Value> = std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    v.sort_by(|a, b| a["call_id"].as_str().cmp(&b["call_id"].as_str()));
    v
}

/// A record without the fields that legitimately differ between a HEP feed and a tcpdump of
/// the same calls: the capture time (Kamailio's clock when it mirrored the message vs the
/// kernel's when it crossed lo, microseconds apart) and everything derived from it (record_id,
/// ring and call durations, end time), and capture_agent.
fn comparable(r: &Value) -> Value {
    let mut r = r.clone();
    let o = r.as_object_mut().unwrap();
    for k in ["observed_at", "record_id", "capture_agent"] {
        o.remove(k);
    }
    let d = o["dialog"].as_object_mut().unwrap();
    for k in ["ring_ms", "duration_ms", "ended_at"] {
        d.remove(k);
    }
    r
}

fn micros(rfc3339: &Value) -> i64 {
    shaken_sensor::clock::Timestamp::parse_rfc3339(rfc3339.as_str().unwrap())
        .unwrap()
        .0
}

fn sensor_config(dir: &Path, pki: &common_pki::TestPki, extra_hep: &str) -> String {
    format!(
        "[sensor]\nid = \"hep-kamailio\"\nworkers = 2\n\
         [capture]\ninterfaces = []\nsip_ports = [{UAS_PORT}]\n\
         [capture.hep]\nenabled = true\nlisten_udp = \"127.0.0.1:{HEP_PORT}\"\n{extra_hep}\n\
         [shaken]\ntrust_anchors = [\"{root}\"]\ncrl = \"off\"\n\
         certs = [{{ url = \"{X5U}\", file = \"{bundle}\" }}]\n\
         [shaken.x5u]\nfetch = false\n\
         [traceback]\nenabled = false\ndir = \"{store}\"\n\
         [[peers]]\nname = \"kamailio-lab\"\nocn = \"7777\"\ncidrs = [\"127.0.0.1/32\"]\n",
        root = pki.root_path.display(),
        bundle = pki.valid.bundle_path.display(),
        store = dir.join("store").display(),
    )
}

/// Both HEP versions Kamailio sends, one after the other (they share this test's ports).
#[test]
fn kamailio_siptrace_feeds_the_sensor_over_hep() {
    let tools = ["kamailio", "sipp", "tcpdump", "openssl"];
    if !common::is_root() || tools.iter().any(|t| !common::have(t)) {
        eprintln!(
            "SKIPPED: needs root and {} (apt-get install kamailio kamailio-secsipid-modules \
             sip-tester tcpdump openssl)",
            tools.join(", ")
        );
        return;
    }
    run(3);
    // HEPv2 carries no auth key: the sensor checks none.
    run(2);
}

fn run(version: u8) {
    let pki = common_pki::shared().expect("openssl is installed");
    let auth_key = if version == 3 { AUTH_KEY } else { "" };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = d.join("sp-key.pem");
    std::fs::write(&key, &pki.valid.key_pkcs8_pem).unwrap();
    let kamailio_cfg =
        kamailio_config(&key).replace("\"hep_version\", 3", &format!("\"hep_version\", {version}"));
    assert!(kamailio_cfg.contains(&format!("\"hep_version\", {version}")));
    std::fs::write(d.join("kamailio.cfg"), kamailio_cfg).unwrap();
    std::fs::write(d.join("uac.xml"), uac_scenario()).unwrap();
    let mut csv = String::from("SEQUENTIAL\n");
    for (from, to) in CALLS {
        csv.push_str(&format!("{from};{to}\n"));
    }
    std::fs::write(d.join("numbers.csv"), csv).unwrap();

    // The sensor, fed only by HEP.
    let cfg = d.join("sensor.toml");
    std::fs::write(
        &cfg,
        sensor_config(
            d,
            pki,
            &format!("auth_key = \"{auth_key}\"\nleg_ports = [{UAS_PORT}]"),
        ),
    )
    .unwrap();
    let hep_out = d.join("hep.jsonl");
    let (mut sensor, mut log) = common::run_until_capturing(&cfg, &hep_out);

    // tcpdump of the same calls (and of the HEP feed) on lo.
    let pcap = d.join("lo.pcap");
    let mut tcpdump = Command::new("tcpdump")
        .args(["-i", "lo", "-U", "-n", "-w"])
        .arg(&pcap)
        .arg(format!("udp port {UAS_PORT} or udp dst port {HEP_PORT}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(tcpdump.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("listening"), "tcpdump: {line}");
    let tcpdump = common::KillOnDrop(tcpdump);

    let kamailio_log = std::fs::File::create(d.join("kamailio.log")).unwrap();
    let kamailio = Command::new("kamailio")
        .args(["-DD", "-E", "-f"])
        .arg(d.join("kamailio.cfg"))
        .stdout(Stdio::null())
        .stderr(kamailio_log)
        .spawn()
        .unwrap();
    let mut kamailio = common::KillOnDrop(kamailio);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        kamailio.0.try_wait().unwrap().is_none(),
        "kamailio exited: {}",
        std::fs::read_to_string(d.join("kamailio.log")).unwrap()
    );
    let _uas = common::sipp_uas(UAS_PORT, 60);
    let mut uac = Command::new("sipp")
        .arg(format!("127.0.0.1:{KAMAILIO_PORT}"))
        .arg("-sf")
        .arg(d.join("uac.xml"))
        .arg("-inf")
        .arg(d.join("numbers.csv"))
        .args(["-i", "127.0.0.1", "-p", &UAC_PORT.to_string()])
        .args(["-m", &CALLS.len().to_string(), "-r", "10", "-nostdin"])
        .args(["-timeout", "40s", "-timeout_error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status =
        wait_with_timeout(&mut uac, Duration::from_secs(45)).expect("sipp uac did not finish");
    assert!(
        status.success(),
        "sipp uac failed: {status:?}; kamailio: {}",
        std::fs::read_to_string(d.join("kamailio.log")).unwrap()
    );
    std::thread::sleep(Duration::from_millis(700));
    signal(&tcpdump.0, "INT");
    signal(&kamailio.0, "TERM");
    let _ = wait_with_timeout(&mut kamailio.0, Duration::from_secs(10));
    signal(&sensor.0, "TERM");
    let status = wait_with_timeout(&mut sensor.0, Duration::from_secs(15))
        .expect("sensor did not stop on SIGTERM");
    assert!(status.success(), "sensor: {}", log.text());
    drop(tcpdump);

    // One record per call, from HEP alone, with the right outcome and verdict.
    let hep = records(&hep_out);
    assert_eq!(hep.len(), CALLS.len(), "{hep:#?}\n{}", log.text());
    for r in &hep {
        let from = r["from_user"].as_str().unwrap();
        let (_, to) = CALLS
            .iter()
            .find(|(f, _)| *f == from)
            .expect("a sipp caller");
        assert_eq!(r["capture_agent"], 2001, "{r}");
        assert_eq!(r["transport"], "udp");
        // Addresses from the HEP chunks: Kamailio's leg towards the UAS.
        assert_eq!(r["src"]["port"], KAMAILIO_PORT, "{r}");
        assert_eq!(r["dst"]["port"], UAS_PORT, "{r}");
        assert_eq!(r["upstream"]["peer"], "kamailio-lab");
        assert_eq!(r["dest_tn"], *to);
        assert_eq!(r["user_agent"], "sipp-hep-test");
        assert_eq!(r["dialog"]["final_code"], 200, "{r}");
        assert_eq!(r["dialog"]["answered"], true, "{r}");
        assert_eq!(r["dialog"]["ended_by"], "caller", "{r}");
        assert!(r["dialog"]["duration_ms"].as_u64().unwrap() >= 250, "{r}");
        let s = &r["shaken"];
        if from.starts_with("1999") {
            assert_eq!(s["verstat"], "No-TN-Validation", "{r}");
            assert_eq!(s["identity_headers"], 0);
        } else {
            assert_eq!(s["verstat"], "TN-Validation-Passed", "{r}");
            assert_eq!(s["attest"], "A");
            assert_eq!(r["orig_tn"], from);
            assert_eq!(s["spc"], pki.valid.spc.as_deref().unwrap());
            assert_eq!(s["x5u"], X5U);
        }
    }
    let signed = hep
        .iter()
        .filter(|r| r["shaken"]["verstat"] == "TN-Validation-Passed")
        .count();
    assert_eq!(signed, 6, "every Kamailio-signed INVITE passed");

    // The tcpdump of the same calls, replayed as plain SIP, gives the same records.
    let plain = common::replay(&[&pcap], &sensor_config(d, pki, "pcap_ports = []"));
    let mut wire = plain.records.clone();
    wire.sort_by(|a, b| a["call_id"].as_str().cmp(&b["call_id"].as_str()));
    assert_eq!(wire.len(), hep.len());
    for (h, w) in hep.iter().zip(&wire) {
        assert_eq!(comparable(h), comparable(w));
        assert!(w.get("capture_agent").is_none(), "{w}");
        let skew = (micros(&h["observed_at"]) - micros(&w["observed_at"])).abs();
        assert!(skew < 100_000, "capture times {skew} µs apart");
    }

    // The same capture replayed through its HEP packets: the records of the live feed, exactly.
    let hep_config = |key: &str| {
        sensor_config(
            d,
            pki,
            &format!(
                "pcap_ports = [{HEP_PORT}]\nleg_ports = [{UAS_PORT}]\n\
                 auth_key = \"{key}\""
            ),
        )
        // Only the HEP packets carry SIP in this replay.
        .replace(&format!("sip_ports = [{UAS_PORT}]"), "sip_ports = [5060]")
    };
    let replayed = common::replay(&[&pcap], &hep_config(auth_key));
    let mut replayed_records = replayed.records.clone();
    replayed_records.sort_by(|a, b| a["call_id"].as_str().cmp(&b["call_id"].as_str()));
    assert_eq!(replayed_records, hep);

    // A wrong auth key (for HEPv2: any key, it cannot carry one): every HEP packet of the
    // capture refused and counted, no record.
    let hep_packets = Command::new("tcpdump")
        .args(["-n", "-r"])
        .arg(&pcap)
        .arg(format!("udp dst port {HEP_PORT}"))
        .stderr(Stdio::null())
        .output()
        .unwrap()
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    assert!(hep_packets >= CALLS.len() * 6, "{hep_packets} HEP packets");
    let refused = common::replay(&[&pcap], &hep_config("not-the-key"));
    assert!(refused.records.is_empty());
    assert_eq!(
        refused.metric(r#"shaken_sensor_decode_errors_total{kind="hep_auth_failed"}"#),
        hep_packets as f64
    );
}

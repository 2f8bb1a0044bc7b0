//! The provider registry against the real `shaken-collector` binary on 127.0.0.1: providers
//! and tokens made with the `provider` CLI, batches pushed over HTTP with sensor tokens, and
//! what the collector stored, read back with the configured token.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_shaken-collector");
const ADMIN: &str = "admin-token";

fn cli(db: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap()
}

/// Runs a `provider` command that must succeed; its stdout.
fn ok(db: &Path, args: &[&str]) -> String {
    let out = cli(db, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `provider add --name NAME ARGS`.
fn add(db: &Path, name: &str, args: &[&str]) {
    ok(db, &[&["provider", "add", "--name", name], args].concat());
}

/// `provider token`: the new token.
fn token(db: &Path, provider: &str, sensor: &str) -> String {
    let out = ok(
        db,
        &[
            "provider",
            "token",
            "--provider",
            provider,
            "--sensor",
            sensor,
        ],
    );
    out.trim().to_string()
}

/// Runs a `provider` command that must fail; its stderr.
fn refused(db: &Path, args: &[&str]) -> String {
    let out = cli(db, args);
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8(out.stderr).unwrap()
}

struct Collector {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(db: &Path) -> Collector {
    let mut child = Command::new(BIN)
        .args(["--bind", "127.0.0.1:0", "--db"])
        .arg(db)
        .env("SHAKEN_COLLECTOR_TOKEN", ADMIN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("collector said {line:?}"))
        .parse()
        .unwrap();
    Collector { child, addr }
}

/// One HTTP/1.1 request (Connection: close): status and body.
fn http(addr: SocketAddr, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp[9..12].parse().unwrap();
    let body = resp
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

fn record(id: &str, sensor: Option<&str>) -> String {
    match sensor {
        Some(s) => format!(
            "{{\"schema\":\"shaken-sensor/call/v1\",\"record_id\":\"{id}\",\"sensor_id\":\"{s}\"}}\n"
        ),
        None => format!("{{\"schema\":\"shaken-sensor/call/v1\",\"record_id\":\"{id}\"}}\n"),
    }
}

fn stored_ids(c: &Collector) -> Vec<String> {
    let (status, body) = http(c.addr, "GET", "/v1/records?limit=1000", ADMIN, "");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["record_id"].as_str().unwrap().to_string())
        .collect()
}

fn metric(c: &Collector, sample: &str) -> f64 {
    let (_, text) = http(c.addr, "GET", "/metrics", "", "");
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[test]
fn providers_are_registered_once_with_unique_ocns_and_sensors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    add(
        &db,
        "Alpha Tel",
        &[
            "--ocn",
            "111A",
            "--ocn",
            "1234",
            "--rmd",
            "RMD0001234",
            "--contact",
            "noc@alpha.example",
            "--contact",
            "+1 202 555 0100",
            "--flag",
            "cease-and-desist",
        ],
    );
    add(&db, "Bravo", &["--ocn", "222B"]);
    let refused_because = |args: &str, why: &str| {
        let err = refused(&db, &args.split(' ').collect::<Vec<_>>());
        assert!(err.contains(why), "{args}: {err}");
    };
    refused_because("provider add --name Bravo --ocn 333C", "exists already");
    refused_because(
        "provider add --name Charlie --ocn 111A",
        "OCN 111A belongs to provider \"Alpha Tel\"",
    );
    refused_because("provider add --name Delta --ocn 12", "not an OCN");
    refused_because("provider add --name Echo", "--ocn");
    let token = token(&db, "Alpha Tel", "edge-a");
    assert_eq!(token.len(), 64, "{token}");
    refused_because(
        "provider token --provider Bravo --sensor edge-a",
        "belongs to provider \"Alpha Tel\"",
    );
    refused_because(
        "provider token --provider Nobody --sensor x",
        "no provider named",
    );
    let list: Vec<serde_json::Value> = ok(&db, &["provider", "list"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(list.len(), 2, "{list:?}");
    let alpha = &list[0];
    assert_eq!(alpha["name"], "Alpha Tel");
    assert_eq!(alpha["ocns"], serde_json::json!(["111A", "1234"]));
    assert_eq!(alpha["rmd_number"], "RMD0001234");
    assert_eq!(
        alpha["contacts"],
        serde_json::json!(["noc@alpha.example", "+1 202 555 0100"])
    );
    assert_eq!(alpha["flags"], serde_json::json!(["cease_and_desist"]));
    assert_eq!(alpha["sensors"], serde_json::json!(["edge-a"]));
    assert_eq!(list[1]["name"], "Bravo");
    assert_eq!(list[1]["sensors"], serde_json::json!([]));
    // Only the token's hash is in the database.
    let bytes = std::fs::read(&db).unwrap();
    let wal = std::fs::read(dir.path().join("c.sqlite-wal")).unwrap_or_default();
    for b in [&bytes, &wal] {
        assert!(!b.windows(64).any(|w| w == token.as_bytes()));
    }
}

#[test]
fn a_sensor_token_pushes_only_its_providers_records() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    add(&db, "Alpha", &["--ocn", "111A"]);
    add(&db, "Bravo", &["--ocn", "222B"]);
    let a1 = token(&db, "Alpha", "edge-a1");
    token(&db, "Alpha", "edge-a2");
    let b = token(&db, "Bravo", "edge-b");
    let (a1, b) = (a1.as_str(), b.as_str());
    let c = start(&db);
    let refused_by = |reason: &str| {
        metric(
            &c,
            &format!("shaken_collector_provider_mismatch_total{{reason=\"{reason}\"}}"),
        )
    };

    // A token of Alpha pushes records of both of Alpha's sensors.
    let batch = record("a-1", Some("edge-a1")) + &record("a-2", Some("edge-a2"));
    let (status, body) = http(c.addr, "POST", "/v1/ingest", a1, &batch);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"accepted\":2"), "{body}");

    // Bravo's record inside an Alpha batch: the whole batch is refused and counted.
    let batch = record("a-3", Some("edge-a1")) + &record("b-1", Some("edge-b"));
    let (status, body) = http(c.addr, "POST", "/v1/ingest", a1, &batch);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("b-1"), "{body}");
    assert_eq!(refused_by("other_provider"), 1.0);
    // A sensor nobody registered, and a record without a sensor, are refused too.
    let (status, _) = http(
        c.addr,
        "POST",
        "/v1/ingest",
        a1,
        &record("x-1", Some("edge-z")),
    );
    assert_eq!(status, 403);
    assert_eq!(refused_by("unknown_sensor"), 1.0);
    let (status, _) = http(c.addr, "POST", "/v1/ingest", b, &record("x-2", None));
    assert_eq!(status, 403);
    assert_eq!(refused_by("no_sensor_id"), 1.0);
    assert_eq!(
        metric(&c, "shaken_collector_batches_total{status=\"403\"}"),
        3.0
    );

    // Bravo's own record with Bravo's token goes in.
    let (status, _) = http(
        c.addr,
        "POST",
        "/v1/ingest",
        b,
        &record("b-1", Some("edge-b")),
    );
    assert_eq!(status, 200);
    assert_eq!(stored_ids(&c), ["a-1", "a-2", "b-1"]);

    // Sensor tokens only push: reading is for the configured token.
    let (status, _) = http(c.addr, "GET", "/v1/records", a1, "");
    assert_eq!(status, 401);
    let (status, _) = http(
        c.addr,
        "POST",
        "/v1/ingest",
        "not-a-token",
        &record("y", Some("edge-b")),
    );
    assert_eq!(status, 401);
    // The configured token still pushes records of any sensor (the operator's own tooling).
    let (status, _) = http(
        c.addr,
        "POST",
        "/v1/ingest",
        ADMIN,
        &record("z", Some("edge-b")),
    );
    assert_eq!(status, 200);

    // A new token for a sensor, issued while the collector runs, works at once and the old
    // one no longer does.
    let a1_new = token(&db, "Alpha", "edge-a1");
    let (status, _) = http(
        c.addr,
        "POST",
        "/v1/ingest",
        a1,
        &record("a-4", Some("edge-a1")),
    );
    assert_eq!(status, 401);
    let (status, body) = http(
        c.addr,
        "POST",
        "/v1/ingest",
        &a1_new,
        &record("a-4", Some("edge-a1")),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(stored_ids(&c), ["a-1", "a-2", "b-1", "z", "a-4"]);
}

//! The push client over real TLS on 127.0.0.1: a tokio-rustls server that trusts only a test CA
//! (made by the `openssl` CLI) and *requires* a client certificate from it. The sensor side
//! trusts the CA through `push.ca_file` and presents `client_cert_file`/`client_key_file`.
//! Records spooled before the start are delivered DetectionEvents first, with the wire format
//! of docs/collector.md (headers, gzip NDJSON, one Idempotency-Key per batch).

use shaken_sensor::backpressure::Backpressure;
use shaken_sensor::config::PushConfig;
use shaken_sensor::export::push::PushService;
use shaken_sensor::export::spool::{FsyncPolicy, Kind, Spool, SpoolConfig};
use shaken_sensor::metrics::Metrics;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

fn openssl(dir: &Path, args: &[&str]) -> bool {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// ca.pem, server.{pem,key} (127.0.0.1), client.{pem,key}; false when openssl is missing.
fn make_pki(d: &Path) -> bool {
    let ec = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
    let mut ok = openssl(d, &[&["genpkey"][..], &ec, &["-out", "ca.key"]].concat())
        && openssl(
            d,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                "ca.key",
                "-subj",
                "/CN=push test CA",
                "-days",
                "2",
                "-out",
                "ca.pem",
            ],
        );
    for (name, ext) in [
        (
            "server",
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n",
        ),
        (
            "client",
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
        ),
    ] {
        std::fs::write(d.join(format!("{name}.ext")), ext).unwrap();
        ok = ok
            && openssl(d, &[&["genpkey"][..], &ec, &["-out", &format!("{name}.key")]].concat())
            && openssl(
                d,
                &[
                    "req", "-new", "-key", &format!("{name}.key"), "-subj",
                    &format!("/CN=push {name}"), "-out", &format!("{name}.csr"),
                ],
            )
            && openssl(
                d,
                &[
                    "x509", "-req", "-in", &format!("{name}.csr"), "-CA", "ca.pem", "-CAkey",
                    "ca.key", "-set_serial", if name == "server" { "2" } else { "3" }, "-days",
                    "2", "-extfile", &format!("{name}.ext"), "-out", &format!("{name}.pem"),
                ],
            );
    }
    ok
}

#[derive(Debug)]
struct Request {
    head: BTreeMap<String, String>,
    request_line: String,
    body: Vec<u8>,
    client_cert: bool,
}

fn server_config(d: &Path) -> rustls::ServerConfig {
    let read = |f: &str| std::fs::read(d.join(f)).unwrap();
    let certs = rustls_pemfile::certs(&mut &read("server.pem")[..])
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut &read("server.key")[..])
        .unwrap()
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut &read("ca.pem")[..]) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .unwrap()
}

/// Reads one HTTP/1.1 request (Content-Length body) from a TLS stream.
async fn read_request<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
) -> Option<(String, BTreeMap<String, String>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 1 << 20 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_string();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((request_line, headers, body))
}

#[test]
fn push_over_mutual_tls_delivers_detections_first_in_the_wire_format() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    if !make_pki(d) {
        eprintln!("SKIPPED: the openssl CLI is missing or failed");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config(d)));
    let seen: Arc<Mutex<Vec<Request>>> = Arc::default();
    let handshakes_failed = Arc::new(Mutex::new(0u32));
    {
        let (seen, failed) = (seen.clone(), handshakes_failed.clone());
        rt.spawn(async move {
            // Bounded: the test makes a handful of connections.
            for _ in 0..20 {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, seen, failed) = (acceptor.clone(), seen.clone(), failed.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        *failed.lock().unwrap() += 1;
                        return;
                    };
                    let client_cert = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .is_some_and(|c| !c.is_empty());
                    while let Some((request_line, head, body)) = read_request(&mut tls).await {
                        seen.lock().unwrap().push(Request {
                            head,
                            request_line,
                            body,
                            client_cert,
                        });
                        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
                        if tls.write_all(resp).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
    }

    // Records already in the spool (as after a restart): calls first, then a detection.
    let spool_dir = d.join("spool");
    let call = |i: u32| format!("{{\"schema\":\"shaken-sensor/call/v1\",\"record_id\":\"s:{i}\"}}");
    let detection = "{\"schema\":\"shaken-sensor/detection/v1\",\"detection_id\":\"s:det-1\",\"state\":\"opened\"}";
    {
        let spool = Spool::open(
            &SpoolConfig {
                dir: spool_dir.clone(),
                max_bytes: 1 << 20,
                fsync: FsyncPolicy::EveryBatch,
            },
            Arc::new(Metrics::new()),
        )
        .unwrap();
        spool
            .append(Kind::CallRecord, &[call(1), call(2), call(3)])
            .unwrap();
        spool.append(Kind::Detection, &[detection]).unwrap();
    }
    let p = |f: &str| d.join(f).display().to_string();
    let cfg = PushConfig {
        enabled: true,
        url: format!("https://127.0.0.1:{port}/"),
        token: "tls-token".into(),
        ca_file: p("ca.pem"),
        client_cert_file: p("client.pem"),
        client_key_file: p("client.key"),
        spool_dir: spool_dir.display().to_string(),
        dead_letter_dir: p("dead-letter"),
        batch_max_records: 2,
        // One request at a time, so the order on the wire is the order of hand-out.
        max_in_flight: 1,
        backoff_initial_ms: 20,
        backoff_max_ms: 200,
        drain_timeout_s: 20,
        ..PushConfig::default()
    };
    let metrics = Arc::new(Metrics::new());
    let push = PushService::start(&cfg, "tls-sensor", metrics.clone()).unwrap();
    let queue = push.queue();
    assert!(queue.offer(Kind::CallRecord, call(4).into_bytes(), Backpressure::Wait));
    drop(queue);
    push.finish();

    let seen = seen.lock().unwrap();
    assert_eq!(*handshakes_failed.lock().unwrap(), 0);
    let mut lines = Vec::new();
    let mut keys = Vec::new();
    for r in seen.iter() {
        assert!(
            r.client_cert,
            "mutual TLS: the client presented its certificate"
        );
        assert_eq!(r.request_line, "POST /v1/ingest HTTP/1.1");
        assert_eq!(r.head["authorization"], "Bearer tls-token");
        assert_eq!(r.head["content-type"], "application/x-ndjson");
        assert_eq!(r.head["content-encoding"], "gzip");
        keys.push(r.head["idempotency-key"].clone());
        let mut text = String::new();
        flate2::read::GzDecoder::new(&r.body[..])
            .read_to_string(&mut text)
            .unwrap();
        assert!(text.ends_with('\n'));
        lines.push(text.lines().map(str::to_string).collect::<Vec<_>>());
    }
    // The detection first, then the calls in spool order, at most two per batch (call 4 came
    // through the queue while delivery ran, so it may travel alone).
    assert_eq!(lines[0], vec![detection.to_string()]);
    assert_eq!(lines[1], vec![call(1), call(2)]);
    assert!(lines.iter().all(|b| b.len() <= 2));
    let calls: Vec<String> = lines[1..].concat();
    assert_eq!(calls, vec![call(1), call(2), call(3), call(4)]);
    assert!(keys[0].starts_with("tls-sensor:") && keys[0].contains(":detection:"));
    assert!(keys[1..].iter().all(|k| k.contains(":call:")));
    let distinct: std::collections::HashSet<&String> = keys.iter().collect();
    assert_eq!(distinct.len(), keys.len(), "one key per batch");
    assert_eq!(
        metrics.push_records.with_label_values(&["delivered"]).get(),
        5,
        "one detection and four calls"
    );
    assert_eq!(metrics.spool_records.with_label_values(&["call"]).get(), 0);
    drop(seen);
    rt.shutdown_timeout(Duration::from_secs(1));
}

//! The x5u fetch policy and cache against real servers on 127.0.0.1: HTTPS (tokio-rustls with
//! a CA and leaf made at test time by the `openssl` CLI) and plain HTTP, answering with
//! hand-written HTTP/1.1 responses and counting the connections and requests they get.
//!
//! These tests must never reach beyond 127.0.0.1 (names used resolve from /etc/hosts), and
//! each is bounded in time and in the number of connections it makes.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use shaken_sensor::clock::{ManualClock, Timestamp};
use shaken_sensor::shaken::cache::{CacheLimits, Expiring, FailKind, FetchCache, Lookup};
use shaken_sensor::shaken::fetch::{FetchError, FetchPolicy, Fetcher};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::rustls;

const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const T0: i64 = 1_800_000_000;

// ---------------------------------------------------------------------------------------------
// Test PKI

struct Pki {
    ca_pem: Vec<u8>,
    acceptor: tokio_rustls::TlsAcceptor,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl CLI");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a leaf for 127.0.0.1 and localhost. (A lone self-signed CA:TRUE certificate cannot
/// be the server's own certificate: webpki refuses a CA used as an end entity.)
fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("leaf.ext"),
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        let ec = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
        openssl(d, &[&["genpkey"][..], &ec, &["-out", "ca.key"]].concat());
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                "ca.key",
                "-subj",
                "/CN=shaken-sensor test CA",
                "-days",
                "2",
                "-out",
                "ca.pem",
            ],
        );
        openssl(d, &[&["genpkey"][..], &ec, &["-out", "leaf.key"]].concat());
        openssl(
            d,
            &[
                "req",
                "-new",
                "-key",
                "leaf.key",
                "-subj",
                "/CN=127.0.0.1",
                "-out",
                "leaf.csr",
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                "2",
                "-days",
                "2",
                "-extfile",
                "leaf.ext",
                "-out",
                "leaf.pem",
            ],
        );
        let ca_pem = std::fs::read(d.join("ca.pem")).unwrap();
        let leaf = std::fs::read(d.join("leaf.pem")).unwrap();
        let key = std::fs::read(d.join("leaf.key")).unwrap();
        let certs = rustls_pemfile::certs(&mut &leaf[..])
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls_pemfile::private_key(&mut &key[..]).unwrap().unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        Pki {
            ca_pem,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 server

#[derive(Clone)]
struct Reply {
    head: String,
    /// Written `repeat` times (a large body without a large buffer).
    chunk: Vec<u8>,
    repeat: usize,
    delay: Duration,
}

impl Reply {
    fn ok(headers: &str, body: &str) -> Reply {
        Reply {
            head: format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/x-pem-file\r\n\
                 Content-Length: {}\r\nConnection: close\r\n{headers}\r\n",
                body.len()
            ),
            chunk: body.as_bytes().to_vec(),
            repeat: 1,
            delay: Duration::ZERO,
        }
    }

    fn pem(cache_control: Option<&str>) -> Reply {
        let h = cache_control.map_or(String::new(), |v| format!("Cache-Control: {v}\r\n"));
        Reply::ok(&h, PEM)
    }

    fn status(line: &str, extra: &str) -> Reply {
        Reply {
            head: format!(
                "HTTP/1.1 {line}\r\nContent-Length: 0\r\nConnection: close\r\n{extra}\r\n"
            ),
            chunk: Vec::new(),
            repeat: 0,
            delay: Duration::ZERO,
        }
    }
}

type Handler = Arc<dyn Fn(usize) -> Reply + Send + Sync>;

struct Server {
    port: u16,
    accepts: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }
    fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
    fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }
}

/// Serves at most 200 connections on 127.0.0.1:0; `handler` gets the request's index.
async fn serve(tls: bool, handler: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Server {
    let handler: Handler = Arc::new(handler);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepts = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (a, r) = (accepts.clone(), requests.clone());
    let acceptor = tls.then(|| pki().acceptor.clone());
    tokio::spawn(async move {
        for _ in 0..200 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            a.fetch_add(1, Ordering::SeqCst);
            let (handler, r, acceptor) = (handler.clone(), r.clone(), acceptor.clone());
            tokio::spawn(async move {
                match acceptor {
                    Some(acc) => {
                        if let Ok(s) = acc.accept(tcp).await {
                            answer(s, &handler, &r).await;
                        }
                    }
                    None => answer(tcp, &handler, &r).await,
                }
            });
        }
    });
    Server {
        port,
        accepts,
        requests,
    }
}

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, handler: &Handler, n: &AtomicUsize) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(k) => head.extend_from_slice(&buf[..k]),
        }
        if head.len() > 16 * 1024 {
            return;
        }
    }
    let reply = handler(n.fetch_add(1, Ordering::SeqCst));
    tokio::time::sleep(reply.delay).await;
    if s.write_all(reply.head.as_bytes()).await.is_err() {
        return;
    }
    for _ in 0..reply.repeat {
        if s.write_all(&reply.chunk).await.is_err() {
            return;
        }
    }
    let _ = s.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn policy() -> FetchPolicy {
    FetchPolicy {
        allowed_hosts: vec!["127.0.0.1".into()],
        ..FetchPolicy::default()
    }
}

fn fetcher(policy: FetchPolicy) -> Fetcher {
    Fetcher::new(policy, Some(&pki().ca_pem)).unwrap()
}

async fn bounded<F: Future>(secs: u64, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("test exceeded its time bound")
}

#[derive(Debug)]
struct Cert {
    body: Vec<u8>,
    not_after: i64,
}

impl Expiring for Cert {
    fn not_after(&self) -> i64 {
        self.not_after
    }
}

struct Harness {
    cache: FetchCache<Cert>,
    clock: Arc<ManualClock>,
    tx: mpsc::UnboundedSender<usize>,
    rx: mpsc::UnboundedReceiver<usize>,
}

impl Harness {
    fn new(limits: CacheLimits, not_after: i64) -> Harness {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(T0)));
        let parse = Arc::new(move |b: &[u8]| {
            if b.starts_with(b"-----BEGIN CERTIFICATE-----") {
                Ok(Cert {
                    body: b.to_vec(),
                    not_after,
                })
            } else {
                Err("x5u body is not PEM".to_string())
            }
        });
        let cache = FetchCache::new(
            Arc::new(fetcher(policy())),
            limits,
            parse,
            clock.clone(),
            tokio::runtime::Handle::current(),
        );
        let (tx, rx) = mpsc::unbounded_channel();
        Harness {
            cache,
            clock,
            tx,
            rx,
        }
    }

    fn at(&self, secs_after_t0: i64) {
        self.clock.set(Timestamp::from_secs(T0 + secs_after_t0));
    }

    fn get_now(&self, url: &str) -> Lookup<Cert> {
        let tx = self.tx.clone();
        self.cache.get(
            url,
            Box::new(move || {
                let _ = tx.send(0);
            }),
        )
    }

    /// `get`; on Pending waits for the callback and then peeks. Returns (answer, fetched?).
    async fn get(&mut self, url: &str) -> (Lookup<Cert>, bool) {
        match self.get_now(url) {
            Lookup::Pending => {
                bounded(10, self.rx.recv()).await.unwrap();
                (self.cache.peek(url), true)
            }
            done => (done, false),
        }
    }

    async fn ready(&mut self, url: &str) -> bool {
        match self.get(url).await {
            (Lookup::Ready(c), fetched) => {
                assert_eq!(c.body, PEM.as_bytes());
                fetched
            }
            (other, _) => panic!("{url}: {other:?}"),
        }
    }
}

fn limits() -> CacheLimits {
    CacheLimits::default()
}

// ---------------------------------------------------------------------------------------------
// Fetcher: policy

#[tokio::test]
async fn refusals_without_io() {
    bounded(10, async {
        let srv = serve(true, |_| Reply::pem(None)).await;
        let f = fetcher(FetchPolicy {
            allow_private: true,
            ..policy()
        });
        let p = srv.port;
        let cases = [
            (srv.http_url("/a.pem"), FetchError::Scheme("http".into())),
            (
                format!("ftp://127.0.0.1:{p}/a.pem"),
                FetchError::Scheme("ftp".into()),
            ),
            (
                format!("https://user:pw@127.0.0.1:{p}/a.pem"),
                FetchError::UserInfo,
            ),
            (srv.url("/a.pem?x=1"), FetchError::QueryOrFragment),
            (srv.url("/a.pem#frag"), FetchError::QueryOrFragment),
        ];
        for (url, want) in cases {
            assert_eq!(f.get(&url).await.unwrap_err(), want, "{url}");
        }
        for url in [
            "/a.pem",
            "a.pem",
            "https://",
            "https:///a.pem",
            "https:127.0.0.1/a.pem",
        ] {
            let e = f.get(url).await.unwrap_err();
            assert!(matches!(e, FetchError::BadUrl(_)), "{url}: {e:?}");
            assert_eq!(e.kind(), "bad_url");
        }
        assert_eq!(srv.accepts(), 0, "a refused URL must not connect");
    })
    .await
}

#[tokio::test]
async fn private_address_refused_unless_allowed() {
    bounded(20, async {
        let srv = serve(true, |_| Reply::pem(None)).await;
        let url = srv.url("/a.pem");
        let strict = fetcher(FetchPolicy::default());
        match strict.get(&url).await {
            Err(e @ FetchError::PrivateAddress { .. }) => {
                assert_eq!(
                    e.to_string(),
                    "x5u host 127.0.0.1 resolves to a private address 127.0.0.1"
                );
                assert_eq!(e.kind(), "private_address");
            }
            other => panic!("{other:?}"),
        }
        let by_name = format!("https://localhost:{}/a.pem", srv.port);
        assert!(matches!(
            strict.get(&by_name).await,
            Err(FetchError::PrivateAddress { .. })
        ));
        assert_eq!(srv.accepts(), 0);

        // Allowed by host, by host:port, or by allow_private.
        let port_entry = format!("localhost:{}", srv.port);
        for (p, u) in [
            (policy(), &url),
            (
                FetchPolicy {
                    allowed_hosts: vec![port_entry.clone()],
                    ..FetchPolicy::default()
                },
                &by_name,
            ),
            (
                FetchPolicy {
                    allow_private: true,
                    ..FetchPolicy::default()
                },
                &url,
            ),
        ] {
            let got = fetcher(p).get(u).await.unwrap();
            assert_eq!(got.body, PEM.as_bytes());
            assert_eq!(got.max_age, None);
        }
        assert_eq!(srv.requests(), 3);
        // An entry for another port does not exempt this one.
        let other_port = FetchPolicy {
            allowed_hosts: vec![format!("127.0.0.1:{}", srv.port.wrapping_add(1))],
            ..FetchPolicy::default()
        };
        assert!(matches!(
            fetcher(other_port).get(&url).await,
            Err(FetchError::PrivateAddress { .. })
        ));
        assert_eq!(srv.requests(), 3);
    })
    .await
}

#[tokio::test]
async fn plain_http_only_when_allowed() {
    bounded(10, async {
        let srv = serve(false, |_| Reply::pem(Some("max-age=600"))).await;
        let url = srv.http_url("/a.pem");
        assert_eq!(
            fetcher(policy()).get(&url).await,
            Err(FetchError::Scheme("http".into()))
        );
        let got = fetcher(FetchPolicy {
            allow_http: true,
            ..policy()
        })
        .get(&url)
        .await
        .unwrap();
        assert_eq!(got.body, PEM.as_bytes());
        assert_eq!(got.max_age, Some(Duration::from_secs(600)));
        assert_eq!(srv.requests(), 1);
    })
    .await
}

#[tokio::test]
async fn untrusted_server_certificate_is_a_tls_error() {
    bounded(10, async {
        let srv = serve(true, |_| Reply::pem(None)).await;
        let f = Fetcher::new(policy(), None).unwrap();
        let e = f.get(&srv.url("/a.pem")).await.unwrap_err();
        assert_eq!(e.kind(), "tls", "{e}");
        assert_eq!(srv.requests(), 0);
    })
    .await
}

#[tokio::test]
async fn redirect_and_status_refused() {
    bounded(10, async {
        let srv = serve(true, |n| match n {
            0 => Reply::status("302 Found", "Location: https://169.254.169.254/latest\r\n"),
            1 => Reply::status("301 Moved Permanently", "Location: /b.pem\r\n"),
            2 => Reply::status("404 Not Found", ""),
            _ => Reply::status("503 Service Unavailable", ""),
        })
        .await;
        let f = fetcher(policy());
        let e = f.get(&srv.url("/a.pem")).await.unwrap_err();
        assert_eq!(e, FetchError::Redirect(302));
        assert_eq!(e.to_string(), "x5u redirect (302) refused");
        assert_eq!(
            f.get(&srv.url("/a.pem")).await,
            Err(FetchError::Redirect(301))
        );
        assert_eq!(
            f.get(&srv.url("/a.pem")).await,
            Err(FetchError::Status(404))
        );
        assert_eq!(
            f.get(&srv.url("/a.pem")).await,
            Err(FetchError::Status(503))
        );
        assert_eq!(srv.requests(), 4, "redirects are not followed");
    })
    .await
}

#[tokio::test]
async fn oversized_body_refused_without_reading_it() {
    bounded(15, async {
        const MB10: usize = 10 * 1024 * 1024;
        // With a Content-Length (refused from the header) and without one (close-delimited:
        // refused while streaming).
        let srv = serve(true, |n| {
            let length = if n == 0 {
                format!("Content-Length: {MB10}\r\n")
            } else {
                String::new()
            };
            Reply {
                head: format!("HTTP/1.1 200 OK\r\n{length}Connection: close\r\n\r\n"),
                chunk: vec![b'A'; 64 * 1024],
                repeat: MB10 / (64 * 1024),
                delay: Duration::ZERO,
            }
        })
        .await;
        let f = fetcher(policy());
        for _ in 0..2 {
            let start = Instant::now();
            let e = f.get(&srv.url("/big.pem")).await.unwrap_err();
            assert_eq!(e, FetchError::TooLarge(65_536));
            assert_eq!(e.to_string(), "x5u body exceeds 65536 bytes");
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "{:?}",
                start.elapsed()
            );
        }
        assert_eq!(srv.requests(), 2);

        // Exactly at the cap is fine.
        let exact = serve(true, |_| Reply::ok("", &"B".repeat(65_536))).await;
        assert_eq!(f.get(&exact.url("/x")).await.unwrap().body.len(), 65_536);
    })
    .await
}

#[tokio::test]
async fn slow_server_times_out() {
    bounded(10, async {
        let srv = serve(true, |_| Reply {
            delay: Duration::from_secs(30),
            ..Reply::pem(None)
        })
        .await;
        let f = fetcher(FetchPolicy {
            timeout: Duration::from_secs(1),
            ..policy()
        });
        let start = Instant::now();
        assert_eq!(f.get(&srv.url("/slow.pem")).await, Err(FetchError::Timeout));
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(900), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    })
    .await
}

#[tokio::test]
async fn port_8443_style_ports_and_paths_are_fine() {
    bounded(10, async {
        // Any port: the server's own ephemeral port stands in for 8443 (Asterisk #1271).
        let srv = serve(true, |_| Reply::pem(Some("s-maxage=5, max-age=120"))).await;
        let got = fetcher(policy())
            .get(&srv.url("/certs/stirshaken/sp-2026.pem"))
            .await
            .unwrap();
        assert_eq!(got.max_age, Some(Duration::from_secs(120)));
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Cache

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parse_failure_is_returned_as_failed() {
    bounded(10, async {
        let srv = serve(true, |_| Reply::ok("", "<html>not a certificate</html>")).await;
        let mut h = Harness::new(limits(), T0 + 86_400 * 30);
        match h.get(&srv.url("/a.pem")).await {
            (Lookup::Failed(reason, FailKind::Parse), true) => {
                assert_eq!(reason.as_str(), "x5u body is not PEM")
            }
            (other, _) => panic!("{other:?}"),
        }
        assert_eq!(h.cache.stats().parse_errors, 1);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_honoured_and_clamped_and_never_past_not_after() {
    bounded(30, async {
        // One server (and one fresh cache) per Cache-Control value.
        let cases: [(&str, i64, i64); 4] = [
            // (Cache-Control, last second still cached, first second refetched)
            ("max-age=300", 299, 301),
            ("max-age=5", 59, 61),
            ("max-age=1000000000", 86_399, 86_401),
            ("no-store", 59, 61),
        ];
        for (cc, keep, refetch) in cases {
            let cc = cc.to_string();
            let srv = serve(true, move |_| Reply::pem(Some(&cc))).await;
            let mut h = Harness::new(limits(), T0 + 86_400 * 30);
            let url = srv.url("/a.pem");
            assert!(h.ready(&url).await, "first get fetches");
            h.at(keep);
            assert!(!h.ready(&url).await, "cached at +{keep}s");
            assert_eq!(srv.requests(), 1);
            h.at(refetch);
            assert!(h.ready(&url).await, "refetched at +{refetch}s");
            assert_eq!(srv.requests(), 2);
        }

        // No Cache-Control: default_ttl (1 h).
        let srv = serve(true, |_| Reply::pem(None)).await;
        let mut h = Harness::new(limits(), T0 + 86_400 * 30);
        let url = srv.url("/a.pem");
        assert!(h.ready(&url).await);
        h.at(3_599);
        assert!(!h.ready(&url).await);
        h.at(3_601);
        assert!(h.ready(&url).await);
        assert_eq!(srv.requests(), 2);

        // max-age of a day, but the value expires in 120 s: gone at not_after, and a refetch
        // of the same (now expired) value is a failure, not a value kept past its not_after.
        let srv = serve(true, |_| Reply::pem(Some("max-age=86400"))).await;
        let mut h = Harness::new(limits(), T0 + 120);
        let url = srv.url("/a.pem");
        assert!(h.ready(&url).await);
        h.at(119);
        assert!(!h.ready(&url).await);
        h.at(120);
        match h.get(&url).await {
            (Lookup::Failed(r, FailKind::Expired), true) => {
                assert!(r.contains("expired"), "{r}")
            }
            (other, _) => panic!("{other:?}"),
        }
        assert_eq!(srv.requests(), 2);
        assert_eq!(h.cache.stats().expired_on_arrival, 1);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_flight_50_callers_one_request() {
    bounded(15, async {
        let srv = serve(true, |_| Reply {
            delay: Duration::from_millis(300),
            ..Reply::pem(None)
        })
        .await;
        let h = Harness::new(limits(), T0 + 86_400 * 30);
        let url = srv.url("/a.pem");
        let (tx, mut rx) = mpsc::unbounded_channel::<(usize, bool)>();
        let barrier = Barrier::new(50);
        let pending = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for i in 0..50 {
                let (tx, cache, url, barrier, pending) =
                    (tx.clone(), h.cache.clone(), url.clone(), &barrier, &pending);
                s.spawn(move || {
                    barrier.wait();
                    let c = cache.clone();
                    let u = url.clone();
                    // The callback takes the cache lock itself: it must not be called under it.
                    let on_done = Box::new(move || {
                        let ready = matches!(c.peek(&u), Lookup::Ready(_));
                        let _ = tx.send((i, ready));
                    });
                    if matches!(cache.get(&url, on_done), Lookup::Pending) {
                        pending.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(pending.load(Ordering::SeqCst), 50);
        let mut seen = BTreeSet::new();
        for _ in 0..50 {
            let (i, ready) = rx.recv().await.unwrap();
            assert!(ready, "the value is stored before the callbacks run");
            assert!(seen.insert(i), "callback {i} fired twice");
        }
        assert_eq!(seen.len(), 50);
        drop(tx);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(rx.try_recv().is_err(), "no extra callbacks");
        assert!(matches!(h.cache.peek(&url), Lookup::Ready(_)));
        assert_eq!(srv.requests(), 1);
        let st = h.cache.stats();
        assert_eq!((st.fetches, st.misses, st.coalesced), (1, 50, 49));
        assert_eq!(st.in_flight, 0);
        assert_eq!(st.entries, 1);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetches_in_flight_are_capped() {
    bounded(10, async {
        let srv = serve(true, |_| Reply {
            delay: Duration::from_millis(200),
            ..Reply::pem(None)
        })
        .await;
        let mut h = Harness::new(
            CacheLimits {
                max_in_flight: 1,
                ..limits()
            },
            T0 + 86_400 * 30,
        );
        assert!(matches!(h.get_now(&srv.url("/a.pem")), Lookup::Pending));
        match h.get_now(&srv.url("/b.pem")) {
            Lookup::Failed(_, FailKind::Overloaded) => {}
            other => panic!("{other:?}"),
        }
        bounded(5, h.rx.recv()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(h.rx.try_recv().is_err(), "no callback for the refused miss");
        assert!(h.ready(&srv.url("/b.pem")).await, "a later miss is fetched");
        let st = h.cache.stats();
        assert_eq!((st.overloaded, st.fetches, st.in_flight), (1, 2, 0));
        assert_eq!(srv.requests(), 2);
    })
    .await
}

#[tokio::test]
async fn closed_port_is_a_connect_error() {
    bounded(10, async {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().port()
        };
        let e = fetcher(policy())
            .get(&format!("https://127.0.0.1:{port}/a.pem"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "connect", "{e}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_cached_for_30_s() {
    bounded(15, async {
        let srv = serve(true, |_| Reply::status("404 Not Found", "")).await;
        let mut h = Harness::new(limits(), T0 + 86_400 * 30);
        let url = srv.url("/gone.pem");
        match h.get(&url).await {
            (Lookup::Failed(r, FailKind::Fetch("status")), true) => {
                assert_eq!(r.as_str(), "x5u server answered 404")
            }
            (other, _) => panic!("{other:?}"),
        }
        h.at(29);
        match h.get(&url).await {
            (Lookup::Failed(_, FailKind::Fetch("status")), false) => {}
            (other, _) => panic!("{other:?}"),
        }
        assert_eq!(srv.requests(), 1);
        h.at(31);
        assert!(matches!(h.get(&url).await, (Lookup::Failed(..), true)));
        assert_eq!(srv.requests(), 2);
        let st = h.cache.stats();
        assert_eq!(st.negative_hits, 1);
        assert!(st.fetch_errors.contains(&("status", 2)), "{st:?}");

        // A URL refused before I/O fails at once: no callback, no fetch, nothing cached.
        let refused = format!("https://127.0.0.1:{}/a.pem?x=1", srv.port);
        match h.get_now(&refused) {
            Lookup::Failed(_, FailKind::Fetch("query_or_fragment")) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(h.cache.stats().entries, 1);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_are_bounded() {
    bounded(20, async {
        let srv = serve(true, |_| Reply::pem(Some("max-age=600"))).await;
        let mut h = Harness::new(
            CacheLimits {
                max_entries: 3,
                ..limits()
            },
            T0 + 86_400 * 30,
        );
        for i in 0..5 {
            // Later entries expire later, so the oldest ones go.
            h.at(i);
            assert!(h.ready(&srv.url(&format!("/{i}.pem"))).await);
            assert!(h.cache.stats().entries <= 3);
        }
        let st = h.cache.stats();
        assert_eq!((st.entries, st.evictions, st.fetches), (3, 2, 5));
        assert!(matches!(h.cache.peek(&srv.url("/0.pem")), Lookup::Pending));
        assert!(matches!(h.cache.peek(&srv.url("/4.pem")), Lookup::Ready(_)));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeds_served_without_requests_until_not_after() {
    bounded(10, async {
        let srv = serve(true, |_| Reply::pem(None)).await;
        let mut h = Harness::new(limits(), T0 + 86_400 * 30);
        let url = srv.url("/seeded.pem");
        h.cache.seed(
            &url,
            Cert {
                body: PEM.as_bytes().to_vec(),
                not_after: T0 + 2 * 86_400,
            },
        );
        // Well past max_ttl: a seed has no TTL, only its not_after.
        for at in [0, 3_600, 86_401, 2 * 86_400 - 1] {
            h.at(at);
            assert!(!h.ready(&url).await, "seed served at +{at}s");
        }
        assert_eq!(srv.accepts(), 0);
        h.at(2 * 86_400);
        assert!(h.ready(&url).await, "fetched once the seed expired");
        assert_eq!(srv.requests(), 1);
        // An already expired seed is ignored.
        let other = srv.url("/old.pem");
        h.cache.seed(
            &other,
            Cert {
                body: Vec::new(),
                not_after: T0,
            },
        );
        assert!(matches!(h.cache.peek(&other), Lookup::Pending));
        assert_eq!(h.cache.stats().seeds, 1);
    })
    .await
}

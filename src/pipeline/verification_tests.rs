//! Unit tests of a worker's verification state machine with the dialog table it feeds: a signed
//! INVITE parks while its x5u certificate is fetched over real HTTP from 127.0.0.1, then its
//! verdict is applied to the table: the open call gets it (pending → done, its start is told),
//! or the call that ended first is released with it, or it is forced at the deadline. Each test
//! names the rule it pins.

use super::*;
use crate::clock::{SystemClock, Timestamp};
use crate::config::ShakenConfig;
use crate::dialog::call::invite_numbers;
use crate::dialog::table::{CallEvent, DialogTable};
use crate::dialog::testkit::{feed, invite, invite_with, response, table, Emitted, CALLEE, CALLER};
use crate::record::CallRecord;
use crate::shaken::b64::encode;
use crate::sip::message::ParseLimits;
use crate::sip::parse::parse;
use crossbeam_channel::Receiver;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use std::io::{Read, Write};
use std::net::TcpListener;

/// The verification time (seconds) the INVITEs are judged at.
pub(crate) const NOW: i64 = 1_795_000_000;

/// What the test x5u server does with each request.
#[derive(Clone)]
pub(crate) enum Serve {
    /// Answers 200 with a body that is not a certificate.
    NotACert,
    /// Answers 200 with this body (a PEM certificate).
    Body(Vec<u8>),
    /// Accepts and never answers (until the server thread ends).
    Hang,
}

/// A real HTTP server on 127.0.0.1 for `conns` connections; returns the x5u URL.
pub(crate) fn x5u_server(serve: Serve, conns: usize) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/sp.pem", l.local_addr().unwrap());
    serve_on(l, serve, conns);
    url
}

/// Serves `conns` connections of `l` on a thread of its own.
fn serve_on(l: TcpListener, serve: Serve, conns: usize) {
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().take(conns) {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body: &[u8] = match &serve {
                Serve::NotACert => b"this is not a certificate\n",
                Serve::Body(b) => b,
                Serve::Hang => {
                    held.push(s);
                    continue;
                }
            };
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/x-pem-file\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(body);
        }
        std::thread::sleep(Duration::from_secs(5));
    });
}

pub(crate) fn service(timeout_ms: u64) -> Arc<ShakenService> {
    service_with(timeout_ms, ShakenConfig::default())
}

fn service_with(timeout_ms: u64, mut cfg: ShakenConfig) -> Arc<ShakenService> {
    cfg.x5u.allow_http = true;
    cfg.x5u.allow_private = true;
    cfg.x5u.timeout_ms = timeout_ms;
    Arc::new(ShakenService::from_config(&cfg, Arc::new(SystemClock)).expect("service"))
}

struct Rig {
    v: Verification,
    metrics: Arc<Metrics>,
    notified: Receiver<String>,
}

/// `notify_cap` 0: every completion notice is dropped (a full channel), as under overload.
fn rig(timeout_ms: u64, cap: usize, notify_cap: usize) -> Rig {
    rig_with(service(timeout_ms), cap, notify_cap)
}

fn rig_with(svc: Arc<ShakenService>, cap: usize, notify_cap: usize) -> Rig {
    let metrics = Arc::new(Metrics::new());
    let (tx, notified) = crossbeam_channel::bounded(notify_cap);
    let v = Verification::new(
        svc,
        metrics.clone(),
        tx,
        cap,
        Arc::new(Mutex::new(CacheCounters::default())),
    );
    Rig {
        v,
        metrics,
        notified,
    }
}

/// An Identity header for +12025550143 → +13035550177, signed with a fresh P-256 key.
pub(crate) fn identity(x5u: &str, origid: &str) -> String {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let hdr = format!(r#"{{"alg":"ES256","typ":"passport","ppt":"shaken","x5u":"{x5u}"}}"#);
    let claims = format!(
        r#"{{"attest":"A","dest":{{"tn":["13035550177"]}},"iat":{},"orig":{{"tn":"12025550143"}},"origid":"{origid}"}}"#,
        NOW - 5
    );
    let input = format!("{}.{}", encode(hdr.as_bytes()), encode(claims.as_bytes()));
    let sig = key.sign(&rng, input.as_bytes()).unwrap();
    format!(
        "Identity: {input}.{};info=<{x5u}>;alg=ES256;ppt=shaken\r\n",
        encode(sig.as_ref())
    )
}

pub(crate) const ORIGID: &str = "e32f4189-cb86-460f-bb92-bd3acb89f29c";

/// What the table told, as the worker sees it: starts by Call-ID, ended records with whether
/// their start was told before.
#[derive(Default)]
struct Told {
    started: Vec<String>,
    ended: Vec<(CallRecord, bool)>,
}

impl Told {
    fn sink(&mut self) -> impl FnMut(CallEvent) + '_ {
        |ev| match ev {
            CallEvent::Started(s) => self.started.push(s.call_id.as_str().to_string()),
            CallEvent::Ended { record, announced } => self.ended.push((record, announced)),
        }
    }
}

/// A table that waits for verdicts and tells starts (verification and detection on).
fn verifying_table() -> DialogTable {
    let mut t = table(10);
    t.set_events(true, true);
    t
}

/// Feeds `text` (an initial INVITE) to the table, starts its verification and applies what
/// verification gives, as the worker does.
fn start(r: &mut Rig, t: &mut DialogTable, text: &str) -> Told {
    let mut out = Emitted::new();
    assert!(
        feed(t, text, 100, CALLER, &mut out),
        "the INVITE starts a call"
    );
    assert!(out.is_empty());
    let msg = parse(text.as_bytes(), &ParseLimits::default()).unwrap();
    let numbers = t.numbers(msg.call_id).expect("the call is open");
    assert_eq!(numbers, invite_numbers(&msg), "the table keeps the numbers");
    let verdict = r.v.start(&msg, &numbers, NOW, None);
    let mut told = apply(r, t);
    if let Some(v) = verdict {
        assert!(t.apply(msg.call_id, v, &mut told.sink()));
    }
    told
}

/// Applies the verdicts verification reached to the table.
fn apply(r: &mut Rig, t: &mut DialogTable) -> Told {
    let mut told = Told::default();
    for (id, result) in r.v.verdicts() {
        t.apply(&id, result, &mut told.sink());
    }
    told
}

/// Starts call `id` with an INVITE signed for certificate `x5u`.
fn start_signed(r: &mut Rig, t: &mut DialogTable, id: &str, x5u: &str) -> Told {
    start(r, t, &invite_with(id, 1, &identity(x5u, ORIGID)))
}

/// Feeds a 486 for call `id`; returns the records that came out.
fn close_with_486(t: &mut DialogTable, id: &str) -> Emitted {
    let mut out = Emitted::new();
    feed(t, &response(486, id, "1 INVITE"), 101, CALLEE, &mut out);
    out
}

/// Closes call `id` (its verdict known) with a 486 and returns its record.
fn close(t: &mut DialogTable, id: &str) -> CallRecord {
    let mut out = close_with_486(t, id);
    assert_eq!(out.len(), 1, "the 486 closes {id}");
    out.pop().unwrap().1
}

fn event(m: &Metrics, kind: &str) -> u64 {
    m.verification_events.with_label_values(&[kind]).get()
}

#[test]
fn unsigned_invite_gets_no_validation_at_once() {
    let mut r = rig(2000, 10, 16);
    let mut t = verifying_table();
    let told = start(&mut r, &mut t, &invite("u1", 1));
    assert_eq!(r.v.parked(), 0, "nothing to fetch: nothing parks");
    assert_eq!(
        told.started,
        ["u1"],
        "the verdict is on the call: its start is told"
    );
    let rec = close(&mut t, "u1");
    assert_eq!(rec.shaken.verstat.as_deref(), Some("No-TN-Validation"));
    assert_eq!(rec.shaken.identity_headers, 0);
}

#[test]
fn pending_call_gets_its_verdict_when_the_fetch_completes() {
    let url = x5u_server(Serve::NotACert, 1);
    let mut r = rig(3000, 10, 16);
    let mut t = verifying_table();
    let told = start_signed(&mut r, &mut t, "p1", &url);
    assert_eq!(r.v.parked(), 1, "a certificate to fetch parks the call");
    assert!(
        told.started.is_empty(),
        "the detectors wait for the verdict"
    );
    let done = r
        .notified
        .recv_timeout(Duration::from_secs(10))
        .expect("fetch completion is notified");
    assert_eq!(done, url);
    r.v.cert_ready(&done);
    assert_eq!(r.v.parked(), 0);
    let told = apply(&mut r, &mut t);
    assert!(told.ended.is_empty(), "the call is open: nothing was held");
    assert_eq!(told.started, ["p1"], "pending → done: the start is told");
    let rec = close(&mut t, "p1");
    assert_eq!(rec.shaken.identity_headers, 1);
    assert_eq!(
        rec.shaken.verstat.as_deref(),
        Some("No-TN-Validation"),
        "{:?}",
        rec.shaken.reason
    );
    assert_eq!(rec.shaken.code, Some(436), "{:?}", rec.shaken.reason);
    let reason = rec.shaken.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("neither PEM certificates nor one DER"),
        "the fetched body's own outcome, not the deadline: {reason}"
    );
    assert_eq!(event(&r.metrics, "deadline"), 0);
}

#[test]
fn call_ending_before_its_certificate_waits_in_the_table_then_ends_with_the_late_verdict() {
    let url = x5u_server(Serve::NotACert, 1);
    let mut r = rig(3000, 10, 16);
    let mut t = verifying_table();
    let text = invite_with("l1", 1, &identity(&url, ORIGID));
    start(&mut r, &mut t, &text);
    assert!(
        close_with_486(&mut t, "l1").is_empty(),
        "no record while pending"
    );
    assert_eq!(
        (t.len(), t.held_len()),
        (0, 1),
        "closed, waiting for its verdict"
    );
    let done = r.notified.recv_timeout(Duration::from_secs(10)).unwrap();
    r.v.cert_ready(&done);
    let told = apply(&mut r, &mut t);
    assert!(told.started.is_empty());
    assert_eq!(told.ended.len(), 1, "the record comes out with its verdict");
    assert_eq!(t.held_len(), 0);
    let (rec, announced) = &told.ended[0];
    assert!(
        !announced,
        "its start was never told: the worker tells it with the end"
    );
    assert_eq!(rec.dialog.final_code, Some(486));
    assert_eq!(rec.dialog.ended_at, Timestamp::from_secs(101));
    assert_eq!(
        rec.shaken.verstat.as_deref(),
        Some("No-TN-Validation"),
        "{:?}",
        rec.shaken.reason
    );
    assert_eq!(rec.shaken.origid.as_deref(), Some(ORIGID));
    assert_eq!(rec.shaken.identity_headers, 1);
    // The same INVITE without verification: the fingerprint without a signer.
    let mut plain = table(10);
    let mut out = Emitted::new();
    feed(&mut plain, &text, 100, CALLER, &mut out);
    let unverified = close(&mut plain, "l1");
    assert_ne!(
        rec.fingerprint, unverified.fingerprint,
        "the fingerprint is finished with the verdict's signer (x5u host)"
    );
}

#[test]
fn a_call_whose_verdict_is_known_ends_with_its_record_at_once() {
    let mut r = rig(2000, 10, 16);
    let mut t = verifying_table();
    start(&mut r, &mut t, &invite("h1", 1));
    let rec = close(&mut t, "h1");
    assert_eq!(rec.call_id, "h1");
    assert_eq!(t.held_len(), 0);
}

#[test]
fn deadline_forces_the_verdict_when_the_notice_is_lost() {
    let url = x5u_server(Serve::Hang, 1);
    // fetch timeout 200 ms → deadline 700 ms; a zero-capacity notice channel drops the notice.
    let mut r = rig(200, 10, 0);
    let mut t = verifying_table();
    start_signed(&mut r, &mut t, "d1", &url);
    r.v.expire(false);
    assert_eq!(r.v.parked(), 1, "before the deadline the call stays parked");
    assert!(apply(&mut r, &mut t).started.is_empty());
    std::thread::sleep(Duration::from_millis(900));
    r.v.expire(false);
    assert_eq!(r.v.parked(), 0);
    let told = apply(&mut r, &mut t);
    assert_eq!(told.started, ["d1"]);
    assert!(told.ended.is_empty());
    assert_eq!(event(&r.metrics, "deadline"), 1);
    assert_eq!(r.metrics.cert_notifications_dropped.get(), 1);
    let rec = close(&mut t, "d1");
    assert_eq!(rec.shaken.code, Some(436));
    let reason = rec.shaken.reason.unwrap_or_default();
    assert!(reason.contains("not fetched within 700 ms"), "{reason}");
}

#[test]
fn shutdown_expire_all_completes_every_parked_call() {
    let url = x5u_server(Serve::Hang, 2);
    let mut r = rig(3000, 10, 16);
    let mut t = verifying_table();
    start_signed(&mut r, &mut t, "s1", &url);
    start_signed(&mut r, &mut t, "s2", &url);
    assert_eq!(r.v.parked(), 2);
    assert!(close_with_486(&mut t, "s2").is_empty());
    r.v.expire(true);
    assert_eq!(r.v.parked(), 0);
    let told = apply(&mut r, &mut t);
    assert_eq!(told.ended.len(), 1, "the record of s2 comes out");
    assert_eq!(told.ended[0].0.call_id, "s2");
    assert_eq!(told.ended[0].0.shaken.code, Some(436));
    assert_eq!(told.started, ["s1"], "s1 is open: it gets its verdict");
    assert_eq!(event(&r.metrics, "deadline"), 2);
}

#[test]
fn a_new_invite_on_the_call_id_of_a_pending_call_settles_the_earlier_one_first() {
    let url = x5u_server(Serve::Hang, 2);
    let mut r = rig(3000, 10, 16);
    let mut t = verifying_table();
    start_signed(&mut r, &mut t, "r1", &url);
    // Redirected (3xx ends the call) while its certificate is still being fetched.
    let mut out = Emitted::new();
    feed(
        &mut t,
        &response(302, "r1", "1 INVITE"),
        101,
        CALLEE,
        &mut out,
    );
    assert!(out.is_empty());
    assert_eq!(t.held_len(), 1);
    // The retry (higher CSeq, same Call-ID) is a new call: the earlier one ends first.
    let retry = invite_with("r1", 2, &identity(&url, ORIGID));
    let told = start(&mut r, &mut t, &retry);
    assert_eq!(
        told.ended.len(),
        1,
        "the redirected call's record comes out"
    );
    let (rec, _) = &told.ended[0];
    assert_eq!(rec.dialog.final_code, Some(302));
    assert_eq!(rec.shaken.code, Some(436));
    let reason = rec.shaken.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("a new INVITE reused the Call-ID"),
        "{reason}"
    );
    assert_eq!(event(&r.metrics, "superseded"), 1);
    assert_eq!(r.v.parked(), 1, "the retry waits for its own verdict");
    assert_eq!((t.len(), t.held_len()), (1, 0));
}

#[test]
fn parked_calls_are_bounded_by_max_pending() {
    let url = x5u_server(Serve::Hang, 1);
    let other = x5u_server(Serve::Hang, 1);
    let mut r = rig(3000, 1, 16);
    let mut t = verifying_table();
    start_signed(&mut r, &mut t, "m1", &url);
    let told = start_signed(&mut r, &mut t, "m2", &other);
    assert_eq!(r.v.parked(), 1, "the second call does not park");
    assert_eq!(told.started, ["m2"], "its verdict is known at once");
    assert_eq!(event(&r.metrics, "pending_full"), 1);
    let rec = close(&mut t, "m2");
    assert_eq!(rec.shaken.code, Some(436));
    assert!(rec
        .shaken
        .reason
        .unwrap_or_default()
        .contains("shaken.max_pending"));
}

#[test]
fn pending_call_passes_once_its_real_certificate_arrives() {
    // A real STI-CA root and SP certificate (TNAuthList SPC 123J), made by openssl.
    let dir = tempfile::tempdir().unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/123J.pem", l.local_addr().unwrap());
    let carriers = [("123J".to_string(), url.clone())];
    let pki = crate::scenario::pki::build(
        dir.path(),
        &carriers,
        &mut crate::scenario::rng::Rng::new(7),
    )
    .expect("openssl builds the test PKI");
    let signer = &pki.signers[0];
    let pem = std::fs::read(&signer.cert_path).unwrap();
    serve_on(l, Serve::Body(pem), 1);
    let identity_value = signer.identity(
        &SystemRandom::new(),
        &crate::scenario::pki::Claims {
            attest: 'A',
            orig: "12025550143",
            dest: &["13035550177".to_string()],
            iat: NOW - 5,
            origid: ORIGID,
        },
    );
    let cfg = ShakenConfig {
        trust_anchors: vec![pki.root_path.display().to_string()],
        ..ShakenConfig::default()
    };
    let mut r = rig_with(service_with(3000, cfg), 10, 16);
    let mut t = verifying_table();
    let text = invite_with("ok1", 1, &format!("Identity: {identity_value}\r\n"));
    start(&mut r, &mut t, &text);
    assert_eq!(r.v.parked(), 1);
    let done = r.notified.recv_timeout(Duration::from_secs(10)).unwrap();
    r.v.cert_ready(&done);
    assert_eq!(r.v.parked(), 0);
    assert_eq!(apply(&mut r, &mut t).started, ["ok1"]);
    let rec = close(&mut t, "ok1");
    assert_eq!(
        rec.shaken.verstat.as_deref(),
        Some("TN-Validation-Passed"),
        "{:?}",
        rec.shaken.reason
    );
    assert_eq!(rec.shaken.attest.as_deref(), Some("A"));
    assert_eq!(rec.shaken.spc.as_deref(), Some("123J"));
    assert_eq!(rec.shaken.code, None);
}

//! Unit tests of a worker thread: a batch of SIP messages (parsed from small literal texts by the
//! project's parser) in, CallRecords out on its sink channel; a tick closes timed-out calls; a
//! shutdown flushes every open call as `shutdown`. Each test names the rule it pins.

use super::*;
use crate::capture::packet::Transport;
use crate::dialog::testkit::{invite, request, response, seen, table, CALLEE, CALLER};
use crate::record::EndedBy;
use crossbeam_channel::bounded;
use prometheus::core::Collector;
use std::thread::JoinHandle;

struct Running {
    tx: Sender<WorkerMsg>,
    records: Receiver<SinkRecord>,
    recycled: Receiver<Batch>,
    metrics: Arc<Metrics>,
    handle: JoinHandle<()>,
}

/// A worker (no verification, no detection) on its own thread; `wait` false is live capture.
fn start(wait: bool, record_queue: usize) -> Running {
    let metrics = Arc::new(Metrics::new());
    let (tx, rx) = bounded(8);
    let (rec_tx, records) = bounded(record_queue);
    let (recycle, recycled) = bounded(8);
    let m = metrics.clone();
    // The dialog table is not Send: like `pipeline::run`, build the worker on its own thread.
    let handle = std::thread::spawn(move || {
        Worker {
            id: 0,
            rx,
            recycle,
            records: RecordSender {
                tx: rec_tx,
                backpressure: if wait {
                    Backpressure::Wait
                } else {
                    Backpressure::Drop
                },
                serialize: true,
            },
            table: table(100),
            limits: ParseLimits::default(),
            metrics: m,
            verification: None,
            detect: None,
        }
        .run()
    });
    Running {
        tx,
        records,
        recycled,
        metrics,
        handle,
    }
}

/// A batch of (text, seconds, sender) messages.
fn batch(msgs: &[(String, i64, &str)]) -> Batch {
    let mut b = Batch::with_capacity();
    for (text, secs, src) in msgs {
        let s = seen(*secs, src);
        b.items.push(super::super::messages::BatchItem {
            ts: s.ts,
            src: s.src,
            dst: s.dst,
            transport: Transport::Udp,
            start: b.buf.len() as u32,
            len: text.len() as u32,
            agent: None,
        });
        b.buf.extend_from_slice(text.as_bytes());
    }
    b
}

fn next(r: &Running) -> SinkRecord {
    r.records
        .recv_timeout(Duration::from_secs(10))
        .expect("a record within 10 s")
}

fn shutdown(r: Running, secs: i64) -> (Vec<SinkRecord>, Arc<Metrics>) {
    r.tx.send(WorkerMsg::Shutdown(Timestamp::from_secs(secs)))
        .unwrap();
    r.handle.join().expect("the worker ends without panicking");
    (r.records.try_iter().collect(), r.metrics)
}

#[test]
fn a_batch_in_gives_records_out_and_the_batch_back() {
    let r = start(true, 16);
    r.tx.send(WorkerMsg::Batch(batch(&[
        (invite("w1", 1), 100, CALLER),
        (response(486, "w1", "1 INVITE"), 101, CALLEE),
        (request("ACK", "w1", "1 ACK", "callee-tag"), 101, CALLER),
        ("garbage that is not SIP\r\n\r\n".to_string(), 101, CALLER),
        (invite("w2", 1), 102, CALLER),
    ])))
    .unwrap();
    let rec = next(&r);
    assert_eq!(rec.record.call_id, "w1");
    assert_eq!(rec.record.dialog.ended_by, EndedBy::Callee);
    let json: serde_json::Value =
        serde_json::from_slice(rec.json.as_deref().expect("serialized in the worker")).unwrap();
    assert_eq!(json["call_id"], "w1");
    assert_eq!(json["dialog"]["final_code"], 486);
    let back = r
        .recycled
        .recv_timeout(Duration::from_secs(10))
        .expect("the emptied batch goes back to capture");
    assert!(back.items.is_empty() && back.buf.is_empty());
    let (rest, m) = shutdown(r, 200);
    assert_eq!(rest.len(), 1, "the open call w2 is flushed at shutdown");
    assert_eq!(rest[0].record.call_id, "w2");
    assert_eq!(rest[0].record.dialog.ended_by, EndedBy::Shutdown);
    assert_eq!(rest[0].record.dialog.ended_at, Timestamp::from_secs(200));
    assert_eq!(m.invites.get(), 2);
    assert_eq!(m.sip_messages.with_label_values(&["4xx"]).get(), 1);
    assert_eq!(m.calls.with_label_values(&["callee"]).get(), 1);
    assert_eq!(m.calls.with_label_values(&["shutdown"]).get(), 1);
    assert_eq!(m.dialog_events.with_label_values(&["after_close"]).get(), 1);
    let parse_errors: u64 = m
        .sip_parse_errors
        .collect()
        .iter()
        .flat_map(|f| {
            f.get_metric()
                .iter()
                .map(|c| c.get_counter().get_value() as u64)
        })
        .sum();
    assert_eq!(
        parse_errors, 1,
        "the garbage is a counted parse error, not a panic"
    );
}

#[test]
fn a_tick_closes_timed_out_calls() {
    let r = start(true, 16);
    r.tx.send(WorkerMsg::Batch(batch(&[(invite("t1", 1), 100, CALLER)])))
        .unwrap();
    r.tx.send(WorkerMsg::Tick(Timestamp::from_secs(129)))
        .unwrap();
    assert!(
        r.records.recv_timeout(Duration::from_millis(300)).is_err(),
        "not due before invite_timeout_s"
    );
    r.tx.send(WorkerMsg::Tick(Timestamp::from_secs(131)))
        .unwrap();
    let rec = next(&r);
    assert_eq!(rec.record.dialog.ended_by, EndedBy::Timeout);
    assert_eq!(rec.record.dialog.ended_at, Timestamp::from_secs(130));
    let (rest, m) = shutdown(r, 140);
    assert!(rest.is_empty());
    assert_eq!(m.calls.with_label_values(&["timeout"]).get(), 1);
}

#[test]
fn live_worker_drops_and_counts_records_the_sink_cannot_take() {
    let r = start(false, 1);
    r.tx.send(WorkerMsg::Batch(batch(&[
        (invite("d1", 1), 100, CALLER),
        (response(486, "d1", "1 INVITE"), 100, CALLEE),
        (invite("d2", 1), 100, CALLER),
        (response(486, "d2", "1 INVITE"), 100, CALLEE),
        (invite("d3", 1), 100, CALLER),
        (response(486, "d3", "1 INVITE"), 100, CALLEE),
    ])))
    .unwrap();
    let (kept, m) = shutdown(r, 101);
    assert_eq!(kept.len(), 1, "the queue holds one record");
    assert_eq!(kept[0].record.call_id, "d1");
    assert_eq!(
        m.records_dropped.with_label_values(&["record_queue"]).get(),
        2
    );
}

/// A worker (id 1, replay semantics) to drive directly, with a detector feed when `detect` is
/// given, and its sink.
fn worker(detect: Option<DetectFeed>) -> (Worker, Receiver<SinkRecord>) {
    let (rec_tx, records) = bounded(64);
    let worker = Worker {
        id: 1,
        rx: bounded(1).1,
        recycle: bounded(8).0,
        records: RecordSender {
            tx: rec_tx,
            backpressure: Backpressure::Wait,
            serialize: false,
        },
        table: table(100),
        limits: ParseLimits::default(),
        metrics: Arc::new(Metrics::new()),
        verification: None,
        detect,
    };
    (worker, records)
}

/// A worker's state driven directly (no thread), verification off.
fn state(detect: Option<DetectFeed>) -> (WorkerState, Receiver<SinkRecord>) {
    let (w, records) = worker(detect);
    (WorkerState::new(w, None), records)
}

/// One shard's feed: the worker's feed (source 0) and what the shard receives.
fn shard_feed() -> (DetectFeed, Receiver<crate::detect::feed::FeedBatch>) {
    let (tx, rx) = bounded(64);
    let dropped = IntCounter::new("test_dropped", "test").unwrap();
    let template = DetectFeed::new(
        vec![tx],
        crossbeam_channel::never(),
        Backpressure::Wait,
        dropped,
    );
    (template.for_source(0), rx)
}

/// What the shard received, as short names: "start:ID", "end:ID", "tick:SECS".
fn feed_log(rx: &Receiver<crate::detect::feed::FeedBatch>) -> (Vec<String>, Vec<Timestamp>) {
    use crate::detect::feed::DetectMsg;
    let mut msgs = Vec::new();
    let mut uptos = Vec::new();
    for b in rx.try_iter() {
        uptos.push(b.upto);
        for m in b.msgs {
            msgs.push(match m {
                DetectMsg::Start(s) => format!("start:{}", s.call_id.as_str()),
                DetectMsg::End(e) => format!("end:{}", e.call_id.as_str()),
                DetectMsg::Tick(t) => format!("tick:{}", t.0 / 1_000_000),
            });
        }
    }
    (msgs, uptos)
}

#[test]
fn a_batch_a_second_of_stream_time_later_expires_calls_without_a_tick() {
    let (mut s, records) = state(None);
    s.on_batch(batch(&[(invite("x1", 1), 100, CALLER)]));
    assert!(records.try_recv().is_err(), "x1 is open");
    // Message time alone moves the sweep: invite_timeout_s (30) has passed at 131.
    s.on_batch(batch(&[(invite("x2", 1), 131, CALLER)]));
    let rec = records.try_recv().expect("x1 timed out in the batch round");
    assert_eq!(rec.record.call_id, "x1");
    assert_eq!(rec.record.dialog.ended_by, EndedBy::Timeout);
    assert_eq!(rec.json, None, "no output asked for JSON");
    assert_eq!(s.now, Timestamp::from_secs(131));
    assert_eq!(s.last_sweep, Timestamp::from_secs(131));
    assert_eq!(s.meters.dialogs.get(), 1, "x2 is still open");
}

#[test]
fn a_tick_older_than_the_stream_time_does_not_move_it_back() {
    let (mut s, records) = state(None);
    s.on_batch(batch(&[(invite("b1", 1), 100, CALLER)]));
    s.on_tick(Timestamp::from_secs(50));
    assert_eq!(s.now, Timestamp::from_secs(100));
    s.on_idle();
    assert!(records.try_recv().is_err(), "nothing is due");
    s.on_shutdown(Timestamp::from_secs(90), &crossbeam_channel::never());
    let rec = records.try_recv().expect("b1 closed at shutdown");
    assert_eq!(rec.record.dialog.ended_by, EndedBy::Shutdown);
    assert_eq!(
        rec.record.dialog.ended_at,
        Timestamp::from_secs(100),
        "closed at the stream time, not the older shutdown time"
    );
}

#[test]
fn detectors_get_each_start_before_its_end_in_message_order_then_a_flush() {
    let (feed, shard) = shard_feed();
    let (mut s, records) = state(Some(feed));
    s.on_batch(batch(&[
        (invite("f1", 1), 100, CALLER),
        (response(486, "f1", "1 INVITE"), 101, CALLEE),
        (invite("f2", 1), 102, CALLER),
    ]));
    let (msgs, uptos) = feed_log(&shard);
    assert_eq!(msgs, ["start:f1", "end:f1", "start:f2", "tick:102"]);
    assert_eq!(
        uptos,
        [Timestamp::from_secs(102)],
        "one batch, as of the stream time"
    );
    assert_eq!(records.try_iter().count(), 1);
    s.on_shutdown(Timestamp::from_secs(110), &crossbeam_channel::never());
    let (msgs, uptos) = feed_log(&shard);
    assert_eq!(msgs, ["end:f2", "tick:110"]);
    assert_eq!(
        uptos,
        [Timestamp::from_secs(110), crate::detect::reorder::DONE],
        "the feed's last word: nothing more comes from this worker"
    );
}

/// A worker's state with verification on (certificates fetched over real HTTP from
/// 127.0.0.1, fetch timeout `timeout_ms`), and the channel its fetch notices arrive on.
fn verifying_state(
    detect: Option<DetectFeed>,
    timeout_ms: u64,
) -> (WorkerState, Receiver<SinkRecord>, Receiver<String>) {
    use super::super::verification::tests::service;
    use super::super::verification::CacheCounters;
    let (w, records) = worker(detect);
    let (notify, certs) = bounded(16);
    let v = Verification::new(
        service(timeout_ms),
        w.metrics.clone(),
        notify,
        10,
        Arc::new(std::sync::Mutex::new(CacheCounters::default())),
    );
    (WorkerState::new(w, Some(v)), records, certs)
}

/// An INVITE signed for certificate `x5u` (judged at the verification tests' NOW).
fn signed_invite(id: &str, x5u: &str) -> String {
    use super::super::verification::tests::{identity, ORIGID};
    crate::dialog::testkit::invite_with(id, 1, &identity(x5u, ORIGID))
}

#[test]
fn a_fetched_certificate_gives_the_parked_call_its_verdict_in_on_cert() {
    use super::super::verification::tests::{x5u_server, Serve, NOW};
    let url = x5u_server(Serve::NotACert, 1);
    let (mut s, records, certs) = verifying_state(None, 3000);
    s.on_batch(batch(&[(signed_invite("v1", &url), NOW, CALLER)]));
    assert_eq!(
        s.meters.parked.get(),
        1,
        "the call waits for its certificate"
    );
    let done = certs.recv_timeout(Duration::from_secs(10)).unwrap();
    s.on_cert(&done);
    assert_eq!(s.meters.parked.get(), 0);
    s.on_batch(batch(&[(response(486, "v1", "1 INVITE"), NOW + 1, CALLEE)]));
    let rec = records.try_recv().expect("v1 ends with its verdict");
    assert_eq!(rec.record.shaken.code, Some(436));
    let reason = rec.record.shaken.reason.unwrap_or_default();
    assert!(reason.contains("neither PEM certificates"), "{reason}");
}

#[test]
fn shutdown_waits_for_a_pending_certificate_then_releases_the_call_that_ended_first() {
    use super::super::verification::tests::{x5u_server, Serve, NOW};
    let url = x5u_server(Serve::NotACert, 1);
    let (feed, shard) = shard_feed();
    let (mut s, records, certs) = verifying_state(Some(feed), 3000);
    s.on_batch(batch(&[
        (signed_invite("v2", &url), NOW, CALLER),
        (response(486, "v2", "1 INVITE"), NOW, CALLEE),
    ]));
    assert!(
        records.try_recv().is_err(),
        "no record while the verdict is pending"
    );
    let (msgs, _) = feed_log(&shard);
    assert_eq!(msgs.len(), 1, "only a tick: {msgs:?}");
    // The notice has not been read: shutdown itself waits for it.
    s.on_shutdown(Timestamp::from_secs(NOW + 5), &certs);
    let rec = records
        .try_recv()
        .expect("the held call is released at shutdown");
    assert_eq!(rec.record.call_id, "v2");
    assert_eq!(rec.record.dialog.ended_by, EndedBy::Callee);
    let reason = rec.record.shaken.reason.unwrap_or_default();
    assert!(
        reason.contains("neither PEM certificates"),
        "the fetched outcome, not a forced one: {reason}"
    );
    let (msgs, _) = feed_log(&shard);
    assert_eq!(
        &msgs[..2],
        ["start:v2", "end:v2"],
        "a start never told comes with its end"
    );
}

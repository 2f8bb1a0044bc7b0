//! Worker threads: parse each SIP message of a batch (borrowed views into the batch buffer),
//! advance its call in this worker's dialog table, apply verification's verdicts to it, and send
//! finished CallRecords to the sink and call features to the detectors. `Worker::run` only
//! waits and dispatches; `WorkerState` has one handler per event, each ending the same round
//! (docs/architecture.md, "Worker and verification"). Counters are kept locally and published
//! once per round. A worker never waits for a certificate, and never changes the order or the
//! times of what it hands the detectors' feed (their determinism depends on it).

use super::messages::{Batch, BatchItem, SinkRecord, WorkerMsg};
use super::verification::Verification;
use crate::backpressure::Backpressure;
use crate::clock::Timestamp;
use crate::detect::features::{CallEnd, CallStart};
use crate::detect::feed::DetectFeed;
use crate::dialog::call::Seen;
use crate::dialog::table::{CallEvent, DialogStats, DialogTable};
use crate::metrics::latency::{LocalLatency, Stage};
use crate::metrics::Metrics;
use crate::record::CallRecord;
use crate::sip::message::{Method, ParseLimits, SipMessage, StartLine};
use crate::sip::parse::parse;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use prometheus::{IntCounter, IntGauge};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Labels of `sip_messages_total{kind}`: request methods, then response classes.
const KINDS: [&str; 21] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "PRACK",
    "UPDATE",
    "INFO",
    "REFER",
    "NOTIFY",
    "SUBSCRIBE",
    "MESSAGE",
    "PUBLISH",
    "other",
    "1xx",
    "2xx",
    "3xx",
    "4xx",
    "5xx",
    "6xx",
];

fn kind_index(msg: &SipMessage<'_>) -> usize {
    match &msg.start {
        StartLine::Request { method, .. } => match method {
            Method::Invite => 0,
            Method::Ack => 1,
            Method::Bye => 2,
            Method::Cancel => 3,
            Method::Options => 4,
            Method::Register => 5,
            Method::Prack => 6,
            Method::Update => 7,
            Method::Info => 8,
            Method::Refer => 9,
            Method::Notify => 10,
            Method::Subscribe => 11,
            Method::Message => 12,
            Method::Publish => 13,
            Method::Other(_) => 14,
        },
        StartLine::Response { code, .. } => 15 + (usize::from(*code / 100).clamp(1, 6) - 1),
    }
}

/// Where finished records go; live capture drops (and counts) rather than wait on a slow sink.
#[derive(Clone)]
pub struct RecordSender {
    pub tx: Sender<SinkRecord>,
    pub backpressure: Backpressure,
    /// Some output wants the record as JSON: serialize it here, on this worker's core.
    pub serialize: bool,
}

pub struct Worker {
    pub id: usize,
    pub rx: Receiver<WorkerMsg>,
    pub recycle: Sender<Batch>,
    pub records: RecordSender,
    pub table: DialogTable,
    pub limits: ParseLimits,
    pub metrics: Arc<Metrics>,
    /// STIR/SHAKEN for this worker's calls, with the channel its fetch notifications arrive on.
    pub verification: Option<(Verification, Receiver<String>)>,
    /// Call features for the campaign detectors (None when detection is off).
    pub detect: Option<DetectFeed>,
}

/// Workers expire calls themselves when message time has moved this far since the last sweep.
const SELF_TICK_US: i64 = 1_000_000;
/// How often an idle worker wakes to check verification deadlines.
const IDLE_WAKE: Duration = Duration::from_millis(100);

impl Worker {
    /// Waits for the next message, certificate notice or idle wake-up and hands it to the
    /// state; ends after `Shutdown` (or when capture is gone).
    pub fn run(mut self) {
        let (verification, cert_rx) = match self.verification.take() {
            Some((v, rx)) => (Some(v), rx),
            None => (None, crossbeam_channel::never()),
        };
        let rx = self.rx.clone();
        let mut state = WorkerState::new(self, verification);
        loop {
            crossbeam_channel::select! {
                recv(rx) -> m => match m {
                    Ok(WorkerMsg::Batch(batch)) => state.on_batch(batch),
                    Ok(WorkerMsg::Tick(t)) => state.on_tick(t),
                    Ok(WorkerMsg::Shutdown(t)) => return state.on_shutdown(t, &cert_rx),
                    Err(_) => return state.on_shutdown(Timestamp::ZERO, &cert_rx),
                },
                recv(cert_rx) -> url => match url {
                    Ok(url) => state.on_cert(&url),
                    Err(_) => state.on_idle(),
                },
                default(IDLE_WAKE) => state.on_idle(),
            }
        }
    }
}

/// Records a round produced, in order (each with whether the detectors got its call's
/// start), and how many of them the detectors have seen.
#[derive(Default)]
struct Outbox {
    records: Vec<(CallRecord, bool)>,
    /// `records[fed..]` are not yet handed to the detectors.
    fed: usize,
    /// Arrival of the sampled message being handled: a call it ends carries it to the sink.
    trace: Option<Instant>,
}

impl Outbox {
    /// What the dialog table tells: a start goes to the detectors at once (before the ends
    /// of this message, as the call started first); a record waits for the end of the
    /// message (its end for the detectors) and of the round (the sink).
    fn event(&mut self, detect: &mut Option<DetectFeed>, ev: CallEvent) {
        match ev {
            CallEvent::Started(s) => {
                if let Some(d) = detect.as_mut() {
                    d.start(s);
                }
            }
            CallEvent::Ended {
                mut record,
                announced,
            } => {
                record.trace = self.trace;
                self.records.push((record, announced));
            }
        }
    }
}

/// What a worker publishes as metrics: counted locally, published once per round.
struct Meters {
    kinds: Vec<IntCounter>,
    counts: [u64; KINDS.len()],
    /// Records the live sink queue could not take.
    dropped: u64,
    /// The dialog counters as last published.
    dialog: DialogStats,
    dialogs: IntGauge,
    recently_closed: IntGauge,
    parked: IntGauge,
    latency: LocalLatency,
}

impl Meters {
    fn new(m: &Metrics, id: usize) -> Self {
        let id = id.to_string();
        Meters {
            kinds: KINDS
                .iter()
                .map(|k| m.sip_messages.with_label_values(&[k]))
                .collect(),
            counts: [0; KINDS.len()],
            dropped: 0,
            dialog: DialogStats::default(),
            dialogs: m.dialogs_active.with_label_values(&[&id]),
            recently_closed: m.recently_closed.with_label_values(&[&id]),
            parked: m.verifications_pending.with_label_values(&[&id]),
            latency: LocalLatency::new(m.latency.clone()),
        }
    }
}

/// A worker between two events. Each `on_*` handles one event and closes the round: the
/// detectors get what it produced (flushed as of the stream time), finished records go to
/// the sink, metrics are published.
struct WorkerState {
    id: usize,
    table: DialogTable,
    limits: ParseLimits,
    metrics: Arc<Metrics>,
    records: RecordSender,
    recycle: Sender<Batch>,
    verification: Option<Verification>,
    detect: Option<DetectFeed>,
    /// Stream time: the latest message or tick seen (packet time in replay).
    now: Timestamp,
    /// When calls were last expired.
    last_sweep: Timestamp,
    out: Outbox,
    meters: Meters,
}

impl WorkerState {
    fn new(mut w: Worker, verification: Option<Verification>) -> Self {
        w.table
            .set_events(verification.is_some(), w.detect.is_some());
        WorkerState {
            meters: Meters::new(&w.metrics, w.id),
            id: w.id,
            table: w.table,
            limits: w.limits,
            metrics: w.metrics,
            records: w.records,
            recycle: w.recycle,
            verification,
            detect: w.detect,
            now: Timestamp::ZERO,
            last_sweep: Timestamp::ZERO,
            out: Outbox::default(),
        }
    }

    fn on_batch(&mut self, mut batch: Batch) {
        let sample = batch.sample;
        for (i, item) in batch.items.iter().enumerate() {
            let arrival = sample.and_then(|(at, a)| (at as usize == i).then_some(a));
            self.on_message(batch.message(item), item, arrival);
        }
        if self.now.0 - self.last_sweep.0 >= SELF_TICK_US {
            self.expire_calls();
        }
        batch.clear();
        if self.recycle.try_send(batch).is_err() {
            // Pool full (or capture gone): the batch is freed.
            self.metrics
                .batch_pool_events
                .with_label_values(&["discarded"])
                .inc();
        }
        self.close_round();
    }

    /// One SIP message of a batch: its call advances (or starts, and is verified).
    fn on_message(&mut self, bytes: &[u8], item: &BatchItem, arrival: Option<Instant>) {
        self.now = self.now.max(item.ts);
        let msg = match parse(bytes, &self.limits) {
            Ok(msg) => msg,
            Err(e) => {
                let errors = &self.metrics.sip_parse_errors;
                errors.with_label_values(&[e.kind()]).inc();
                return;
            }
        };
        if let Some(a) = arrival {
            self.meters.latency.record_since(Stage::Parse, a);
            self.out.trace = Some(a);
        }
        self.meters.counts[kind_index(&msg)] += 1;
        let seen = Seen {
            ts: item.ts,
            src: item.src,
            dst: item.dst,
            transport: item.transport,
            agent: item.agent,
        };
        let (out, detect) = (&mut self.out, &mut self.detect);
        let created = self
            .table
            .handle(&msg, seen, &mut |ev| out.event(detect, ev));
        if let (true, Some(v)) = (created, self.verification.as_mut()) {
            let numbers = self.table.numbers(msg.call_id).unwrap_or_default();
            let verdict = v.start(&msg, &numbers, item.ts.as_secs(), arrival);
            // An earlier call of this Call-ID settled by `start` first, then this one.
            self.apply_verdicts();
            if let Some(r) = verdict {
                let (out, detect) = (&mut self.out, &mut self.detect);
                self.table
                    .apply(msg.call_id, r, &mut |ev| out.event(detect, ev));
            }
        }
        self.out.trace = None;
        // Ends in message order with the starts (a batch spans seconds).
        if self.out.records.len() > self.out.fed {
            self.feed_detect(None);
        }
    }

    fn on_tick(&mut self, t: Timestamp) {
        self.now = self.now.max(t);
        if let (0, Some(v)) = (self.id, self.verification.as_ref()) {
            v.publish_cache_stats();
        }
        self.expire_calls();
        self.close_round();
    }

    /// A certificate this worker waits for was fetched.
    fn on_cert(&mut self, url: &str) {
        if let Some(v) = self.verification.as_mut() {
            v.cert_ready(url);
        }
        self.apply_verdicts();
        self.close_round();
    }

    /// Nothing arrived for a while: only verification deadlines move.
    fn on_idle(&mut self) {
        self.close_round();
    }

    /// Capture is over (`t`: its last time): verdicts still being fetched get their chance,
    /// then every open call is closed as of `t` and the last records go out.
    fn on_shutdown(mut self, t: Timestamp, certs: &Receiver<String>) {
        self.now = self.now.max(t);
        self.expire_verdicts();
        while let Some(v) = self.verification.as_mut().filter(|v| v.parked() > 0) {
            match certs.recv_timeout(IDLE_WAKE) {
                Ok(url) => v.cert_ready(&url),
                Err(_) => v.expire(false),
            }
            self.apply_verdicts();
        }
        let (out, detect) = (&mut self.out, &mut self.detect);
        self.table.drain(self.now, &mut |ev| out.event(detect, ev));
        if let Some(v) = self.verification.as_mut() {
            v.expire(true);
        }
        self.apply_verdicts();
        // Every verdict is in; nothing should be left waiting, and nothing is lost if it is.
        let (out, detect) = (&mut self.out, &mut self.detect);
        self.table.release_held(&mut |ev| out.event(detect, ev));
        self.close_round();
        self.meters.dialogs.set(0);
    }

    /// Closes the calls whose deadline has passed at the stream time.
    fn expire_calls(&mut self) {
        let (out, detect) = (&mut self.out, &mut self.detect);
        self.table.expire(self.now, &mut |ev| out.event(detect, ev));
        self.last_sweep = self.now;
    }

    /// Parked calls past their wall-clock deadline get their verdict.
    fn expire_verdicts(&mut self) {
        if let Some(v) = self.verification.as_mut() {
            v.expire(false);
        }
        self.apply_verdicts();
    }

    /// Verdicts verification reached since the last look go onto their calls.
    fn apply_verdicts(&mut self) {
        let Some(v) = self.verification.as_mut() else {
            return;
        };
        let (table, out, detect) = (&mut self.table, &mut self.out, &mut self.detect);
        for (call_id, result) in v.verdicts() {
            table.apply(&call_id, result, &mut |ev| out.event(detect, ev));
        }
    }

    fn close_round(&mut self) {
        self.expire_verdicts();
        self.feed_detect(Some(self.now));
        self.out.fed = 0;
        for (r, _) in self.out.records.drain(..) {
            if send(&self.records, r) {
                self.meters.dropped += 1;
            }
        }
        self.publish();
    }

    /// Hands the detectors the ends of the calls finished since the last call (with the start
    /// of a call whose verdict came after it ended). `now`: flush to the shards as of this
    /// time (None: keep queueing, more messages of the batch follow).
    fn feed_detect(&mut self, now: Option<Timestamp>) {
        let Some(feed) = self.detect.as_mut() else {
            return;
        };
        let out = &mut self.out;
        for (r, announced) in out.records.get(out.fed..).unwrap_or_default() {
            if !announced {
                feed.start(CallStart::from_record(r));
            }
            feed.end(CallEnd::from_record(r));
        }
        out.fed = out.records.len();
        if let Some(now) = now {
            feed.flush(now);
        }
    }

    fn publish(&mut self) {
        let m = &mut self.meters;
        self.metrics.invites.inc_by(m.counts[0]);
        for (c, n) in m.kinds.iter().zip(m.counts.iter_mut()) {
            if *n > 0 {
                c.inc_by(*n);
                *n = 0;
            }
        }
        if m.dropped > 0 {
            self.metrics
                .records_dropped
                .with_label_values(&["record_queue"])
                .inc_by(std::mem::take(&mut m.dropped));
        }
        publish_dialog_stats(&self.metrics, &self.table.stats, &mut m.dialog);
        m.latency.maybe_merge();
        if let Some(v) = self.verification.as_mut() {
            v.latency.maybe_merge();
        }
        m.dialogs.set(self.table.len() as i64);
        m.recently_closed
            .set(self.table.recently_closed_len() as i64);
        m.parked
            .set(self.verification.as_ref().map_or(0, |v| v.parked()) as i64);
    }
}

/// Sends a finished record to the sink; true when live capture dropped it (sink queue full).
fn send(records: &RecordSender, record: CallRecord) -> bool {
    // Serializing plain structs into a Vec cannot fail.
    let json = records
        .serialize
        .then(|| serde_json::to_vec(&record).unwrap_or_default());
    let r = SinkRecord { record, json };
    matches!(
        records.backpressure.send(&records.tx, r),
        Err(TrySendError::Full(_))
    )
}

/// Adds to the dialog counters what the table counted since `published`.
fn publish_dialog_stats(m: &Metrics, s: &DialogStats, published: &mut DialogStats) {
    if s == published {
        return;
    }
    let d = &*published;
    let ev = |label: &str, now: u64, before: u64| {
        if now > before {
            m.dialog_events
                .with_label_values(&[label])
                .inc_by(now - before);
        }
    };
    ev(
        "invite_retransmission",
        s.invite_retransmissions,
        d.invite_retransmissions,
    );
    ev("reinvite", s.reinvites, d.reinvites);
    ev("unmatched", s.unmatched, d.unmatched);
    ev("after_close", s.after_close, d.after_close);
    ev("out_of_dialog", s.out_of_dialog, d.out_of_dialog);
    ev("created", s.created, d.created);
    if s.recently_closed_evictions > d.recently_closed_evictions {
        m.recently_closed_evictions
            .inc_by(s.recently_closed_evictions - d.recently_closed_evictions);
    }
    let calls = |label: &str, now: u64, before: u64| {
        if now > before {
            m.calls.with_label_values(&[label]).inc_by(now - before);
        }
    };
    calls("caller", s.closed_caller, d.closed_caller);
    calls("callee", s.closed_callee, d.closed_callee);
    calls("timeout", s.closed_timeout, d.closed_timeout);
    calls("evicted", s.closed_evicted, d.closed_evicted);
    calls("shutdown", s.closed_shutdown, d.closed_shutdown);
    *published = s.clone();
}

#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;

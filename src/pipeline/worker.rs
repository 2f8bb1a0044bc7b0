//! Worker threads: parse each SIP message of a batch (borrowed views into the batch buffer),
//! advance its call in this worker's dialog table, and send finished CallRecords to the sink.
//! Counters are kept locally and published once per batch.

use super::messages::{Batch, SinkRecord, WorkerMsg};
use super::verification::Verification;
use crate::backpressure::Backpressure;
use crate::clock::Timestamp;
use crate::detect::features::{CallEnd, CallStart};
use crate::detect::feed::DetectFeed;
use crate::dialog::call::Seen;
use crate::dialog::table::{DialogStats, DialogTable};
use crate::metrics::latency::{LocalLatency, Stage};
use crate::metrics::Metrics;
use crate::record::CallRecord;
use crate::sip::message::{Method, ParseLimits, SipMessage, StartLine};
use crate::sip::parse::parse;
use crossbeam_channel::{Receiver, RecvError, Sender, TrySendError};
use prometheus::IntCounter;
use std::cell::Cell;
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

/// Hands the detectors what this round produced: starts of calls whose verdict landed late,
/// and the end of every finished call (with its start too when it was never announced).
/// `out[*fed..]` are the records not yet fed; `now`: flush to the shards as of this time
/// (None: keep queueing, more messages of the batch follow).
fn feed_detect(
    detect: &mut Option<DetectFeed>,
    table: &mut DialogTable,
    verification: &mut Option<Verification>,
    out: &[CallRecord],
    fed: &mut usize,
    now: Option<Timestamp>,
) {
    let Some(feed) = detect.as_mut() else {
        if let Some(v) = verification.as_mut() {
            v.landed.clear();
            v.late.clear();
        }
        return;
    };
    let mut late = Vec::new();
    if let Some(v) = verification.as_mut() {
        for id in v.landed.drain(..) {
            if let Some(s) = table.detect_start(&id, true) {
                feed.start(s);
            }
        }
        late = std::mem::take(&mut v.late);
    }
    for r in out.get(*fed..).unwrap_or_default() {
        if late.iter().any(|id| **id == *r.call_id.as_bytes()) {
            feed.start(CallStart::from_record(r));
        }
        feed.end(CallEnd::from_record(r));
    }
    *fed = out.len();
    if let Some(now) = now {
        feed.flush(now);
    }
}

struct Published {
    kinds: Vec<IntCounter>,
    dialog: DialogStats,
}

/// Workers expire calls themselves when message time has moved this far since the last sweep.
const SELF_TICK_US: i64 = 1_000_000;
/// How often an idle worker wakes to check verification deadlines.
const IDLE_WAKE: Duration = Duration::from_millis(100);

enum Event {
    Msg(Result<WorkerMsg, RecvError>),
    CertReady(String),
    Idle,
}

impl Worker {
    pub fn run(mut self) {
        let mut published = Published {
            kinds: KINDS
                .iter()
                .map(|k| self.metrics.sip_messages.with_label_values(&[k]))
                .collect(),
            dialog: DialogStats::default(),
        };
        let gauge = self
            .metrics
            .dialogs_active
            .with_label_values(&[&self.id.to_string()]);
        let parked_gauge = self
            .metrics
            .verifications_pending
            .with_label_values(&[&self.id.to_string()]);
        let mut counts = [0u64; KINDS.len()];
        let mut now = Timestamp::ZERO;
        let mut last_sweep = Timestamp::ZERO;
        let dropped = Cell::new(0u64);
        let records = self.records.clone();
        let send = |record: CallRecord| {
            // Serializing plain structs into a Vec cannot fail.
            let json = records
                .serialize
                .then(|| serde_json::to_vec(&record).unwrap_or_default());
            let r = SinkRecord { record, json };
            if let Err(TrySendError::Full(_)) = records.backpressure.send(&records.tx, r) {
                dropped.set(dropped.get() + 1);
            }
        };
        let (mut verification, cert_rx) = match self.verification.take() {
            Some((v, rx)) => (Some(v), rx),
            None => (None, crossbeam_channel::never()),
        };
        let mut out: Vec<CallRecord> = Vec::new();
        let mut latency = LocalLatency::new(self.metrics.latency.clone());
        // Arrival of the sampled message being handled: a call it ends carries it to the sink.
        let tracing_arrival: Cell<Option<Instant>> = Cell::new(None);
        let recently_closed_gauge = self
            .metrics
            .recently_closed
            .with_label_values(&[&self.id.to_string()]);
        // Records of `out` already handed to the detectors.
        let mut fed = 0usize;
        // A finished call's record waits while its verdict is pending.
        let emit = |key: &[u8],
                    mut r: CallRecord,
                    v: &mut Option<Verification>,
                    out: &mut Vec<CallRecord>| {
            r.trace = tracing_arrival.get();
            match v.as_mut() {
                Some(v) => out.extend(v.hold(key, r)),
                None => out.push(r),
            }
        };
        loop {
            let event = crossbeam_channel::select! {
                recv(self.rx) -> m => Event::Msg(m),
                recv(cert_rx) -> u => u.map_or(Event::Idle, Event::CertReady),
                default(IDLE_WAKE) => Event::Idle,
            };
            let mut stop = false;
            match event {
                Event::Msg(Ok(WorkerMsg::Batch(mut batch))) => {
                    let sample = batch.sample;
                    for (i, item) in batch.items.iter().enumerate() {
                        let arrival = sample.and_then(|(at, a)| (at as usize == i).then_some(a));
                        now = now.max(item.ts);
                        let seen = Seen {
                            ts: item.ts,
                            src: item.src,
                            dst: item.dst,
                            transport: item.transport,
                            agent: item.agent,
                        };
                        match parse(batch.message(item), &self.limits) {
                            Ok(msg) => {
                                if let Some(a) = arrival {
                                    latency.record_since(Stage::Parse, a);
                                    tracing_arrival.set(Some(a));
                                }
                                counts[kind_index(&msg)] += 1;
                                let created = self.table.handle(&msg, seen, &mut |k, r| {
                                    emit(k, r, &mut verification, &mut out)
                                });
                                if let (true, Some(v)) = (created, verification.as_mut()) {
                                    v.start(&msg, item.ts.as_secs(), &mut self.table, arrival);
                                }
                                tracing_arrival.set(None);
                                if let (true, Some(d)) = (created, self.detect.as_mut()) {
                                    let need_verdict = verification.is_some();
                                    if let Some(s) =
                                        self.table.detect_start(msg.call_id, need_verdict)
                                    {
                                        d.start(s);
                                    }
                                }
                                // Ends in message order with the starts (a batch spans seconds).
                                if out.len() > fed {
                                    feed_detect(
                                        &mut self.detect,
                                        &mut self.table,
                                        &mut verification,
                                        &out,
                                        &mut fed,
                                        None,
                                    );
                                }
                            }
                            Err(e) => self
                                .metrics
                                .sip_parse_errors
                                .with_label_values(&[e.kind()])
                                .inc(),
                        }
                    }
                    if now.0 - last_sweep.0 >= SELF_TICK_US {
                        self.table
                            .expire(now, &mut |k, r| emit(k, r, &mut verification, &mut out));
                        last_sweep = now;
                    }
                    batch.clear();
                    if self.recycle.try_send(batch).is_err() {
                        // Pool full (or capture gone): the batch is freed.
                        self.metrics
                            .batch_pool_events
                            .with_label_values(&["discarded"])
                            .inc();
                    }
                }
                Event::Msg(Ok(WorkerMsg::Tick(t))) => {
                    now = now.max(t);
                    if let (0, Some(v)) = (self.id, verification.as_ref()) {
                        v.publish_cache_stats();
                    }
                    self.table
                        .expire(now, &mut |k, r| emit(k, r, &mut verification, &mut out));
                    last_sweep = now;
                }
                Event::Msg(Ok(WorkerMsg::Shutdown(t))) => {
                    now = now.max(t);
                    stop = true;
                }
                Event::Msg(Err(_)) => stop = true,
                Event::CertReady(url) => {
                    if let Some(v) = verification.as_mut() {
                        v.cert_ready(&url, &mut self.table, &mut out);
                    }
                }
                Event::Idle => {}
            }
            if let Some(v) = verification.as_mut() {
                v.expire(false, &mut self.table, &mut out);
            }
            if stop {
                // Verdicts still being fetched get their chance before the last records go out.
                if let Some(v) = verification.as_mut() {
                    while v.parked() > 0 {
                        match cert_rx.recv_timeout(IDLE_WAKE) {
                            Ok(url) => v.cert_ready(&url, &mut self.table, &mut out),
                            Err(_) => v.expire(false, &mut self.table, &mut out),
                        }
                    }
                }
                self.table
                    .drain(now, &mut |k, r| emit(k, r, &mut verification, &mut out));
                if let Some(v) = verification.as_mut() {
                    v.expire(true, &mut self.table, &mut out);
                }
            }
            feed_detect(
                &mut self.detect,
                &mut self.table,
                &mut verification,
                &out,
                &mut fed,
                Some(now),
            );
            fed = 0;
            for r in out.drain(..) {
                send(r);
            }
            self.publish(&mut published, &mut counts, &dropped);
            latency.maybe_merge();
            if let Some(v) = verification.as_mut() {
                v.latency.maybe_merge();
            }
            gauge.set(self.table.len() as i64);
            recently_closed_gauge.set(self.table.recently_closed_len() as i64);
            parked_gauge.set(verification.as_ref().map_or(0, |v| v.parked()) as i64);
            if stop {
                break;
            }
        }
        gauge.set(0);
    }

    fn publish(&self, p: &mut Published, counts: &mut [u64; KINDS.len()], dropped: &Cell<u64>) {
        self.metrics.invites.inc_by(counts[0]);
        for (c, n) in p.kinds.iter().zip(counts.iter_mut()) {
            if *n > 0 {
                c.inc_by(*n);
                *n = 0;
            }
        }
        if dropped.get() > 0 {
            self.metrics
                .records_dropped
                .with_label_values(&["record_queue"])
                .inc_by(dropped.take());
        }
        let s = &self.table.stats;
        if *s == p.dialog {
            return;
        }
        let m = &self.metrics;
        let d = &p.dialog;
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
        p.dialog = s.clone();
    }
}

#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;

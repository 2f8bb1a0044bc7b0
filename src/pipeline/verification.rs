//! A worker's side of STIR/SHAKEN: verifies the Identity headers of each new call, parks calls
//! whose certificate is being fetched (bounded; each with a wall-clock deadline, since fetches
//! take real time even when a replay runs faster than real time), and holds back the record of
//! a call that ends before its verdict is known.

use crate::detect::fingerprint::{fingerprint_hex, of_call};
use crate::dialog::call::{invite_numbers, InviteNumbers};
use crate::dialog::table::DialogTable;
use crate::metrics::latency::{LocalLatency, Stage};
use crate::metrics::Metrics;
use crate::record::{CallRecord, ShakenResult};
use crate::shaken::service::{CertLookup, ShakenService};
use crate::shaken::verdict::{Failure, FailureClass};
use crate::shaken::verify::{CallNumbers, HeaderCheck};
use crate::sip::message::SipMessage;
use crossbeam_channel::{Sender, TrySendError};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Publishes the shared certificate cache's counters. `published` holds what was published
/// before (shared by every caller), so the counters only ever add the difference.
pub fn publish_cache_stats(svc: &ShakenService, m: &Metrics, published: &Mutex<CacheCounters>) {
    let mut last = published.lock().unwrap_or_else(|e| e.into_inner());
    let s = svc.cache_stats().unwrap_or_default();
    let hits = s.hits + s.negative_hits + svc.seed_hits.load(Ordering::Relaxed);
    m.cert_cache_hits.inc_by(hits.saturating_sub(last.hits));
    m.cert_cache_misses
        .inc_by(s.misses.saturating_sub(last.misses));
    last.hits = last.hits.max(hits);
    last.misses = last.misses.max(s.misses);
    for (kind, n) in s.fetch_errors {
        let before = last.fetch_errors.entry(kind).or_insert(0);
        if n > *before {
            m.cert_fetch_errors
                .with_label_values(&[kind])
                .inc_by(n - *before);
            *before = n;
        }
    }
    let g = &m.cert_cache;
    g.with_label_values(&["entries"]).set(s.entries as i64);
    g.with_label_values(&["in_flight"]).set(s.in_flight as i64);
    g.with_label_values(&["evictions"]).set(s.evictions as i64);
    g.with_label_values(&["crl_unavailable"])
        .set(svc.crl_unavailable.load(Ordering::Relaxed) as i64);
    let guard = svc.verifier.replay_guard();
    m.replay_signatures.set(guard.len() as i64);
    let evictions = guard.evictions();
    m.replay_signature_evictions
        .inc_by(evictions.saturating_sub(last.replay_evictions));
    last.replay_evictions = last.replay_evictions.max(evictions);
}

/// Cache counters already published.
#[derive(Default)]
pub struct CacheCounters {
    hits: u64,
    misses: u64,
    fetch_errors: HashMap<&'static str, u64>,
    replay_evictions: u64,
}

struct Parked {
    checks: Vec<HeaderCheck>,
    now: i64,
    deadline: Instant,
    /// Arrival of the INVITE when it was sampled for stage latency.
    arrival: Option<Instant>,
    /// The call's record, when the call ended before its verdict.
    held: Option<CallRecord>,
    /// The call's origin-traits hash, to finish a held record's fingerprint.
    origin: u64,
}

pub struct Verification {
    svc: Arc<ShakenService>,
    metrics: Arc<Metrics>,
    /// Told (with the URL) when a fetch this worker waits for completes.
    notify: Sender<String>,
    parked: HashMap<Box<[u8]>, Parked>,
    by_url: HashMap<String, Vec<Box<[u8]>>>,
    cap: usize,
    grace: Duration,
    published: Arc<Mutex<CacheCounters>>,
    /// The `verify` stage latency of sampled INVITEs.
    pub latency: LocalLatency,
    /// Call-IDs whose late verdict went onto the open call (the detectors want their start).
    pub landed: Vec<Box<[u8]>>,
    /// Call-IDs whose late verdict went onto a held record (their start was never announced).
    pub late: Vec<Box<[u8]>>,
}

impl Verification {
    pub fn new(
        svc: Arc<ShakenService>,
        metrics: Arc<Metrics>,
        notify: Sender<String>,
        cap: usize,
        published: Arc<Mutex<CacheCounters>>,
    ) -> Self {
        let grace = svc.fetch_timeout + Duration::from_millis(500);
        Verification {
            svc,
            notify,
            parked: HashMap::new(),
            by_url: HashMap::new(),
            cap: cap.max(1),
            grace,
            published,
            latency: LocalLatency::new(metrics.latency.clone()),
            metrics,
            landed: Vec::new(),
            late: Vec::new(),
        }
    }

    /// Publishes the shared certificate cache's counters (worker 0 does it once a second).
    pub fn publish_cache_stats(&self) {
        publish_cache_stats(&self.svc, &self.metrics, &self.published);
    }

    pub fn parked(&self) -> usize {
        self.parked.len()
    }

    /// Verifies the INVITE that just started a call; the verdict goes onto the call now or,
    /// if a certificate must be fetched, when it arrives. `arrival`: the INVITE was sampled
    /// for stage latency.
    pub fn start(
        &mut self,
        msg: &SipMessage<'_>,
        now: i64,
        table: &mut DialogTable,
        arrival: Option<Instant>,
    ) {
        // Most INVITEs on many links are unsigned: their verdict needs no numbers.
        let n = if msg.identity.is_empty() {
            InviteNumbers::default()
        } else {
            invite_numbers(msg)
        };
        let numbers = CallNumbers {
            orig: n.orig,
            dest: [n.ruri, n.to],
        };
        let v = &self.svc.verifier;
        let mut checks: Vec<HeaderCheck> = msg
            .identity
            .iter()
            .map(|h| v.precheck(h, &numbers, now))
            .collect();
        if msg.identity_overflow > 0 {
            self.metrics
                .verification_events
                .with_label_values(&["identity_overflow"])
                .inc();
        }
        let mut waiting: Vec<String> = Vec::new();
        for c in checks.iter_mut() {
            let Some(url) = c.awaited_x5u().map(str::to_string) else {
                continue;
            };
            let lookup = if waiting.contains(&url) {
                CertLookup::Pending
            } else if self.parked.len() >= self.cap {
                self.metrics
                    .verification_events
                    .with_label_values(&["pending_full"])
                    .inc();
                CertLookup::Failed(Failure::new(
                    FailureClass::BadIdentityInfo,
                    "too many calls already wait for certificates (shaken.max_pending)",
                ))
            } else {
                let notify = self.notify.clone();
                let dropped = self.metrics.cert_notifications_dropped.clone();
                let u = url.clone();
                self.svc.lookup(
                    &url,
                    Box::new(move || {
                        if let Err(TrySendError::Full(_)) = notify.try_send(u) {
                            dropped.inc();
                        }
                    }),
                )
            };
            match lookup {
                CertLookup::Pending => {
                    if !waiting.contains(&url) {
                        waiting.push(url);
                    }
                }
                done => self.svc.finish(c, &done, now),
            }
        }
        if waiting.is_empty() {
            let verdict = self.verdict(msg.call_id, &checks, now);
            table.set_shaken(msg.call_id, verdict);
            if let Some(a) = arrival {
                self.latency.record_since(Stage::Verify, a);
            }
            return;
        }
        let key: Box<[u8]> = Box::from(msg.call_id);
        let origin = table.origin(msg.call_id).unwrap_or(0);
        for url in waiting {
            self.by_url.entry(url).or_default().push(key.clone());
        }
        self.parked.insert(
            key,
            Parked {
                checks,
                now,
                deadline: Instant::now() + self.grace,
                arrival,
                held: None,
                origin,
            },
        );
    }

    fn verdict(&self, call_id: &[u8], checks: &[HeaderCheck], now: i64) -> ShakenResult {
        let r = self.svc.verifier.verdict(call_id, checks, now);
        let m = &self.metrics;
        let verstat = r.verstat.as_deref().unwrap_or("none");
        m.verifications
            .with_label_values(&[verstat, r.attest.as_deref().unwrap_or("none")])
            .inc();
        if let Some(code) = r.code {
            m.verification_failures
                .with_label_values(&[&code.to_string()])
                .inc();
        }
        if r.replayed {
            m.verification_events.with_label_values(&["replayed"]).inc();
        }
        r
    }

    /// Keeps back the record of a call whose verdict is pending; returns it otherwise.
    pub fn hold(&mut self, call_id: &[u8], record: CallRecord) -> Option<CallRecord> {
        match self.parked.get_mut(call_id) {
            Some(p) if p.held.is_none() => {
                p.held = Some(record);
                None
            }
            _ => Some(record),
        }
    }

    /// A fetch completed: finish every call that waited only for it.
    pub fn cert_ready(&mut self, url: &str, table: &mut DialogTable, out: &mut Vec<CallRecord>) {
        let Some(keys) = self.by_url.remove(url) else {
            return;
        };
        let lookup = self.svc.peek(url);
        if matches!(lookup, CertLookup::Pending) {
            // Evicted already, or a spurious wake-up: wait for the deadline.
            self.by_url.insert(url.to_string(), keys);
            return;
        }
        for key in keys {
            let Some(p) = self.parked.get_mut(&key) else {
                continue;
            };
            for c in p.checks.iter_mut().filter(|c| c.awaited_x5u() == Some(url)) {
                self.svc.finish(c, &lookup, p.now);
            }
            if p.checks.iter().all(|c| c.result.is_some()) {
                self.complete(&key, table, out);
            }
        }
    }

    /// Calls past their deadline get 436 for what is still missing. `all`: every parked call
    /// (shutdown, after waiting for what can still arrive).
    pub fn expire(&mut self, all: bool, table: &mut DialogTable, out: &mut Vec<CallRecord>) {
        let now = Instant::now();
        let due: Vec<Box<[u8]>> = self
            .parked
            .iter()
            .filter(|(_, p)| all || p.deadline <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            if let Some(p) = self.parked.get_mut(&key) {
                for c in p.checks.iter_mut().filter(|c| c.result.is_none()) {
                    c.result = Some(Err(Failure::new(
                        FailureClass::BadIdentityInfo,
                        format!(
                            "certificate {} not fetched within {} ms",
                            c.awaited_x5u().unwrap_or("?"),
                            self.grace.as_millis()
                        ),
                    )));
                }
                self.metrics
                    .verification_events
                    .with_label_values(&["deadline"])
                    .inc();
            }
            self.complete(&key, table, out);
        }
        self.by_url.retain(|_, keys| {
            keys.retain(|k| self.parked.contains_key(k));
            !keys.is_empty()
        });
    }

    fn complete(&mut self, key: &[u8], table: &mut DialogTable, out: &mut Vec<CallRecord>) {
        let Some(p) = self.parked.remove(key) else {
            return;
        };
        let verdict = self.verdict(key, &p.checks, p.now);
        if let Some(a) = p.arrival {
            self.latency.record_since(Stage::Verify, a);
        }
        match p.held {
            Some(mut record) => {
                let identity_headers = record.shaken.identity_headers;
                record.shaken = verdict;
                record.shaken.identity_headers =
                    identity_headers.max(record.shaken.identity_headers);
                record.fingerprint = Some(fingerprint_hex(of_call(p.origin, Some(&record.shaken))));
                self.late.push(Box::from(key));
                out.push(record);
            }
            None => {
                if table.set_shaken(key, verdict) {
                    self.landed.push(Box::from(key));
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "verification_tests.rs"]
mod tests;

//! A worker's side of STIR/SHAKEN: verifies the Identity headers of each new call and parks
//! calls whose certificate is being fetched (bounded; each with a wall-clock deadline, since
//! fetches take real time even when a replay runs faster than real time). It only produces
//! verdicts, `(Call-ID, result)`, which the worker applies to its dialog table; it never
//! touches calls or records (the table keeps a call that ends while its verdict is pending).

use crate::metrics::latency::{LocalLatency, Stage};
use crate::metrics::Metrics;
use crate::record::ShakenResult;
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
}

/// A verdict for the dialog table: the Call-ID and its result.
pub type Verdict = (Box<[u8]>, ShakenResult);

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
    /// Verdicts of parked calls, in the order they were reached, for the worker to apply.
    done: Vec<Verdict>,
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
            done: Vec::new(),
        }
    }

    /// Publishes the shared certificate cache's counters (worker 0 does it once a second).
    pub fn publish_cache_stats(&self) {
        publish_cache_stats(&self.svc, &self.metrics, &self.published);
    }

    pub fn parked(&self) -> usize {
        self.parked.len()
    }

    /// Verdicts reached since the last call (certificates arrived, deadlines passed, a call
    /// superseded), in order.
    pub fn verdicts(&mut self) -> std::vec::Drain<'_, Verdict> {
        self.done.drain(..)
    }

    /// Verifies the INVITE that just started a call (`numbers`: what it presented). Returns the
    /// verdict when it is known at once; otherwise the call is parked and its verdict comes
    /// out of [`Verification::verdicts`] when its certificate arrives or its deadline passes.
    /// `arrival`: the INVITE was sampled for stage latency.
    pub fn start(
        &mut self,
        msg: &SipMessage<'_>,
        numbers: &CallNumbers,
        now: i64,
        arrival: Option<Instant>,
    ) -> Option<ShakenResult> {
        if !self.parked.is_empty() && self.parked.contains_key(msg.call_id) {
            // An earlier call of this Call-ID (redirected, then retried) still waits for its
            // certificate: it gets its verdict now, so the two never mix.
            self.force(msg.call_id, "superseded", "a new INVITE reused the Call-ID");
            self.complete(msg.call_id);
        }
        let v = &self.svc.verifier;
        let mut checks: Vec<HeaderCheck> = msg
            .identity
            .iter()
            .map(|h| v.precheck(h, numbers, now))
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
            if let Some(a) = arrival {
                self.latency.record_since(Stage::Verify, a);
            }
            return Some(verdict);
        }
        let key: Box<[u8]> = Box::from(msg.call_id);
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
            },
        );
        None
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

    /// A fetch completed: finish every call that waited only for it.
    pub fn cert_ready(&mut self, url: &str) {
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
                self.complete(&key);
            }
        }
    }

    /// Calls past their deadline get 436 for what is still missing. `all`: every parked call
    /// (shutdown, after waiting for what can still arrive).
    pub fn expire(&mut self, all: bool) {
        let now = Instant::now();
        let due: Vec<Box<[u8]>> = self
            .parked
            .iter()
            .filter(|(_, p)| all || p.deadline <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let why = format!("not fetched within {} ms", self.grace.as_millis());
            self.force(&key, "deadline", &why);
            self.complete(&key);
        }
        self.by_url.retain(|_, keys| {
            keys.retain(|k| self.parked.contains_key(k));
            !keys.is_empty()
        });
    }

    /// Fails the checks of a parked call that still wait for a certificate (436, `why`),
    /// counted as `verification_events_total{event}`.
    fn force(&mut self, key: &[u8], event: &str, why: &str) {
        let Some(p) = self.parked.get_mut(key) else {
            return;
        };
        for c in p.checks.iter_mut().filter(|c| c.result.is_none()) {
            let x5u = c.awaited_x5u().unwrap_or("?");
            c.result = Some(Err(Failure::new(
                FailureClass::BadIdentityInfo,
                format!("certificate {x5u} {why}"),
            )));
        }
        self.metrics
            .verification_events
            .with_label_values(&[event])
            .inc();
    }

    fn complete(&mut self, key: &[u8]) {
        let Some(p) = self.parked.remove(key) else {
            return;
        };
        let verdict = self.verdict(key, &p.checks, p.now);
        if let Some(a) = p.arrival {
            self.latency.record_since(Stage::Verify, a);
        }
        self.done.push((Box::from(key), verdict));
    }
}

#[cfg(test)]
#[path = "verification_tests.rs"]
pub(super) mod tests;

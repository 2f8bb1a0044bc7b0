//! The x5u cache: parsed fetch results by URL, shared by every pipeline worker.
//!
//! A lookup never blocks: a fresh entry answers at once; a miss starts one fetch per URL
//! however many callers ask (single flight), returns `Pending`, and calls each caller's
//! `on_done` exactly once when that fetch ends. A success is kept for its Cache-Control
//! max-age clamped to [min_ttl, max_ttl] and never past the value's `not_after`; a failure is
//! kept for `negative_ttl`. The whole parsed value (a chain, not just its leaf: Kamailio #3246)
//! is what is cached. Entries, seeds and fetches in flight each have a cap.
//!
//! This module must never block a caller on I/O, call a callback while holding its lock, keep
//! a value past its `not_after`, or evict a fetch in flight (its callers would never hear back).

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::clock::{Clock, Timestamp};
use crate::shaken::fetch::{FetchError, Fetcher};

/// A cached value that stops being valid at a known time (a certificate chain's earliest
/// notAfter).
pub trait Expiring {
    /// Unix seconds; the cache never keeps the value past it.
    fn not_after(&self) -> i64;
}

/// Sizes and lifetimes.
#[derive(Clone, Debug)]
pub struct CacheLimits {
    /// Fetched entries (successes and failures) kept at most.
    pub max_entries: usize,
    /// Operator seeds kept at most (separate from `max_entries`; never evicted by TTL).
    pub max_seeds: usize,
    /// Fetches running at once; a miss beyond it fails at once (not cached).
    pub max_in_flight: usize,
    pub min_ttl: Duration,
    pub max_ttl: Duration,
    /// How long a failed fetch or parse is remembered.
    pub negative_ttl: Duration,
    /// TTL of a success without Cache-Control max-age.
    pub default_ttl: Duration,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            max_entries: 10_000,
            max_seeds: 10_000,
            max_in_flight: 256,
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(86_400),
            negative_ttl: Duration::from_secs(30),
            default_ttl: Duration::from_secs(3_600),
        }
    }
}

/// Why a lookup failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailKind {
    /// The fetch failed; the label is [`FetchError::kind`].
    Fetch(&'static str),
    /// The body did not parse (the parse closure's reason).
    Parse,
    /// The parsed value was already past its `not_after` when it arrived.
    Expired,
    /// Too many fetches in flight; nothing was started or cached.
    Overloaded,
}

impl FailKind {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            FailKind::Fetch(kind) => kind,
            FailKind::Parse => "parse",
            FailKind::Expired => "expired",
            FailKind::Overloaded => "overloaded",
        }
    }
}

/// The answer to a lookup.
#[derive(Debug)]
pub enum Lookup<V> {
    Ready(Arc<V>),
    /// The reason (a [`FetchError`] or the parse closure's message) and its kind.
    Failed(Arc<String>, FailKind),
    /// Being fetched (`get`) or not cached (`peek`).
    Pending,
}

impl<V> Clone for Lookup<V> {
    fn clone(&self) -> Self {
        match self {
            Lookup::Ready(v) => Lookup::Ready(v.clone()),
            Lookup::Failed(r, k) => Lookup::Failed(r.clone(), *k),
            Lookup::Pending => Lookup::Pending,
        }
    }
}

/// A snapshot of the counters (monotonic) and gauges (`entries`, `seeds`, `in_flight`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// `get` answered Ready from the cache.
    pub hits: u64,
    /// `get` answered Failed from the cache (a remembered failure).
    pub negative_hits: u64,
    /// `get` answered Pending (a fetch started or joined).
    pub misses: u64,
    /// Misses that joined a fetch already in flight.
    pub coalesced: u64,
    pub fetches: u64,
    /// By [`FetchError::kind`], in [`FetchError::KINDS`] order; URLs refused before any I/O
    /// are counted here too.
    pub fetch_errors: Vec<(&'static str, u64)>,
    pub parse_errors: u64,
    /// Values already past `not_after` on arrival.
    pub expired_on_arrival: u64,
    /// Misses refused because `max_in_flight` fetches were running.
    pub overloaded: u64,
    /// Entries removed to respect `max_entries` (expired ones are not counted).
    pub evictions: u64,
    /// Seeds removed to respect `max_seeds`.
    pub seed_evictions: u64,
    pub entries: u64,
    pub seeds: u64,
    pub in_flight: u64,
}

/// Turns a fetched body into a value, or says why not.
pub type ParseFn<V> = Arc<dyn Fn(&[u8]) -> Result<V, String> + Send + Sync>;
type Callback = Box<dyn FnOnce() + Send>;

/// Longest failure reason kept (a parse closure could echo hostile content).
const MAX_REASON: usize = 512;

enum Slot<V> {
    Ready {
        value: Arc<V>,
        expires: i64,
    },
    Failed {
        reason: Arc<String>,
        kind: FailKind,
        expires: i64,
    },
    InFlight {
        waiters: Vec<Callback>,
    },
}

struct Seed<V> {
    value: Arc<V>,
    expires: i64,
}

struct Table<V> {
    slots: HashMap<String, Slot<V>>,
    seeds: HashMap<String, Seed<V>>,
    in_flight: usize,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    negative_hits: AtomicU64,
    misses: AtomicU64,
    coalesced: AtomicU64,
    fetches: AtomicU64,
    fetch_errors: [AtomicU64; FetchError::KINDS.len()],
    parse_errors: AtomicU64,
    expired_on_arrival: AtomicU64,
    overloaded: AtomicU64,
    evictions: AtomicU64,
    seed_evictions: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

struct Inner<V> {
    fetcher: Arc<Fetcher>,
    limits: CacheLimits,
    parse: ParseFn<V>,
    clock: Arc<dyn Clock>,
    runtime: tokio::runtime::Handle,
    table: Mutex<Table<V>>,
    counters: Counters,
}

/// Single-flight, TTL-bounded cache of parsed x5u fetches. Cheap to clone; thread-safe.
pub struct FetchCache<V: Expiring + Send + Sync + 'static> {
    inner: Arc<Inner<V>>,
}

impl<V: Expiring + Send + Sync + 'static> Clone for FetchCache<V> {
    fn clone(&self) -> Self {
        FetchCache {
            inner: self.inner.clone(),
        }
    }
}

enum Outcome<V> {
    Value(V, Option<Duration>),
    Fail(String, FailKind),
}

impl<V: Expiring + Send + Sync + 'static> FetchCache<V> {
    /// `parse` turns a fetched body into a value or a reason; it runs inline on the runtime
    /// (CPU work of about 100 µs on a body of at most `max_bytes`); a panic in it is caught
    /// and cached as a parse failure. Fetches are spawned on `runtime`.
    pub fn new(
        fetcher: Arc<Fetcher>,
        limits: CacheLimits,
        parse: ParseFn<V>,
        clock: Arc<dyn Clock>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        FetchCache {
            inner: Arc::new(Inner {
                fetcher,
                limits,
                parse,
                clock,
                runtime,
                table: Mutex::new(Table {
                    slots: HashMap::new(),
                    seeds: HashMap::new(),
                    in_flight: 0,
                }),
                counters: Counters::default(),
            }),
        }
    }

    /// Serves `value` for `url` without fetching until the value's `not_after` (operator
    /// files: `--cert URL=FILE`, a cert directory). A seed wins over a fetched entry. A value
    /// already expired is ignored; beyond `max_seeds` the seed expiring first is dropped.
    pub fn seed(&self, url: &str, value: V) {
        let now = self.inner.now();
        let expires = secs_to_micros(value.not_after());
        if expires <= now {
            tracing::warn!(url, "x5u seed ignored: already past its not_after");
            return;
        }
        let max = self.inner.limits.max_seeds.max(1);
        let mut t = self.inner.lock();
        if !t.seeds.contains_key(url) && t.seeds.len() >= max {
            t.seeds.retain(|_, s| s.expires > now);
            if t.seeds.len() >= max {
                let victim = t
                    .seeds
                    .iter()
                    .min_by_key(|(_, s)| s.expires)
                    .map(|(k, _)| k.clone());
                if let Some(k) = victim {
                    t.seeds.remove(&k);
                    bump(&self.inner.counters.seed_evictions);
                    tracing::warn!(dropped = %k, "x5u seed cap reached; dropped the seed expiring first");
                }
            }
        }
        t.seeds.insert(
            url.to_owned(),
            Seed {
                value: Arc::new(value),
                expires,
            },
        );
    }

    /// Never blocks. `Ready`/`Failed` when cached and fresh. Otherwise starts the fetch (one per
    /// URL while it is in flight) and returns `Pending`; `on_done` is then called exactly once,
    /// from a runtime thread, when that fetch ends. When the answer is not `Pending`, `on_done`
    /// is dropped uncalled (this includes URLs refused by policy before any I/O and
    /// `Overloaded`; neither is cached).
    pub fn get(&self, url: &str, on_done: Box<dyn FnOnce() + Send>) -> Lookup<V> {
        let inner = &self.inner;
        let c = &inner.counters;
        let now = inner.now();
        {
            let mut t = inner.lock();
            match t.lookup(url, now) {
                Lookup::Ready(v) => {
                    bump(&c.hits);
                    return Lookup::Ready(v);
                }
                Lookup::Failed(r, k) => {
                    bump(&c.negative_hits);
                    return Lookup::Failed(r, k);
                }
                Lookup::Pending => {}
            }
            if let Some(Slot::InFlight { waiters }) = t.slots.get_mut(url) {
                waiters.push(on_done);
                bump(&c.misses);
                bump(&c.coalesced);
                return Lookup::Pending;
            }
            if let Err(e) = inner.fetcher.check_url(url) {
                bump(&c.fetch_errors[e.kind_index()]);
                return Lookup::Failed(Arc::new(e.to_string()), FailKind::Fetch(e.kind()));
            }
            if t.in_flight >= inner.limits.max_in_flight.max(1) {
                bump(&c.overloaded);
                let reason = format!(
                    "x5u fetch not started: {} fetches already in flight",
                    t.in_flight
                );
                return Lookup::Failed(Arc::new(reason), FailKind::Overloaded);
            }
            t.slots.insert(
                url.to_owned(),
                Slot::InFlight {
                    waiters: vec![on_done],
                },
            );
            t.in_flight += 1;
            bump(&c.misses);
            bump(&c.fetches);
        }
        // The guard completes the entry (and calls the waiters) even if the task is dropped
        // unpolled, e.g. because the runtime is shutting down.
        let guard = Completion {
            inner: Some(inner.clone()),
            url: url.to_owned(),
        };
        inner.runtime.spawn(async move {
            let Some(inner) = guard.inner.clone() else {
                return;
            };
            let outcome = match inner.fetcher.get(&guard.url).await {
                Ok(fetched) => {
                    match catch_unwind(AssertUnwindSafe(|| (inner.parse)(&fetched.body))) {
                        Ok(Ok(v)) => Outcome::Value(v, fetched.max_age),
                        Ok(Err(reason)) => Outcome::Fail(reason, FailKind::Parse),
                        Err(_) => Outcome::Fail("x5u parser panicked".into(), FailKind::Parse),
                    }
                }
                Err(e) => {
                    bump(&inner.counters.fetch_errors[e.kind_index()]);
                    Outcome::Fail(e.to_string(), FailKind::Fetch(e.kind()))
                }
            };
            guard.finish(outcome);
        });
        Lookup::Pending
    }

    /// What the cache holds for `url` now: no fetch, no callback, no counters. `Pending` means
    /// "not cached" (or in flight).
    pub fn peek(&self, url: &str) -> Lookup<V> {
        let now = self.inner.now();
        self.inner.lock().lookup(url, now)
    }

    /// Forgets every completed entry (fetches in flight and seeds stay), so each URL is
    /// fetched and judged again: after the trust anchors changed. Returns how many went.
    pub fn clear_completed(&self) -> usize {
        let mut t = self.inner.lock();
        let before = t.slots.len();
        t.slots.retain(|_, s| matches!(s, Slot::InFlight { .. }));
        before - t.slots.len()
    }

    pub fn stats(&self) -> CacheStats {
        let c = &self.inner.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let t = self.inner.lock();
        CacheStats {
            hits: load(&c.hits),
            negative_hits: load(&c.negative_hits),
            misses: load(&c.misses),
            coalesced: load(&c.coalesced),
            fetches: load(&c.fetches),
            fetch_errors: FetchError::KINDS
                .iter()
                .zip(c.fetch_errors.iter())
                .map(|(k, n)| (*k, load(n)))
                .collect(),
            parse_errors: load(&c.parse_errors),
            expired_on_arrival: load(&c.expired_on_arrival),
            overloaded: load(&c.overloaded),
            evictions: load(&c.evictions),
            seed_evictions: load(&c.seed_evictions),
            entries: t.slots.len().saturating_sub(t.in_flight) as u64,
            seeds: t.seeds.len() as u64,
            in_flight: t.in_flight as u64,
        }
    }
}

impl<V: Expiring + Send + Sync + 'static> Inner<V> {
    fn now(&self) -> i64 {
        self.clock.now().micros()
    }

    fn lock(&self) -> MutexGuard<'_, Table<V>> {
        // A poisoned lock only means a panic elsewhere; the table itself stays consistent.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores the outcome of `url`'s fetch and returns the callers to notify.
    fn complete(&self, url: &str, outcome: Outcome<V>) -> Vec<Callback> {
        let now = self.now();
        let l = &self.limits;
        let c = &self.counters;
        let negative = now.saturating_add(micros(l.negative_ttl));
        let failed = |reason: String, kind| Slot::Failed {
            reason: Arc::new(truncate(reason)),
            kind,
            expires: negative,
        };
        let slot = match outcome {
            Outcome::Value(v, max_age) => {
                let ttl = max_age
                    .unwrap_or(l.default_ttl)
                    .clamp(l.min_ttl, l.max_ttl.max(l.min_ttl));
                let not_after = v.not_after();
                let expires = now
                    .saturating_add(micros(ttl))
                    .min(secs_to_micros(not_after));
                if expires <= now {
                    bump(&c.expired_on_arrival);
                    let when = Timestamp::from_secs(not_after).to_rfc3339();
                    failed(format!("x5u content expired at {when}"), FailKind::Expired)
                } else {
                    Slot::Ready {
                        value: Arc::new(v),
                        expires,
                    }
                }
            }
            Outcome::Fail(reason, kind) => {
                if kind == FailKind::Parse {
                    bump(&c.parse_errors);
                }
                failed(reason, kind)
            }
        };
        let mut t = self.lock();
        let waiters = match t.slots.insert(url.to_owned(), slot) {
            Some(Slot::InFlight { waiters }) => {
                t.in_flight = t.in_flight.saturating_sub(1);
                waiters
            }
            _ => Vec::new(),
        };
        let evicted = t.enforce_cap(url, now, l.max_entries.max(1));
        c.evictions.fetch_add(evicted, Ordering::Relaxed);
        waiters
    }
}

impl<V> Table<V> {
    fn lookup(&self, url: &str, now: i64) -> Lookup<V> {
        if let Some(s) = self.seeds.get(url) {
            if now < s.expires {
                return Lookup::Ready(s.value.clone());
            }
        }
        match self.slots.get(url) {
            Some(Slot::Ready { value, expires }) if now < *expires => Lookup::Ready(value.clone()),
            Some(Slot::Failed {
                reason,
                kind,
                expires,
            }) if now < *expires => Lookup::Failed(reason.clone(), *kind),
            _ => Lookup::Pending,
        }
    }

    /// Brings the number of settled entries down to `max`: expired ones first (not counted),
    /// then failures, then the success expiring first. Never `keep` (just stored: its callers
    /// are about to look) and never a fetch in flight. Returns the evictions.
    fn enforce_cap(&mut self, keep: &str, now: i64, max: usize) -> u64 {
        let settled = |t: &Self| t.slots.len().saturating_sub(t.in_flight);
        if settled(self) <= max {
            return 0;
        }
        self.slots.retain(|k, s| match s {
            Slot::Ready { expires, .. } | Slot::Failed { expires, .. } => {
                k == keep || *expires > now
            }
            Slot::InFlight { .. } => true,
        });
        let mut evicted = 0;
        while settled(self) > max {
            let victim = self
                .slots
                .iter()
                .filter(|(k, _)| k.as_str() != keep)
                .filter_map(|(k, s)| match s {
                    Slot::Failed { expires, .. } => Some(((0u8, *expires), k)),
                    Slot::Ready { expires, .. } => Some(((1u8, *expires), k)),
                    Slot::InFlight { .. } => None,
                })
                .min_by_key(|(rank, _)| *rank)
                .map(|(_, k)| k.clone());
            let Some(k) = victim else { break };
            self.slots.remove(&k);
            evicted += 1;
        }
        evicted
    }
}

/// Completes a URL's in-flight entry exactly once: by `finish`, or on drop if the task never
/// got that far.
struct Completion<V: Expiring + Send + Sync + 'static> {
    inner: Option<Arc<Inner<V>>>,
    url: String,
}

impl<V: Expiring + Send + Sync + 'static> Completion<V> {
    fn finish(mut self, outcome: Outcome<V>) {
        if let Some(inner) = self.inner.take() {
            notify(inner.complete(&self.url, outcome));
        }
    }
}

impl<V: Expiring + Send + Sync + 'static> Drop for Completion<V> {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            let outcome = Outcome::Fail("x5u fetch cancelled".into(), FailKind::Fetch("cancelled"));
            notify(inner.complete(&self.url, outcome));
        }
    }
}

/// Calls the waiters outside the lock; one panicking callback does not starve the others.
fn notify(waiters: Vec<Callback>) {
    for w in waiters {
        let _ = catch_unwind(AssertUnwindSafe(w));
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn secs_to_micros(secs: i64) -> i64 {
    secs.saturating_mul(1_000_000)
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_REASON {
        let mut end = MAX_REASON;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    struct V(i64);
    impl Expiring for V {
        fn not_after(&self) -> i64 {
            self.0
        }
    }

    fn table() -> Table<V> {
        Table {
            slots: HashMap::new(),
            seeds: HashMap::new(),
            in_flight: 0,
        }
    }

    #[test]
    fn cap_prefers_expired_then_failures_then_earliest_expiry() {
        let mut t = table();
        let ready = |e| Slot::Ready {
            value: Arc::new(V(0)),
            expires: e,
        };
        t.slots.insert("a".into(), ready(100));
        t.slots.insert("b".into(), ready(50));
        t.slots.insert("gone".into(), ready(5));
        t.slots.insert(
            "f".into(),
            Slot::Failed {
                reason: Arc::new("x".into()),
                kind: FailKind::Parse,
                expires: 500,
            },
        );
        t.slots.insert(
            "fly".into(),
            Slot::InFlight {
                waiters: Vec::new(),
            },
        );
        t.in_flight = 1;
        t.slots.insert("new".into(), ready(20));
        // settled: a, b, gone, f, new = 5; cap 2 at now=10
        assert_eq!(t.enforce_cap("new", 10, 2), 2);
        let mut keys: Vec<_> = t.slots.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["a", "fly", "new"]);
    }

    #[test]
    fn reasons_are_bounded() {
        let r = truncate("é".repeat(1000));
        assert!(r.len() <= MAX_REASON + 3);
        assert!(r.ends_with('…'));
        assert_eq!(truncate("short".into()), "short");
    }

    #[test]
    fn fail_kind_labels() {
        assert_eq!(FailKind::Fetch("timeout").label(), "timeout");
        assert_eq!(FailKind::Parse.label(), "parse");
        assert_eq!(FailKind::Overloaded.label(), "overloaded");
    }
}

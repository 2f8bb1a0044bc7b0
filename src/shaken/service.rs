//! The verification service shared by every worker: trust anchors, operator-seeded
//! certificates, the x5u fetch cache (on its own small tokio runtime, so I/O never runs on a
//! pipeline thread) and the [`Verifier`]. Workers ask for a credential without blocking:
//! ready, failed, or pending with a callback when the fetch completes.

use super::cache::{CacheLimits, FailKind, FetchCache, Lookup, ParseFn};
use super::certs::{parse_and_validate, CertChain, CertError, TrustAnchors};
use super::crl::{check_revocation, parse_and_verify_crl, Crl};
use super::fetch::{FetchPolicy, Fetcher};
use super::replay::ReplayGuard;
use super::verdict::{Failure, FailureClass};
use super::verify::{Credential, HeaderCheck, Verifier, VerifyPolicy};
use crate::clock::Clock;
use crate::config::{CrlMode, ShakenConfig};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What an x5u URL yielded: a chain that validated against the anchors, or why not. A chain
/// that fails validation is a successful fetch of a bad credential (437), cached like one.
pub struct ChainEntry(pub Result<CertChain, CertError>);

impl ChainEntry {
    /// A body that is not a certificate at all is an error (436: bad identity info); one whose
    /// chain does not validate is an entry that fails every call using it (437).
    fn from_body(body: &[u8], anchors: &TrustAnchors) -> Result<ChainEntry, String> {
        match parse_and_validate(body, anchors) {
            Err(e @ (CertError::NotPem | CertError::TooLarge)) => Err(e.to_string()),
            other => Ok(ChainEntry(other)),
        }
    }
}

impl super::cache::Expiring for ChainEntry {
    fn not_after(&self) -> i64 {
        match &self.0 {
            Ok(chain) => chain.not_after(),
            Err(_) => i64::MAX,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("shaken.trust_anchors: {0}")]
    Anchors(CertError),
    #[error("certificate for {url} from {file}: {reason}")]
    Seed {
        url: String,
        file: String,
        reason: String,
    },
    #[error("x5u fetcher: {0}")]
    Fetcher(String),
    #[error("x5u runtime: {0}")]
    Runtime(std::io::Error),
}

/// A fetched CRL, verified against the chain that first needs it (its issuer signs it) and
/// remembered so that one CRL costs one signature check.
pub struct CrlEntry {
    body: Vec<u8>,
    verified: Mutex<Option<Result<Arc<Crl>, CertError>>>,
}

impl super::cache::Expiring for CrlEntry {
    fn not_after(&self) -> i64 {
        // Its nextUpdate is only known after verification; staleness is checked per use.
        i64::MAX
    }
}

impl CrlEntry {
    fn crl(&self, chain: &CertChain, anchors: &TrustAnchors) -> Result<Arc<Crl>, CertError> {
        let mut memo = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        memo.get_or_insert_with(|| parse_and_verify_crl(&self.body, chain, anchors).map(Arc::new))
            .clone()
    }
}

type Seeds = HashMap<String, Arc<ChainEntry>>;

pub enum CertLookup {
    Ready(Arc<ChainEntry>),
    Failed(Failure),
    Pending,
}

pub struct ShakenService {
    pub verifier: Verifier,
    /// Swapped whole by a SIGHUP reload; workers never wait for it.
    anchors: Arc<ArcSwap<TrustAnchors>>,
    seeds: ArcSwap<HashMap<String, Arc<ChainEntry>>>,
    cache: Option<FetchCache<ChainEntry>>,
    crl_cache: Option<FetchCache<CrlEntry>>,
    crl_mode: CrlMode,
    /// Calls judged without their CRL (soft mode) or failed for lack of it (hard mode).
    pub crl_unavailable: AtomicU64,
    /// Lookups answered by an operator-seeded certificate.
    pub seed_hits: AtomicU64,
    /// Owns the I/O threads behind `cache`; dropped last.
    _runtime: Option<tokio::runtime::Runtime>,
    pub fetch_timeout: Duration,
}

fn failure_of(reason: &str, kind: FailKind) -> Failure {
    match kind {
        FailKind::Expired => Failure::new(FailureClass::UnsupportedCredential, reason),
        _ => Failure::new(FailureClass::BadIdentityInfo, reason),
    }
}

impl ShakenService {
    /// Trust anchors and operator-seeded certificates of a configuration, validated.
    fn credentials(cfg: &ShakenConfig) -> Result<(TrustAnchors, Seeds), SetupError> {
        let paths: Vec<PathBuf> = cfg.trust_anchors.iter().map(PathBuf::from).collect();
        let anchors = if paths.is_empty() {
            TrustAnchors::default()
        } else {
            TrustAnchors::from_paths(&paths).map_err(SetupError::Anchors)?
        };
        let mut seeds = HashMap::new();
        for c in &cfg.certs {
            let body = crate::config::read_bounded(
                Path::new(&c.file),
                super::certs::MAX_ANCHOR_FILE_BYTES as u64,
            )
            .map_err(|e| SetupError::Seed {
                url: c.url.clone(),
                file: c.file.clone(),
                reason: e.to_string(),
            })?;
            let entry =
                ChainEntry::from_body(&body, &anchors).map_err(|reason| SetupError::Seed {
                    url: c.url.clone(),
                    file: c.file.clone(),
                    reason,
                })?;
            seeds.insert(c.url.clone(), Arc::new(entry));
        }
        Ok((anchors, seeds))
    }

    /// Reads and parses the trust anchors and seeded certificates of `cfg` as start-up would
    /// (for `check-config`), without starting anything.
    pub fn check_credentials(cfg: &ShakenConfig) -> Result<(), SetupError> {
        Self::credentials(cfg).map(|_| ())
    }

    /// SIGHUP: new trust anchors and seeded certificates, without stopping anything. On error
    /// the old ones stay. Cached chains were judged against the old anchors, so they are
    /// forgotten and fetched again.
    pub fn reload_credentials(&self, cfg: &ShakenConfig) -> Result<(), SetupError> {
        let (anchors, seeds) = Self::credentials(cfg)?;
        self.anchors.store(Arc::new(anchors));
        self.seeds.store(Arc::new(seeds));
        let cleared = self.cache.as_ref().map_or(0, |c| c.clear_completed())
            + self.crl_cache.as_ref().map_or(0, |c| c.clear_completed());
        tracing::info!(
            anchors = cfg.trust_anchors.len(),
            seeds = cfg.certs.len(),
            cache_entries_cleared = cleared,
            "trust anchors reloaded"
        );
        Ok(())
    }

    pub fn from_config(cfg: &ShakenConfig, clock: Arc<dyn Clock>) -> Result<Self, SetupError> {
        let (anchors, seeds) = Self::credentials(cfg)?;
        let anchors = Arc::new(ArcSwap::from_pointee(anchors));
        let fetch_timeout = Duration::from_millis(cfg.x5u.timeout_ms);
        let (cache, crl_cache, runtime) = if cfg.x5u.fetch {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("x5u-fetch")
                .enable_all()
                .build()
                .map_err(SetupError::Runtime)?;
            let policy = FetchPolicy {
                allow_http: cfg.x5u.allow_http,
                allow_private: cfg.x5u.allow_private,
                allowed_hosts: cfg.x5u.allowed_hosts.clone(),
                max_bytes: cfg.x5u.max_bytes,
                timeout: fetch_timeout,
            };
            let fetcher =
                Fetcher::new(policy, None).map_err(|e| SetupError::Fetcher(e.to_string()))?;
            let parse_anchors = anchors.clone();
            let parse =
                Arc::new(move |body: &[u8]| ChainEntry::from_body(body, &parse_anchors.load()));
            let limits = CacheLimits {
                max_entries: cfg.x5u.cache_entries,
                ..CacheLimits::default()
            };
            let fetcher = Arc::new(fetcher);
            let crl_cache = (cfg.crl != CrlMode::Off).then(|| {
                let crl_limits = CacheLimits {
                    max_entries: 1000,
                    ..CacheLimits::default()
                };
                let parse: ParseFn<CrlEntry> = Arc::new(|body: &[u8]| {
                    Ok(CrlEntry {
                        body: body.to_vec(),
                        verified: Mutex::new(None),
                    })
                });
                FetchCache::new(
                    fetcher.clone(),
                    crl_limits,
                    parse,
                    clock.clone(),
                    runtime.handle().clone(),
                )
            });
            let cache = FetchCache::new(fetcher, limits, parse, clock, runtime.handle().clone());
            (Some(cache), crl_cache, Some(runtime))
        } else {
            (None, None, None)
        };
        let policy = VerifyPolicy {
            max_iat_age_s: cfg.max_iat_age_s as i64,
        };
        Ok(ShakenService {
            verifier: Verifier::new(policy, Arc::new(ReplayGuard::new(cfg.replay_entries))),
            anchors,
            seeds: ArcSwap::from_pointee(seeds),
            cache,
            crl_cache,
            crl_mode: cfg.crl,
            crl_unavailable: AtomicU64::new(0),
            seed_hits: AtomicU64::new(0),
            _runtime: runtime,
            fetch_timeout,
        })
    }

    /// The trust anchors in force now.
    pub fn anchors(&self) -> Arc<TrustAnchors> {
        self.anchors.load_full()
    }

    /// The credential for `url` without blocking; `on_done` runs when a pending fetch ends.
    pub fn lookup(&self, url: &str, on_done: Box<dyn FnOnce() + Send>) -> CertLookup {
        if let Some(seed) = self.seeds.load().get(url) {
            self.seed_hits.fetch_add(1, Ordering::Relaxed);
            return CertLookup::Ready(seed.clone());
        }
        match &self.cache {
            None => CertLookup::Failed(Failure::new(
                FailureClass::BadIdentityInfo,
                format!("no certificate configured for {url} and x5u fetching is off"),
            )),
            Some(cache) => match cache.get(url, on_done) {
                Lookup::Ready(v) => CertLookup::Ready(v),
                Lookup::Failed(reason, kind) => CertLookup::Failed(failure_of(&reason, kind)),
                Lookup::Pending => CertLookup::Pending,
            },
        }
    }

    /// Like [`lookup`](Self::lookup) but never starts a fetch.
    pub fn peek(&self, url: &str) -> CertLookup {
        if let Some(seed) = self.seeds.load().get(url) {
            return CertLookup::Ready(seed.clone());
        }
        match &self.cache {
            None => self.lookup(url, Box::new(|| {})),
            Some(cache) => match cache.peek(url) {
                Lookup::Ready(v) => CertLookup::Ready(v),
                Lookup::Failed(reason, kind) => CertLookup::Failed(failure_of(&reason, kind)),
                Lookup::Pending => CertLookup::Pending,
            },
        }
    }

    /// Starts fetching the CRL of a chain (if revocation is checked and it is not cached);
    /// `on_done` runs when that fetch completes. False when nothing is pending.
    pub fn prefetch_crl(&self, chain: &CertChain, on_done: Box<dyn FnOnce() + Send>) -> bool {
        let (Some(cache), Some(url)) = (&self.crl_cache, chain.crl_urls().into_iter().next())
        else {
            return false;
        };
        matches!(cache.get(&url, on_done), Lookup::Pending)
    }

    /// Revocation status of a chain as far as it is known now; never waits.
    fn revocation(&self, chain: &CertChain, now: i64) -> Result<(), Failure> {
        let Some(cache) = &self.crl_cache else {
            return Ok(());
        };
        let Some(url) = chain.crl_urls().into_iter().next() else {
            return Ok(());
        };
        let unavailable = |why: String| {
            self.crl_unavailable.fetch_add(1, Ordering::Relaxed);
            match self.crl_mode {
                CrlMode::Hard => Err(Failure::new(
                    FailureClass::UnsupportedCredential,
                    format!("CRL {url} unavailable: {why}"),
                )),
                _ => Ok(()),
            }
        };
        let entry = match cache.get(&url, Box::new(|| {})) {
            Lookup::Ready(e) => e,
            Lookup::Failed(reason, _) => return unavailable(reason.to_string()),
            Lookup::Pending => return unavailable("being fetched".into()),
        };
        let crl = match entry.crl(chain, &self.anchors.load()) {
            Ok(c) => c,
            Err(e) => return unavailable(e.to_string()),
        };
        if let Err(e) = crl.check_fresh(now) {
            return unavailable(e.to_string());
        }
        check_revocation(chain, &crl).map_err(|e| e.failure())
    }

    /// Completes `check` from a lookup that is not pending.
    pub fn finish(&self, check: &mut HeaderCheck, lookup: &CertLookup, now: i64) {
        match lookup {
            CertLookup::Ready(entry) => match &entry.0 {
                Ok(chain) => {
                    self.verifier
                        .finish(check, Ok(chain as &dyn Credential), now);
                    if matches!(check.result, Some(Ok(()))) {
                        if let Err(f) = self.revocation(chain, now) {
                            check.result = Some(Err(f));
                        }
                    }
                }
                Err(e) => self.verifier.finish(check, Err(e.failure()), now),
            },
            CertLookup::Failed(f) => self.verifier.finish(check, Err(f.clone()), now),
            CertLookup::Pending => {}
        }
    }

    pub fn cache_stats(&self) -> Option<super::cache::CacheStats> {
        self.cache.as_ref().map(|c| c.stats())
    }
}

//! The verification service shared by every worker: trust anchors, operator-seeded
//! certificates, the x5u fetch cache (on its own small tokio runtime, so I/O never runs on a
//! pipeline thread) and the [`Verifier`]. Workers ask for a credential without blocking:
//! ready, failed, or pending with a callback when the fetch completes.

use super::cache::{CacheLimits, FailKind, FetchCache, Lookup};
use super::certs::{parse_and_validate, CertChain, CertError, TrustAnchors};
use super::fetch::{FetchPolicy, Fetcher};
use super::replay::ReplayGuard;
use super::verdict::{Failure, FailureClass};
use super::verify::{Credential, HeaderCheck, Verifier, VerifyPolicy};
use crate::clock::Clock;
use crate::config::ShakenConfig;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What an x5u URL yielded: a chain that validated against the anchors, or why not. A chain
/// that fails validation is a successful fetch of a bad credential (437), cached like one.
pub struct ChainEntry(pub Result<CertChain, CertError>);

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

pub enum CertLookup {
    Ready(Arc<ChainEntry>),
    Failed(Failure),
    Pending,
}

pub struct ShakenService {
    pub verifier: Verifier,
    anchors: Arc<TrustAnchors>,
    seeds: HashMap<String, Arc<ChainEntry>>,
    cache: Option<FetchCache<ChainEntry>>,
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
    pub fn from_config(cfg: &ShakenConfig, clock: Arc<dyn Clock>) -> Result<Self, SetupError> {
        let paths: Vec<PathBuf> = cfg.trust_anchors.iter().map(PathBuf::from).collect();
        let anchors = if paths.is_empty() {
            TrustAnchors::default()
        } else {
            TrustAnchors::from_paths(&paths).map_err(SetupError::Anchors)?
        };
        let anchors = Arc::new(anchors);
        let mut seeds = HashMap::new();
        for c in &cfg.certs {
            let body = std::fs::read(&c.file).map_err(|e| SetupError::Seed {
                url: c.url.clone(),
                file: c.file.clone(),
                reason: e.to_string(),
            })?;
            let entry = match parse_and_validate(&body, &anchors) {
                Err(e @ (CertError::NotPem | CertError::TooLarge)) => {
                    return Err(SetupError::Seed {
                        url: c.url.clone(),
                        file: c.file.clone(),
                        reason: e.to_string(),
                    })
                }
                other => ChainEntry(other),
            };
            seeds.insert(c.url.clone(), Arc::new(entry));
        }
        let fetch_timeout = Duration::from_millis(cfg.x5u.timeout_ms);
        let (cache, runtime) = if cfg.x5u.fetch {
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
                Arc::new(
                    move |body: &[u8]| match parse_and_validate(body, &parse_anchors) {
                        Err(e @ (CertError::NotPem | CertError::TooLarge)) => Err(e.to_string()),
                        other => Ok(ChainEntry(other)),
                    },
                );
            let limits = CacheLimits {
                max_entries: cfg.x5u.cache_entries,
                ..CacheLimits::default()
            };
            let cache = FetchCache::new(
                Arc::new(fetcher),
                limits,
                parse,
                clock,
                runtime.handle().clone(),
            );
            (Some(cache), Some(runtime))
        } else {
            (None, None)
        };
        let policy = VerifyPolicy {
            max_iat_age_s: cfg.max_iat_age_s as i64,
        };
        Ok(ShakenService {
            verifier: Verifier::new(policy, Arc::new(ReplayGuard::new(cfg.replay_entries))),
            anchors,
            seeds,
            cache,
            _runtime: runtime,
            fetch_timeout,
        })
    }

    pub fn anchors(&self) -> &TrustAnchors {
        &self.anchors
    }

    /// The credential for `url` without blocking; `on_done` runs when a pending fetch ends.
    pub fn lookup(&self, url: &str, on_done: Box<dyn FnOnce() + Send>) -> CertLookup {
        if let Some(seed) = self.seeds.get(url) {
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
        if let Some(seed) = self.seeds.get(url) {
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

    /// Completes `check` from a lookup that is not pending.
    pub fn finish(&self, check: &mut HeaderCheck, lookup: &CertLookup, now: i64) {
        match lookup {
            CertLookup::Ready(entry) => match &entry.0 {
                Ok(chain) => self
                    .verifier
                    .finish(check, Ok(chain as &dyn Credential), now),
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

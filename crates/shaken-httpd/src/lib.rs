//! shaken-httpd: the hardened HTTP layer every server of the project runs on (sensor API,
//! collector, and the coming portal), a crate of its own so the collector shares it without
//! linking the sensor: a hyper accept loop with header, body and idle timeouts, a cap on open
//! connections and on requests in flight, bounded request bodies, bearer-token authentication
//! that runs before any body byte is read, and a shutdown that ends within a deadline even when
//! clients stall. Every limit is a [`Limits`] field and every refusal a metric
//! ([`HttpdMetrics`]); docs/http-limits.md lists them.
//!
//! It must never read a request body before the route's authentication has passed, never hold
//! more than `max_body_bytes` of one body, never keep a connection that moves no bytes past its
//! timeouts, and never let a stalled client delay process exit beyond `drain_timeout`.

pub mod auth;
pub mod body;
pub mod files;
pub mod metrics;
mod ratelog;
pub mod serve;

pub use auth::{bearer_matches, BearerGuard};
pub use body::LimitedBody;
pub use metrics::HttpdMetrics;
pub use ratelog::RateLimitedLog;
pub use serve::serve;

use std::time::Duration;

/// The limits of one server. Defaults here are the only defaults: the sensor's `[http]` section
/// and the collector's flags start from them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// A request's header must be complete this long after the server started waiting for it
    /// (also ends a kept-alive connection that sends no next request).
    pub header_timeout: Duration,
    /// A request body must be complete this long after the handler started reading it.
    pub body_timeout: Duration,
    /// A connection with no request in flight and no byte moving either way is closed after this.
    pub idle_timeout: Duration,
    /// Open connections; beyond it new ones are accepted and closed at once (counted).
    pub max_connections: usize,
    /// Requests being handled at once; beyond it 503 (counted).
    pub max_in_flight: usize,
    /// Largest request body, bytes (as sent, before any decompression).
    pub max_body_bytes: usize,
    /// After shutdown is asked, connections get this long to finish; then they are cut.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 256,
            max_in_flight: 64,
            max_body_bytes: 1 << 20,
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// Open file descriptors kept free for everything else the process does (stores, capture,
/// spool, logs) when the connection cap is derived from `RLIMIT_NOFILE`.
pub const RESERVED_FDS: u64 = 64;

/// The connection cap actually used: the configured one, lowered so that open connections can
/// never exhaust the process's file descriptors (then `accept` itself would fail and even
/// health checks would time out).
pub fn effective_connection_cap(configured: usize) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and has no other effect.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    if !ok || lim.rlim_cur == libc::RLIM_INFINITY {
        return configured.max(1);
    }
    let room = lim.rlim_cur.saturating_sub(RESERVED_FDS).max(1);
    configured.clamp(1, usize::try_from(room).unwrap_or(usize::MAX))
}

//! Bearer-token authentication for every server: one constant-time comparison
//! ([`bearer_matches`]) and one axum middleware ([`require`]) that answers 401/403
//! before the handler runs, so no body byte of an unauthenticated request is ever read.
//! Besides its configured token a route may accept tokens its server issued itself
//! ([`TokenLookup`], e.g. the collector's per-sensor tokens), which say who the caller is.
//!
//! It must never compare tokens in a way whose timing depends on where they differ, never
//! echo the presented token, and never let a request through when no token is configured.

use crate::{HttpdMetrics, RateLimitedLog};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Whether `headers` carry `Authorization: Bearer <token>`. Constant time over the token's
/// length: the comparison leaks neither a matching prefix nor where a mismatch is.
pub fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let presented = presented(headers).unwrap_or("").as_bytes();
    let token = token.as_bytes();
    let mut acc = u8::from(presented.len() != token.len() || token.is_empty());
    for (i, t) in token.iter().enumerate() {
        acc |= t ^ presented.get(i).copied().unwrap_or(!t);
    }
    acc == 0
}

/// The token of `Authorization: Bearer <token>`, if the header is there and well-formed.
pub fn presented(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Tokens a server issued itself: given a presented token (never empty), vouches for it by
/// putting who it stands for into the request's extensions (for the handler), or refuses it.
/// It must compare secrets only in constant time or by a hash lookup.
pub type TokenLookup = Box<dyn Fn(&str, &mut axum::http::Extensions) -> bool + Send + Sync>;

/// Called with the status of every refusal, for a server's own per-route counters.
pub type OnRefused = Box<dyn Fn(StatusCode) + Send + Sync>;

/// What a route needs to authenticate: the token (None or empty: every request is refused
/// with 403 naming the missing setting), where to count and log refusals.
pub struct BearerGuard {
    pub token: Option<String>,
    /// The setting that holds the token, named in the 403 answer (e.g. "http.token").
    pub setting: &'static str,
    pub metrics: HttpdMetrics,
    pub log: Arc<RateLimitedLog>,
    pub on_refused: Option<OnRefused>,
    /// Issued tokens the route accepts besides `token`.
    pub issued: Option<TokenLookup>,
}

impl BearerGuard {
    pub fn new(token: Option<String>, setting: &'static str, metrics: HttpdMetrics) -> Self {
        BearerGuard {
            token: token.filter(|t| !t.is_empty()),
            setting,
            metrics,
            log: Arc::new(RateLimitedLog::new(Duration::from_secs(10))),
            on_refused: None,
            issued: None,
        }
    }

    fn refuse(&self, status: StatusCode, reason: &'static str, message: String) -> Response {
        self.metrics.rejected(reason);
        self.log.warn(
            reason,
            &format!("http: request refused ({status}): {message}"),
        );
        if let Some(f) = &self.on_refused {
            f(status);
        }
        (status, Json(json!({ "error": message }))).into_response()
    }
}

/// The middleware: `route_layer(from_fn_with_state(guard, auth::require))`.
pub async fn require(State(g): State<Arc<BearerGuard>>, mut req: Request, next: Next) -> Response {
    if g.token.is_none() && g.issued.is_none() {
        return g.refuse(
            StatusCode::FORBIDDEN,
            "no_token",
            format!("no API token configured ({})", g.setting),
        );
    }
    let configured = g
        .token
        .as_deref()
        .is_some_and(|t| bearer_matches(req.headers(), t));
    let vouched = !configured
        && match (&g.issued, presented(req.headers()).map(str::to_owned)) {
            (Some(lookup), Some(p)) if !p.is_empty() => lookup(&p, req.extensions_mut()),
            _ => false,
        };
    if !configured && !vouched {
        return g.refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token".into(),
        );
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_matches() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, v.parse().unwrap());
            bearer_matches(&h, "secret")
        };
        assert!(with("Bearer secret"));
        for wrong in [
            "Bearer secre",
            "Bearer secretx",
            "Bearer Secret",
            "secret",
            "Bearer ",
            "bearer secret",
        ] {
            assert!(!with(wrong), "{wrong}");
        }
        assert!(!bearer_matches(&HeaderMap::new(), "secret"));
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert!(!bearer_matches(&h, ""), "an empty token never matches");
    }
}

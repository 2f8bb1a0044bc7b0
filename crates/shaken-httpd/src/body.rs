//! Bounded request bodies: [`LimitedBody`] reads a body up to the server's `max_body_bytes`
//! within `body_timeout`, and answers 413 or 408 (counted) otherwise. The limits travel with
//! the request (an extension [`serve`](crate::serve) adds), so a handler cannot forget them.
//!
//! It must never buffer more than the limit, never wait for a slow body past its deadline, and
//! never be used before authentication (routes put the auth middleware in front of it).

use crate::HttpdMetrics;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;
use std::time::Duration;

/// The body limits of the server that received a request.
#[derive(Clone)]
pub struct BodyLimits {
    pub max_bytes: usize,
    pub timeout: Duration,
    pub metrics: Option<HttpdMetrics>,
}

impl Default for BodyLimits {
    /// For a router driven without [`serve`](crate::serve) (unit tests): the default limits.
    fn default() -> Self {
        let l = crate::Limits::default();
        BodyLimits {
            max_bytes: l.max_body_bytes,
            timeout: l.body_timeout,
            metrics: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    #[error("body not complete within {0:?}")]
    Timeout(Duration),
    #[error("body could not be read: {0}")]
    Read(String),
}

impl BodyError {
    fn reason(&self) -> &'static str {
        match self {
            BodyError::TooLarge(_) => "body_too_large",
            BodyError::Timeout(_) => "body_timeout",
            BodyError::Read(_) => "body_error",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            BodyError::Read(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// Reads `body` whole under `limits`, counting a refusal in the server's metrics.
pub async fn read(body: Body, limits: &BodyLimits) -> Result<Bytes, BodyError> {
    let r = read_uncounted(body, limits).await;
    if let (Err(e), Some(m)) = (&r, &limits.metrics) {
        m.rejected(e.reason());
        if matches!(e, BodyError::Timeout(_)) {
            m.timeout("body");
        }
    }
    r
}

async fn read_uncounted(body: Body, limits: &BodyLimits) -> Result<Bytes, BodyError> {
    use hyper::body::Body as _;
    // A declared length over the limit is refused before a byte is read.
    if body.size_hint().lower() > limits.max_bytes as u64 {
        return Err(BodyError::TooLarge(limits.max_bytes));
    }
    let collect = Limited::new(body, limits.max_bytes).collect();
    match tokio::time::timeout(limits.timeout, collect).await {
        Err(_) => Err(BodyError::Timeout(limits.timeout)),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(BodyError::TooLarge(limits.max_bytes))
        }
        Ok(Err(e)) => Err(BodyError::Read(e.to_string())),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

/// A request body read under the server's limits; the rejection is the 413/408/400 answer.
pub struct LimitedBody(pub Bytes);

#[axum::async_trait]
impl<S: Send + Sync> FromRequest<S> for LimitedBody {
    type Rejection = Response;

    async fn from_request(req: Request, _: &S) -> Result<Self, Response> {
        let limits = req
            .extensions()
            .get::<BodyLimits>()
            .cloned()
            .unwrap_or_default();
        read(req.into_body(), &limits)
            .await
            .map(LimitedBody)
            .map_err(|e| (e.status(), Json(json!({ "error": e.to_string() }))).into_response())
    }
}

//! The collector's errors. Start-up problems end the process; a request's problem is its HTTP
//! answer ([`IntoResponse`]: status and `{"error", "line"?}`), counted by the route, never a
//! panic.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error("database {path}: {source}")]
    Db {
        path: String,
        source: rusqlite::Error,
    },
    #[error("database: {0}")]
    Query(#[from] rusqlite::Error),
    #[error("cannot read --token-file {path}: {source}")]
    TokenFile {
        path: String,
        source: std::io::Error,
    },
    #[error("a token is required (--token or --token-file)")]
    NoToken,
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
    /// A body line that is not a JSON object with a record id: 400 naming the line.
    #[error("line {line}: {problem}")]
    BadLine { line: usize, problem: String },
    /// A body line longer than the line cap: 413 naming the line, never parsed.
    #[error("line {line} longer than {max} bytes")]
    LineTooLong { line: usize, max: usize },
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    #[error("body is not valid gzip: {0}")]
    BadGzip(std::io::Error),
    #[error("unsupported Content-Encoding {0:?}")]
    Encoding(String),
    /// The Idempotency-Key was stored with another body: 409, nothing stored.
    #[error("Idempotency-Key already used for a different body; nothing stored")]
    KeyConflict,
    /// A test fault (`--fail-next`, `--rate-limit-next`, `--reject-next`): its status, and the
    /// Retry-After seconds of a 429.
    #[error("injected fault")]
    Injected {
        status: StatusCode,
        retry_after: u64,
    },
    /// A blocking task (parsing, storage) panicked or was cancelled.
    #[error("{0} task failed")]
    Task(&'static str),
    #[error("limit and after must be integers")]
    BadPage,
    /// A batch pushed with a sensor token carries a record of a sensor that is not that
    /// token's provider's: 403, nothing of the batch stored.
    #[error("record {record_id:?}: {problem}; nothing of the batch was stored")]
    WrongProvider {
        record_id: String,
        problem: &'static str,
    },
    #[error(transparent)]
    Provider(#[from] crate::providers::ProviderError),
    #[error(transparent)]
    Traceback(#[from] crate::traceback::TracebackError),
    /// A body the route could not take as JSON (axum's own explanation).
    #[error("{0}")]
    BadJson(String),
}

impl CollectorError {
    pub fn status(&self) -> StatusCode {
        use CollectorError::*;
        match self {
            TooLarge(_) | LineTooLong { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Encoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            BadLine { .. } | BadGzip(_) | BadPage | BadJson(_) => StatusCode::BAD_REQUEST,
            KeyConflict => StatusCode::CONFLICT,
            WrongProvider { .. } => StatusCode::FORBIDDEN,
            Injected { status, .. } => *status,
            Traceback(e) => {
                use crate::traceback::TracebackError as T;
                match e {
                    T::Invalid { .. } => StatusCode::BAD_REQUEST,
                    T::NoRecord { .. } | T::NotFound(_) => StatusCode::NOT_FOUND,
                    T::NotYours => StatusCode::FORBIDDEN,
                    T::Answered => StatusCode::CONFLICT,
                    T::Db(_) | T::Provider(_) => StatusCode::SERVICE_UNAVAILABLE,
                }
            }
            // Storage: the sensor keeps the batch and retries.
            Db { .. } | Query(_) | Provider(_) => StatusCode::SERVICE_UNAVAILABLE,
            Task(_) | TokenFile { .. } | NoToken | Bind { .. } | Runtime(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

/// The answer's body: what is wrong, and the body line it is on.
#[derive(serde::Serialize)]
struct ErrorBody {
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
}

impl IntoResponse for CollectorError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            // The line is its own field; the message is the problem alone.
            CollectorError::BadLine { line, problem } => ErrorBody {
                error: problem.clone(),
                line: Some(*line),
            },
            CollectorError::LineTooLong { line, .. } => ErrorBody {
                error: self.to_string(),
                line: Some(*line),
            },
            // Never the database's own words to a client.
            CollectorError::Db { .. }
            | CollectorError::Query(_)
            | CollectorError::Provider(_)
            | CollectorError::Traceback(crate::traceback::TracebackError::Db(_)) => ErrorBody {
                error: "storage failed".into(),
                line: None,
            },
            _ => ErrorBody {
                error: self.to_string(),
                line: None,
            },
        };
        let mut resp = (status, Json(body)).into_response();
        if let CollectorError::Injected {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after,
        } = self
        {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, retry_after.into());
        }
        resp
    }
}

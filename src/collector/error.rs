//! The collector's errors. Start-up problems end the process; a request's problem becomes its
//! HTTP answer and a `batches_total{status}` count, never a panic.

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
}

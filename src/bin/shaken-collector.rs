//! `shaken-collector`: the reference ITG collector for shaken-sensor pushes (see
//! `shaken_sensor::collector`). Thin main: arguments, logging, signals; everything else lives
//! in the library so tests and benches can drive it.

use clap::Parser;
use shaken_sensor::collector::db::Db;
use shaken_sensor::collector::server::{router, Faults, Settings};
use shaken_sensor::collector::CollectorError;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "shaken-collector",
    version,
    about = "Reference collector: POST /v1/ingest (gzip NDJSON, bearer token, dedup), SQLite, GET /v1/records, /v1/detections, /metrics"
)]
struct Cli {
    /// Address to listen on (port 0: any free port; the address is printed on stdout).
    #[arg(long, default_value = "127.0.0.1:8480")]
    bind: SocketAddr,
    /// SQLite database file (created when missing).
    #[arg(long)]
    db: PathBuf,
    /// Bearer token the sensors must present.
    #[arg(long, conflicts_with = "token_file")]
    token: Option<String>,
    /// File holding the bearer token.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Largest request body, compressed or inflated, MiB.
    #[arg(long, default_value_t = 16)]
    max_body_mb: usize,
    /// Tests: answer 500 to the next N ingest requests.
    #[arg(long, default_value_t = 0)]
    fail_next: u64,
    /// Tests: answer 429 (with Retry-After) to the next N ingest requests.
    #[arg(long, default_value_t = 0)]
    rate_limit_next: u64,
    /// Tests: the Retry-After of those 429s, seconds.
    #[arg(long, default_value_t = 1)]
    retry_after: u64,
    /// Tests: answer 400 (batch refused) to the next N ingest requests.
    #[arg(long, default_value_t = 0)]
    reject_next: u64,
    /// Tests: wait this long before answering each ingest request.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Tests: serve GET/POST /admin/faults to change the faults at run time (no auth: tests only).
    #[arg(long)]
    test_faults: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match serve(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shaken-collector: error: {e}");
            ExitCode::from(1)
        }
    }
}

fn serve(cli: Cli) -> Result<(), CollectorError> {
    let token = match (&cli.token, &cli.token_file) {
        (Some(t), _) => t.clone(),
        (None, Some(p)) => std::fs::read_to_string(p)
            .map_err(|source| CollectorError::TokenFile {
                path: p.display().to_string(),
                source,
            })?
            .trim()
            .to_string(),
        (None, None) => String::new(),
    };
    if token.is_empty() {
        return Err(CollectorError::NoToken);
    }
    let db = Db::open(&cli.db)?;
    let settings = Settings {
        token,
        max_body: cli.max_body_mb.max(1) << 20,
        test_faults: cli.test_faults,
        faults: Faults {
            fail_next: cli.fail_next,
            rate_limit_next: cli.rate_limit_next,
            retry_after_s: cli.retry_after,
            reject_next: cli.reject_next,
            delay_ms: cli.delay_ms,
        },
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(CollectorError::Runtime)?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(CollectorError::Runtime)?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(cli.bind)
            .await
            .map_err(|source| CollectorError::Bind {
                addr: cli.bind,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| CollectorError::Bind {
                addr: cli.bind,
                source,
            })?;
        // Tests read this line to learn the port.
        println!("listening on {addr}");
        let _ = std::io::stdout().flush();
        tracing::info!(%addr, db = %cli.db.display(), "collector listening");
        let shutdown = async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        axum::serve(listener, router(db, settings))
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(CollectorError::Runtime)
    })
}

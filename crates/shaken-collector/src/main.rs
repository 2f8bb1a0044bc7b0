//! `shaken-collector`: the reference ITG collector for shaken-sensor pushes (see the
//! `shaken_collector` library). Thin main: arguments, logging, signals; everything else lives
//! in the library so tests and benches can drive it.

use clap::Parser;
use shaken_collector::db::{Db, Synchronous};
use shaken_collector::providers::{Flag, NewProvider};
use shaken_collector::server::{router, Faults, Settings};
use shaken_collector::traceback;
use shaken_collector::CollectorError;
use shaken_httpd::Limits;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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
    /// Bearer token the sensors must present. Visible in `ps`: prefer --token-file or the
    /// SHAKEN_COLLECTOR_TOKEN environment variable.
    #[arg(
        long,
        env = "SHAKEN_COLLECTOR_TOKEN",
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    token: Option<String>,
    /// File holding the bearer token (a regular file of at most 4 KiB).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// SQLite durability: `full` fsyncs every committed batch (a batch answered 2xx survives a
    /// power loss); `normal` only at checkpoints (faster; a power loss can lose acknowledged
    /// batches the sensors have already deleted).
    #[arg(long, value_enum, default_value_t = Synchronous::Full)]
    synchronous: Synchronous,
    /// Largest request body, compressed or inflated, MiB.
    #[arg(long, default_value_t = 16)]
    max_body_mb: usize,
    /// Longest NDJSON line of a body, KiB (a longer one gets 413 before it is parsed).
    #[arg(long, default_value_t = 1024)]
    max_line_kb: usize,
    /// Largest GET /v1/records or /v1/detections page, MiB (at least one record is sent).
    #[arg(long, default_value_t = 8)]
    max_response_mb: usize,
    /// Seconds a request header may take to arrive (default: the HTTP layer's, 10).
    #[arg(long)]
    header_timeout_s: Option<u64>,
    /// Seconds a request body may take to arrive (default 30).
    #[arg(long)]
    body_timeout_s: Option<u64>,
    /// Seconds a connection may sit with no request in flight and no byte moving (default 60).
    #[arg(long)]
    keepalive_idle_s: Option<u64>,
    /// Open connections; more are closed at once (default 256; lowered to fit `ulimit -n`).
    #[arg(long)]
    max_connections: Option<usize>,
    /// Requests handled at once; more get 503 (default 64).
    #[arg(long)]
    max_in_flight: Option<usize>,
    /// Seconds open connections get to finish at SIGTERM before they are cut (default 5).
    #[arg(long)]
    drain_timeout_s: Option<u64>,
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
    /// Traceback: a provider's CallRecord matches the subject call within this many seconds
    /// of its `at`.
    #[arg(long, default_value_t = 5)]
    traceback_window_s: u32,
    /// Traceback: seconds a provider without a record of the call has to answer its request
    /// before the hop is marked non-responsive (the FCC's 24 hours by default; tests use a few).
    #[arg(long, default_value_t = 86_400)]
    request_deadline_s: u32,
    /// Tests: serve GET/POST /admin/faults to change the faults at run time (no auth: tests only).
    #[arg(long)]
    test_faults: bool,
    /// Without a command: serve.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// The provider registry (in the --db database): providers, their OCNs and sensor tokens.
    #[command(subcommand)]
    Provider(ProviderCommand),
    /// Automated traceback (in the --db database; the same as the HTTP API).
    #[command(subcommand)]
    Traceback(TracebackCommand),
}

#[derive(clap::Subcommand)]
enum TracebackCommand {
    /// Trace a call and print the chain as JSON.
    Start {
        /// Calling TN, canonical (digits only).
        #[arg(long)]
        orig: String,
        /// Called TN, canonical.
        #[arg(long)]
        dest: String,
        /// When the call was placed (RFC 3339).
        #[arg(long)]
        at: String,
    },
    /// Print a traceback as JSON.
    Show {
        #[arg(long)]
        id: i64,
    },
    /// Print the traceback requests (open ones unless --all), one JSON object a line.
    Requests {
        #[arg(long)]
        all: bool,
    },
}

#[derive(clap::Subcommand)]
enum ProviderCommand {
    /// Register a provider.
    Add {
        #[arg(long)]
        name: String,
        /// An Operating Company Number of the provider (repeat for several).
        #[arg(long = "ocn", required = true)]
        ocns: Vec<String>,
        /// Its Robocall Mitigation Database number.
        #[arg(long)]
        rmd: Option<String>,
        /// A contact (name, e-mail or phone; repeat for several).
        #[arg(long = "contact")]
        contacts: Vec<String>,
        /// A standing flag (repeat for several).
        #[arg(long = "flag", value_enum)]
        flags: Vec<Flag>,
    },
    /// Print every provider, one JSON object a line.
    List,
    /// Issue the provider's portal token (lists and answers its traceback requests; only its
    /// hash is kept; the previous one stops working) and print it.
    PortalToken {
        #[arg(long)]
        provider: String,
    },
    /// Issue a token for one sensor of a provider and print it (only its hash is kept; a
    /// sensor that had a token gets a new one and the old one stops working at once).
    Token {
        /// The provider's name.
        #[arg(long)]
        provider: String,
        /// The `sensor.id` of the sensor that will push with it.
        #[arg(long)]
        sensor: String,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut cli = Cli::parse();
    let done = match cli.command.take() {
        None => serve(cli),
        Some(Command::Provider(p)) => provider(&cli.db, p),
        Some(Command::Traceback(t)) => run_traceback(&cli, t),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shaken-collector: error: {e}");
            ExitCode::from(1)
        }
    }
}

fn provider(db: &Path, cmd: ProviderCommand) -> Result<(), CollectorError> {
    let mut db = Db::open(db)?;
    let mut out = std::io::stdout().lock();
    let print = |out: &mut std::io::StdoutLock, line: String| {
        writeln!(out, "{line}").map_err(CollectorError::Runtime)
    };
    match cmd {
        ProviderCommand::Add {
            name,
            ocns,
            rmd,
            contacts,
            flags,
        } => {
            let id = db.add_provider(&NewProvider {
                name: name.clone(),
                ocns,
                rmd_number: rmd,
                contacts,
                flags,
            })?;
            print(&mut out, format!("provider {name:?} added (id {id})"))
        }
        ProviderCommand::List => {
            for p in db.providers()? {
                print(&mut out, to_json(&p)?)?;
            }
            Ok(())
        }
        ProviderCommand::PortalToken { provider } => {
            let now = traceback::system_clock()();
            let token = traceback::issue_provider_token(db.conn(), &provider, now)?;
            print(&mut out, token)
        }
        ProviderCommand::Token { provider, sensor } => {
            let token = db.issue_token(&provider, &sensor)?;
            print(&mut out, token)
        }
    }
}

fn tuning(cli: &Cli) -> traceback::Tuning {
    traceback::Tuning {
        window_us: i64::from(cli.traceback_window_s) * 1_000_000,
        deadline_us: i64::from(cli.request_deadline_s) * 1_000_000,
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, CollectorError> {
    serde_json::to_string(v)
        .map_err(|e| CollectorError::Runtime(std::io::Error::other(e.to_string())))
}

fn run_traceback(cli: &Cli, cmd: TracebackCommand) -> Result<(), CollectorError> {
    let mut db = Db::open(&cli.db)?;
    let now = traceback::system_clock()();
    let mut lines = Vec::new();
    match cmd {
        TracebackCommand::Start { orig, dest, at } => {
            let s = traceback::Subject { orig, dest, at };
            let id = traceback::start(db.conn(), &s, tuning(cli), now)?;
            lines.push(to_json(&traceback::get(db.conn(), id, now)?)?);
        }
        TracebackCommand::Show { id } => lines.push(to_json(&traceback::get(db.conn(), id, now)?)?),
        TracebackCommand::Requests { all } => {
            for r in traceback::requests(db.conn(), None, all, now)? {
                lines.push(to_json(&r)?);
            }
        }
    }
    let mut out = std::io::stdout().lock();
    for l in lines {
        writeln!(out, "{l}").map_err(CollectorError::Runtime)?;
    }
    Ok(())
}

fn serve(cli: Cli) -> Result<(), CollectorError> {
    let token = match (&cli.token, &cli.token_file) {
        (Some(t), _) => t.clone(),
        (None, Some(p)) => {
            let bytes = shaken_httpd::files::read_bounded(p, 4096).map_err(|e| {
                CollectorError::TokenFile {
                    path: p.display().to_string(),
                    source: std::io::Error::other(e.to_string()),
                }
            })?;
            String::from_utf8_lossy(&bytes).trim().to_string()
        }
        (None, None) => String::new(),
    };
    if token.is_empty() {
        return Err(CollectorError::NoToken);
    }
    let db = Db::open_with(&cli.db, cli.synchronous)?;
    let tokens = db.reader()?;
    let max_body = cli.max_body_mb.max(1) << 20;
    let d = Limits::default();
    let secs =
        |v: Option<u64>, default: Duration| v.map_or(default, |s| Duration::from_secs(s.max(1)));
    let limits = Limits {
        header_timeout: secs(cli.header_timeout_s, d.header_timeout),
        body_timeout: secs(cli.body_timeout_s, d.body_timeout),
        idle_timeout: secs(cli.keepalive_idle_s, d.idle_timeout),
        max_connections: cli.max_connections.unwrap_or(d.max_connections).max(1),
        max_in_flight: cli.max_in_flight.unwrap_or(d.max_in_flight).max(1),
        max_body_bytes: max_body,
        drain_timeout: secs(cli.drain_timeout_s, d.drain_timeout),
    };
    let drain = limits.drain_timeout;
    let settings = Settings {
        token,
        tokens,
        max_body,
        max_line: cli.max_line_kb.max(1) << 10,
        max_response: cli.max_response_mb.max(1) << 20,
        test_faults: cli.test_faults,
        faults: Faults {
            fail_next: cli.fail_next,
            rate_limit_next: cli.rate_limit_next,
            retry_after_s: cli.retry_after,
            reject_next: cli.reject_next,
            delay_ms: cli.delay_ms,
        },
        tuning: tuning(&cli),
        clock: traceback::system_clock(),
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
    let served = rt.block_on(async move {
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
        let (app, httpd_metrics) = router(db, settings);
        shaken_httpd::serve(listener, app, limits, httpd_metrics, shutdown).await;
        Ok(())
    });
    // A storage task still running must not hold the exit past the drain deadline.
    rt.shutdown_timeout(drain);
    served
}

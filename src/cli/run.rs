//! `shaken-sensor run`: live capture on the configured interfaces until SIGINT/SIGTERM, with
//! the HTTP server (/metrics, /healthz, traceback API) and SIGHUP reload. It never decides
//! anything about packets itself: it starts the pipeline and reports.

use super::{http_state, init_logging, load_config, stop_flag, write_metrics, UsageError};
use crate::capture::source::SourceError;
use crate::http::HttpError;
use crate::metrics::Metrics;
use crate::pipeline::{self, Input, LiveConfig, PipelineError, RunOptions};
use crate::shaken::service::SetupError;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, short, default_value = "/etc/shaken-sensor/sensor.toml")]
    pub config: PathBuf,
    /// CallRecords output (JSON lines): a path or "-" for stdout; overrides output.records.
    #[arg(long)]
    pub out: Option<String>,
    /// Write the Prometheus metrics text here at exit.
    #[arg(long)]
    pub metrics_out: Option<PathBuf>,
}

/// SIGHUP sets the returned flag; the reload thread clears it.
fn reload_flag() -> Result<Arc<AtomicBool>> {
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .context("installing SIGHUP handler")?;
    Ok(hup)
}

/// Re-reads `path` on every SIGHUP until `stop`; never touches the capture threads.
fn spawn_reloader(
    path: PathBuf,
    live: Arc<LiveConfig>,
    metrics: Arc<Metrics>,
    hup: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("reload".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if hup.swap(false, Ordering::Relaxed) {
                    tracing::info!(config = %path.display(), "SIGHUP: reloading the configuration");
                    live.reload(&path, &metrics);
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        })
        .context("starting the reload thread")
}

/// The start-up failures an operator fixes on the host or in the file, as one line naming
/// the key to change; anything else stays a runtime error.
fn setup_problem(e: &PipelineError, config: &Path) -> Option<UsageError> {
    let file = config.display();
    let line = match e {
        PipelineError::Source(s @ SourceError::NoSuchInterface { .. }) => {
            format!("{s}; fix capture.interfaces in {file} (\"any\" captures on all of them)")
        }
        PipelineError::Source(s @ SourceError::Filter { .. }) => {
            format!("{s}; fix capture.bpf_filter in {file} (\"auto\" fits every link type)")
        }
        PipelineError::Source(s @ SourceError::NoPermission { .. }) => s.to_string(),
        PipelineError::Store(s) => format!(
            "{s}; create it (the systemd unit's StateDirectory does) or set traceback.dir in {file}"
        ),
        PipelineError::Push(s) => format!("{s}; check the [push] section of {file}"),
        PipelineError::Shaken(s @ (SetupError::Anchors(_) | SetupError::Seed { .. })) => {
            format!("{s}; check shaken.trust_anchors and shaken.certs in {file}")
        }
        PipelineError::Output(s) => format!("{s}; check output.records in {file} or --out"),
        _ => return None,
    };
    Some(UsageError(line))
}

pub fn main(a: Args) -> Result<ExitCode> {
    let cfg = load_config(Some(&a.config))?;
    init_logging(&cfg);
    let hup = reload_flag()?;
    let stop = stop_flag()?;
    let mut opts = RunOptions::new(stop.clone());
    opts.records_out = a.out;
    let live = LiveConfig::new(&cfg);
    opts.live = Some(live.clone());
    let metrics = opts.metrics.clone();
    let reloader = spawn_reloader(a.config.clone(), live, metrics.clone(), hup, stop.clone())?;
    tracing::info!(
        interfaces = ?cfg.capture.interfaces,
        filter = %cfg.capture.bpf_filter,
        workers = cfg.worker_count(),
        "capture starting"
    );
    let http = if cfg.http.bind.is_empty() {
        None
    } else {
        let bind = cfg.http.bind.parse().context("http.bind")?;
        let state = http_state(&opts, &cfg);
        Some(
            crate::http::spawn(bind, state, stop.clone()).map_err(|e| match e {
                HttpError::Bind { .. } => anyhow::Error::new(UsageError(format!(
                    "{e}; another process (a second sensor?) may hold it: set http.bind in {} \
                     to a free address, or \"\" for no HTTP server",
                    a.config.display()
                ))),
                other => anyhow::Error::new(other).context("starting the HTTP server"),
            })?,
        )
    };
    let result = pipeline::run(&cfg, Input::Live, opts);
    stop.store(true, Ordering::Relaxed);
    if let Some(server) = http {
        let _ = server.thread.join();
    }
    let _ = reloader.join();
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            return Err(match setup_problem(&e, &a.config) {
                Some(usage) => usage.into(),
                None => anyhow::Error::new(e).context("live capture"),
            })
        }
    };
    tracing::info!(
        packets = summary.packets,
        sip_messages = summary.sip_messages,
        calls = summary.calls,
        "capture stopped"
    );
    write_metrics(a.metrics_out.as_deref(), &metrics)?;
    Ok(ExitCode::SUCCESS)
}

//! `shaken-sensor run`: live capture on the configured interfaces until SIGINT/SIGTERM, with
//! the HTTP server (/metrics, /healthz, traceback API) and SIGHUP reload. It never decides
//! anything about packets itself: it starts the pipeline and reports.

use super::{http_state, init_logging, load_config, write_metrics, UsageError};
use crate::capture::source::SourceError;
use crate::http::HttpError;
use crate::metrics::Metrics;
use crate::pipeline::{self, Input, LiveConfig, PipelineError, RunOptions};
use crate::shaken::service::SetupError;
use crate::shutdown::Shutdown;
use anyhow::{Context, Result};
use signal_hook::iterator::{Handle, Signals};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
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

/// Installs the SIGHUP handler: the returned signals are read by [`spawn_reloader`], which
/// ends when the handle is closed.
fn reload_signals() -> Result<(Signals, Handle)> {
    let signals =
        Signals::new([signal_hook::consts::SIGHUP]).context("installing SIGHUP handler")?;
    let handle = signals.handle();
    Ok((signals, handle))
}

/// Re-reads `path` on every SIGHUP until the signals' handle is closed; never touches the
/// capture threads.
fn spawn_reloader(
    path: PathBuf,
    live: Arc<LiveConfig>,
    metrics: Arc<Metrics>,
    mut hup: Signals,
) -> Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("reload".into())
        .spawn(move || {
            for _ in hup.forever() {
                tracing::info!(config = %path.display(), "SIGHUP: reloading the configuration");
                live.reload(&path, &metrics);
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
    let (hup, hup_handle) = reload_signals()?;
    let stop = Shutdown::on_signals().context("installing signal handler")?;
    let mut opts = RunOptions::new(stop.clone());
    opts.records_out = a.out;
    let live = LiveConfig::new(&cfg);
    opts.live = Some(live.clone());
    let metrics = opts.metrics.clone();
    let reloader = spawn_reloader(a.config.clone(), live, metrics.clone(), hup)?;
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
    stop.trigger();
    if let Some(server) = http {
        let _ = server.thread.join();
    }
    hup_handle.close();
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

//! `shaken-sensor replay`: capture files (pcap or pcapng) through the same pipeline as live
//! capture, as fast as the machine allows, with a summary at the end. A replay never writes
//! the production traceback store unless `--store` names one.

use super::{http_state, init_logging, load_config, write_metrics, UsageError};
use crate::capture::source::SourceError;
use crate::pipeline::{self, Input, PipelineError, RunOptions};
use anyhow::{Context, Result};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Configuration file (defaults to the built-in defaults, as in config/sensor.toml).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// CallRecords output (JSON lines): a path or "-" for stdout; overrides output.records.
    #[arg(long)]
    pub out: Option<String>,
    /// No progress line and no summary on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// Also write the summary as JSON to this path.
    #[arg(long)]
    pub summary_json: Option<PathBuf>,
    /// Write the Prometheus metrics text here at the end.
    #[arg(long)]
    pub metrics_out: Option<PathBuf>,
    /// Keep the replayed calls in a traceback store in DIR. Without it a replay never
    /// writes a store, so investigating a capture cannot pollute the production one.
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Serve /metrics, /healthz (and the traceback API over --store) on ADDR while
    /// replaying, e.g. 127.0.0.1:9465 (port 0 picks one; the log line names it).
    #[arg(long)]
    pub http: Option<String>,
    /// After the replay, keep serving --http until SIGINT/SIGTERM (to inspect the metrics).
    #[arg(long, requires = "http")]
    pub hold: bool,
    /// DetectionEvents output (JSON lines): a path or "-" for stdout; overrides
    /// output.detections.
    #[arg(long)]
    pub detections: Option<String>,
}

pub fn main(a: Args) -> Result<ExitCode> {
    let mut cfg = load_config(a.config.as_deref())?;
    cfg.traceback.enabled = a.store.is_some();
    if let Some(dir) = &a.store {
        cfg.traceback.dir = dir.display().to_string();
    }
    init_logging(&cfg);
    let stop = crate::shutdown::Shutdown::on_signals().context("installing signal handler")?;
    let mut opts = RunOptions::new(stop.clone());
    opts.records_out = a.out;
    opts.detections_out = a.detections;
    opts.progress = !a.quiet && std::io::stderr().is_terminal();
    let metrics = opts.metrics.clone();
    // The server has its own token: a replay that ends must not end it under --hold.
    let http_stop = stop.child();
    let server = match &a.http {
        Some(addr) => {
            let bind = addr
                .parse()
                .map_err(|_| UsageError(format!("--http {addr}: expected IP:PORT")))?;
            Some(
                crate::http::spawn(bind, http_state(&opts, &cfg), http_stop.clone())
                    .context("starting the HTTP server")?,
            )
        }
        None => None,
    };
    let summary = match pipeline::run(&cfg, Input::Files(a.files), opts) {
        Ok(s) => s,
        // A file that cannot be opened or is not a capture: the operator's to fix.
        Err(PipelineError::Source(
            e @ (SourceError::OpenFile { .. } | SourceError::NotACapture { .. }),
        )) => return Err(UsageError(e.to_string()).into()),
        Err(e) => return Err(anyhow::Error::new(e).context("replay")),
    };
    if !a.quiet {
        eprint!("{}", summary.to_text());
    }
    if let Some(p) = a.summary_json {
        let json = serde_json::to_string_pretty(&summary)?;
        std::fs::write(&p, json).with_context(|| format!("writing summary to {}", p.display()))?;
    }
    write_metrics(a.metrics_out.as_deref(), &metrics)?;
    if let Some(server) = server {
        if a.hold {
            tracing::info!(addr = %server.addr, "replay done; serving until SIGINT/SIGTERM (--hold)");
            stop.wait();
        }
        http_stop.trigger();
        let _ = server.thread.join();
    }
    Ok(ExitCode::SUCCESS)
}

//! The `shaken-sensor` subcommands, one file each: their arguments (clap) and what they do
//! with the library's stages. `main.rs` only parses the command line and dispatches here.
//!
//! This layer turns the first problems an operator meets (a missing configuration file, an
//! interface that does not exist, no permission to capture, a file that is not a capture)
//! into one line that says what to do, with exit status 2 ([`UsageError`]). It must never
//! hold pipeline logic: a command wires stages together and reports.

pub mod check_config;
pub mod evaluate;
pub mod replay;
pub mod run;
pub mod scenario;
pub mod traceback;
pub mod verify;

use crate::config::{Config, ConfigError, LogFormat};
use crate::pipeline::RunOptions;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit status of a usage, configuration or environment problem the operator fixes by
/// changing the command line, the configuration file or the host (status 1 stays for
/// failures while running).
pub const EXIT_USAGE: u8 = 2;

/// A problem the operator fixes: the message is one line naming what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl From<ConfigError> for UsageError {
    fn from(e: ConfigError) -> Self {
        UsageError(e.to_string())
    }
}

/// The exit status for an error: [`EXIT_USAGE`] when any cause is a [`UsageError`].
pub fn exit_code(e: &anyhow::Error) -> ExitCode {
    if usage_error(e).is_some() {
        ExitCode::from(EXIT_USAGE)
    } else {
        ExitCode::from(1)
    }
}

/// The usage problem behind `e`, if there is one: reported alone, without the context chain,
/// so the operator reads one line.
pub fn usage_error(e: &anyhow::Error) -> Option<&UsageError> {
    e.chain().find_map(|c| c.downcast_ref::<UsageError>())
}

/// Loads `path` (or the built-in defaults when `None`); a problem is a [`UsageError`].
pub fn load_config(path: Option<&Path>) -> Result<Config, UsageError> {
    Ok(crate::config::load::load_or_default(path)?)
}

pub fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match cfg.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

pub fn http_state(opts: &RunOptions, cfg: &Config) -> crate::http::HttpState {
    crate::http::HttpState {
        metrics: opts.metrics.clone(),
        health: opts.health.clone(),
        store: cfg
            .traceback
            .enabled
            .then(|| PathBuf::from(&cfg.traceback.dir)),
        token: Some(cfg.http.token.clone()).filter(|t| !t.is_empty()),
        config: cfg.http.clone(),
    }
}

pub fn write_metrics(path: Option<&Path>, opts_metrics: &crate::metrics::Metrics) -> Result<()> {
    if let Some(p) = path {
        std::fs::write(p, opts_metrics.render())
            .with_context(|| format!("writing metrics to {}", p.display()))?;
    }
    Ok(())
}

/// True when the error is the reader of our output going away (`replay F | head`).
pub fn output_closed(e: &anyhow::Error) -> bool {
    use crate::export::jsonl::JsonlError;
    use crate::pipeline::PipelineError;
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<JsonlError>(),
            Some(JsonlError::Closed { .. })
        ) || matches!(
            c.downcast_ref::<PipelineError>(),
            Some(PipelineError::Output(JsonlError::Closed { .. }))
        )
    })
}

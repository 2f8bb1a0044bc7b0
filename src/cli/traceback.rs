//! `shaken-sensor traceback`: answers a traceback request from the store without a running
//! daemon (read-only): the calls from ORIG to DEST around AT, each with its upstream peer and
//! SHAKEN result. It must never write to the store.

use crate::traceback::query::{answer, Reader, TracebackQuery};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The store directory (traceback.dir).
    #[arg(long)]
    pub store: PathBuf,
    #[arg(long)]
    pub orig: Option<String>,
    #[arg(long)]
    pub dest: String,
    /// RFC 3339 time of the call, e.g. 2026-11-29T14:03:07Z.
    #[arg(long)]
    pub at: String,
    /// Seconds either side of AT (default 300).
    #[arg(long = "window-s")]
    pub window_s: Option<String>,
}

pub fn main(a: Args) -> Result<ExitCode> {
    let q = TracebackQuery::parse(
        a.orig.as_deref(),
        Some(&a.dest),
        Some(&a.at),
        a.window_s.as_deref(),
    )
    .context("traceback query")?;
    let reader =
        Reader::open(&a.store).with_context(|| format!("opening store {}", a.store.display()))?;
    let json = answer(&reader, &q).context("traceback query")?;
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(ExitCode::SUCCESS)
}

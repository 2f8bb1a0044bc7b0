//! `shaken-sensor evaluate`: scores DetectionEvents (from `replay --detections`) against a
//! scenario's labels; exits 1 when a campaign is missed, late, on the wrong peer, or an event
//! fires on background. It only reads.

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    pub scenario: PathBuf,
    #[arg(long)]
    pub detections: PathBuf,
    /// Print the evaluation as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[arg(long = "max-latency-s", default_value_t = 60.0)]
    pub max_latency_s: f64,
}

pub fn main(a: Args) -> Result<ExitCode> {
    let e = crate::scenario::evaluate::evaluate(&a.scenario, &a.detections, a.max_latency_s)
        .context("evaluate")?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
    } else {
        print!("{}", e.to_text());
    }
    Ok(if e.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

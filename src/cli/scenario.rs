//! `shaken-sensor scenario`: writes a labelled scenario (scenario.pcap, labels.jsonl,
//! campaigns.json, sensor.toml, certs/) for evaluating campaign detection. Needs the openssl
//! CLI (it makes the PKI). It only writes under `--out`.

use super::UsageError;
use crate::scenario::{
    generate,
    plan::{Scale, Variant, VARIANTS},
};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    pub out: PathBuf,
    /// small: 16,000 background calls over 20 min, the 8 campaign kinds; full: 200,000
    /// over an hour and 16 campaigns (two of each kind).
    #[arg(long, value_enum, default_value = "small")]
    pub scale: ScaleArg,
    /// Background calls (default: the scale's).
    #[arg(long)]
    pub background: Option<u32>,
    /// Capture time, seconds (default: the scale's).
    #[arg(long = "duration-s")]
    pub duration_s: Option<u32>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Capture start, Unix seconds.
    #[arg(long, default_value_t = 1_795_000_000)]
    pub start: i64,
    /// What the campaigns' originators vary: stable-origid, fresh-origid, ua-rotate,
    /// ua-copy, slow-start, fast, busiest-peer (docs/detection-evaluation.md).
    #[arg(long, default_value = "stable-origid")]
    pub variant: String,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ScaleArg {
    Small,
    Full,
}

pub fn main(a: Args) -> Result<ExitCode> {
    let Some(variant) = Variant::parse(&a.variant) else {
        let names: Vec<&str> = VARIANTS.iter().map(|v| v.name()).collect();
        return Err(UsageError(format!(
            "--variant {:?} is not one of {}",
            a.variant,
            names.join(", ")
        ))
        .into());
    };
    let scale = match a.scale {
        ScaleArg::Small => Scale::Small,
        ScaleArg::Full => Scale::Full,
    };
    let mut o = generate::ScenarioOptions::for_scale(a.out, scale);
    o.background = a.background.unwrap_or(o.background);
    o.duration_s = a.duration_s.unwrap_or(o.duration_s);
    o.seed = a.seed;
    o.start_unix = a.start;
    o.variant = variant;
    let summary = generate::generate(&o).context("scenario")?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(ExitCode::SUCCESS)
}

//! `shaken-sensor scenario`: writes a labelled scenario (scenario.pcap, labels.jsonl,
//! campaigns.json, sensor.toml, certs/) for evaluating campaign detection, or with `--network`
//! the multi-carrier scenario (one capture and sensor.toml per provider with a sensor, and the
//! hop-by-hop ground truth; docs/network-scenario.md). Needs the openssl CLI (it makes the
//! PKI). It only writes under `--out`.

use super::UsageError;
use crate::scenario::{
    generate,
    network::{self, NetworkOptions},
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
    /// over an hour and 16 campaigns (two of each kind). With --network: small = 2,400
    /// background calls over 10 min and 3 campaigns of 300-400 calls; full = 100,000 over an
    /// hour, campaigns four times larger.
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
    #[arg(long, default_value = "stable-origid", conflicts_with = "network")]
    pub variant: String,
    /// The multi-carrier network scenario: providers in a call graph, a capture per provider
    /// with a sensor, the hop chain of every call (docs/network-scenario.md).
    #[arg(long)]
    pub network: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ScaleArg {
    Small,
    Full,
}

pub fn main(a: Args) -> Result<ExitCode> {
    if a.network {
        return network(a);
    }
    let Some(variant) = Variant::parse(&a.variant) else {
        let names: Vec<&str> = VARIANTS.iter().map(|v| v.name()).collect();
        return Err(UsageError(format!(
            "--variant {:?} is not one of {}",
            a.variant,
            names.join(", ")
        ))
        .into());
    };
    let scale = a.scale.into();
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

impl From<ScaleArg> for Scale {
    fn from(s: ScaleArg) -> Scale {
        match s {
            ScaleArg::Small => Scale::Small,
            ScaleArg::Full => Scale::Full,
        }
    }
}

fn network(a: Args) -> Result<ExitCode> {
    let mut o = NetworkOptions::for_scale(a.out, a.scale.into());
    o.background = a.background.unwrap_or(o.background);
    o.duration_s = a.duration_s.unwrap_or(o.duration_s);
    o.seed = a.seed;
    o.start_unix = a.start;
    let summary = network::generate(&o).context("network scenario")?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(ExitCode::SUCCESS)
}

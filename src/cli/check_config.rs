//! `shaken-sensor check-config`: validates a configuration file without starting anything
//! (systemd runs it as ExecStartPre): the file itself, that each capture interface exists, and
//! the live BPF filter compiled by libpcap for the link types those interfaces will open with
//! (no device needed). Prints "ok", or the problem naming the file and the key and exits with
//! status 2. It must never open an interface or write anywhere.

use super::UsageError;
use crate::capture::source::{compile_filter, interface_names, linktype_name, live_linktypes};
use crate::config::{self, Config};
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, short, default_value = "/etc/shaken-sensor/sensor.toml")]
    pub config: PathBuf,
}

pub fn main(args: Args) -> Result<ExitCode> {
    let cfg = config::load_checked(&args.config).map_err(UsageError::from)?;
    check_filter(&cfg, &args.config)?;
    println!("ok");
    Ok(ExitCode::SUCCESS)
}

/// Each interface exists, and the filter `run` would install on it compiles as libpcap would.
pub fn check_filter(cfg: &Config, file: &Path) -> Result<(), UsageError> {
    let names = interface_names();
    for iface in &cfg.capture.interfaces {
        if !names.is_empty() && !names.contains(iface) {
            return Err(UsageError(format!(
                "{}: key `capture.interfaces`: interface {iface} does not exist on this host \
                 (it has: {}); \"any\" captures on all of them",
                file.display(),
                names.join(", ")
            )));
        }
        for lt in live_linktypes(iface) {
            let filter = cfg.bpf_filter(lt);
            if let Err(e) = compile_filter(&filter, lt) {
                return Err(UsageError(format!(
                    "{}: key `capture.bpf_filter`: libpcap rejects {filter:?} on interface {iface} \
                     (link type {}): {e}; use \"auto\" or fix the expression",
                    file.display(),
                    linktype_name(lt)
                )));
            }
        }
    }
    Ok(())
}

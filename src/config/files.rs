//! Bounded reads of operator-given files (the configuration, trust anchors, seeded
//! certificates, token files): opened without blocking, refused unless a regular file, and
//! read with a cap whatever size the file claims. `check_files` lets `check-config` read every
//! file a configuration names the way the daemon would.
//!
//! It must never block on a FIFO, never read a device (`/dev/zero` reads forever), and never
//! hold more than the cap plus one byte of a file.

use super::load::ConfigError;
use super::model::Config;
use std::path::Path;

/// The one bounded reader, shared with the collector (its token file).
pub use shaken_httpd::files::{read_bounded, FileError};

/// Largest configuration file.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// `check-config`: the file loaded and validated, and every file it names read and parsed.
pub fn load_checked(path: &Path) -> Result<Config, ConfigError> {
    let cfg = super::load(path)?;
    check_files(&cfg, &path.display().to_string())?;
    Ok(cfg)
}

/// Reads every file `cfg` names (trust anchors, seeded certificates, and the push CA bundle,
/// client certificate and token file when pushing) as the daemon would at start-up, and
/// parses them; the first problem, naming the key.
pub fn check_files(cfg: &Config, label: &str) -> Result<(), ConfigError> {
    if cfg.push.enabled {
        crate::export::push::check_files(&cfg.push).map_err(|e| {
            use crate::export::push::PushError;
            let key = match &e {
                PushError::ReadFile { key, .. } | PushError::BadPem { key, .. } => key,
                _ => "push.token",
            };
            ConfigError::Invalid {
                path: label.to_string(),
                key: key.to_string(),
                problem: e.to_string(),
            }
        })?;
    }
    crate::shaken::service::ShakenService::check_credentials(&cfg.shaken).map_err(|e| {
        use crate::shaken::service::SetupError;
        let key = match &e {
            SetupError::Seed { file, .. } => cfg
                .shaken
                .certs
                .iter()
                .position(|c| &c.file == file)
                .map_or("shaken.certs".to_string(), |i| {
                    format!("shaken.certs[{i}].file")
                }),
            _ => "shaken.trust_anchors".to_string(),
        };
        ConfigError::Invalid {
            path: label.to_string(),
            key,
            problem: e.to_string(),
        }
    })
}

//! Shared helpers for the integration tests: run the real binary, read its JSON output.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_shaken-sensor"))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn pcap(name: &str) -> PathBuf {
    repo().join("pcaps").join(name)
}

/// `../shared/thirdparty` beside the repository, or None (the caller skips, saying why).
pub fn thirdparty() -> Option<PathBuf> {
    let p = repo().join("..").join("shared").join("thirdparty");
    p.is_dir().then_some(p)
}

pub struct Replay {
    pub records: Vec<Value>,
    pub summary: Value,
    pub stderr: String,
    /// The Prometheus text the replay wrote at its end.
    pub metrics: String,
}

impl Replay {
    pub fn sip_kind(&self, kind: &str) -> u64 {
        self.summary["sip_by_kind"][kind].as_u64().unwrap_or(0)
    }

    pub fn count(&self, key: &str) -> u64 {
        self.summary[key]
            .as_u64()
            .unwrap_or_else(|| panic!("summary has no {key}: {}", self.summary))
    }

    /// The value of one sample line of the metrics text, e.g.
    /// `shaken_sensor_verification_failures_total{code="403"}`; 0 when absent.
    pub fn metric(&self, sample: &str) -> f64 {
        self.metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(sample)
                    .and_then(|rest| rest.strip_prefix(' '))
            })
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }

    pub fn records_where(&self, f: impl Fn(&Value) -> bool) -> usize {
        self.records.iter().filter(|r| f(r)).count()
    }
}

/// Replays `files` with the given TOML configuration text (written to a temp file).
pub fn replay(files: &[&Path], config: &str) -> Replay {
    replay_with(files, config, &[])
}

/// Like [`replay`], with extra command-line arguments.
pub fn replay_with(files: &[&Path], config: &str, extra: &[&str]) -> Replay {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sensor.toml");
    std::fs::write(&cfg, config).unwrap();
    let out = dir.path().join("records.jsonl");
    let summary = dir.path().join("summary.json");
    let metrics = dir.path().join("metrics.txt");
    let result = Command::new(bin())
        .arg("replay")
        .args(files)
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .arg("--summary-json")
        .arg(&summary)
        .arg("--metrics-out")
        .arg(&metrics)
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    assert!(result.status.success(), "replay failed: {stderr}");
    let records = std::fs::read_to_string(&out)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each output line is JSON"))
        .collect();
    let summary = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let metrics = std::fs::read_to_string(&metrics).unwrap();
    Replay {
        records,
        summary,
        stderr,
        metrics,
    }
}

pub const DEFAULT_CONFIG: &str = "[sensor]\nid = \"test-sensor\"\nworkers = 2\n";

/// Runs `shaken-sensor traceback --store STORE ARGS...` and returns its JSON answer.
pub fn traceback(store: &Path, args: &[&str]) -> Value {
    let out = Command::new(bin())
        .arg("traceback")
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

//! SIGHUP reload without stopping capture. [`LiveConfig`] holds what a running pipeline may
//! change on the fly, each behind a lock-free swap that stages read without waiting:
//! - peers (`[[peers]]`): the [`SharedPeers`] table workers read for every new call;
//! - trust anchors and seeded certificates (`shaken.trust_anchors`, `shaken.certs`): swapped
//!   inside the [`ShakenService`], whose cached chains are then judged again;
//! - the whole configuration as a snapshot ([`LiveConfig::snapshot`]) with a generation
//!   counter ([`LiveConfig::generation`]): a stage with tunable thresholds (the detection
//!   rules, `[detect.rules]`) compares the generation once per batch and re-reads the
//!   snapshot when it moved.
//!
//! A reload reads and validates the file first; on any error the old configuration stays in
//! force, the error is logged and `config_reloads_total{result="failure"}` counts it. Each section
//! declares whether a change to it applies live or needs a restart (`config::load::Section`);
//! the log line of a reload names both (`applied_live`, `restart_needed`), and what needs a
//! restart is otherwise ignored. This module never blocks a pipeline thread.

use crate::config::load::OnSighup;
use crate::config::{self, Config};
use crate::metrics::Metrics;
use crate::peers::{self, PeerTable, SharedPeers};
use crate::shaken::service::ShakenService;
use arc_swap::ArcSwap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] config::load::ConfigError),
    #[error(transparent)]
    Shaken(#[from] crate::shaken::service::SetupError),
}

pub struct LiveConfig {
    config: ArcSwap<Config>,
    peers: SharedPeers,
    shaken: Mutex<Option<Arc<ShakenService>>>,
    generation: AtomicU64,
}

impl LiveConfig {
    pub fn new(cfg: &Config) -> Arc<Self> {
        Arc::new(LiveConfig {
            config: ArcSwap::from_pointee(cfg.clone()),
            peers: peers::shared(&cfg.peers),
            shaken: Mutex::new(None),
            generation: AtomicU64::new(0),
        })
    }

    /// The configuration in force (cheap: an `Arc`); re-read it when the generation moves.
    pub fn snapshot(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Incremented by every successful reload.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn peers(&self) -> SharedPeers {
        self.peers.clone()
    }

    /// The pipeline hands over its verification service so reloads can swap its anchors.
    pub fn attach_shaken(&self, svc: Arc<ShakenService>) {
        *self.shaken.lock().unwrap_or_else(|e| e.into_inner()) = Some(svc);
    }

    /// Applies a validated configuration; returns what changed, as each section declares
    /// ([`Section`](crate::config::load::Section)): applied live, or kept until a restart.
    pub fn apply(&self, new: Config) -> Result<Changes, ReloadError> {
        let old = self.config.load_full();
        let mut changes = Changes::default();
        for (key, on) in old.reload_changes(&new) {
            match on {
                OnSighup::Live => changes.live.push(key),
                OnSighup::Restart => changes.restart.push(key),
            }
        }
        let credentials_changed = old.shaken.trust_anchors != new.shaken.trust_anchors
            || old.shaken.certs != new.shaken.certs;
        if credentials_changed {
            let svc = self
                .shaken
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if let Some(svc) = svc {
                // Fails before anything was swapped: the old configuration stays whole.
                svc.reload_credentials(&new.shaken)?;
            }
        }
        if old.peers != new.peers {
            self.peers.store(Arc::new(PeerTable::new(&new.peers)));
        }
        self.config.store(Arc::new(new));
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(changes)
    }

    /// Reads, validates and applies `path`, logging and counting the result. True on success.
    pub fn reload(&self, path: &Path, metrics: &Metrics) -> bool {
        let result = config::load(path)
            .map_err(ReloadError::from)
            .and_then(|c| self.apply(c));
        match result {
            Ok(changes) => {
                metrics.config_reloads.with_label_values(&["success"]).inc();
                if changes.restart.is_empty() {
                    tracing::info!(
                        config = %path.display(),
                        generation = self.generation(),
                        applied_live = %changes.live.join(","),
                        "configuration reloaded"
                    );
                } else {
                    tracing::warn!(
                        config = %path.display(),
                        generation = self.generation(),
                        applied_live = %changes.live.join(","),
                        restart_needed = %changes.restart.join(","),
                        "configuration reloaded; these sections change only at restart"
                    );
                }
                true
            }
            Err(e) => {
                metrics.config_reloads.with_label_values(&["failure"]).inc();
                tracing::error!(config = %path.display(), error = %e, "configuration reload failed; the previous configuration stays in force");
                false
            }
        }
    }
}

/// What a reload changed, by key.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Applied to the running sensor.
    pub live: Vec<&'static str>,
    /// Kept at their old values until a restart.
    pub restart: Vec<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PeerConfig;

    fn peer(name: &str, cidr: &str) -> PeerConfig {
        PeerConfig {
            name: name.into(),
            ocn: "1".into(),
            cidrs: vec![cidr.into()],
        }
    }

    #[test]
    fn a_reload_swaps_peers_and_the_snapshot_and_names_what_needs_a_restart() {
        let cfg = Config {
            peers: vec![peer("old", "127.0.0.0/8")],
            ..Config::default()
        };
        let live = LiveConfig::new(&cfg);
        let peers = live.peers();
        let ip = "127.0.0.1".parse().unwrap();
        assert_eq!(&*peers.load().lookup(ip).name, "old");
        let mut new = cfg.clone();
        new.peers = vec![peer("new", "127.0.0.0/8")];
        new.capture.queue_batches = 7;
        let changes = live.apply(new).unwrap();
        assert_eq!(changes.restart, vec!["capture"]);
        assert_eq!(changes.live, vec!["peers"]);
        // The handle the workers hold sees the new table.
        assert_eq!(&*peers.load().lookup(ip).name, "new");
        assert_eq!(live.generation(), 1);
        assert_eq!(live.snapshot().capture.queue_batches, 7);
        // Rule thresholds apply live; the detector's sizes need a restart.
        let mut rules = live.snapshot().as_ref().clone();
        rules.detect.rules.burst_min_z = 9.0;
        let changes = live.apply(rules.clone()).unwrap();
        assert_eq!(changes.live, vec!["detect.rules"]);
        assert!(changes.restart.is_empty());
        assert_eq!(live.generation(), 2);
        assert_eq!(live.snapshot().detect.rules.burst_min_z, 9.0);
        rules.detect.max_keys = 99;
        assert_eq!(live.apply(rules).unwrap().restart, vec!["detect"]);
    }

    #[test]
    fn a_bad_file_keeps_the_old_configuration_and_counts_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sensor.toml");
        let cfg = Config {
            peers: vec![peer("old", "127.0.0.0/8")],
            ..Config::default()
        };
        let live = LiveConfig::new(&cfg);
        let m = Metrics::new();
        std::fs::write(&path, "[[peers]]\nname = \"x\"\ncidrs = [\"not-a-cidr\"]\n").unwrap();
        assert!(!live.reload(&path, &m));
        std::fs::write(&path, "[sensor]\nno_such_key = 1\n").unwrap();
        assert!(!live.reload(&path, &m));
        assert_eq!(m.config_reloads.with_label_values(&["failure"]).get(), 2);
        assert_eq!(live.generation(), 0);
        assert_eq!(
            &*live
                .peers()
                .load()
                .lookup("127.0.0.1".parse().unwrap())
                .name,
            "old"
        );
        std::fs::write(
            &path,
            "[[peers]]\nname = \"good\"\ncidrs = [\"127.0.0.0/8\"]\n",
        )
        .unwrap();
        assert!(live.reload(&path, &m));
        assert_eq!(m.config_reloads.with_label_values(&["success"]).get(), 1);
        assert_eq!(
            &*live
                .peers()
                .load()
                .lookup("127.0.0.1".parse().unwrap())
                .name,
            "good"
        );
    }
}

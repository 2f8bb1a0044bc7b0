//! The capture stage: opens the sources (capture files, or the configured interfaces and HEP
//! listeners) and runs them on capture threads, one for all files (in order) or one per live
//! source, each dispatching to the workers. Opening comes first in `run`, before any thread
//! starts, so a wrong interface or file fails fast.
//!
//! Finishing waits for the threads to end (the end of the files, or the shutdown token) and
//! records the last stream time for the workers. It never stops a source on its own.

use super::capture_thread::CaptureThread;
use super::run::{Input, PipelineError};
use super::stage::{join, spawn, Shared, Stage};
use super::worker_pool::Workers;
use crate::capture::decode::{DecodeSettings, Decoder};
use crate::capture::hep_listen::HepSource;
use crate::capture::source::{FrameSource, PcapSource};
use crate::config::Config;
use crate::health::{self, Component};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The opened sources, before their threads start.
pub struct Sources(Vec<Box<dyn FrameSource>>);

impl Sources {
    pub fn open(cfg: &Config, input: &Input, shared: &Shared) -> Result<Sources, PipelineError> {
        let mut sources: Vec<Box<dyn FrameSource>> = Vec::new();
        match input {
            Input::Files(files) => {
                for f in files {
                    sources.push(Box::new(PcapSource::open_file(f)?));
                }
            }
            Input::Live => {
                let filter = |linktype| cfg.bpf_filter(linktype);
                for i in &cfg.capture.interfaces {
                    sources.push(Box::new(PcapSource::open_live(i, &cfg.capture, &filter)?));
                }
                if cfg.capture.hep.enabled {
                    sources.push(Box::new(HepSource::start(
                        &cfg.capture.hep,
                        shared.metrics.clone(),
                        shared.clock.clone(),
                    )?));
                }
            }
        }
        if shared.is_live() {
            tracing::info!(sources = sources.len(), "capture running");
        } else {
            tracing::debug!(sources = sources.len(), "capture running");
        }
        Ok(Sources(sources))
    }
}

pub struct Capture {
    threads: Vec<JoinHandle<super::capture_thread::CaptureOutcome>>,
    health: Arc<Component>,
    shared: Arc<Shared>,
}

impl Capture {
    /// Starts the capture threads; `hep_tap`: `[export.hep]` sees every framed message.
    pub fn start(
        cfg: &Config,
        shared: &Arc<Shared>,
        sources: Sources,
        workers: &Workers,
        hep_tap: Option<crate::export::hep::HepTap>,
        progress: bool,
    ) -> Result<Capture, PipelineError> {
        let groups: Vec<(String, Vec<Box<dyn FrameSource>>)> = if shared.is_live() {
            sources
                .0
                .into_iter()
                .map(|s| (s.name().to_string(), vec![s]))
                .collect()
        } else {
            vec![("file".to_string(), sources.0)]
        };
        let settings = DecodeSettings::from_config(&cfg.capture);
        let health = shared
            .health
            .register(health::CAPTURE, false, "capture not started");
        // The sources are open: capture is running from here (a thread that fails says so).
        health.set_ok();
        let mut capture = Capture {
            threads: Vec::new(),
            health: health.clone(),
            shared: shared.clone(),
        };
        for (label, sources) in groups {
            let mut dispatcher = workers.dispatcher(shared);
            dispatcher.hep_tap = hep_tap.clone();
            let t = CaptureThread {
                sources,
                decoder: Decoder::new(settings.clone()),
                dispatcher,
                metrics: shared.metrics.clone(),
                stop: shared.shutdown.clone(),
                clock: shared.clock.clone(),
                label: label.clone(),
                progress,
                stats_interval: Duration::from_secs(cfg.capture.stats_interval_s),
                packet_clock: shared.packet_clock.clone(),
                health: health.clone(),
            };
            match spawn(format!("capture-{label}"), move || t.run()) {
                Ok(h) => capture.threads.push(h),
                Err(e) => {
                    // The threads already running stop too, and are joined.
                    shared.shutdown.trigger();
                    let _ = Box::new(capture).finish();
                    return Err(e);
                }
            }
        }
        Ok(capture)
    }
}

impl Stage for Capture {
    fn name(&self) -> &'static str {
        "capture"
    }
    /// Waits for the end of the files (replay) or the shutdown token (live).
    fn finish(self: Box<Self>) -> Result<(), PipelineError> {
        let mut result = Ok(());
        for t in self.threads {
            match join(t, "capture") {
                Ok(outcome) => self.shared.set_capture_end(outcome.last_ts),
                Err(e) => result = result.and(Err(e)),
            }
        }
        let live = self.shared.is_live();
        self.health.set_failed(if live {
            "capture stopped"
        } else {
            "replay finished"
        });
        if live {
            self.shared.set_capture_end(self.shared.clock.now());
        }
        result
    }
}

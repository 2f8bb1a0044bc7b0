//! What every stage of a run shares ([`Shared`]: metrics, clock, health, the shutdown token,
//! the backpressure policy) and how stages end ([`Stages`]): `run` starts them in order, each
//! `start(&Config, &Shared, ..)` taking the input handles of the stages started before it, and
//! [`Stages::finish`] finishes them in reverse, every one of them, whatever failed first.
//!
//! It never decides the order of the stages (`run` does) and never swallows an error: the
//! first one is returned, the later ones are logged.

use super::reload::LiveConfig;
use super::run::PipelineError;
use crate::backpressure::Backpressure;
use crate::clock::{Clock, ManualClock, Timestamp};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::thread;

/// The run-wide context every stage starts with.
pub struct Shared {
    pub metrics: Arc<Metrics>,
    /// The wall clock (live capture, store retention, HEP arrival times).
    pub clock: Arc<dyn Clock>,
    pub health: Arc<Health>,
    /// Set by SIGINT/SIGTERM (or a test): capture stops and the stages flush.
    pub shutdown: Shutdown,
    /// Live drops and counts, replay waits: chosen once from the input.
    pub backpressure: Backpressure,
    /// What a SIGHUP may change while running.
    pub live: Arc<LiveConfig>,
    /// Replay: the clock that follows packet time (verification, certificate cache TTLs).
    pub packet_clock: Option<Arc<ManualClock>>,
    pub sensor_id: Arc<str>,
    /// The latest stream time capture saw (set when it ends): workers close the calls still
    /// open as of it.
    capture_end: AtomicI64,
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        health: Arc<Health>,
        shutdown: Shutdown,
        backpressure: Backpressure,
        live: Arc<LiveConfig>,
        sensor_id: Arc<str>,
    ) -> Self {
        let packet_clock = backpressure
            .waits()
            .then(|| Arc::new(ManualClock::new(Timestamp::ZERO)));
        Shared {
            metrics,
            clock,
            health,
            shutdown,
            backpressure,
            live,
            packet_clock,
            sensor_id,
            capture_end: AtomicI64::new(Timestamp::ZERO.0),
        }
    }

    /// Replay runs on packet time, live capture on the clock.
    pub fn is_live(&self) -> bool {
        !self.backpressure.waits()
    }

    pub fn set_capture_end(&self, t: Timestamp) {
        self.capture_end.fetch_max(t.0, Ordering::SeqCst);
    }

    pub fn capture_end(&self) -> Timestamp {
        Timestamp(self.capture_end.load(Ordering::SeqCst))
    }
}

/// A started stage: it owns its threads and ends them in `finish`, after every stage it feeds
/// from has finished (so its inputs are closed or about to be).
pub trait Stage {
    fn name(&self) -> &'static str;
    fn finish(self: Box<Self>) -> Result<(), PipelineError>;
}

/// The stages started so far, finished in reverse.
#[derive(Default)]
pub struct Stages {
    started: Vec<Box<dyn Stage>>,
}

impl Stages {
    pub fn push(&mut self, stage: impl Stage + 'static) {
        self.started.push(Box::new(stage));
    }

    /// Starts an optional stage when `on`; returns the handle later stages feed it through.
    pub fn start_if<S: Stage + 'static, H>(
        &mut self,
        on: bool,
        start: impl FnOnce() -> Result<S, PipelineError>,
        handle: impl FnOnce(&S) -> H,
    ) -> Result<Option<H>, PipelineError> {
        if !on {
            return Ok(None);
        }
        let stage = start()?;
        let h = handle(&stage);
        self.push(stage);
        Ok(Some(h))
    }

    /// Finishes every started stage, last started first. Returns `first` if set, otherwise the
    /// first error a finish returned; later errors are logged, not lost.
    pub fn finish(mut self, first: Option<PipelineError>) -> Result<(), PipelineError> {
        let mut first = first;
        while let Some(stage) = self.started.pop() {
            let name = stage.name();
            if let Err(e) = stage.finish() {
                match first {
                    None => first = Some(e),
                    Some(_) => tracing::error!(
                        stage = name,
                        error = %e,
                        "stage failed while finishing (an earlier error is reported)"
                    ),
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Spawns a named pipeline thread.
pub fn spawn<T: Send + 'static>(
    name: String,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<thread::JoinHandle<T>, PipelineError> {
    thread::Builder::new()
        .name(name)
        .spawn(f)
        .map_err(PipelineError::Spawn)
}

/// Joins a stage's thread: its panic becomes [`PipelineError::ThreadPanicked`].
pub fn join<T>(h: thread::JoinHandle<T>, what: &'static str) -> Result<T, PipelineError> {
    h.join().map_err(|_| PipelineError::ThreadPanicked(what))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Probe {
        name: &'static str,
        log: Arc<Mutex<Vec<&'static str>>>,
        fails: bool,
    }

    impl Stage for Probe {
        fn name(&self) -> &'static str {
            self.name
        }
        fn finish(self: Box<Self>) -> Result<(), PipelineError> {
            self.log.lock().unwrap().push(self.name);
            if self.fails {
                Err(PipelineError::ThreadPanicked(self.name))
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn stages_finish_in_reverse_all_of_them_keeping_the_first_error() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut stages = Stages::default();
        for (name, fails) in [
            ("push", false),
            ("store", false),
            ("sink", true),
            ("workers", true),
        ] {
            stages.push(Probe {
                name,
                log: log.clone(),
                fails,
            });
        }
        let err = stages.finish(None).unwrap_err();
        assert_eq!(*log.lock().unwrap(), ["workers", "sink", "store", "push"]);
        assert!(matches!(err, PipelineError::ThreadPanicked("workers")));
    }

    #[test]
    fn a_start_error_comes_first_and_the_started_stages_still_finish() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut stages = Stages::default();
        stages.push(Probe {
            name: "store",
            log: log.clone(),
            fails: true,
        });
        let err = stages
            .finish(Some(PipelineError::ThreadPanicked("capture")))
            .unwrap_err();
        assert_eq!(*log.lock().unwrap(), ["store"]);
        assert!(matches!(err, PipelineError::ThreadPanicked("capture")));
    }
}

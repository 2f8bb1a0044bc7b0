//! The one time source. Every stage asks a [`Clock`] for "now" so that tests and offline
//! replays control time; nothing else in the crate may read the system clock directly.
//! [`Timestamp`] and its RFC 3339 format are wire types (the `shaken-wire` crate).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::SystemTime;

pub use shaken_wire::{Timestamp, RFC3339_LEN};

/// Where "now" comes from.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The operating system's wall clock, for live capture.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }
}

/// A clock that only moves when told to: tests, `--now`, and replay (driven by packet time).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(at: Timestamp) -> Self {
        ManualClock(AtomicI64::new(at.0))
    }

    pub fn set(&self, at: Timestamp) {
        self.0.store(at.0, Ordering::Relaxed);
    }

    /// Moves forward only; an older packet timestamp never takes time backwards.
    pub fn advance_to(&self, at: Timestamp) {
        self.0.fetch_max(at.0, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_never_goes_back() {
        let c = ManualClock::new(Timestamp::from_secs(10));
        c.advance_to(Timestamp::from_secs(5));
        assert_eq!(c.now(), Timestamp::from_secs(10));
        c.advance_to(Timestamp::from_secs(11));
        assert_eq!(c.now(), Timestamp::from_secs(11));
    }
}

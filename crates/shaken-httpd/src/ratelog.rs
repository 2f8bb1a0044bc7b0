//! A log line at most once per interval per reason, with the count of the ones held back:
//! refusals an attacker can cause at line rate must not flood the journal.
//!
//! It must never block and never drop the count of what it did not log.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RateLimitedLog {
    interval: Duration,
    state: Mutex<Vec<(&'static str, Instant, u64)>>,
}

impl RateLimitedLog {
    pub fn new(interval: Duration) -> Self {
        RateLimitedLog {
            interval,
            state: Mutex::new(Vec::new()),
        }
    }

    /// Logs `what` (a warning naming `reason` and the peer) unless `reason` was logged within
    /// the interval; then it is only counted and the next line says how many were held back.
    pub fn warn(&self, reason: &'static str, what: &str) {
        let now = Instant::now();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let held = match st.iter_mut().find(|(r, _, _)| *r == reason) {
            Some((_, last, held)) if now.duration_since(*last) < self.interval => {
                *held += 1;
                return;
            }
            Some((_, last, held)) => {
                *last = now;
                std::mem::take(held)
            }
            None => {
                st.push((reason, now, 0));
                0
            }
        };
        drop(st);
        tracing::warn!(reason, suppressed_since_last = held, "{what}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_line_within_the_interval_is_held_back() {
        let log = RateLimitedLog::new(Duration::from_secs(3600));
        log.warn("unauthorized", "a");
        log.warn("unauthorized", "b");
        log.warn("too_large", "c");
        let st = log.state.lock().unwrap();
        assert_eq!(st.len(), 2);
        assert_eq!(st[0].2, 1);
        assert_eq!(st[1].2, 0);
    }
}

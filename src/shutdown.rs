//! The one way to say "stop": a [`Shutdown`] token. SIGINT/SIGTERM trigger the process's
//! token; a stage that owns a thread triggers its own token when it finishes; a child token
//! (`child()`) stops with its parent or alone (the HTTP server of `replay --hold` outlives the
//! replay, not the signal). Waiting threads wake at once when a token is triggered, so no
//! stage polls a flag to learn that it must stop.
//!
//! It never exits the process itself, except for the second signal of [`Shutdown::on_signals`]
//! (status 130), and it carries no data: what a stage flushes on the way out is the stage's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

struct Node {
    flag: Arc<AtomicBool>,
    parent: Option<Arc<Node>>,
    /// Shared by a token and all its descendants: one trigger wakes every waiter below it.
    wake: Arc<(Mutex<()>, Condvar)>,
}

#[derive(Clone)]
pub struct Shutdown(Arc<Node>);

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown")
            .field("set", &self.is_set())
            .finish()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        Shutdown(Arc::new(Node {
            flag: Arc::new(AtomicBool::new(false)),
            parent: None,
            wake: Arc::new((Mutex::new(()), Condvar::new())),
        }))
    }

    /// A token set when this one is, or when it is triggered itself (which leaves this one
    /// untouched).
    pub fn child(&self) -> Self {
        Shutdown(Arc::new(Node {
            flag: Arc::new(AtomicBool::new(false)),
            parent: Some(self.0.clone()),
            wake: self.0.wake.clone(),
        }))
    }

    /// The process's token: the first SIGINT or SIGTERM triggers it, a second one exits at
    /// once with status 130 (an operator who asks twice does not want the drain).
    pub fn on_signals() -> std::io::Result<Self> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let token = Shutdown::new();
        for sig in [SIGINT, SIGTERM] {
            signal_hook::flag::register_conditional_shutdown(sig, 130, token.0.flag.clone())?;
        }
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
        let t = token.clone();
        // A signal handler may not take a lock, so this thread turns the signal into a
        // trigger that wakes the waiters.
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                if signals.forever().next().is_some() {
                    t.trigger();
                }
            })?;
        Ok(token)
    }

    pub fn trigger(&self) {
        self.0.flag.store(true, Ordering::SeqCst);
        let (lock, cv) = &*self.0.wake;
        let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
        cv.notify_all();
    }

    pub fn is_set(&self) -> bool {
        let mut node = Some(&self.0);
        while let Some(n) = node {
            if n.flag.load(Ordering::Relaxed) {
                return true;
            }
            node = n.parent.as_ref();
        }
        false
    }

    /// Blocks until the token is set.
    pub fn wait(&self) {
        let (lock, cv) = &*self.0.wake;
        let mut held = lock.lock().unwrap_or_else(|e| e.into_inner());
        while !self.is_set() {
            held = cv.wait(held).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Blocks at most `d`; true if the token is set (a periodic thread's sleep).
    pub fn wait_timeout(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let (lock, cv) = &*self.0.wake;
        let mut held = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.is_set() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            held = cv
                .wait_timeout(held, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_stops_with_its_parent_but_not_the_other_way() {
        let parent = Shutdown::new();
        let child = parent.child();
        child.trigger();
        assert!(child.is_set());
        assert!(!parent.is_set(), "a child never stops its parent");
        let other = parent.child();
        assert!(!other.is_set());
        parent.trigger();
        assert!(other.is_set());
    }

    #[test]
    fn a_trigger_wakes_a_waiter_before_its_timeout() {
        let token = Shutdown::new();
        let child = token.child();
        let waiter = std::thread::spawn(move || {
            let t0 = Instant::now();
            let set = child.wait_timeout(Duration::from_secs(30));
            (set, t0.elapsed())
        });
        std::thread::sleep(Duration::from_millis(50));
        token.trigger();
        let (set, waited) = waiter.join().unwrap();
        assert!(set);
        assert!(waited < Duration::from_secs(30), "woken, not timed out");
        assert!(!Shutdown::new().wait_timeout(Duration::from_millis(10)));
    }
}

//! Rolling windows of exact per-key counts (1, 10 and 60 minutes) for keys with full state.
//! Each window is two half-window generations aligned on the stream's time (packet time in
//! replay): the view is the current generation plus the previous one, so it always covers
//! between one half and one whole window of history (never less, which would hide a campaign
//! at a boundary). Memory is fixed per key; time only moves forward. A late message (a call
//! whose verdict landed seconds after its INVITE) counts in the generation its time falls in
//! while that is still kept, so late calls do not pile up into a false burst; older ones count
//! in the current generation.

use super::hll::Hll;
use crate::clock::Timestamp;

/// Registers of the distinct-number sketches per generation (256: about 6% error, exact for
/// the small counts rules look at first).
const HLL_P: u8 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowSpan {
    M1 = 0,
    M10 = 1,
    M60 = 2,
}

pub const SPANS: [WindowSpan; 3] = [WindowSpan::M1, WindowSpan::M10, WindowSpan::M60];

impl WindowSpan {
    pub fn micros(self) -> i64 {
        match self {
            WindowSpan::M1 => 60_000_000,
            WindowSpan::M10 => 600_000_000,
            WindowSpan::M60 => 3_600_000_000,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            WindowSpan::M1 => "1m",
            WindowSpan::M10 => "10m",
            WindowSpan::M60 => "60m",
        }
    }
}

/// Exact counts of one generation (or of a view, summed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub calls: u32,
    pub unsigned: u32,
    /// A, B, C, none.
    pub attest: [u32; 4],
    /// Passed, Failed, No-TN-Validation, none (order of `features::VERSTATS`).
    pub verstat: [u32; 4],
    pub verify_failed: u32,
    pub neighbour: u32,
    pub self_call: u32,
    pub invalid: u32,
    pub sequential: u32,
    pub replayed: u32,
    pub ended: u32,
    pub answered: u32,
    pub short_answered: u32,
    pub quick_cancel: u32,
    pub not_found: u32,
    pub duration_ms: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.calls += o.calls;
        self.unsigned += o.unsigned;
        for i in 0..4 {
            self.attest[i] += o.attest[i];
            self.verstat[i] += o.verstat[i];
        }
        self.verify_failed += o.verify_failed;
        self.neighbour += o.neighbour;
        self.self_call += o.self_call;
        self.invalid += o.invalid;
        self.sequential += o.sequential;
        self.replayed += o.replayed;
        self.ended += o.ended;
        self.answered += o.answered;
        self.short_answered += o.short_answered;
        self.quick_cancel += o.quick_cancel;
        self.not_found += o.not_found;
        self.duration_ms += o.duration_ms;
    }
}

#[derive(Clone, Debug)]
struct Generation {
    start: i64,
    counts: Counts,
    first_seen: Option<Timestamp>,
    dest: Hll,
    orig: Hll,
}

impl Generation {
    fn new(start: i64) -> Self {
        Generation {
            start,
            counts: Counts::default(),
            first_seen: None,
            dest: Hll::new(HLL_P),
            orig: Hll::new(HLL_P),
        }
    }

    fn reset(&mut self, start: i64) {
        self.start = start;
        self.counts = Counts::default();
        self.first_seen = None;
        self.dest.clear();
        self.orig.clear();
    }
}

#[derive(Clone, Debug)]
pub struct Window {
    span: WindowSpan,
    half: i64,
    cur: Generation,
    prev: Generation,
}

/// A window's current content.
pub struct View<'a> {
    pub span: WindowSpan,
    pub counts: Counts,
    pub first_seen: Option<Timestamp>,
    w: &'a Window,
}

impl View<'_> {
    pub fn distinct_dest(&self) -> u64 {
        Hll::estimate_union(&[&self.w.cur.dest, &self.w.prev.dest])
    }

    pub fn distinct_orig(&self) -> u64 {
        Hll::estimate_union(&[&self.w.cur.orig, &self.w.prev.orig])
    }

    /// Time the view covers so far, in minutes (at least one second's worth).
    pub fn minutes(&self, now: Timestamp) -> f64 {
        let since = self.first_seen.map_or(0, |f| now.0 - f.0);
        (since.max(1_000_000) as f64) / 60e6
    }
}

impl Window {
    pub fn new(span: WindowSpan, now: Timestamp) -> Self {
        let half = span.micros() / 2;
        let start = now.0.div_euclid(half) * half;
        Window {
            span,
            half,
            cur: Generation::new(start),
            prev: Generation::new(start - half),
        }
    }

    /// Moves the generations so `now` falls in the current one.
    pub fn advance(&mut self, now: Timestamp) {
        let start = now.0.div_euclid(self.half) * self.half;
        if start <= self.cur.start {
            return;
        }
        if start - self.cur.start == self.half {
            std::mem::swap(&mut self.cur, &mut self.prev);
            self.cur.reset(start);
        } else {
            self.prev.reset(start - self.half);
            self.cur.reset(start);
        }
    }

    /// The generation `at` falls in (the current one for anything older than the previous).
    fn generation_mut(&mut self, at: Timestamp) -> &mut Generation {
        if at.0 < self.cur.start && at.0 >= self.prev.start {
            &mut self.prev
        } else {
            &mut self.cur
        }
    }

    /// The counts of the generation `at` falls in, to add to; `at` is remembered as first seen.
    pub fn counts_mut(&mut self, at: Timestamp) -> &mut Counts {
        let g = self.generation_mut(at);
        if g.first_seen.is_none_or(|f| at < f && at.0 >= g.start) {
            g.first_seen = Some(at);
        }
        &mut g.counts
    }

    pub fn add_numbers(&mut self, at: Timestamp, dest_hash: Option<u64>, orig_hash: Option<u64>) {
        let g = self.generation_mut(at);
        if let Some(h) = dest_hash {
            g.dest.insert(h);
        }
        if let Some(h) = orig_hash {
            g.orig.insert(h);
        }
    }

    pub fn view(&self) -> View<'_> {
        let mut counts = self.prev.counts;
        counts.add(&self.cur.counts);
        let first_seen = match (self.prev.first_seen, self.cur.first_seen) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        View {
            span: self.span,
            counts,
            first_seen,
            w: self,
        }
    }

    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Self>() + 2 * (self.cur.dest.bytes() + self.cur.orig.bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_covers_half_to_one_window() {
        let t0 = Timestamp::from_secs(1_800_000_000); // a multiple of 30 s
        let mut w = Window::new(WindowSpan::M1, t0);
        for s in 0..90 {
            let now = Timestamp::from_secs(t0.as_secs() + s);
            w.advance(now);
            w.counts_mut(now).calls += 1;
            w.add_numbers(now, Some(s as u64 * 7919), None);
        }
        // At t0+89 s the generations are [60,90) and [30,60): 60 calls, first at t0+30.
        let v = w.view();
        assert_eq!(v.counts.calls, 60);
        assert_eq!(v.first_seen, Some(Timestamp::from_secs(t0.as_secs() + 30)));
        // A gap of more than a window empties it.
        w.advance(Timestamp::from_secs(t0.as_secs() + 200));
        assert_eq!(w.view().counts.calls, 0);
        assert_eq!(w.view().first_seen, None);
    }
}

//! Count-Min sketch with conservative update (Estan & Varghese 2002): per-key call counts for
//! every key kind in fixed memory, whatever the number of distinct keys. An estimate is never
//! below the true count; conservative update (raise only the rows at the minimum) keeps the
//! over-estimate small. Keys arrive as 64-bit hashes; each row uses a re-mixed index.

use super::hash::mix64;

#[derive(Clone, Debug)]
pub struct CountMin {
    width_mask: usize,
    depth: usize,
    cells: Box<[u32]>,
    total: u64,
}

impl CountMin {
    /// `width` is rounded up to a power of two; `depth` rows (1..=8).
    pub fn new(width: usize, depth: usize) -> Self {
        let width = width.max(16).next_power_of_two();
        let depth = depth.clamp(1, 8);
        CountMin {
            width_mask: width - 1,
            depth,
            cells: vec![0u32; width * depth].into_boxed_slice(),
            total: 0,
        }
    }

    fn index(&self, row: usize, key: u64) -> usize {
        let h = mix64(key ^ (row as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        row * (self.width_mask + 1) + (h as usize & self.width_mask)
    }

    /// Adds one occurrence of `key` (conservative update) and returns its new estimate.
    pub fn add(&mut self, key: u64) -> u32 {
        let mut idx = [0usize; 8];
        let mut min = u32::MAX;
        for (row, slot) in idx.iter_mut().enumerate().take(self.depth) {
            *slot = self.index(row, key);
            min = min.min(self.cells[*slot]);
        }
        let new = min.saturating_add(1);
        for &i in &idx[..self.depth] {
            if self.cells[i] < new {
                self.cells[i] = new;
            }
        }
        self.total += 1;
        new
    }

    pub fn estimate(&self, key: u64) -> u32 {
        (0..self.depth)
            .map(|row| self.cells[self.index(row, key)])
            .min()
            .unwrap_or(0)
    }

    pub fn clear(&mut self) {
        self.cells.fill(0);
        self.total = 0;
    }

    /// Occurrences added since the last clear.
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn bytes(&self) -> usize {
        self.cells.len() * 4
    }

    pub fn width(&self) -> usize {
        self.width_mask + 1
    }
}

/// Counts of the current and the previous epoch of stream time (two sketches swapped at each
/// epoch boundary): "how often was this key seen in the last one to two epochs".
#[derive(Clone, Debug)]
pub struct RecentCounts {
    now: CountMin,
    prev: CountMin,
    epoch_us: i64,
    epoch: i64,
}

impl RecentCounts {
    pub fn new(width: usize, depth: usize, epoch_us: i64) -> Self {
        RecentCounts {
            now: CountMin::new(width, depth),
            prev: CountMin::new(width, depth),
            epoch_us: epoch_us.max(1),
            epoch: i64::MIN,
        }
    }

    fn rotate(&mut self, at: i64) {
        let epoch = at.div_euclid(self.epoch_us);
        if epoch == self.epoch {
            return;
        }
        if epoch == self.epoch.wrapping_add(1) {
            std::mem::swap(&mut self.now, &mut self.prev);
            self.now.clear();
        } else if epoch > self.epoch {
            self.now.clear();
            self.prev.clear();
        } else {
            return; // time stepped back: keep counting in the current epoch
        }
        self.epoch = epoch;
    }

    /// Counts one occurrence at `at` (µs of stream time); returns the estimate over both
    /// epochs.
    pub fn add(&mut self, key: u64, at: i64) -> u32 {
        self.rotate(at);
        self.now.add(key).saturating_add(self.prev.estimate(key))
    }

    pub fn bytes(&self) -> usize {
        self.now.bytes() + self.prev.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::hash::Hash64;

    fn h(i: u64) -> u64 {
        Hash64::default().u64(i).finish()
    }

    #[test]
    fn never_underestimates_and_error_is_bounded() {
        // Zipf-like stream: key i appears 1 + 1000/(i+1) times, 20k keys.
        let mut cms = CountMin::new(4096, 4);
        let mut truth = Vec::new();
        for i in 0..20_000u64 {
            let n = 1 + 1000 / (i + 1);
            for _ in 0..n {
                cms.add(h(i));
            }
            truth.push(n as u32);
        }
        let total = cms.total() as f64;
        // Classic bound: error <= e/width * N with probability 1 - e^-depth; conservative
        // update does better, so check the bound holds for every key and the mean is small.
        let bound = (std::f64::consts::E / 4096.0 * total).ceil() as u32;
        let mut sum_err = 0u64;
        for (i, &t) in truth.iter().enumerate() {
            let e = cms.estimate(h(i as u64));
            assert!(e >= t, "key {i}: {e} < {t}");
            assert!(e - t <= bound, "key {i}: error {} > {bound}", e - t);
            sum_err += u64::from(e - t);
        }
        // Plain Count-Min over-estimates by about N/width on average; conservative update
        // must do clearly better.
        let mean = sum_err as f64 / truth.len() as f64;
        let plain = total / 4096.0;
        assert!(
            mean < 0.25 * plain,
            "mean over-estimate {mean} vs N/width {plain}"
        );
        assert_eq!(cms.estimate(h(0)), 1001);
    }

    #[test]
    fn conservative_update_returns_the_estimate() {
        let mut cms = CountMin::new(16, 2);
        assert_eq!(cms.add(7), 1);
        assert_eq!(cms.add(7), 2);
        assert_eq!(cms.estimate(7), 2);
        cms.clear();
        assert_eq!(cms.estimate(7), 0);
        assert_eq!(cms.width(), 16);
    }
}

//! HyperLogLog (Flajolet et al. 2007) with the small-range (linear counting) correction:
//! distinct called and calling numbers per key and window in a fixed 2^p bytes. Inputs are
//! already-hashed 64-bit values. Never allocates after construction.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hll {
    p: u8,
    regs: Box<[u8]>,
}

impl Hll {
    /// `p` in 4..=16: 2^p registers, standard error about 1.04 / sqrt(2^p).
    pub fn new(p: u8) -> Self {
        let p = p.clamp(4, 16);
        Hll {
            p,
            regs: vec![0u8; 1 << p].into_boxed_slice(),
        }
    }

    pub fn insert(&mut self, hash: u64) {
        let idx = (hash >> (64 - self.p)) as usize;
        // The remaining bits, with a sentinel so the rank is at most 64 - p + 1.
        let w = (hash << self.p) | (1u64 << (self.p - 1));
        let rank = w.leading_zeros() as u8 + 1;
        if rank > self.regs[idx] {
            self.regs[idx] = rank;
        }
    }

    pub fn clear(&mut self) {
        self.regs.fill(0);
    }

    pub fn bytes(&self) -> usize {
        self.regs.len()
    }

    /// Register-wise maximum: the sketch of the union.
    pub fn merge(&mut self, other: &Hll) {
        if other.p != self.p {
            return;
        }
        for (a, b) in self.regs.iter_mut().zip(other.regs.iter()) {
            *a = (*a).max(*b);
        }
    }

    /// Estimated distinct count of the union of `sketches` (all of the same precision),
    /// without allocating a merged copy.
    pub fn estimate_union(sketches: &[&Hll]) -> u64 {
        let Some(first) = sketches.first() else {
            return 0;
        };
        let m = first.regs.len();
        let mut sum = 0.0f64;
        let mut zeros = 0usize;
        for i in 0..m {
            let r = sketches
                .iter()
                .filter(|s| s.p == first.p)
                .map(|s| s.regs[i])
                .max()
                .unwrap_or(0);
            if r == 0 {
                zeros += 1;
            }
            sum += 1.0 / f64::from(1u32 << r.min(31));
        }
        let mf = m as f64;
        let alpha = match m {
            16 => 0.673,
            32 => 0.697,
            64 => 0.709,
            _ => 0.7213 / (1.0 + 1.079 / mf),
        };
        let raw = alpha * mf * mf / sum;
        let est = if raw <= 2.5 * mf && zeros > 0 {
            mf * (mf / zeros as f64).ln()
        } else {
            raw
        };
        est.round() as u64
    }

    pub fn estimate(&self) -> u64 {
        Hll::estimate_union(&[self])
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
    fn within_three_percent_at_100k_distinct() {
        let mut s = Hll::new(12);
        for i in 0..100_000u64 {
            s.insert(h(i));
            s.insert(h(i)); // duplicates change nothing
        }
        let e = s.estimate() as f64;
        let err = (e - 100_000.0).abs() / 100_000.0;
        assert!(err < 0.03, "estimate {e}, error {err}");
    }

    #[test]
    fn small_counts_are_nearly_exact_with_256_registers() {
        for n in [0u64, 1, 5, 20, 50] {
            let mut s = Hll::new(8);
            for i in 0..n {
                s.insert(h(i + 1000));
            }
            let e = s.estimate();
            assert!(e.abs_diff(n) <= 1 + n / 20, "n={n} e={e}");
        }
    }

    #[test]
    fn union_counts_the_overlap_once() {
        let (mut a, mut b) = (Hll::new(10), Hll::new(10));
        for i in 0..3000u64 {
            a.insert(h(i));
        }
        for i in 2000..5000u64 {
            b.insert(h(i));
        }
        let u = Hll::estimate_union(&[&a, &b]) as f64;
        assert!((u - 5000.0).abs() / 5000.0 < 0.06, "{u}");
        a.merge(&b);
        assert_eq!(a.estimate() as f64, u);
    }
}

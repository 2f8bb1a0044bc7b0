//! Space-Saving top-k (Metwally, Agrawal, El Abbadi 2005) over small labelled items: which
//! peers, origids and SPCs carry most of a key's calls, in k slots. An item's count is an
//! over-estimate by at most its `error`; any item with more than N/k occurrences is present.
//! k is small (a handful), so the minimum is found by a scan.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counted<T> {
    pub item: T,
    pub count: u64,
    pub error: u64,
}

#[derive(Clone, Debug)]
pub struct SpaceSaving<T> {
    k: usize,
    slots: Vec<Counted<T>>,
    total: u64,
}

impl<T: PartialEq + Clone> SpaceSaving<T> {
    pub fn new(k: usize) -> Self {
        SpaceSaving {
            k: k.max(1),
            slots: Vec::new(),
            total: 0,
        }
    }

    /// Counts one occurrence; `make` builds the stored item only when it takes a slot.
    pub fn add_with<Q: ?Sized>(
        &mut self,
        probe: &Q,
        matches: impl Fn(&T, &Q) -> bool,
        make: impl FnOnce() -> T,
    ) {
        self.total += 1;
        if let Some(s) = self.slots.iter_mut().find(|s| matches(&s.item, probe)) {
            s.count += 1;
            return;
        }
        if self.slots.len() < self.k {
            self.slots.push(Counted {
                item: make(),
                count: 1,
                error: 0,
            });
            return;
        }
        if let Some(min) = self.slots.iter_mut().min_by_key(|s| s.count) {
            let floor = min.count;
            *min = Counted {
                item: make(),
                count: floor + 1,
                error: floor,
            };
        }
    }

    pub fn add(&mut self, item: T) {
        let probe = item.clone();
        self.add_with(&probe, |a, b| a == b, || item);
    }

    /// Items, most counted first (ties keep insertion order).
    pub fn top(&self) -> Vec<&Counted<T>> {
        let mut v: Vec<&Counted<T>> = self.slots.iter().collect();
        v.sort_by_key(|c| std::cmp::Reverse(c.count));
        v
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heavy_hitters_survive_and_counts_bound_the_truth() {
        let mut ss = SpaceSaving::new(8);
        // "a" 50 times, "b" 30 times, then 100 distinct one-offs interleaved.
        let mut truth = std::collections::HashMap::new();
        for i in 0..100u32 {
            let noise = format!("n{i}");
            ss.add(noise.clone());
            *truth.entry(noise).or_insert(0u64) += 1;
            if i % 2 == 0 {
                ss.add("a".to_string());
                *truth.entry("a".to_string()).or_insert(0) += 1;
            }
            if i % 10 < 3 {
                ss.add("b".to_string());
                *truth.entry("b".to_string()).or_insert(0) += 1;
            }
        }
        let top = ss.top();
        assert_eq!(top.len(), 8);
        assert_eq!(top[0].item, "a");
        assert_eq!(top[1].item, "b");
        for c in &top {
            let t = truth[&c.item];
            assert!(c.count >= t && c.count - c.error <= t, "{c:?} true {t}");
        }
        assert_eq!(ss.total(), 180);
        // Guarantee: an item's over-count is at most N/k = 22.5, so the one-offs (true count
        // 1) stay below "b" (30) and both heavy hitters are present, in order.
        assert!(top[2].count <= 23, "{:?}", top[2]);
    }
}

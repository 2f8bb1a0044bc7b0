//! Replay detection: the same PASSporT signature on a different Call-ID within the freshness
//! window is a copied token, a spoofing signal. Shared by all workers (sharded locks), bounded
//! by count, entries dropped once older than the window. Entries dropped for room while still
//! inside the window are counted ([`ReplayGuard::evictions`]): a copied token may then
//! go unnoticed, and the operator must see that the limit is hit.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

const SHARDS: usize = 16;

struct Shard {
    /// First 16 bytes of the signature → (hash of the first Call-ID seen with it, its iat).
    seen: HashMap<[u8; 16], (u64, i64), ahash::RandomState>,
    order: VecDeque<([u8; 16], i64)>,
}

pub struct ReplayGuard {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    hasher: ahash::RandomState,
    /// Signatures forgotten while still inside the window because the shard was full.
    evictions: AtomicU64,
}

impl ReplayGuard {
    /// Remembers at most `capacity` signatures (oldest forgotten first).
    pub fn new(capacity: usize) -> Self {
        ReplayGuard {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        seen: HashMap::default(),
                        order: VecDeque::new(),
                    })
                })
                .collect(),
            per_shard: (capacity / SHARDS).max(1),
            hasher: ahash::RandomState::new(),
            evictions: AtomicU64::new(0),
        }
    }

    /// Records the signature for this call; true when another Call-ID used it within `window_s`.
    pub fn seen(
        &self,
        signature: &[u8; 64],
        call_id: &[u8],
        iat: i64,
        now: i64,
        window_s: i64,
    ) -> bool {
        let mut key = [0u8; 16];
        key.copy_from_slice(&signature[..16]);
        let call = self.hasher.hash_one(call_id);
        let Ok(mut shard) = self.shards[usize::from(signature[0]) % SHARDS].lock() else {
            return false;
        };
        while let Some((k, at)) = shard.order.front().copied() {
            let fresh = now - at <= window_s;
            if fresh && shard.order.len() < self.per_shard {
                break;
            }
            if fresh {
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
            shard.order.pop_front();
            if shard.seen.get(&k).is_some_and(|(_, t)| *t == at) {
                shard.seen.remove(&k);
            }
        }
        match shard.seen.get(&key) {
            Some((first_call, _)) => *first_call != call,
            None => {
                shard.seen.insert(key, (call, iat));
                shard.order.push_back((key, iat));
                false
            }
        }
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.seen.len()))
            .sum()
    }

    /// Signatures forgotten early because `capacity` was reached (the limit being hit).
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_signature_on_another_call_is_a_replay() {
        let g = ReplayGuard::new(1000);
        let sig = [9u8; 64];
        assert!(!g.seen(&sig, b"call-1", 100, 100, 60));
        assert!(
            !g.seen(&sig, b"call-1", 100, 101, 60),
            "a retransmission is not a replay"
        );
        assert!(g.seen(&sig, b"call-2", 100, 110, 60));
        // Outside the window the token would be stale anyway; the entry is forgotten.
        assert!(!g.seen(&sig, b"call-3", 100, 200, 60));
    }

    #[test]
    fn bounded() {
        let g = ReplayGuard::new(32);
        for i in 0..10_000u32 {
            let mut sig = [0u8; 64];
            sig[..4].copy_from_slice(&i.to_be_bytes());
            g.seen(&sig, b"c", 0, 0, 60);
        }
        assert!(g.len() <= 32, "{}", g.len());
        // All within the window: every signature not kept was evicted for room, and counted.
        assert_eq!(g.evictions(), 10_000 - g.len() as u64);
        // Expired entries are not evictions.
        let g = ReplayGuard::new(32);
        g.seen(&[1u8; 64], b"c", 0, 0, 60);
        g.seen(&[1u8; 64], b"d", 0, 100, 60);
        assert_eq!(g.evictions(), 0);
    }
}

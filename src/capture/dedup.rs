//! Drops the second copy of a packet that a Linux cooked capture (the "any" pseudo-interface)
//! saw on two interfaces: a host that routes or bridges a SIP packet between eth0 and eth1
//! hands it to the capture once per interface, and without this one call would become two
//! records (and every message would be counted twice).
//!
//! A copy is the same IP packet (header and payload, ignoring the TTL / hop limit and the IPv4
//! checksum, which a router changes) seen again within a few milliseconds. SIP's own
//! retransmissions come 500 ms or more apart (timer T1), so they are never taken for copies.
//! Bounded: at most `MAX_RECENT` packets are remembered; when more arrive within the window the
//! oldest are forgotten early and counted (a copy of a forgotten packet would then pass).
//! It never looks beyond the IP header and payload bytes it is given.

use crate::clock::Timestamp;
use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, Hasher};

/// Packets remembered at once: 10 ms at 800,000 packets/s.
pub const MAX_RECENT: usize = 8192;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyStats {
    /// Copies dropped.
    pub duplicates: u64,
    /// Packets forgotten before their window ended because `MAX_RECENT` was reached.
    pub evicted: u64,
}

pub struct CopyFilter {
    window_us: i64,
    order: VecDeque<(i64, u64)>,
    recent: HashSet<u64, ahash::RandomState>,
    hasher: ahash::RandomState,
    pub stats: CopyStats,
}

impl CopyFilter {
    pub fn new(window_us: i64) -> Self {
        CopyFilter {
            window_us,
            order: VecDeque::new(),
            recent: HashSet::default(),
            hasher: ahash::RandomState::new(),
            stats: CopyStats::default(),
        }
    }

    /// True when `ip` (an IPv4 or IPv6 packet) is a copy of one seen within the window; such a
    /// packet is counted and must be skipped.
    pub fn is_copy(&mut self, ts: Timestamp, ip: &[u8]) -> bool {
        while let Some(&(t, h)) = self.order.front() {
            if ts.0.saturating_sub(t) <= self.window_us {
                break;
            }
            self.order.pop_front();
            self.recent.remove(&h);
        }
        let Some(key) = self.key(ip) else {
            return false;
        };
        if self.recent.contains(&key) {
            self.stats.duplicates += 1;
            return true;
        }
        if self.order.len() >= MAX_RECENT {
            if let Some((_, h)) = self.order.pop_front() {
                self.recent.remove(&h);
                self.stats.evicted += 1;
            }
        }
        self.order.push_back((ts.0, key));
        self.recent.insert(key);
        false
    }

    /// Packets remembered now.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// A hash of the packet without the fields a router rewrites; None when it is too short
    /// to be IP (the decoder reports that).
    fn key(&self, ip: &[u8]) -> Option<u64> {
        let mut h = self.hasher.build_hasher();
        match ip.first()? >> 4 {
            4 if ip.len() >= 20 => {
                h.write(&ip[..8]);
                h.write(&ip[9..10]);
                h.write(&ip[12..]);
            }
            6 if ip.len() >= 40 => {
                h.write(&ip[..7]);
                h.write(&ip[8..]);
            }
            _ => return None,
        }
        Some(h.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4(ttl: u8, checksum: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 7, 0, 0, ttl, 17];
        p.extend_from_slice(&checksum.to_be_bytes());
        p.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn a_routed_copy_within_the_window_is_dropped_once_counted() {
        let mut f = CopyFilter::new(10_000);
        let t = Timestamp(1_000_000);
        assert!(!f.is_copy(t, &ipv4(64, 0x1111, b"INVITE")));
        // The same packet after a router: TTL one less, checksum rewritten.
        assert!(f.is_copy(Timestamp(t.0 + 40), &ipv4(63, 0x1211, b"INVITE")));
        assert_eq!(f.stats.duplicates, 1);
        // Another payload is not a copy; nor is the same packet after the window (a SIP
        // retransmission).
        assert!(!f.is_copy(Timestamp(t.0 + 50), &ipv4(64, 0x1111, b"BYE")));
        assert!(!f.is_copy(Timestamp(t.0 + 500_000), &ipv4(64, 0x1111, b"INVITE")));
        assert_eq!(f.stats.duplicates, 1);
    }

    #[test]
    fn memory_is_bounded_and_the_limit_counted() {
        let mut f = CopyFilter::new(1_000_000);
        for i in 0..(MAX_RECENT as u32 + 100) {
            assert!(!f.is_copy(Timestamp(1), &ipv4(64, 0, &i.to_be_bytes())));
        }
        assert_eq!(f.len(), MAX_RECENT);
        assert_eq!(f.stats.evicted, 100);
        // Not IP at all: left to the decoder.
        assert!(!f.is_copy(Timestamp(1), &[0x45, 0]));
    }
}

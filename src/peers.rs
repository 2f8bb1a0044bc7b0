//! Upstream peer attribution: which interconnect partner handed us a call, from its source
//! address and the `[[peers]]` tables of the configuration. Longest prefix wins. An address in no
//! table belongs to [`UNKNOWN_PEER`]; the record keeps the IP itself, never a guess.

use crate::config::PeerConfig;
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::Arc;

pub const UNKNOWN_PEER: &str = "unknown";

/// The peer table as workers read it: swapped whole by a SIGHUP reload, read lock-free.
pub type SharedPeers = Arc<arc_swap::ArcSwap<PeerTable>>;

/// A shared table built from the configuration.
pub fn shared(peers: &[PeerConfig]) -> SharedPeers {
    Arc::new(arc_swap::ArcSwap::from_pointee(PeerTable::new(peers)))
}

/// A peer as it appears in records: shared, cheap to clone per call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub name: Arc<str>,
    pub ocn: Option<Arc<str>>,
}

/// Accepts "203.0.113.0/24", "2001:db8::/32" or a bare address (a host route).
pub fn parse_cidr(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
        .map(|n| n.trunc())
}

#[derive(Debug)]
pub struct PeerTable {
    // Sorted by prefix length, longest first, so the first match is the most specific.
    routes: Vec<(IpNet, Peer)>,
    unknown: Peer,
}

impl PeerTable {
    /// Builds the table; entries whose CIDR does not parse are skipped (validation has already
    /// rejected them in any loaded configuration).
    pub fn new(peers: &[PeerConfig]) -> Self {
        let mut routes = Vec::new();
        for p in peers {
            let peer = Peer {
                name: Arc::from(p.name.as_str()),
                ocn: (!p.ocn.is_empty()).then(|| Arc::from(p.ocn.as_str())),
            };
            for cidr in &p.cidrs {
                if let Some(net) = parse_cidr(cidr) {
                    routes.push((net, peer.clone()));
                }
            }
        }
        routes.sort_by_key(|r| std::cmp::Reverse(r.0.prefix_len()));
        PeerTable {
            routes,
            unknown: Peer {
                name: Arc::from(UNKNOWN_PEER),
                ocn: None,
            },
        }
    }

    pub fn lookup(&self, ip: IpAddr) -> &Peer {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.routes
            .iter()
            .find(|(net, _)| net.contains(&ip))
            .map_or(&self.unknown, |(_, p)| p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, ocn: &str, cidrs: &[&str]) -> PeerConfig {
        PeerConfig {
            name: name.into(),
            ocn: ocn.into(),
            cidrs: cidrs.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn longest_prefix_wins_and_unknown_is_explicit() {
        let t = PeerTable::new(&[
            peer("wide", "1111", &["198.51.100.0/24"]),
            peer("narrow", "2222", &["198.51.100.10", "2001:db8::/32"]),
        ]);
        assert_eq!(&*t.lookup("198.51.100.10".parse().unwrap()).name, "narrow");
        assert_eq!(&*t.lookup("198.51.100.11".parse().unwrap()).name, "wide");
        assert_eq!(
            t.lookup("198.51.100.11".parse().unwrap()).ocn.as_deref(),
            Some("1111")
        );
        assert_eq!(&*t.lookup("2001:db8::5".parse().unwrap()).name, "narrow");
        assert_eq!(
            &*t.lookup("::ffff:198.51.100.10".parse().unwrap()).name,
            "narrow"
        );
        let u = t.lookup("192.0.2.1".parse().unwrap());
        assert_eq!(&*u.name, UNKNOWN_PEER);
        assert_eq!(u.ocn, None);
    }

    #[test]
    fn cidr_parsing() {
        assert!(parse_cidr("10.1.2.3/8").is_some());
        assert!(parse_cidr("::1").is_some());
        assert!(parse_cidr("10.0.0.0/33").is_none());
        assert!(parse_cidr("host.example").is_none());
    }
}

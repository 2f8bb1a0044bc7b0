//! The network scenario's call graph: the providers (name, OCN, RMD-like id, SPC, role, sensor
//! or not, how their SBCs write SIP), the routes calls take from an originating or gateway
//! provider to a terminating one, and the interconnects those routes use, each with its own
//! /24 (the upstream's SBCs on .10-.12, the downstream's on .200).
//!
//! Constants only, plus the derived interconnect list; it must never change the graph from one
//! run to the next (the ground truth and every sensor.toml are written from it).

/// What a provider is in the graph (the ITG's hop roles).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Has customers (enterprises, dialers) who place calls; signs them.
    Originating,
    /// Takes foreign carriers' calls into the network; signs them C.
    Gateway,
    /// Transit between providers.
    Intermediate,
    /// Delivers to the called subscriber.
    Terminating,
}

/// What an intermediate does to the Identity header of calls it forwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnForward {
    /// Passes the header on unchanged.
    Keep,
    /// Replaces the PASSporT with its own (its certificate, attestation lowered).
    Resign,
}

pub struct Provider {
    pub name: &'static str,
    pub ocn: &'static str,
    /// Robocall Mitigation Database number, in the shape the FCC gives them.
    pub rmd: &'static str,
    pub spc: &'static str,
    pub x5u: &'static str,
    pub role: Role,
    pub has_sensor: bool,
    pub on_forward: OnForward,
    /// SIP writing style of its SBCs (see `sip::render_as`).
    pub style: u8,
    pub user_agent: &'static str,
    /// First three octets of the /24 its customers (or, for a gateway, the foreign carrier)
    /// send from. Not an interconnect with a provider: calls from there have no upstream OCN.
    pub access_net: [u8; 3],
}

pub const PROVIDERS: &[Provider] = &[
    Provider {
        name: "orig-alpha",
        ocn: "7101",
        rmd: "RMD0010711",
        spc: "710A",
        x5u: "https://cert.orig-alpha.example/sti/710A.pem",
        role: Role::Originating,
        has_sensor: true,
        on_forward: OnForward::Keep,
        style: 0,
        user_agent: "Ribbon SBC 10.1",
        access_net: [100, 64, 1],
    },
    Provider {
        name: "orig-bravo",
        ocn: "7202",
        rmd: "RMD0010722",
        spc: "720B",
        x5u: "https://cert.orig-bravo.example/sti/720B.pem",
        role: Role::Originating,
        has_sensor: true,
        on_forward: OnForward::Keep,
        style: 1,
        user_agent: "Oracle ESBC 9.0",
        access_net: [100, 64, 2],
    },
    Provider {
        name: "gateway-kilo",
        ocn: "7303",
        rmd: "RMD0010733",
        spc: "730K",
        x5u: "https://pki.gateway-kilo.example/730K.pem",
        role: Role::Gateway,
        has_sensor: true,
        on_forward: OnForward::Keep,
        style: 1,
        user_agent: "AudioCodes Mediant SW",
        access_net: [203, 0, 113],
    },
    Provider {
        name: "transit-charlie",
        ocn: "7404",
        rmd: "RMD0010744",
        spc: "740C",
        x5u: "https://sti.transit-charlie.example/740C.pem",
        role: Role::Intermediate,
        has_sensor: true,
        on_forward: OnForward::Keep,
        style: 2,
        user_agent: "Metaswitch Perimeta",
        access_net: [100, 64, 4],
    },
    Provider {
        name: "transit-delta",
        ocn: "7505",
        rmd: "RMD0010755",
        spc: "750D",
        x5u: "https://cert.transit-delta.example/750D.pem",
        role: Role::Intermediate,
        has_sensor: false,
        on_forward: OnForward::Keep,
        style: 0,
        user_agent: "Sonus SBC",
        access_net: [100, 64, 5],
    },
    Provider {
        name: "transit-echo",
        ocn: "7606",
        rmd: "RMD0010766",
        spc: "760E",
        x5u: "https://cert.transit-echo.example/sti/760E.pem",
        role: Role::Intermediate,
        has_sensor: true,
        on_forward: OnForward::Resign,
        style: 1,
        user_agent: "Acme Packet SBC",
        access_net: [100, 64, 6],
    },
    Provider {
        name: "legacy-foxtrot",
        ocn: "7707",
        rmd: "RMD0010777",
        spc: "770F",
        x5u: "https://cert.legacy-foxtrot.example/770F.pem",
        role: Role::Intermediate,
        has_sensor: true,
        on_forward: OnForward::Keep,
        style: 2,
        user_agent: "Cisco-SIPGateway/IOS-15.x",
        access_net: [100, 64, 7],
    },
    Provider {
        name: "term-golf",
        ocn: "7808",
        rmd: "RMD0010788",
        spc: "780G",
        x5u: "https://cert.term-golf.example/sti/780G.pem",
        role: Role::Terminating,
        has_sensor: true,
        on_forward: OnForward::Keep,
        style: 0,
        user_agent: "Ribbon SBC 9.2",
        access_net: [100, 64, 8],
    },
    Provider {
        name: "term-hotel",
        ocn: "7909",
        rmd: "RMD0010799",
        spc: "790H",
        x5u: "https://cert.term-hotel.example/sti/790H.pem",
        role: Role::Terminating,
        has_sensor: true,
        on_forward: OnForward::Keep,
        style: 2,
        user_agent: "Cisco-CUBE/16.12",
        access_net: [100, 64, 9],
    },
];

/// Provider indices, named for the routes below.
pub const ALPHA: usize = 0;
pub const BRAVO: usize = 1;
pub const KILO: usize = 2;
pub const CHARLIE: usize = 3;
pub const DELTA: usize = 4;
pub const ECHO: usize = 5;
pub const FOXTROT: usize = 6;
pub const GOLF: usize = 7;
pub const HOTEL: usize = 8;

/// The interconnect that is TDM-like (ISUP through media gateways): the Identity header does
/// not survive it, and it adds conversion delay.
pub const TDM: (usize, usize) = (FOXTROT, HOTEL);

/// A path of provider indices and its share of the calls between its ends.
pub type Route = (&'static [usize], f64);

/// Least-cost routing as the background sees it: for each (first provider, terminating
/// provider), the routes and their shares. Every route is a simple path.
pub const ROUTES: &[(usize, usize, &[Route])] = &[
    (
        ALPHA,
        GOLF,
        &[
            (&[ALPHA, GOLF], 0.5),
            (&[ALPHA, CHARLIE, GOLF], 0.3),
            (&[ALPHA, CHARLIE, ECHO, GOLF], 0.2),
        ],
    ),
    (
        ALPHA,
        HOTEL,
        &[
            (&[ALPHA, CHARLIE, HOTEL], 0.6),
            (&[ALPHA, CHARLIE, ECHO, HOTEL], 0.2),
            (&[ALPHA, CHARLIE, DELTA, FOXTROT, HOTEL], 0.2),
        ],
    ),
    (
        BRAVO,
        GOLF,
        &[(&[BRAVO, CHARLIE, GOLF], 0.5), (&[BRAVO, ECHO, GOLF], 0.5)],
    ),
    (
        BRAVO,
        HOTEL,
        &[
            (&[BRAVO, CHARLIE, HOTEL], 0.4),
            (&[BRAVO, ECHO, HOTEL], 0.3),
            (&[BRAVO, CHARLIE, DELTA, ECHO, FOXTROT, HOTEL], 0.3),
        ],
    ),
    (
        KILO,
        GOLF,
        &[
            (&[KILO, CHARLIE, GOLF], 0.6),
            (&[KILO, DELTA, ECHO, GOLF], 0.4),
        ],
    ),
    (
        KILO,
        HOTEL,
        &[
            (&[KILO, CHARLIE, HOTEL], 0.5),
            (&[KILO, DELTA, FOXTROT, HOTEL], 0.5),
        ],
    ),
];

/// Routes of the campaigns, which must be in [`ROUTES`] too (the interconnects exist).
pub const ROUTE_LONG: &[usize] = &[BRAVO, CHARLIE, DELTA, ECHO, FOXTROT, HOTEL];
pub const ROUTE_GATEWAY: &[usize] = &[KILO, DELTA, ECHO, GOLF];
pub const ROUTE_ALPHA: &[usize] = &[ALPHA, CHARLIE, ECHO, GOLF];

/// One directed interconnect: `from` sends INVITEs to `to` over its own /24.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interconnect {
    pub from: usize,
    pub to: usize,
    pub net: [u8; 3],
    pub tdm: bool,
}

impl Interconnect {
    /// The sending SBC's address for a call (`host` 10..=12).
    pub fn from_ip(&self, host: u8) -> [u8; 4] {
        [self.net[0], self.net[1], self.net[2], host]
    }

    pub fn to_ip(&self) -> [u8; 4] {
        [self.net[0], self.net[1], self.net[2], 200]
    }

    /// The sending side's range, as a `[[peers]]` CIDR.
    pub fn from_cidr(&self) -> String {
        format!("{}.{}.{}.0/25", self.net[0], self.net[1], self.net[2])
    }

    /// The receiving side's range.
    pub fn to_cidr(&self) -> String {
        format!("{}.{}.{}.128/25", self.net[0], self.net[1], self.net[2])
    }
}

/// The receiving SBC of a provider's access side (customers, foreign carrier).
pub fn access_to_ip(p: usize) -> [u8; 4] {
    let n = PROVIDERS[p].access_net;
    [n[0], n[1], n[2], 200]
}

/// Every interconnect the routes use, in a fixed order (sorted by provider pair), numbered
/// 198.18.(20 + i).0/24.
pub fn interconnects() -> Vec<Interconnect> {
    let mut pairs: Vec<(usize, usize)> = ROUTES
        .iter()
        .flat_map(|(_, _, routes)| routes.iter())
        .flat_map(|(path, _)| path.windows(2).map(|w| (w[0], w[1])))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    pairs
        .into_iter()
        .enumerate()
        .map(|(i, (from, to))| Interconnect {
            from,
            to,
            net: [198, 18, 20 + i as u8],
            tdm: (from, to) == TDM,
        })
        .collect()
}

/// The interconnect from `a` to `b`, if the graph has one.
pub fn link(links: &[Interconnect], a: usize, b: usize) -> Option<&Interconnect> {
    links.iter().find(|l| l.from == a && l.to == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_simple_paths_with_their_ends_and_shares() {
        for (first, last, routes) in ROUTES {
            let total: f64 = routes.iter().map(|r| r.1).sum();
            assert!((total - 1.0).abs() < 1e-9, "{first}->{last}: {total}");
            for (path, _) in routes.iter() {
                assert_eq!(path.first(), Some(first));
                assert_eq!(path.last(), Some(last));
                let mut seen = path.to_vec();
                seen.sort_unstable();
                seen.dedup();
                assert_eq!(seen.len(), path.len(), "{path:?} visits a provider twice");
            }
        }
        let all: Vec<&[usize]> = ROUTES
            .iter()
            .flat_map(|(_, _, r)| r.iter().map(|x| x.0))
            .collect();
        for r in [ROUTE_LONG, ROUTE_GATEWAY, ROUTE_ALPHA] {
            assert!(
                all.contains(&r),
                "campaign route {r:?} is a background route"
            );
        }
    }

    #[test]
    fn interconnects_have_distinct_nets_and_one_tdm_link() {
        let l = interconnects();
        assert!(l.len() >= 10);
        assert_eq!(l.iter().filter(|x| x.tdm).count(), 1);
        let mut nets: Vec<[u8; 3]> = l.iter().map(|x| x.net).collect();
        nets.dedup();
        assert_eq!(nets.len(), l.len());
        assert!(l.iter().all(|x| PROVIDERS[x.to].role != Role::Originating));
        // One provider without a sensor, in the middle of the long route.
        let blind: Vec<usize> = (0..PROVIDERS.len())
            .filter(|&p| !PROVIDERS[p].has_sensor)
            .collect();
        assert_eq!(blind, [DELTA]);
        assert!(ROUTE_LONG.contains(&DELTA) && ROUTE_LONG.contains(&ECHO));
    }
}

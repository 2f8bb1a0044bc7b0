//! The network scenario's plan: every call with its route through the providers, and per hop
//! (leg) its Call-ID, sending SBC, delay from the first INVITE and what its INVITE's Identity
//! header is (none, signed, kept, re-signed, dropped). Background traffic follows the routes'
//! shares; campaigns originate at one provider and take one fixed route. Pure and deterministic
//! for a seed.
//!
//! The plan must never give a leg an Identity its upstream could not have sent (a header does
//! not come back after a TDM hop, only the re-signing intermediate changes a PASSporT).

use super::topology::{
    self, Interconnect, OnForward, Role, ALPHA, BRAVO, GOLF, HOTEL, KILO, PROVIDERS, ROUTE_ALPHA,
    ROUTE_GATEWAY, ROUTE_LONG,
};
use crate::scenario::numbers::{self, format_tn, npa_nxx, valid_nxx, valid_tn, valid_tn_in};
use crate::scenario::plan::{
    arrivals, human_dialog, one_ring_dialog, Answering, End, Kind, Scale, BACKGROUND, SDP_USERS,
};
use crate::scenario::rng::Rng;
use crate::scenario::sip::Step;

/// A PASSporT as the plan describes it; `generate` signs it (deterministically, so a kept
/// header is the same bytes on every leg that carries it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Passport {
    /// Index into `PROVIDERS` (and the PKI's signers) of the provider that signed it.
    pub signer: usize,
    pub attest: char,
    pub origid: u32,
    pub iat: i64,
}

/// What one leg's INVITE carries, compared with the leg before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityAtHop {
    /// No Identity header and none was lost here (a customer's or foreign call, or unsigned).
    None,
    /// The first provider signed it on this leg.
    Signed,
    /// The upstream passed the previous leg's header on unchanged.
    Kept,
    /// The upstream replaced it with its own PASSporT.
    Resigned,
    /// The previous leg had one; this TDM-like leg lost it.
    Dropped,
}

#[derive(Clone, Debug)]
pub struct Leg {
    pub call_id: String,
    /// Last octet of the sending SBC's (or customer's) address.
    pub host: u8,
    /// Time of this leg's INVITE after the first leg's, µs.
    pub delay_us: i64,
    pub identity: IdentityAtHop,
    pub passport: Option<Passport>,
}

#[derive(Clone, Debug)]
pub struct NetCall {
    /// The first leg's INVITE (customer or foreign carrier to the first provider), µs.
    pub start_us: i64,
    pub group: u16,
    pub route: &'static [usize],
    pub caller: String,
    pub callee: String,
    pub trying_ms: u32,
    pub ringing_ms: Option<u32>,
    pub end: End,
    /// The originating equipment (leg 0's User-Agent) and its SDP `o=` user, which the
    /// providers' SBCs pass on (signalling-only B2BUAs keep the offer's origin line).
    pub customer_ua: &'static str,
    pub sdp_user: &'static str,
    /// `legs[k]` arrives at `route[k]`; `legs[0]` comes from a customer or foreign carrier.
    pub legs: Vec<Leg>,
}

#[derive(Clone, Debug)]
pub struct Group {
    pub id: String,
    pub kind: Option<Kind>,
    pub route: Option<&'static [usize]>,
    pub calls: u32,
    pub rate_per_s: f64,
    pub first_us: i64,
    pub last_us: i64,
}

pub struct NetPlan {
    pub groups: Vec<Group>,
    /// Sorted by start time.
    pub calls: Vec<NetCall>,
    pub origids: Vec<String>,
    pub links: Vec<Interconnect>,
}

pub struct NetPlanOptions {
    pub background: u32,
    pub duration_s: u32,
    pub seed: u64,
    pub scale: Scale,
    pub start_unix: i64,
}

const CUSTOMER_UAS: &[&str] = &[
    "Yealink SIP-T54W",
    "Asterisk PBX 18.9.0",
    "FreeSWITCH-mod_sofia/1.10",
    "Avaya SIP Enablement Services",
    "BroadWorks",
    "Cisco-CUCM14.0",
];

/// Who places the background: share of volume and attestation weights (A, B, C, unsigned) of
/// the first provider for its customers' calls.
const ORIGINS: &[(usize, f64, [f64; 4])] = &[
    (ALPHA, 0.45, [0.90, 0.07, 0.03, 0.0]),
    (BRAVO, 0.35, [0.80, 0.15, 0.04, 0.01]),
    (KILO, 0.20, [0.0, 0.0, 0.70, 0.30]),
];

/// Terminating providers and their shares.
const DESTINATIONS: &[(usize, f64)] = &[(GOLF, 0.55), (HOTEL, 0.45)];

struct Builder {
    calls: Vec<NetCall>,
    groups: Vec<Group>,
    origids: Vec<String>,
    links: Vec<Interconnect>,
    ids: Rng,
    delays: Rng,
    /// The re-signer's origid per (re-signer, upstream): the point where the call entered
    /// its network, as its signing service would name it.
    resign_origids: std::collections::BTreeMap<(usize, usize), u32>,
}

/// One call as the originator places it, before the network routes it.
struct Placed {
    group: u16,
    start_us: i64,
    route: &'static [usize],
    caller: String,
    callee: String,
    /// The first provider's attestation and origid (None: it does not sign this call).
    signing: Option<(char, u32)>,
    dialog: (u32, Option<u32>, End),
    customer_ua: &'static str,
    sdp_user: &'static str,
}

impl Builder {
    fn new_origid(&mut self, rng: &mut Rng) -> u32 {
        self.origids.push(rng.uuid());
        (self.origids.len() - 1) as u32
    }

    fn call_id(&mut self, style: u8, ip: [u8; 4]) -> String {
        match style {
            1 => self.ids.uuid(),
            _ => format!(
                "{}@{}.{}.{}.{}",
                self.ids.hex64(),
                ip[0],
                ip[1],
                ip[2],
                ip[3]
            ),
        }
    }

    fn open_group(
        &mut self,
        id: &str,
        kind: Option<Kind>,
        route: Option<&'static [usize]>,
        rate: f64,
    ) -> u16 {
        self.groups.push(Group {
            id: id.to_string(),
            kind,
            route,
            calls: 0,
            rate_per_s: rate,
            first_us: i64::MAX,
            last_us: i64::MIN,
        });
        (self.groups.len() - 1) as u16
    }

    /// Routes a placed call: per leg a Call-ID, sender, delay and Identity.
    fn push(&mut self, p: Placed) {
        let route = p.route;
        let mut legs: Vec<Leg> = Vec::with_capacity(route.len());
        let mut delay_us = 0i64;
        let mut prev: Option<Passport> = None;
        for k in 0..route.len() {
            let host = 10 + self.ids.below(3) as u8;
            let (style, ip, tdm) = if k == 0 {
                let n = PROVIDERS[route[0]].access_net;
                ((route[0] as u8 + 1) % 3, [n[0], n[1], n[2], host], false)
            } else {
                let l = topology::link(&self.links, route[k - 1], route[k])
                    .copied()
                    .unwrap_or_else(|| panic!("no interconnect {route:?} leg {k}"));
                (PROVIDERS[route[k - 1]].style, l.from_ip(host), l.tdm)
            };
            if k > 0 {
                // A B2BUA's routing and signalling time; a TDM-like hop adds media-gateway
                // conversion (ISUP IAM and back).
                let mut d = self
                    .delays
                    .lognormal(40_000.0, 0.5)
                    .clamp(8_000.0, 300_000.0);
                if tdm {
                    d += self.delays.uniform(250_000.0, 700_000.0);
                }
                delay_us += d as i64;
            }
            let iat = (p.start_us + delay_us).div_euclid(1_000_000);
            let (identity, passport) = match (k, prev) {
                (0, _) => (IdentityAtHop::None, None),
                (1, _) => match p.signing {
                    Some((attest, origid)) => (
                        IdentityAtHop::Signed,
                        Some(Passport {
                            signer: route[0],
                            attest,
                            origid,
                            iat,
                        }),
                    ),
                    None => (IdentityAtHop::None, None),
                },
                (_, None) => (IdentityAtHop::None, None),
                (_, Some(_)) if tdm => (IdentityAtHop::Dropped, None),
                (_, Some(old)) => match PROVIDERS[route[k - 1]].on_forward {
                    OnForward::Keep => (IdentityAtHop::Kept, Some(old)),
                    OnForward::Resign => {
                        let from = route[k - 1];
                        let upstream = route[k - 2];
                        let origid = match self.resign_origids.get(&(from, upstream)) {
                            Some(&o) => o,
                            None => {
                                let mut r = Rng::fork(self.ids.next_u64(), "resign-origid");
                                let o = self.new_origid(&mut r);
                                self.resign_origids.insert((from, upstream), o);
                                o
                            }
                        };
                        (
                            IdentityAtHop::Resigned,
                            Some(Passport {
                                signer: route[k - 1],
                                // An intermediate cannot vouch for the caller as the
                                // originator did: full attestation becomes partial, the rest
                                // gateway attestation.
                                attest: if old.attest == 'A' { 'B' } else { 'C' },
                                origid,
                                iat,
                            }),
                        )
                    }
                },
            };
            prev = passport;
            let call_id = self.call_id(style, ip);
            legs.push(Leg {
                call_id,
                host,
                delay_us,
                identity,
                passport,
            });
        }
        let g = &mut self.groups[p.group as usize];
        g.calls += 1;
        g.first_us = g.first_us.min(p.start_us);
        g.last_us = g.last_us.max(p.start_us);
        self.calls.push(NetCall {
            start_us: p.start_us,
            group: p.group,
            route,
            caller: p.caller,
            callee: p.callee,
            trying_ms: p.dialog.0,
            ringing_ms: p.dialog.1,
            end: p.dialog.2,
            customer_ua: p.customer_ua,
            sdp_user: p.sdp_user,
            legs,
        });
    }
}

/// The route a background call takes from `first` to `last`, by the routes' shares.
fn pick_route(rng: &mut Rng, first: usize, last: usize) -> &'static [usize] {
    let routes = topology::ROUTES
        .iter()
        .find(|r| r.0 == first && r.1 == last)
        .map_or(&[][..], |r| r.2);
    let weights: Vec<f64> = routes.iter().map(|r| r.1).collect();
    routes[rng.weighted(&weights)].0
}

pub fn build(o: &NetPlanOptions) -> NetPlan {
    let start_us = o.start_unix * 1_000_000;
    let duration_us = i64::from(o.duration_s.max(60)) * 1_000_000;
    let mut b = Builder {
        calls: Vec::with_capacity(o.background as usize + 10_000),
        groups: Vec::new(),
        origids: Vec::new(),
        links: topology::interconnects(),
        ids: Rng::fork(o.seed, "net-call-ids"),
        delays: Rng::fork(o.seed, "net-delays"),
        resign_origids: Default::default(),
    };
    b.open_group(
        "bg",
        None,
        None,
        f64::from(o.background) / (duration_us as f64 / 1e6),
    );
    background(&mut b, o, start_us, duration_us);
    campaigns(&mut b, o, start_us, duration_us);
    b.calls.sort_by_key(|c| c.start_us);
    NetPlan {
        groups: b.groups,
        calls: b.calls,
        origids: b.origids,
        links: b.links,
    }
}

fn background(b: &mut Builder, o: &NetPlanOptions, start_us: i64, duration_us: i64) {
    let mut rng = Rng::fork(o.seed, "net-background");
    struct Customer {
        tn: String,
        first: usize,
        signing: Option<(char, u32)>,
        ua: &'static str,
        sdp: &'static str,
    }
    let shares: Vec<f64> = ORIGINS.iter().map(|x| x.1).collect();
    let population = (o.background as usize * 3 / 10).max(300);
    let customers: Vec<Customer> = (0..population)
        .map(|_| {
            let (first, _, attest) = ORIGINS[rng.weighted(&shares)];
            let signing = match rng.weighted(&attest) {
                3 => None,
                i => Some((['A', 'B', 'C'][i], b.new_origid(&mut rng))),
            };
            Customer {
                tn: valid_tn(&mut rng),
                first,
                signing,
                ua: CUSTOMER_UAS[rng.below(CUSTOMER_UAS.len() as u64) as usize],
                sdp: SDP_USERS[rng.below(SDP_USERS.len() as u64) as usize],
            }
        })
        .collect();
    let dest_shares: Vec<f64> = DESTINATIONS.iter().map(|d| d.1).collect();
    let mean_gap = duration_us as f64 / f64::from(o.background.max(1));
    let mut t = start_us as f64 + rng.exp(mean_gap);
    for _ in 0..o.background {
        let idx = ((rng.f64().powf(1.5)) * population as f64) as usize;
        let c = &customers[idx.min(population - 1)];
        let last = DESTINATIONS[rng.weighted(&dest_shares)].0;
        let route = pick_route(&mut rng, c.first, last);
        let callee = if rng.chance(0.2) {
            let npa: u16 = c.tn[1..4].parse().unwrap_or(212);
            valid_tn_in(&mut rng, npa)
        } else {
            valid_tn(&mut rng)
        };
        let dialog = human_dialog(&mut rng, &BACKGROUND);
        let placed = Placed {
            group: 0,
            start_us: t as i64,
            route,
            caller: c.tn.clone(),
            callee,
            signing: c.signing,
            dialog,
            customer_ua: c.ua,
            sdp_user: c.sdp,
        };
        b.push(placed);
        t += rng.exp(mean_gap);
    }
}

struct CampaignDef {
    id: &'static str,
    kind: Kind,
    route: &'static [usize],
    attest: Option<char>,
    calls: u32,
    rate: f64,
}

/// The campaigns, in the order they start (one after the other, so no sensor sees two at once
/// from one upstream). Each crosses the providers its route names.
const CAMPAIGNS: &[CampaignDef] = &[
    CampaignDef {
        id: "neighbour-bravo",
        kind: Kind::NeighbourSpoofing,
        route: ROUTE_LONG,
        attest: Some('B'),
        calls: 400,
        rate: 8.0,
    },
    CampaignDef {
        id: "onering-kilo",
        kind: Kind::OneRing,
        route: ROUTE_GATEWAY,
        attest: Some('C'),
        calls: 300,
        rate: 10.0,
    },
    CampaignDef {
        id: "sequential-alpha",
        kind: Kind::SequentialDialling,
        route: ROUTE_ALPHA,
        attest: Some('B'),
        calls: 300,
        rate: 8.0,
    },
];

fn campaigns(b: &mut Builder, o: &NetPlanOptions, start_us: i64, duration_us: i64) {
    let factor = match o.scale {
        Scale::Small => 1,
        Scale::Full => 4,
    };
    // Every sensor's detectors get their warm-up (5 min) of background first.
    let mut next = start_us + (duration_us / 10).max(330 * 1_000_000);
    let dialer = Answering {
        asr: 0.3,
        talk_median_s: 20.0,
        talk_sigma: 0.8,
        talk_min_s: 3.0,
        talk_max_s: 300.0,
    };
    for def in CAMPAIGNS {
        let mut rng = Rng::fork(o.seed, def.id);
        let g = b.open_group(def.id, Some(def.kind), Some(def.route), def.rate);
        let calls = def.calls * factor;
        let first = next + rng.below(5_000_000) as i64;
        let times = arrivals(&mut rng, first, calls, def.rate);
        let origid = b.new_origid(&mut rng);
        let customer_ua = *rng.pick(&["Asterisk PBX 16.2.1", "VOS3000 2.1.8", "FPBX-15.0.23"]);
        let sdp_user = *rng.pick(&["-", "dialer", "VOS3000", "Asterisk"]);
        let signing = def.attest.map(|a| (a, origid));
        // Sequential dialling: one caller, consecutive numbers in one exchange.
        let seq_caller = valid_tn(&mut rng);
        let (seq_npa, seq_nxx) = (*rng.pick(numbers::NPAS), valid_nxx(&mut rng));
        let mut line = rng.below(5000) as u16;
        let ring_pool: Vec<String> = (0..20)
            .map(|_| {
                let npa = *rng.pick(numbers::CARIBBEAN_NPAS);
                valid_tn_in(&mut rng, npa)
            })
            .collect();
        for &t in &times {
            let (caller, callee, dialog) = match def.kind {
                Kind::NeighbourSpoofing => {
                    let callee = valid_tn(&mut rng);
                    let caller = format!("1{}{:04}", npa_nxx(&callee), rng.below(10_000));
                    (caller, callee, human_dialog(&mut rng, &dialer))
                }
                Kind::OneRing => (
                    rng.pick(&ring_pool).clone(),
                    valid_tn(&mut rng),
                    one_ring_dialog(&mut rng),
                ),
                _ => {
                    let callee = format_tn(seq_npa, seq_nxx, line);
                    line = (line + if rng.chance(0.8) { 1 } else { 2 }) % 10_000;
                    let d = if rng.chance(0.55) {
                        let trying = rng.range(15, 60) as u32;
                        let at_ms = trying + rng.range(50, 400) as u32;
                        (trying, None, End::Rejected { at_ms, code: 404 })
                    } else {
                        human_dialog(&mut rng, &dialer)
                    };
                    (seq_caller.clone(), callee, d)
                }
            };
            b.push(Placed {
                group: g,
                start_us: t,
                route: def.route,
                caller,
                callee,
                signing,
                dialog,
                customer_ua,
                sdp_user,
            });
        }
        next = times.last().copied().unwrap_or(next) + 20_000_000;
    }
}

impl NetCall {
    /// The messages of leg `k` with their capture times (µs), in time order. Requests from the
    /// caller's side (INVITE, CANCEL, the caller's BYE) reach leg k `delay_us` after leg 0;
    /// the callee's answers come back from the last leg, so they reach leg k earlier than leg
    /// 0; 100 Trying, the ACKs and the answers to CANCEL and BYE are each hop's own.
    pub fn leg_script(&self, k: usize) -> Vec<(i64, Step)> {
        let ms = |x: u32| i64::from(x) * 1000;
        let dk = self.legs[k].delay_us;
        let dn = self.legs.last().map_or(0, |l| l.delay_us);
        let t0 = self.start_us;
        let callee_side = |off_ms: u32| t0 + 2 * dn - dk + ms(off_ms);
        let mut s = vec![
            (t0 + dk, Step::Invite),
            (t0 + dk + ms(self.trying_ms), Step::Trying),
        ];
        if let Some(r) = self.ringing_ms {
            s.push((callee_side(r), Step::Ringing));
        }
        match self.end {
            End::Answered {
                answer_ms,
                duration_ms,
                caller_hangs_up,
            } => {
                let a = callee_side(answer_ms);
                let talk = ms(duration_ms.max(500));
                s.push((a, Step::Answer));
                s.push((a + 40_000, Step::AckAnswer));
                let bye = if caller_hangs_up {
                    t0 + 2 * dn + ms(answer_ms) + talk + dk
                } else {
                    a + talk
                };
                let by_caller = caller_hangs_up;
                s.push((bye, Step::Bye { by_caller }));
                s.push((bye + 30_000, Step::ByeOk { by_caller }));
            }
            End::Rejected { at_ms, code } => {
                let f = callee_side(at_ms);
                s.push((f, Step::Final(code)));
                s.push((f + 30_000, Step::AckFinal));
            }
            End::Cancelled { at_ms } => {
                let cancel = t0 + 2 * dn + ms(at_ms) + dk;
                s.push((cancel, Step::Cancel));
                s.push((cancel + 20_000, Step::CancelOk));
                let f = t0 + 4 * dn + ms(at_ms) + 25_000 - dk;
                s.push((f, Step::Final(487)));
                s.push((f + 25_000, Step::AckFinal));
            }
        }
        s
    }

    /// True when the route starts at a gateway (the call came from a foreign carrier).
    pub fn foreign(&self) -> bool {
        PROVIDERS[self.route[0]].role == Role::Gateway
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64) -> NetPlan {
        build(&NetPlanOptions {
            background: 1500,
            duration_s: 600,
            seed,
            scale: Scale::Small,
            start_unix: 1_795_000_000,
        })
    }

    #[test]
    fn legs_follow_the_identity_rules_and_dialogs_stay_in_order() {
        let p = small(3);
        assert_eq!(p.calls.len(), 1500 + 400 + 300 + 300);
        let mut seen = std::collections::HashSet::new();
        for c in &p.calls {
            assert_eq!(c.legs.len(), c.route.len());
            assert_eq!(c.legs[0].identity, IdentityAtHop::None);
            for k in 0..c.legs.len() {
                assert!(
                    seen.insert(c.legs[k].call_id.clone()),
                    "Call-IDs are unique"
                );
                let s = c.leg_script(k);
                assert!(
                    s.windows(2).all(|w| w[0].0 < w[1].0),
                    "leg {k} of {:?}: {s:?}",
                    c.route
                );
                if k > 0 {
                    assert!(c.legs[k].delay_us > c.legs[k - 1].delay_us);
                    let from = c.route[k - 1];
                    let prev = c.legs[k - 1].passport;
                    match c.legs[k].identity {
                        IdentityAtHop::Kept => assert_eq!(c.legs[k].passport, prev),
                        IdentityAtHop::Resigned => {
                            assert_eq!(PROVIDERS[from].on_forward, OnForward::Resign);
                            let (new, old) = (c.legs[k].passport.unwrap(), prev.unwrap());
                            assert_eq!(new.signer, from);
                            assert!(new.attest > old.attest || new.attest == 'C');
                            assert_ne!(new.origid, old.origid);
                        }
                        IdentityAtHop::Dropped => {
                            assert!(prev.is_some() && c.legs[k].passport.is_none());
                            assert_eq!((from, c.route[k]), topology::TDM);
                        }
                        IdentityAtHop::Signed => assert_eq!(k, 1),
                        IdentityAtHop::None => assert!(c.legs[k].passport.is_none()),
                    }
                }
            }
        }
        // The long campaign route shows every treatment.
        let long = p
            .calls
            .iter()
            .find(|c| p.groups[c.group as usize].id == "neighbour-bravo")
            .unwrap();
        let ids: Vec<IdentityAtHop> = long.legs.iter().map(|l| l.identity).collect();
        use IdentityAtHop::*;
        assert_eq!(ids, [None, Signed, Kept, Kept, Resigned, Dropped]);
    }

    #[test]
    fn same_seed_same_plan() {
        let (a, b) = (small(5), small(5));
        let key = |p: &NetPlan| -> Vec<(i64, String, String)> {
            p.calls
                .iter()
                .map(|c| {
                    (
                        c.start_us,
                        c.caller.clone(),
                        c.legs[c.legs.len() - 1].call_id.clone(),
                    )
                })
                .collect()
        };
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&small(6)));
    }
}

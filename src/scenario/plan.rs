//! The scenario plan: upstream peers, the background population, legitimate bulk senders and
//! injected campaigns, turned into one [`CallSpec`] per call (who calls whom, when, through
//! which peer, signed how, and how the dialog ends). Pure and deterministic for a seed; the
//! bytes on the wire are made later by `sip` and `generate`.
//!
//! The plan must never label a call with anything but what it was generated as, and must never
//! let two campaigns on one peer overlap in time (attribution would be ambiguous).

use super::numbers::{self, format_tn, npa_nxx, valid_nxx, valid_tn, valid_tn_in};
use super::rng::Rng;

/// Our own SBC, the destination of every INVITE.
pub const SENSOR_SBC: [u8; 4] = [192, 0, 2, 1];

pub struct PeerDef {
    pub name: &'static str,
    pub ocn: &'static str,
    /// First three octets of the peer's /24.
    pub net: [u8; 3],
    /// Index into `SIGNING` of the carrier that signs calls handed to us by this peer.
    pub signer: Option<usize>,
    /// Background attestation weights: A, B, C, unsigned.
    pub attest: [f64; 4],
    /// Share of background volume.
    pub share: f64,
    /// How its SBC writes messages (header order, number format).
    pub style: u8,
    pub user_agents: &'static [&'static str],
}

pub const PEERS: &[PeerDef] = &[
    PeerDef {
        name: "carrier-alpha",
        ocn: "1111",
        net: [198, 51, 100],
        signer: Some(0),
        attest: [0.90, 0.07, 0.03, 0.0],
        share: 0.34,
        style: 0,
        user_agents: &["Ribbon SBC 10.1", "Sonus SBC"],
    },
    PeerDef {
        name: "carrier-bravo",
        ocn: "2222",
        net: [203, 0, 113],
        signer: Some(1),
        attest: [0.80, 0.14, 0.05, 0.01],
        share: 0.25,
        style: 1,
        user_agents: &["Oracle ESBC 9.0", "Acme Packet SBC"],
    },
    PeerDef {
        name: "wholesale-charlie",
        ocn: "3333",
        net: [198, 18, 3],
        signer: Some(2),
        attest: [0.50, 0.25, 0.22, 0.03],
        share: 0.15,
        style: 2,
        user_agents: &["Metaswitch Perimeta", "Cisco-CUBE/16.12"],
    },
    PeerDef {
        name: "carrier-delta",
        ocn: "4444",
        net: [198, 18, 4],
        signer: Some(3),
        attest: [0.85, 0.08, 0.02, 0.05],
        share: 0.13,
        style: 0,
        user_agents: &["Ribbon SBC 9.2"],
    },
    PeerDef {
        name: "intl-gateway-echo",
        ocn: "5555",
        net: [198, 18, 5],
        signer: Some(4),
        attest: [0.0, 0.0, 0.70, 0.30],
        share: 0.08,
        style: 1,
        user_agents: &["AudioCodes Mediant SW"],
    },
    PeerDef {
        name: "legacy-foxtrot",
        ocn: "6666",
        net: [198, 18, 6],
        signer: None,
        attest: [0.0, 0.0, 0.0, 1.0],
        share: 0.05,
        style: 2,
        user_agents: &["Cisco-SIPGateway/IOS-15.x"],
    },
];

/// Signing carriers: SPC and x5u URL (served from the scenario's certs/ via sensor.toml).
pub const SIGNING: &[(&str, &str)] = &[
    ("111A", "https://cert.carrier-alpha.example/sti/111A.pem"),
    ("222B", "https://cert.carrier-bravo.example/sti/222B.pem"),
    ("333C", "https://sti.wholesale-charlie.example/333C.pem"),
    ("444D", "https://cert.carrier-delta.example/sti/444D.pem"),
    ("555E", "https://pki.gateway-echo.example/555E.pem"),
];

/// Originating equipment (SDP o= user names) behind background callers.
pub const SDP_USERS: &[&str] = &[
    "-",
    "root",
    "MetaSwitch",
    "BroadWorks",
    "Sonus_UAC",
    "FreeSWITCH",
    "mediaserver",
    "CiscoSystemsSIP-GW-UserAgent",
];

/// The injected campaign kinds (label strings are the contract with the detection engine).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    NeighbourSpoofing,
    OrigidManyCallers,
    UnsignedFlood,
    InvalidCallerId,
    SequentialDialling,
    OneRing,
    ReplayedPassport,
    ShortCallVolume,
    Pharmacy,
    SchoolDistrict,
    CallCentre,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::NeighbourSpoofing => "neighbour_spoofing",
            Kind::OrigidManyCallers => "origid_many_callers",
            Kind::UnsignedFlood => "unsigned_flood",
            Kind::InvalidCallerId => "invalid_caller_id",
            Kind::SequentialDialling => "sequential_dialling",
            Kind::OneRing => "one_ring",
            Kind::ReplayedPassport => "replayed_passport",
            Kind::ShortCallVolume => "short_call_volume",
            Kind::Pharmacy | Kind::SchoolDistrict | Kind::CallCentre => "legit_bulk",
        }
    }

    pub fn is_campaign(self) -> bool {
        !matches!(
            self,
            Kind::Pharmacy | Kind::SchoolDistrict | Kind::CallCentre
        )
    }
}

/// A group of calls with one label: background (index 0), a legitimate sender or a campaign.
#[derive(Clone, Debug)]
pub struct Group {
    pub id: String,
    pub kind: Option<Kind>,
    pub peer: usize,
    pub calls: u32,
    pub rate_per_s: f64,
    pub first_us: i64,
    pub last_us: i64,
}

#[derive(Clone, Debug)]
pub enum Signing {
    Unsigned,
    Sign {
        signer: usize,
        attest: char,
        origid: u32,
    },
    /// Carries the campaign's one copied Identity header (`Plan::replay_tokens`).
    Replay {
        token: usize,
    },
}

#[derive(Clone, Copy, Debug)]
pub enum End {
    Answered {
        answer_ms: u32,
        duration_ms: u32,
        caller_hangs_up: bool,
    },
    Rejected {
        at_ms: u32,
        code: u16,
    },
    Cancelled {
        at_ms: u32,
    },
}

#[derive(Clone, Debug)]
pub struct CallSpec {
    pub start_us: i64,
    pub group: u16,
    pub peer: u8,
    /// Last octet of the peer SBC address that sent it.
    pub host: u8,
    pub caller: String,
    pub callee: String,
    pub signing: Signing,
    pub trying_ms: u32,
    pub ringing_ms: Option<u32>,
    pub end: End,
    pub user_agent: &'static str,
    pub sdp_user: &'static str,
    pub call_id: String,
}

/// A PASSporT copied onto many calls: signed once, at the first call's time.
#[derive(Clone, Debug)]
pub struct ReplayToken {
    pub signer: usize,
    pub attest: char,
    pub orig: String,
    pub dests: Vec<String>,
    pub origid: u32,
    pub iat: i64,
}

pub struct Plan {
    pub groups: Vec<Group>,
    /// Sorted by start time.
    pub calls: Vec<CallSpec>,
    pub origids: Vec<String>,
    pub replay_tokens: Vec<ReplayToken>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    Small,
    Full,
}

/// What the campaigns' originators vary (issue #13): the evaluation runs every variant, so a
/// detector tuned to one originator's habits fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// One origid per campaign, the dialer's own SDP user, a User-Agent of its peer's SBCs.
    StableOrigid,
    /// A fresh origid on every call (Asterisk's signer, many others).
    FreshOrigid,
    /// Fresh origids and the User-Agent rotating among three values per call.
    UaRotate,
    /// Fresh origids, and the User-Agent and SDP o= user of the peer's most common SBC setup:
    /// the campaign's fingerprint is the background's.
    UaCopy,
    /// Fresh origids; the first 30 calls at 0.5 call/s, then the campaign's own rate.
    SlowStart,
    /// Fresh origids, every campaign at 50 calls/s.
    Fast,
    /// Fresh origids, every campaign on the busiest peer (carrier-alpha).
    BusiestPeer,
}

pub const VARIANTS: [Variant; 7] = [
    Variant::StableOrigid,
    Variant::FreshOrigid,
    Variant::UaRotate,
    Variant::UaCopy,
    Variant::SlowStart,
    Variant::Fast,
    Variant::BusiestPeer,
];

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::StableOrigid => "stable-origid",
            Variant::FreshOrigid => "fresh-origid",
            Variant::UaRotate => "ua-rotate",
            Variant::UaCopy => "ua-copy",
            Variant::SlowStart => "slow-start",
            Variant::Fast => "fast",
            Variant::BusiestPeer => "busiest-peer",
        }
    }

    pub fn parse(s: &str) -> Option<Variant> {
        VARIANTS.into_iter().find(|v| v.name() == s)
    }
}

/// User-Agents a dialer rotates among (ua-rotate).
const ROTATING_UAS: [&str; 3] = ["Asterisk PBX 18.9.0", "FPBX-16.0.40", "Zoiper rv2.10.18"];

pub struct PlanOptions {
    pub background: u32,
    pub duration_s: u32,
    pub seed: u64,
    pub scale: Scale,
    pub start_unix: i64,
    pub variant: Variant,
}

#[derive(Clone, Copy)]
struct CampaignDef {
    id: &'static str,
    kind: Kind,
    peer: usize,
    calls: u32,
    rate: f64,
    full_only: bool,
}

/// The injected campaigns, in the order they start. Same-peer campaigns are never adjacent.
const CAMPAIGNS: &[CampaignDef] = &[
    CampaignDef {
        id: "neighbour-charlie",
        kind: Kind::NeighbourSpoofing,
        peer: 2,
        calls: 400,
        rate: 8.0,
        full_only: false,
    },
    CampaignDef {
        id: "origid-bravo",
        kind: Kind::OrigidManyCallers,
        peer: 1,
        calls: 600,
        rate: 5.0,
        full_only: false,
    },
    CampaignDef {
        id: "unsigned-delta",
        kind: Kind::UnsignedFlood,
        peer: 3,
        calls: 2000,
        rate: 30.0,
        full_only: false,
    },
    CampaignDef {
        id: "invalid-echo",
        kind: Kind::InvalidCallerId,
        peer: 4,
        calls: 30,
        rate: 0.5,
        full_only: false,
    },
    CampaignDef {
        id: "sequential-bravo",
        kind: Kind::SequentialDialling,
        peer: 1,
        calls: 1000,
        rate: 10.0,
        full_only: false,
    },
    CampaignDef {
        id: "onering-echo",
        kind: Kind::OneRing,
        peer: 4,
        calls: 800,
        rate: 15.0,
        full_only: false,
    },
    CampaignDef {
        id: "replayed-delta",
        kind: Kind::ReplayedPassport,
        peer: 3,
        calls: 90,
        rate: 1.5,
        full_only: false,
    },
    CampaignDef {
        id: "shortcalls-charlie",
        kind: Kind::ShortCallVolume,
        peer: 2,
        calls: 3000,
        rate: 50.0,
        full_only: false,
    },
    CampaignDef {
        id: "neighbour-foxtrot",
        kind: Kind::NeighbourSpoofing,
        peer: 5,
        calls: 1500,
        rate: 20.0,
        full_only: true,
    },
    CampaignDef {
        id: "origid-alpha",
        kind: Kind::OrigidManyCallers,
        peer: 0,
        calls: 200,
        rate: 2.0,
        full_only: true,
    },
    CampaignDef {
        id: "unsigned-bravo",
        kind: Kind::UnsignedFlood,
        peer: 1,
        calls: 300,
        rate: 3.0,
        full_only: true,
    },
    CampaignDef {
        id: "invalid-foxtrot",
        kind: Kind::InvalidCallerId,
        peer: 5,
        calls: 500,
        rate: 10.0,
        full_only: true,
    },
    CampaignDef {
        id: "sequential-charlie",
        kind: Kind::SequentialDialling,
        peer: 2,
        calls: 150,
        rate: 1.0,
        full_only: true,
    },
    CampaignDef {
        id: "onering-delta",
        kind: Kind::OneRing,
        peer: 3,
        calls: 60,
        rate: 1.0,
        full_only: true,
    },
    CampaignDef {
        id: "replayed-bravo",
        kind: Kind::ReplayedPassport,
        peer: 1,
        calls: 60,
        rate: 1.0,
        full_only: true,
    },
    CampaignDef {
        id: "shortcalls-delta",
        kind: Kind::ShortCallVolume,
        peer: 3,
        calls: 400,
        rate: 4.0,
        full_only: true,
    },
];

struct Caller {
    tn: String,
    peer: u8,
    signing: Option<(char, u32)>,
    user_agent: &'static str,
    sdp_user: &'static str,
}

struct Builder {
    opts_start_us: i64,
    calls: Vec<CallSpec>,
    groups: Vec<Group>,
    origids: Vec<String>,
    replay_tokens: Vec<ReplayToken>,
    ids: Rng,
}

impl Builder {
    fn new_origid(&mut self, rng: &mut Rng) -> u32 {
        self.origids.push(rng.uuid());
        (self.origids.len() - 1) as u32
    }

    fn call_id(&mut self, peer: usize, host: u8) -> String {
        let n = &PEERS[peer].net;
        match PEERS[peer].style {
            1 => self.ids.uuid(),
            _ => format!("{}@{}.{}.{}.{host}", self.ids.hex64(), n[0], n[1], n[2]),
        }
    }

    fn open_group(&mut self, id: &str, kind: Option<Kind>, peer: usize, rate: f64) -> u16 {
        self.groups.push(Group {
            id: id.to_string(),
            kind,
            peer,
            calls: 0,
            rate_per_s: rate,
            first_us: i64::MAX,
            last_us: i64::MIN,
        });
        (self.groups.len() - 1) as u16
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        group: u16,
        start_us: i64,
        peer: usize,
        caller: String,
        callee: String,
        signing: Signing,
        dialog: (u32, Option<u32>, End),
        user_agent: &'static str,
        sdp_user: &'static str,
        rng: &mut Rng,
    ) {
        let host = 10 + rng.below(3) as u8;
        let call_id = self.call_id(peer, host);
        let g = &mut self.groups[group as usize];
        g.calls += 1;
        g.first_us = g.first_us.min(start_us);
        g.last_us = g.last_us.max(start_us);
        self.calls.push(CallSpec {
            start_us,
            group,
            peer: peer as u8,
            host,
            caller,
            callee,
            signing,
            trying_ms: dialog.0,
            ringing_ms: dialog.1,
            end: dialog.2,
            user_agent,
            sdp_user,
            call_id,
        });
    }
}

/// How a human-answered call goes: answer probability, talk-time median (s) and shape.
pub(crate) struct Answering {
    pub(crate) asr: f64,
    pub(crate) talk_median_s: f64,
    pub(crate) talk_sigma: f64,
    pub(crate) talk_min_s: f64,
    pub(crate) talk_max_s: f64,
}

/// A dialog with human ringing: 100 Trying, 180 after post-dial delay, then answer (ring 2-20 s),
/// busy, no answer (caller gives up, or 480), early hang-up, or a rejection.
pub(crate) fn human_dialog(rng: &mut Rng, a: &Answering) -> (u32, Option<u32>, End) {
    let trying = rng.range(15, 80) as u32;
    let pdd = trying + rng.range(80, 2500) as u32;
    let x = rng.f64();
    if x < a.asr {
        let ring = rng.lognormal(7000.0, 0.5).clamp(2000.0, 20000.0) as u32;
        let talk = rng
            .lognormal(a.talk_median_s, a.talk_sigma)
            .clamp(a.talk_min_s, a.talk_max_s);
        return (
            trying,
            Some(pdd),
            End::Answered {
                answer_ms: pdd + ring,
                duration_ms: (talk * 1000.0) as u32,
                caller_hangs_up: rng.chance(0.55),
            },
        );
    }
    let rest = (x - a.asr) / (1.0 - a.asr);
    if rest < 0.25 {
        (
            trying,
            None,
            End::Rejected {
                at_ms: pdd,
                code: 486,
            },
        )
    } else if rest < 0.65 {
        // Nobody answers; the caller gives up after 20-45 s of ringing.
        (
            trying,
            Some(pdd),
            End::Cancelled {
                at_ms: pdd + rng.range(20_000, 45_000) as u32,
            },
        )
    } else if rest < 0.82 {
        (
            trying,
            Some(pdd),
            End::Rejected {
                at_ms: pdd + rng.range(25_000, 60_000) as u32,
                code: 480,
            },
        )
    } else if rest < 0.94 {
        // The caller changes their mind after a few rings.
        (
            trying,
            Some(pdd),
            End::Cancelled {
                at_ms: pdd + rng.range(4_000, 18_000) as u32,
            },
        )
    } else {
        let code = *rng.pick(&[404, 503, 603, 408, 404, 484]);
        (trying, None, End::Rejected { at_ms: pdd, code })
    }
}

pub(crate) const BACKGROUND: Answering = Answering {
    asr: 0.68,
    talk_median_s: 100.0,
    talk_sigma: 1.0,
    talk_min_s: 3.0,
    talk_max_s: 3600.0,
};

fn pick_signing(rng: &mut Rng, weights: &[f64; 4]) -> Option<char> {
    match rng.weighted(weights) {
        0 => Some('A'),
        1 => Some('B'),
        2 => Some('C'),
        _ => None,
    }
}

fn signing_of(peer: usize, s: Option<(char, u32)>) -> Signing {
    match (PEERS[peer].signer, s) {
        (Some(signer), Some((attest, origid))) => Signing::Sign {
            signer,
            attest,
            origid,
        },
        _ => Signing::Unsigned,
    }
}

pub fn build(o: &PlanOptions) -> Plan {
    let start_us = o.start_unix * 1_000_000;
    let duration_us = i64::from(o.duration_s.max(60)) * 1_000_000;
    let mut b = Builder {
        opts_start_us: start_us,
        calls: Vec::with_capacity(o.background as usize + 20_000),
        groups: Vec::new(),
        origids: Vec::new(),
        replay_tokens: Vec::new(),
        ids: Rng::fork(o.seed, "call-ids"),
    };
    b.open_group(
        "bg",
        None,
        0,
        f64::from(o.background) / (duration_us as f64 / 1e6),
    );
    background(&mut b, o, duration_us);
    legit_senders(&mut b, o, duration_us);
    call_centre(&mut b, o, duration_us);
    campaigns(&mut b, o, duration_us);
    let _ = b.opts_start_us;
    b.calls.sort_by_key(|c| c.start_us);
    Plan {
        groups: b.groups,
        calls: b.calls,
        origids: b.origids,
        replay_tokens: b.replay_tokens,
    }
}

fn background(b: &mut Builder, o: &PlanOptions, duration_us: i64) {
    let mut rng = Rng::fork(o.seed, "background");
    // Originating customers (origids) per signing peer: a few hundred each.
    let mut peer_origids: Vec<Vec<u32>> = Vec::new();
    for p in PEERS {
        let n = if p.signer.is_some() { 400 } else { 0 };
        let ids = (0..n).map(|_| b.new_origid(&mut rng)).collect();
        peer_origids.push(ids);
    }
    let shares: Vec<f64> = PEERS.iter().map(|p| p.share).collect();
    let population = (o.background as usize * 3 / 10).max(500);
    let callers: Vec<Caller> = (0..population)
        .map(|_| {
            let peer = rng.weighted(&shares);
            let p = &PEERS[peer];
            let signing = pick_signing(&mut rng, &p.attest).and_then(|a| {
                let pool = &peer_origids[peer];
                (!pool.is_empty()).then(|| (a, *rng.pick(pool)))
            });
            Caller {
                tn: valid_tn(&mut rng),
                peer: peer as u8,
                signing,
                user_agent: p.user_agents[rng.below(p.user_agents.len() as u64) as usize],
                sdp_user: SDP_USERS[rng.below(SDP_USERS.len() as u64) as usize],
            }
        })
        .collect();
    let mean_gap = duration_us as f64 / f64::from(o.background.max(1));
    let mut t = b.opts_start_us as f64 + rng.exp(mean_gap);
    for _ in 0..o.background {
        // Skewed caller choice: most callers make one or two calls, a few businesses many.
        let idx = ((rng.f64().powf(1.5)) * population as f64) as usize;
        let c = &callers[idx.min(population - 1)];
        let callee = if rng.chance(0.003) {
            // A neighbour calling a neighbour (same NPA-NXX): rare but real.
            let nn = npa_nxx(&c.tn).to_string();
            format!("1{nn}{:04}", rng.below(10_000))
        } else if rng.chance(0.2) {
            let npa: u16 = c.tn[1..4].parse().unwrap_or(212);
            valid_tn_in(&mut rng, npa)
        } else {
            valid_tn(&mut rng)
        };
        let dialog = human_dialog(&mut rng, &BACKGROUND);
        let (tn, peer, signing, ua, sdp) = (
            c.tn.clone(),
            c.peer as usize,
            c.signing,
            c.user_agent,
            c.sdp_user,
        );
        b.push(
            0,
            t as i64,
            peer,
            tn,
            callee,
            signing_of(peer, signing),
            dialog,
            ua,
            sdp,
            &mut rng,
        );
        t += rng.exp(mean_gap);
    }
}

/// Arrival times of `n` calls at `rate` per second (Poisson) from `start_us`.
pub(crate) fn arrivals(rng: &mut Rng, start_us: i64, n: u32, rate: f64) -> Vec<i64> {
    let mut t = start_us as f64;
    (0..n)
        .map(|_| {
            let now = t as i64;
            t += rng.exp(1e6 / rate);
            now
        })
        .collect()
}

fn legit_senders(b: &mut Builder, o: &PlanOptions, duration_us: i64) {
    let mut rng = Rng::fork(o.seed, "legit");
    // A pharmacy's refill reminders: ~1 call/s for up to an hour, two A-attested numbers.
    let ph_start = b.opts_start_us + duration_us / 50;
    let ph_secs = ((duration_us * 9 / 10 - duration_us / 50) / 1_000_000).min(3600);
    let ph_calls = ph_secs as u32;
    let g = b.open_group("legit-pharmacy", Some(Kind::Pharmacy), 0, 1.0);
    let ph_npa = 614;
    let ph_nxx = valid_nxx(&mut rng);
    let ph_numbers = [
        format_tn(ph_npa, ph_nxx, 4100),
        format_tn(ph_npa, ph_nxx, 4101),
    ];
    let ph_origid = b.new_origid(&mut rng);
    let pharmacy = Answering {
        asr: 0.60,
        talk_median_s: 55.0,
        talk_sigma: 0.3,
        talk_min_s: 30.0,
        talk_max_s: 90.0,
    };
    for t in arrivals(&mut rng, ph_start, ph_calls, 1.0) {
        let callee = if rng.chance(0.7) {
            {
                let npa = *rng.pick(&[614u16, 380, 740]);
                valid_tn_in(&mut rng, npa)
            }
        } else {
            valid_tn(&mut rng)
        };
        let dialog = human_dialog(&mut rng, &pharmacy);
        let caller = rng.pick(&ph_numbers).clone();
        b.push(
            g,
            t,
            0,
            caller,
            callee,
            Signing::Sign {
                signer: 0,
                attest: 'A',
                origid: ph_origid,
            },
            dialog,
            "Ribbon SBC 10.1",
            "NotifyIVR",
            &mut rng,
        );
    }
    // A school district's notification burst: one number, thousands of parents, 5-10 calls/s.
    let (n, rate) = match o.scale {
        Scale::Small => (2000, 6.0),
        Scale::Full => (4000, 8.0),
    };
    let g = b.open_group("legit-school-district", Some(Kind::SchoolDistrict), 1, rate);
    let school_npa = 503;
    let school_nxx = valid_nxx(&mut rng);
    let school = format_tn(school_npa, school_nxx, 7000);
    // Parents live in the district: ~60 exchanges of the school's NPA, its own among them.
    let mut exchanges: Vec<u16> = (0..59).map(|_| valid_nxx(&mut rng)).collect();
    exchanges.push(school_nxx);
    let origid = b.new_origid(&mut rng);
    let answering = Answering {
        asr: 0.65,
        talk_median_s: 35.0,
        talk_sigma: 0.4,
        talk_min_s: 5.0,
        talk_max_s: 120.0,
    };
    let start = b.opts_start_us + duration_us * 2 / 5;
    for t in arrivals(&mut rng, start, n, rate) {
        let callee = if rng.chance(0.85) {
            let nxx = *rng.pick(&exchanges);
            format_tn(school_npa, nxx, rng.below(10_000) as u16)
        } else {
            valid_tn(&mut rng)
        };
        let dialog = human_dialog(&mut rng, &answering);
        b.push(
            g,
            t,
            1,
            school.clone(),
            callee,
            Signing::Sign {
                signer: 1,
                attest: 'A',
                origid,
            },
            dialog,
            "Oracle ESBC 9.0",
            "BroadWorks",
            &mut rng,
        );
    }
}

/// A call centre: one PBX (one origid, one setup) behind which 200 agents' DIDs (its own
/// numbers, A-attested) call customers, 1.5 calls/s for most of the capture, answered and
/// long. Its caller IDs churn within a minute like a dialer's; its shift starts after the
/// detectors' warm-up, so it is new traffic to them.
fn call_centre(b: &mut Builder, o: &PlanOptions, duration_us: i64) {
    let mut rng = Rng::fork(o.seed, "call-centre");
    let peer = 3;
    let g = b.open_group("legit-call-centre", Some(Kind::CallCentre), peer, 1.5);
    let npa = 312;
    let nxx = valid_nxx(&mut rng);
    let dids: Vec<String> = (0..200).map(|i| format_tn(npa, nxx, 2000 + i)).collect();
    let origid = b.new_origid(&mut rng);
    let answering = Answering {
        asr: 0.75,
        talk_median_s: 240.0,
        talk_sigma: 0.7,
        talk_min_s: 20.0,
        talk_max_s: 3600.0,
    };
    let start = b.opts_start_us + duration_us * 3 / 10;
    let calls = (duration_us * 6 / 10 / 1_000_000) as u32 * 3 / 2;
    for t in arrivals(&mut rng, start, calls, 1.5) {
        let caller = rng.pick(&dids).clone();
        let callee = valid_tn(&mut rng);
        let dialog = human_dialog(&mut rng, &answering);
        b.push(
            g,
            t,
            peer,
            caller,
            callee,
            Signing::Sign {
                signer: PEERS[peer].signer.unwrap_or(0),
                attest: 'A',
                origid,
            },
            dialog,
            "Avaya SIP Enablement Services",
            "AvayaSM",
            &mut rng,
        );
    }
}

pub(crate) fn one_ring_dialog(rng: &mut Rng) -> (u32, Option<u32>, End) {
    let trying = rng.range(15, 60) as u32;
    let ring = trying + rng.range(100, 900) as u32;
    (
        trying,
        Some(ring),
        End::Cancelled {
            at_ms: ring + rng.range(1000, 3000) as u32,
        },
    )
}

pub(crate) fn short_dialog(rng: &mut Rng) -> (u32, Option<u32>, End) {
    let trying = rng.range(15, 60) as u32;
    let ring = trying + rng.range(100, 1500) as u32;
    if rng.chance(0.12) {
        let answer = ring + rng.range(2000, 8000) as u32;
        return (
            trying,
            Some(ring),
            End::Answered {
                answer_ms: answer,
                duration_ms: rng.range(1000, 5000) as u32,
                caller_hangs_up: rng.chance(0.3),
            },
        );
    }
    match rng.below(3) {
        0 => (
            trying,
            None,
            End::Rejected {
                at_ms: ring,
                code: 486,
            },
        ),
        1 => (
            trying,
            Some(ring),
            End::Rejected {
                at_ms: ring + rng.range(15_000, 30_000) as u32,
                code: 480,
            },
        ),
        _ => (
            trying,
            Some(ring),
            End::Cancelled {
                at_ms: ring + rng.range(5_000, 12_000) as u32,
            },
        ),
    }
}

fn campaigns(b: &mut Builder, o: &PlanOptions, duration_us: i64) {
    let defs: Vec<&CampaignDef> = CAMPAIGNS
        .iter()
        .filter(|c| o.scale == Scale::Full || !c.full_only)
        .collect();
    // A sensor has been up for a while when a campaign starts: leave the detectors their
    // warm-up (5 min) of background first, as a long-running sensor would have had.
    let first = (duration_us / 10).max(330 * 1_000_000).min(duration_us / 2);
    let span = duration_us * 85 / 100 - first;
    let slot = span / defs.len() as i64;
    for (i, def) in defs.iter().enumerate() {
        let mut def = CampaignDef { ..**def };
        match o.variant {
            Variant::Fast => def.rate = 50.0,
            Variant::BusiestPeer => def.peer = 0,
            _ => {}
        }
        let def = &def;
        let mut rng = Rng::fork(o.seed, def.id);
        let jitter = rng.below((slot / 4).max(1) as u64) as i64;
        let mut start = b.opts_start_us + first + slot * i as i64 + jitter;
        // Never overlap an earlier campaign on the same peer (attribution would be ambiguous).
        for g in b
            .groups
            .iter()
            .filter(|g| g.peer == def.peer && g.kind.is_some_and(Kind::is_campaign))
        {
            start = start.max(g.last_us + 30_000_000);
        }
        let g = b.open_group(def.id, Some(def.kind), def.peer, def.rate);
        campaign(b, def, g, start, o.variant, &mut rng);
    }
}

/// Arrival times of a campaign: its own rate, or 30 calls at 0.5 call/s first (slow-start).
fn campaign_times(rng: &mut Rng, start: i64, def: &CampaignDef, variant: Variant) -> Vec<i64> {
    if variant != Variant::SlowStart || def.calls <= 30 {
        return arrivals(rng, start, def.calls, def.rate);
    }
    let mut times = arrivals(rng, start, 30, 0.5);
    let next = times.last().copied().unwrap_or(start) + 2_000_000;
    times.extend(arrivals(rng, next, def.calls - 30, def.rate));
    times
}

fn campaign(
    b: &mut Builder,
    def: &CampaignDef,
    g: u16,
    start: i64,
    variant: Variant,
    rng: &mut Rng,
) {
    let peer = def.peer;
    let times = campaign_times(rng, start, def, variant);
    let origid = b.new_origid(rng);
    // A campaign whose defining trait is its origid keeps it; so does a copied PASSporT.
    let fresh = variant != Variant::StableOrigid && def.kind != Kind::OrigidManyCallers;
    let own = |b: &mut Builder, rng: &mut Rng, attest: char| match PEERS[peer].signer {
        Some(signer) => Signing::Sign {
            signer,
            attest,
            origid: if fresh { b.new_origid(rng) } else { origid },
        },
        None => Signing::Unsigned,
    };
    let dialer = Answering {
        asr: 0.3,
        talk_median_s: 20.0,
        talk_sigma: 0.8,
        talk_min_s: 3.0,
        talk_max_s: 300.0,
    };
    let mut sdp_user = *rng.pick(&["-", "dialer", "VOS3000", "Asterisk"]);
    let mut peer_ua = *rng.pick(PEERS[peer].user_agents);
    if variant == Variant::UaCopy {
        // The background's most common setup on this peer: its first SBC and SDP user.
        peer_ua = PEERS[peer].user_agents[0];
        sdp_user = SDP_USERS[0];
    }
    let ua_draw = move |rng: &mut Rng| -> &'static str {
        if variant == Variant::UaRotate {
            ROTATING_UAS[rng.below(ROTATING_UAS.len() as u64) as usize]
        } else {
            peer_ua
        }
    };
    match def.kind {
        Kind::NeighbourSpoofing => {
            for t in times {
                let callee = valid_tn(rng);
                let caller = if rng.chance(0.05) {
                    callee.clone()
                } else {
                    format!("1{}{:04}", npa_nxx(&callee), rng.below(10_000))
                };
                let d = human_dialog(rng, &dialer);
                let (signing, ua) = (own(b, rng, 'C'), ua_draw(rng));
                b.push(g, t, peer, caller, callee, signing, d, ua, sdp_user, rng);
            }
        }
        Kind::OrigidManyCallers => {
            for t in times {
                let (caller, callee) = (valid_tn(rng), valid_tn(rng));
                let d = human_dialog(rng, &dialer);
                let (signing, ua) = (own(b, rng, 'B'), ua_draw(rng));
                b.push(g, t, peer, caller, callee, signing, d, ua, sdp_user, rng);
            }
        }
        Kind::UnsignedFlood => {
            let pool: Vec<String> = (0..50).map(|_| valid_tn(rng)).collect();
            let normal = Answering {
                asr: 0.45,
                talk_median_s: 40.0,
                ..dialer
            };
            for t in times {
                let caller = rng.pick(&pool).clone();
                let callee = valid_tn(rng);
                let d = human_dialog(rng, &normal);
                b.push(
                    g,
                    t,
                    peer,
                    caller,
                    callee,
                    Signing::Unsigned,
                    d,
                    ua_draw(rng),
                    sdp_user,
                    rng,
                );
            }
        }
        Kind::InvalidCallerId => {
            for t in times {
                let caller = numbers::invalid_tn(rng);
                let callee = valid_tn(rng);
                let d = human_dialog(rng, &dialer);
                b.push(
                    g,
                    t,
                    peer,
                    caller,
                    callee,
                    Signing::Unsigned,
                    d,
                    ua_draw(rng),
                    sdp_user,
                    rng,
                );
            }
        }
        Kind::SequentialDialling => {
            let caller = valid_tn(rng);
            let npa = *rng.pick(numbers::NPAS);
            let nxx = valid_nxx(rng);
            let mut line = rng.below(5000) as u16;
            for t in times {
                let callee = format_tn(npa, nxx, line);
                line = (line + if rng.chance(0.8) { 1 } else { 2 }) % 10_000;
                let (signing, ua) = (own(b, rng, 'B'), ua_draw(rng));
                let d = if rng.chance(0.55) {
                    let trying = rng.range(15, 60) as u32;
                    let code = if rng.chance(0.8) { 404 } else { 484 };
                    (
                        trying,
                        None,
                        End::Rejected {
                            at_ms: trying + rng.range(50, 400) as u32,
                            code,
                        },
                    )
                } else {
                    human_dialog(rng, &dialer)
                };
                b.push(
                    g,
                    t,
                    peer,
                    caller.clone(),
                    callee,
                    signing,
                    d,
                    ua,
                    sdp_user,
                    rng,
                );
            }
        }
        Kind::OneRing => {
            let pool: Vec<String> = (0..20)
                .map(|_| {
                    let npa = *rng.pick(numbers::CARIBBEAN_NPAS);
                    valid_tn_in(rng, npa)
                })
                .collect();
            for t in times {
                let caller = rng.pick(&pool).clone();
                let callee = valid_tn(rng);
                let d = one_ring_dialog(rng);
                let (signing, ua) = (own(b, rng, 'C'), ua_draw(rng));
                b.push(g, t, peer, caller, callee, signing, d, ua, sdp_user, rng);
            }
        }
        Kind::ReplayedPassport => {
            // One token copied from a call signed by another carrier (alpha, or bravo when the
            // campaign itself enters through alpha), replayed while still fresh.
            let signer = if peer == 0 { 1 } else { 0 };
            let orig = valid_tn(rng);
            let dests: Vec<String> = (0..times.len()).map(|_| valid_tn(rng)).collect();
            b.replay_tokens.push(ReplayToken {
                signer,
                attest: 'A',
                orig: orig.clone(),
                dests: dests.clone(),
                origid,
                iat: times.first().copied().unwrap_or(start) / 1_000_000,
            });
            let token = b.replay_tokens.len() - 1;
            for (t, callee) in times.into_iter().zip(dests) {
                let d = human_dialog(rng, &dialer);
                b.push(
                    g,
                    t,
                    peer,
                    orig.clone(),
                    callee,
                    Signing::Replay { token },
                    d,
                    ua_draw(rng),
                    sdp_user,
                    rng,
                );
            }
        }
        Kind::ShortCallVolume => {
            let pool: Vec<String> = (0..300).map(|_| valid_tn(rng)).collect();
            for t in times {
                let caller = rng.pick(&pool).clone();
                let callee = valid_tn(rng);
                let d = short_dialog(rng);
                let (signing, ua) = (own(b, rng, 'C'), ua_draw(rng));
                b.push(g, t, peer, caller, callee, signing, d, ua, sdp_user, rng);
            }
        }
        Kind::Pharmacy | Kind::SchoolDistrict | Kind::CallCentre => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64) -> Plan {
        build(&PlanOptions {
            background: 3000,
            duration_s: 1200,
            seed,
            scale: Scale::Small,
            start_unix: 1_795_000_000,
            variant: Variant::StableOrigid,
        })
    }

    #[test]
    fn plan_is_deterministic_sorted_and_labelled() {
        let a = small(11);
        let b = small(11);
        assert_eq!(a.calls.len(), b.calls.len());
        assert!(a
            .calls
            .iter()
            .zip(&b.calls)
            .all(|(x, y)| x.call_id == y.call_id
                && x.caller == y.caller
                && x.start_us == y.start_us));
        assert!(a.calls.windows(2).all(|w| w[0].start_us <= w[1].start_us));
        let total: u32 = a.groups.iter().map(|g| g.calls).sum();
        assert_eq!(total as usize, a.calls.len());
        assert_eq!(a.groups[0].calls, 3000);
        let kinds: Vec<&str> = a
            .groups
            .iter()
            .filter_map(|g| g.kind.filter(|k| k.is_campaign()).map(Kind::label))
            .collect();
        assert_eq!(kinds.len(), 8);
        let ids: std::collections::HashSet<&str> =
            a.calls.iter().map(|c| c.call_id.as_str()).collect();
        assert_eq!(ids.len(), a.calls.len(), "Call-IDs are unique");
        assert_ne!(small(12).calls[0].call_id, a.calls[0].call_id);
    }

    #[test]
    fn same_peer_campaigns_never_overlap() {
        let p = small(5);
        let c: Vec<&Group> = p
            .groups
            .iter()
            .filter(|g| g.kind.is_some_and(Kind::is_campaign))
            .collect();
        for x in &c {
            for y in &c {
                if x.id != y.id && x.peer == y.peer {
                    assert!(
                        x.last_us < y.first_us || y.last_us < x.first_us,
                        "{} / {}",
                        x.id,
                        y.id
                    );
                }
            }
        }
    }

    #[test]
    fn background_neighbour_share_is_natural_and_low() {
        let p = small(9);
        let bg: Vec<&CallSpec> = p.calls.iter().filter(|c| c.group == 0).collect();
        let same = bg
            .iter()
            .filter(|c| npa_nxx(&c.caller) == npa_nxx(&c.callee))
            .count();
        assert!(same > 0 && same * 100 < bg.len(), "{same} of {}", bg.len());
    }
}

//! `shaken-sensor scenario --network`: a multi-carrier scenario for proving cross-carrier
//! traceback. Nine providers in a call graph (`topology`), background traffic and campaigns
//! routed through them (`plan`), and for every provider that runs a sensor the capture its
//! ingress edge sees (every leg arriving from its customers, the foreign carrier or its peers,
//! with that interconnect's addresses and that leg's Call-ID) plus a sensor.toml naming its
//! neighbours. The ground truth (calls.jsonl with each call's hop chain, providers.json,
//! interconnects.json, campaigns.json) is documented in docs/network-scenario.md.
//!
//! Seeded and deterministic: the same seed writes the same bytes, certificates aside (the CA's
//! ECDSA signatures come from openssl). It only writes under its output directory and must
//! never write a hop to the ground truth that differs from the packets of that hop.

pub mod plan;
pub mod topology;

use super::generate::{io_err, pack, sensor_toml, unpack, PeerEntry, ScenarioError, StepKey};
use super::pcap::PcapWriter;
use super::pki::{self, Claims, Keys, Pki};
use super::plan::{CallSpec, Kind, Scale, Signing};
use super::rng::Rng;
use super::sip::{self, Ends};
use crate::clock::Timestamp;
use plan::{NetCall, NetPlan, NetPlanOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;
use topology::{Interconnect, Role, PROVIDERS};

#[derive(Clone, Debug)]
pub struct NetworkOptions {
    pub out: PathBuf,
    pub background: u32,
    pub duration_s: u32,
    pub seed: u64,
    pub scale: Scale,
    /// Capture start, Unix seconds.
    pub start_unix: i64,
}

impl NetworkOptions {
    /// Defaults of a scale: small = 2,400 background calls over 10 minutes and 1,000 campaign
    /// calls (tests), full = 100,000 over an hour and 4,000 campaign calls.
    pub fn for_scale(out: PathBuf, scale: Scale) -> Self {
        let (background, duration_s) = match scale {
            Scale::Small => (2_400, 600),
            Scale::Full => (100_000, 3600),
        };
        NetworkOptions {
            out,
            background,
            duration_s,
            seed: 1,
            scale,
            start_unix: 1_795_000_000,
        }
    }
}

/// What one provider's sensor got.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EdgeSummary {
    pub provider: &'static str,
    pub legs: u64,
    pub frames: u64,
    pub pcap_bytes: u64,
    pub signed_invites: u64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct NetworkSummary {
    pub providers: usize,
    pub calls: usize,
    pub background_calls: u32,
    pub campaigns: usize,
    pub legs: usize,
    pub edges: Vec<EdgeSummary>,
    pub elapsed_seconds: f64,
}

/// The plan holds every call with its legs (~1 KB each): this bounds it near 1 GB.
pub const MAX_BACKGROUND: u32 = 1_000_000;

pub fn generate(o: &NetworkOptions) -> Result<NetworkSummary, ScenarioError> {
    if o.background > MAX_BACKGROUND {
        return Err(ScenarioError::Options(format!(
            "--background {} is more than {MAX_BACKGROUND} in network mode",
            o.background
        )));
    }
    if !(600..=86_400).contains(&o.duration_s) {
        return Err(ScenarioError::Options(format!(
            "--duration-s {} is outside 600..=86400 (network campaigns start after a 5-minute \
             warm-up and run one after another)",
            o.duration_s
        )));
    }
    let started = Instant::now();
    std::fs::create_dir_all(&o.out).map_err(io_err(&o.out))?;
    let out = std::fs::canonicalize(&o.out).map_err(io_err(&o.out))?;
    let plan = plan::build(&NetPlanOptions {
        background: o.background,
        duration_s: o.duration_s,
        seed: o.seed,
        scale: o.scale,
        start_unix: o.start_unix,
    });
    let carriers: Vec<(String, String)> = PROVIDERS
        .iter()
        .map(|p| (p.spc.to_string(), p.x5u.to_string()))
        .collect();
    let pki = pki::build_with(
        &out.join("certs"),
        &carriers,
        &mut Rng::fork(o.seed, "net-pki"),
        Keys::Seeded,
    )?;
    write_json(&out.join("providers.json"), &providers_json(&plan))?;
    write_json(&out.join("interconnects.json"), &links_json(&plan.links))?;
    write_json(&out.join("campaigns.json"), &campaigns_json(&plan))?;
    write_calls(&out.join("calls.jsonl"), &plan)?;
    let mut edges = Vec::new();
    for (p, def) in PROVIDERS.iter().enumerate().filter(|(_, d)| d.has_sensor) {
        let dir = out.join("providers").join(def.name);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let toml = sensor_config(p, &plan.links, &pki);
        let path = dir.join("sensor.toml");
        std::fs::write(&path, toml).map_err(io_err(&path))?;
        edges.push(write_edge(&dir.join("edge.pcap"), p, &plan, &pki)?);
    }
    Ok(NetworkSummary {
        providers: PROVIDERS.len(),
        calls: plan.calls.len(),
        background_calls: plan.groups[0].calls,
        campaigns: plan.groups.len() - 1,
        legs: plan.calls.iter().map(|c| c.legs.len()).sum(),
        edges,
        elapsed_seconds: started.elapsed().as_secs_f64(),
    })
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<(), ScenarioError> {
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    std::fs::write(path, text + "\n").map_err(io_err(path))
}

fn ip(a: [u8; 4]) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

/// The neighbours of provider `p`, each with its side of every interconnect it has with `p`.
fn neighbours(p: usize, links: &[Interconnect]) -> Vec<PeerEntry> {
    let mut out: Vec<PeerEntry> = Vec::new();
    for l in links.iter().filter(|l| l.from == p || l.to == p) {
        let (n, cidr) = if l.to == p {
            (l.from, l.from_cidr())
        } else {
            (l.to, l.to_cidr())
        };
        match out.iter_mut().find(|e| e.name == PROVIDERS[n].name) {
            Some(e) => e.cidrs.push(cidr),
            None => out.push(PeerEntry {
                name: PROVIDERS[n].name.to_string(),
                ocn: PROVIDERS[n].ocn.to_string(),
                cidrs: vec![cidr],
            }),
        }
    }
    out
}

/// The name a gateway's sensor gives the foreign carrier it takes calls from (no OCN: it is
/// not a provider of the network, so a traceback stops at the gateway).
pub const FOREIGN_PEER: &str = "foreign-carrier";

fn sensor_config(p: usize, links: &[Interconnect], pki: &Pki) -> String {
    let def = &PROVIDERS[p];
    let mut peers = neighbours(p, links);
    if def.role == Role::Gateway {
        let n = def.access_net;
        peers.push(PeerEntry {
            name: FOREIGN_PEER.to_string(),
            ocn: String::new(),
            cidrs: vec![format!("{}.{}.{}.0/25", n[0], n[1], n[2])],
        });
    }
    let comment = format!(
        "# Written by `shaken-sensor scenario --network`: the sensor of {} (OCN {}); replays\n\
         # edge.pcap beside it with the scenario PKI seeded (nothing is fetched). Its customers'\n\
         # addresses are in no [[peers]] table: their calls have upstream \"unknown\".\n",
        def.name, def.ocn
    );
    sensor_toml(&comment, def.name, pki, &peers)
}

fn providers_json(plan: &NetPlan) -> serde_json::Value {
    let list: Vec<serde_json::Value> = PROVIDERS
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let names = |v: Vec<usize>| -> Vec<&str> {
                let mut v = v;
                v.sort_unstable();
                v.dedup();
                v.into_iter().map(|n| PROVIDERS[n].name).collect()
            };
            let upstream = names(plan.links.iter().filter(|l| l.to == i).map(|l| l.from).collect());
            let downstream =
                names(plan.links.iter().filter(|l| l.from == i).map(|l| l.to).collect());
            serde_json::json!({
                "name": p.name,
                "ocn": p.ocn,
                "rmd": p.rmd,
                "spc": p.spc,
                "x5u": p.x5u,
                "role": p.role,
                "has_sensor": p.has_sensor,
                "resigns": p.on_forward == topology::OnForward::Resign,
                "upstream_peers": upstream,
                "downstream_peers": downstream,
                "access_cidr": format!("{}.{}.{}.0/25", p.access_net[0], p.access_net[1], p.access_net[2]),
            })
        })
        .collect();
    serde_json::Value::Array(list)
}

fn links_json(links: &[Interconnect]) -> serde_json::Value {
    let list: Vec<serde_json::Value> = links
        .iter()
        .map(|l| {
            serde_json::json!({
                "from": PROVIDERS[l.from].name,
                "to": PROVIDERS[l.to].name,
                "from_cidr": l.from_cidr(),
                "to_cidr": l.to_cidr(),
                "tdm": l.tdm,
            })
        })
        .collect();
    serde_json::Value::Array(list)
}

fn kind_label(k: Option<Kind>) -> &'static str {
    k.map_or("background", Kind::label)
}

fn campaigns_json(plan: &NetPlan) -> serde_json::Value {
    let list: Vec<serde_json::Value> = plan
        .groups
        .iter()
        .filter_map(|g| {
            let route = g.route?;
            Some(serde_json::json!({
                "id": g.id,
                "kind": kind_label(g.kind),
                "origin": PROVIDERS[route[0]].name,
                "route": route.iter().map(|&p| PROVIDERS[p].name).collect::<Vec<_>>(),
                "calls": g.calls,
                "rate_per_s": g.rate_per_s,
                "start": Timestamp(g.first_us).to_rfc3339(),
                "end": Timestamp(g.last_us).to_rfc3339(),
            }))
        })
        .collect();
    serde_json::Value::Array(list)
}

/// Sender and receiver of leg `k`, and the sender's SIP writing style.
fn leg_ends(links: &[Interconnect], c: &NetCall, k: usize) -> (Ends, u8) {
    let host = c.legs[k].host;
    let to = c.route[k];
    if k == 0 {
        let n = PROVIDERS[to].access_net;
        let ends = Ends {
            peer_ip: [n[0], n[1], n[2], host],
            our_ip: topology::access_to_ip(to),
        };
        return (ends, (to as u8 + 1) % 3);
    }
    let from = c.route[k - 1];
    let (peer_ip, our_ip) = match topology::link(links, from, to) {
        Some(l) => (l.from_ip(host), l.to_ip()),
        None => ([0; 4], [0; 4]),
    };
    (Ends { peer_ip, our_ip }, PROVIDERS[from].style)
}

fn write_calls(path: &Path, plan: &NetPlan) -> Result<(), ScenarioError> {
    let f = std::fs::File::create(path).map_err(io_err(path))?;
    let mut w = BufWriter::new(f);
    for (i, c) in plan.calls.iter().enumerate() {
        let g = &plan.groups[c.group as usize];
        let hops: Vec<serde_json::Value> = (0..c.legs.len())
            .map(|k| {
                let leg = &c.legs[k];
                let p = &PROVIDERS[c.route[k]];
                let (ends, _) = leg_ends(&plan.links, c, k);
                let upstream = (k > 0).then(|| PROVIDERS[c.route[k - 1]].name);
                let upstream_kind = match (k, c.foreign()) {
                    (0, true) => "foreign",
                    (0, false) => "customer",
                    _ => "provider",
                };
                let pp = leg.passport;
                serde_json::json!({
                    "provider": p.name,
                    "ocn": p.ocn,
                    "has_sensor": p.has_sensor,
                    "upstream": upstream,
                    "upstream_ocn": upstream.map(|_| PROVIDERS[c.route[k - 1]].ocn),
                    "upstream_kind": upstream_kind,
                    "downstream": c.route.get(k + 1).map(|&n| PROVIDERS[n].name),
                    "call_id": leg.call_id,
                    "invite_at": Timestamp(c.start_us + leg.delay_us).to_rfc3339(),
                    "src": ip(ends.peer_ip),
                    "dst": ip(ends.our_ip),
                    "identity": leg.identity,
                    "spc": pp.map(|x| PROVIDERS[x.signer].spc),
                    "attest": pp.map(|x| x.attest.to_string()),
                    "origid": pp.map(|x| plan.origids[x.origid as usize].as_str()),
                    "iat": pp.map(|x| x.iat),
                })
            })
            .collect();
        let line = serde_json::json!({
            "call": i,
            "campaign": g.id,
            "kind": kind_label(g.kind),
            "origin": PROVIDERS[c.route[0]].name,
            "origin_kind": if c.foreign() { "foreign" } else { "customer" },
            "orig_tn": c.caller,
            "dest_tn": c.callee,
            "first_invite_at": Timestamp(c.start_us).to_rfc3339(),
            "route": c.route.iter().map(|&p| PROVIDERS[p].name).collect::<Vec<_>>(),
            "hops": hops,
        });
        writeln!(w, "{line}").map_err(io_err(path))?;
    }
    w.flush().map_err(io_err(path))
}

/// Leg `k` of `c` as the single-sensor renderer describes a call.
fn leg_spec(c: &NetCall, k: usize) -> CallSpec {
    CallSpec {
        start_us: c.start_us + c.legs[k].delay_us,
        group: c.group,
        peer: 0,
        host: c.legs[k].host,
        caller: c.caller.clone(),
        callee: c.callee.clone(),
        signing: Signing::Unsigned,
        trying_ms: c.trying_ms,
        ringing_ms: c.ringing_ms,
        end: c.end,
        user_agent: if k == 0 {
            c.customer_ua
        } else {
            PROVIDERS[c.route[k - 1]].user_agent
        },
        sdp_user: c.sdp_user,
        call_id: c.legs[k].call_id.clone(),
    }
}

/// One message of one leg waiting to be written: (time, call, leg, order in leg, step).
type Event = (i64, u32, u8, u8, StepKey);

/// Writes the capture of provider `p`'s edge: every leg arriving at `p`, in time order.
fn write_edge(
    path: &Path,
    p: usize,
    plan: &NetPlan,
    pki: &Pki,
) -> Result<EdgeSummary, ScenarioError> {
    let mut events: Vec<Event> = Vec::new();
    let mut legs = 0u64;
    for (i, c) in plan.calls.iter().enumerate() {
        for k in (0..c.route.len()).filter(|&k| c.route[k] == p) {
            legs += 1;
            for (j, (t, step)) in c.leg_script(k).into_iter().enumerate() {
                events.push((t, i as u32, k as u8, j as u8, pack(step)));
            }
        }
    }
    events.sort_unstable();
    let f = std::fs::File::create(path).map_err(io_err(path))?;
    let mut w = PcapWriter::new(BufWriter::with_capacity(1 << 20, f)).map_err(io_err(path))?;
    let rng = pki::deterministic_rng();
    let mut signed = 0u64;
    for (t, i, k, _, step) in events {
        let (c, k) = (&plan.calls[i as usize], k as usize);
        let step = unpack(step);
        let identity = match (step, c.legs[k].passport) {
            (sip::Step::Invite, Some(pp)) => Some(pki.signers[pp.signer].identity(
                &rng,
                &Claims {
                    attest: pp.attest,
                    orig: &c.caller,
                    dest: std::slice::from_ref(&c.callee),
                    iat: pp.iat,
                    origid: &plan.origids[pp.origid as usize],
                },
            )),
            _ => None,
        };
        signed += u64::from(identity.is_some());
        let (ends, style) = leg_ends(&plan.links, c, k);
        let port = 10_000 + ((i.wrapping_mul(8) + k as u32).wrapping_mul(2) % 50_000);
        let bytes = sip::render_as(
            &leg_spec(c, k),
            step,
            identity.as_deref(),
            port,
            style,
            &ends,
        );
        let (src, dst) = if step.from_peer() {
            (ends.peer_ip, ends.our_ip)
        } else {
            (ends.our_ip, ends.peer_ip)
        };
        w.udp(t, src, dst, &bytes).map_err(io_err(path))?;
    }
    let (frames, pcap_bytes) = (w.frames, w.bytes);
    w.finish().map_err(io_err(path))?;
    Ok(EdgeSummary {
        provider: PROVIDERS[p].name,
        legs,
        frames,
        pcap_bytes,
        signed_invites: signed,
    })
}

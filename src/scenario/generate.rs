//! `shaken-sensor scenario`: builds the plan, the PKI, and writes the scenario directory
//! (scenario.pcap, labels.jsonl, campaigns.json, sensor.toml, certs/). Packets of all calls are
//! interleaved in time order through a min-heap of pending messages, so memory holds only the
//! calls in progress plus the plan. Signed INVITEs carry real ES256 PASSporTs (iat = the
//! INVITE's capture second), so they verify when the capture is replayed.
//!
//! It must never write outside the output directory, and never produce a label that disagrees
//! with the call it describes.

use super::pcap::PcapWriter;
use super::pki::{self, Claims, Pki, PkiError};
use super::plan::{self, Plan, PlanOptions, Scale, Signing, Variant, PEERS, SIGNING};
use super::rng::Rng;
use super::sip::{self, Step};
use crate::clock::Timestamp;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("{0}")]
    Options(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Clone, Debug)]
pub struct ScenarioOptions {
    pub out: PathBuf,
    pub background: u32,
    pub duration_s: u32,
    pub seed: u64,
    pub scale: Scale,
    /// Capture start, Unix seconds.
    pub start_unix: i64,
    pub variant: Variant,
}

impl ScenarioOptions {
    /// Defaults of a scale: small = 16,000 background calls over 20 minutes (CI), full =
    /// 200,000 over an hour.
    pub fn for_scale(out: PathBuf, scale: Scale) -> Self {
        let (background, duration_s) = match scale {
            Scale::Small => (16_000, 1200),
            Scale::Full => (200_000, 3600),
        };
        ScenarioOptions {
            out,
            background,
            duration_s,
            seed: 1,
            scale,
            start_unix: 1_795_000_000,
            variant: Variant::StableOrigid,
        }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ScenarioSummary {
    pub variant: Variant,
    pub calls: usize,
    pub background_calls: u32,
    pub campaigns: usize,
    pub frames: u64,
    pub pcap_bytes: u64,
    pub signed_invites: u64,
    pub capture_seconds: f64,
    pub elapsed_seconds: f64,
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ScenarioError + '_ {
    move |source| ScenarioError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The plan holds every call (~250 bytes each) in memory: this bounds it near 1 GB.
pub const MAX_BACKGROUND: u32 = 4_000_000;

pub fn generate(o: &ScenarioOptions) -> Result<ScenarioSummary, ScenarioError> {
    if o.background > MAX_BACKGROUND {
        return Err(ScenarioError::Options(format!(
            "--background {} is more than {MAX_BACKGROUND}",
            o.background
        )));
    }
    if !(300..=86_400).contains(&o.duration_s) {
        return Err(ScenarioError::Options(format!(
            "--duration-s {} is outside 300..=86400 (campaigns start after a 5-minute warm-up)",
            o.duration_s
        )));
    }
    let started = Instant::now();
    std::fs::create_dir_all(&o.out).map_err(io_err(&o.out))?;
    let out = std::fs::canonicalize(&o.out).map_err(io_err(&o.out))?;
    let plan = plan::build(&PlanOptions {
        background: o.background,
        duration_s: o.duration_s,
        seed: o.seed,
        scale: o.scale,
        start_unix: o.start_unix,
        variant: o.variant,
    });
    let carriers: Vec<(String, String)> = SIGNING
        .iter()
        .map(|(spc, url)| (spc.to_string(), url.to_string()))
        .collect();
    let pki = pki::build(&out.join("certs"), &carriers, &mut Rng::fork(o.seed, "pki"))?;
    write_labels(&out, &plan)?;
    write_campaigns(&out, &plan)?;
    write_config(&out, &pki)?;
    let (frames, pcap_bytes, signed) = write_pcap(&out.join("scenario.pcap"), &plan, &pki)?;
    let first = plan.calls.first().map_or(0, |c| c.start_us);
    let last = plan.calls.last().map_or(0, |c| c.start_us);
    Ok(ScenarioSummary {
        variant: o.variant,
        calls: plan.calls.len(),
        background_calls: plan.groups[0].calls,
        campaigns: plan
            .groups
            .iter()
            .filter(|g| g.kind.is_some_and(plan::Kind::is_campaign))
            .count(),
        frames,
        pcap_bytes,
        signed_invites: signed,
        capture_seconds: (last - first) as f64 / 1e6,
        elapsed_seconds: started.elapsed().as_secs_f64(),
    })
}

fn group_kind(plan: &Plan, g: u16) -> &'static str {
    match plan.groups[g as usize].kind {
        None => "background",
        Some(k) => k.label(),
    }
}

fn write_labels(out: &Path, plan: &Plan) -> Result<(), ScenarioError> {
    let path = out.join("labels.jsonl");
    let f = std::fs::File::create(&path).map_err(io_err(&path))?;
    let mut w = BufWriter::new(f);
    for c in &plan.calls {
        let line = serde_json::json!({
            "call_id": c.call_id,
            "campaign": plan.groups[c.group as usize].id,
            "kind": group_kind(plan, c.group),
            "peer": PEERS[c.peer as usize].name,
            "first_invite_at": Timestamp(c.start_us).to_rfc3339(),
        });
        writeln!(w, "{line}").map_err(io_err(&path))?;
    }
    w.flush().map_err(io_err(&path))
}

fn write_campaigns(out: &Path, plan: &Plan) -> Result<(), ScenarioError> {
    let path = out.join("campaigns.json");
    let list: Vec<serde_json::Value> = plan
        .groups
        .iter()
        .filter_map(|g| {
            let kind = g.kind?;
            Some(serde_json::json!({
                "id": g.id,
                "kind": kind.label(),
                "peer": PEERS[g.peer].name,
                "calls": g.calls,
                "rate_per_s": g.rate_per_s,
                "start": Timestamp(g.first_us).to_rfc3339(),
                "end": Timestamp(g.last_us).to_rfc3339(),
            }))
        })
        .collect();
    let text = serde_json::to_string_pretty(&list).unwrap_or_default();
    std::fs::write(&path, text + "\n").map_err(io_err(&path))
}

pub(crate) fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn write_config(out: &Path, pki: &Pki) -> Result<(), ScenarioError> {
    let peers: Vec<PeerEntry> = PEERS
        .iter()
        .map(|p| PeerEntry {
            name: p.name.to_string(),
            ocn: p.ocn.to_string(),
            cidrs: vec![format!("{}.{}.{}.0/24", p.net[0], p.net[1], p.net[2])],
        })
        .collect();
    let t = sensor_toml(
        "# Written by `shaken-sensor scenario`: replays this directory's scenario.pcap with the\n\
         # generated PKI seeded (nothing is fetched). Detection settings are the defaults.\n",
        "scenario",
        pki,
        &peers,
    );
    let path = out.join("sensor.toml");
    std::fs::write(&path, t).map_err(io_err(&path))
}

/// One `[[peers]]` table of a generated sensor.toml.
pub(crate) struct PeerEntry {
    pub name: String,
    pub ocn: String,
    pub cidrs: Vec<String>,
}

/// A sensor.toml for replaying a generated capture: the scenario's root as trust anchor, every
/// signer's certificate seeded under its x5u (nothing is fetched), no outputs but the
/// command line's, and `peers`. `comment` is the file's opening comment (ends in a newline).
pub(crate) fn sensor_toml(comment: &str, id: &str, pki: &Pki, peers: &[PeerEntry]) -> String {
    let mut t = format!(
        "{comment}\n[sensor]\nid = {}\nworkers = 0\n\n[output]\nrecords = \"\"\n\n[traceback]\nenabled = false\n\n\
         [http]\nbind = \"\"\n\n[shaken]\ncrl = \"off\"\n",
        toml_str(id)
    );
    t.push_str(&format!(
        "trust_anchors = [{}]\ncerts = [\n",
        toml_str(&pki.root_path.display().to_string())
    ));
    for s in &pki.signers {
        t.push_str(&format!(
            "  {{ url = {}, file = {} }},\n",
            toml_str(&s.x5u),
            toml_str(&s.cert_path.display().to_string())
        ));
    }
    t.push_str("]\n\n[shaken.x5u]\nfetch = false\n");
    for p in peers {
        let cidrs: Vec<String> = p.cidrs.iter().map(|c| toml_str(c)).collect();
        t.push_str(&format!(
            "\n[[peers]]\nname = {}\nocn = {}\ncidrs = [{}]\n",
            toml_str(&p.name),
            toml_str(&p.ocn),
            cidrs.join(", ")
        ));
    }
    t
}

/// A message waiting to be written: (time, sequence, call index, step).
type Pending = Reverse<(i64, u64, u32, StepKey)>;

/// `Step` packed so the heap entry stays small and ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct StepKey(u8, u16);

pub(crate) fn pack(s: Step) -> StepKey {
    match s {
        Step::Invite => StepKey(0, 0),
        Step::Trying => StepKey(1, 0),
        Step::Ringing => StepKey(2, 0),
        Step::Answer => StepKey(3, 0),
        Step::AckAnswer => StepKey(4, 0),
        Step::Bye { by_caller } => StepKey(5, u16::from(by_caller)),
        Step::ByeOk { by_caller } => StepKey(6, u16::from(by_caller)),
        Step::Cancel => StepKey(7, 0),
        Step::CancelOk => StepKey(8, 0),
        Step::Final(code) => StepKey(9, code),
        Step::AckFinal => StepKey(10, 0),
    }
}

pub(crate) fn unpack(k: StepKey) -> Step {
    match k.0 {
        0 => Step::Invite,
        1 => Step::Trying,
        2 => Step::Ringing,
        3 => Step::Answer,
        4 => Step::AckAnswer,
        5 => Step::Bye {
            by_caller: k.1 == 1,
        },
        6 => Step::ByeOk {
            by_caller: k.1 == 1,
        },
        7 => Step::Cancel,
        8 => Step::CancelOk,
        9 => Step::Final(k.1),
        _ => Step::AckFinal,
    }
}

fn media_port(i: usize) -> u32 {
    10_000 + ((i as u32).wrapping_mul(2) % 50_000)
}

fn write_pcap(path: &Path, plan: &Plan, pki: &Pki) -> Result<(u64, u64, u64), ScenarioError> {
    let f = std::fs::File::create(path).map_err(io_err(path))?;
    let mut w = PcapWriter::new(BufWriter::with_capacity(1 << 20, f)).map_err(io_err(path))?;
    let sysrng = ring::rand::SystemRandom::new();
    let mut tokens: Vec<Option<String>> = vec![None; plan.replay_tokens.len()];
    let mut heap: BinaryHeap<Pending> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut signed = 0u64;
    let emit = |w: &mut PcapWriter<_>, t: i64, i: usize, step: Step, identity: Option<&str>| {
        let c = &plan.calls[i];
        let e = sip::ends(c);
        let bytes = sip::render(c, step, identity, media_port(i));
        let (src, dst) = if step.from_peer() {
            (e.peer_ip, e.our_ip)
        } else {
            (e.our_ip, e.peer_ip)
        };
        w.udp(t, src, dst, &bytes)
    };
    for (i, c) in plan.calls.iter().enumerate() {
        while heap.peek().is_some_and(|Reverse(p)| p.0 <= c.start_us) {
            if let Some(Reverse((t, _, ci, k))) = heap.pop() {
                emit(&mut w, t, ci as usize, unpack(k), None).map_err(io_err(path))?;
            }
        }
        let identity = match &c.signing {
            Signing::Unsigned => None,
            Signing::Sign {
                signer,
                attest,
                origid,
            } => Some(pki.signers[*signer].identity(
                &sysrng,
                &Claims {
                    attest: *attest,
                    orig: &c.caller,
                    dest: std::slice::from_ref(&c.callee),
                    iat: c.start_us.div_euclid(1_000_000),
                    origid: &plan.origids[*origid as usize],
                },
            )),
            Signing::Replay { token } => {
                let slot = &mut tokens[*token];
                if slot.is_none() {
                    let r = &plan.replay_tokens[*token];
                    *slot = Some(pki.signers[r.signer].identity(
                        &sysrng,
                        &Claims {
                            attest: r.attest,
                            orig: &r.orig,
                            dest: &r.dests,
                            iat: r.iat,
                            origid: &plan.origids[r.origid as usize],
                        },
                    ));
                }
                slot.clone()
            }
        };
        signed += u64::from(identity.is_some());
        emit(&mut w, c.start_us, i, Step::Invite, identity.as_deref()).map_err(io_err(path))?;
        for (off_ms, step) in sip::script(c) {
            seq += 1;
            heap.push(Reverse((
                c.start_us + i64::from(off_ms) * 1000,
                seq,
                i as u32,
                pack(step),
            )));
        }
    }
    while let Some(Reverse((t, _, ci, k))) = heap.pop() {
        emit(&mut w, t, ci as usize, unpack(k), None).map_err(io_err(path))?;
    }
    let (frames, bytes) = (w.frames, w.bytes);
    w.finish().map_err(io_err(path))?;
    Ok((frames, bytes, signed))
}

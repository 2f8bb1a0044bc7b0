//! Builds a [`DetectionEvent`] from a key's state, the rule and the hit: the window's counts,
//! the key's top peers/origids/SPCs and the rule's sample calls. Ids are
//! `<sensor>:det-<run>-NNNNNN`: a counter shared by the shards, behind a run id (start time and
//! random bits) so a restarted sensor never reuses an id an analyst already holds.

use super::features::VERSTATS;
use super::fingerprint::fingerprint_hex;
use super::keys::KeyState;
use super::kinds::KeyKind;
use super::rules::{Hit, Rule};
use crate::clock::Timestamp;
use crate::record::{
    AttestMix, DetectionEvent, DetectionKey, DetectionState, PeerCalls, DETECTION_SCHEMA,
};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Detection ids of one sensor run, shared by its shards.
pub struct DetectionIds {
    sensor: Arc<str>,
    run: String,
    next: AtomicU64,
}

impl DetectionIds {
    /// A new run: its id is the wall-clock start (seconds, hex) and 16 random bits.
    pub fn new(sensor: Arc<str>) -> Arc<Self> {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut rand = [0u8; 2];
        // Without random bits two starts within one second could collide; the time still
        // separates every other restart.
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut rand);
        Self::with_run(sensor, &format!("{secs:x}{:04x}", u16::from_be_bytes(rand)))
    }

    /// A fixed run id (tests, benchmarks).
    pub fn with_run(sensor: Arc<str>, run: &str) -> Arc<Self> {
        Arc::new(DetectionIds {
            sensor,
            run: run.to_string(),
            next: AtomicU64::new(0),
        })
    }

    pub fn next(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn id(&self, n: u64) -> String {
        // The collector reads the sensor back from the id (shaken_wire::RecordHead::sensor).
        format!(
            "{}{}{}-{n:06}",
            self.sensor,
            shaken_wire::DETECTION_ID_INFIX,
            self.run
        )
    }
}

#[allow(clippy::too_many_arguments)]
pub fn build(
    ids: &DetectionIds,
    id: u64,
    state: DetectionState,
    rule: Rule,
    st: &KeyState,
    hit: &Hit,
    at: Timestamp,
    samples: Option<&[std::sync::Arc<str>]>,
) -> DetectionEvent {
    let view = st.window(hit.window).view();
    let c = &view.counts;
    let fingerprint = match st.kind {
        KeyKind::Fingerprint => Some(st.value.to_string()),
        _ => st
            .fingerprints
            .top()
            .first()
            .map(|f| fingerprint_hex(f.item)),
    };
    let verstat_mix: BTreeMap<Cow<'static, str>, u64> = VERSTATS
        .iter()
        .zip(c.verstat.iter())
        .filter(|(_, n)| **n > 0)
        .map(|((_, name), n)| (Cow::Borrowed(*name), u64::from(*n)))
        .collect();
    let detection_id = ids.id(id);
    DetectionEvent {
        schema: DETECTION_SCHEMA,
        record_id: format!("{detection_id}:{}:{}", state.as_str(), at.micros()),
        detection_id,
        state,
        rule: rule.name().into(),
        severity: rule.severity(),
        key: DetectionKey {
            kind: st.kind.as_str().into(),
            value: st.value.to_string(),
        },
        fingerprint,
        window: hit.window.label().into(),
        first_seen: view.first_seen.unwrap_or(at),
        last_seen: at,
        calls: u64::from(c.calls),
        distinct_dest: view.distinct_dest(),
        distinct_orig: view.distinct_orig(),
        attest_mix: AttestMix {
            a: c.attest[0].into(),
            b: c.attest[1].into(),
            c: c.attest[2].into(),
            none: c.attest[3].into(),
        },
        verstat_mix,
        peers: st
            .peers
            .top()
            .into_iter()
            .map(|p| PeerCalls {
                peer: p.item.0.to_string(),
                ocn: p.item.1.as_deref().map(str::to_string),
                calls: p.count,
            })
            .collect(),
        origids: st
            .origids
            .top()
            .iter()
            .map(|o| o.item.to_string())
            .collect(),
        spcs: st.spcs.top().iter().map(|o| o.item.to_string()).collect(),
        sample_call_ids: match samples {
            Some(s) => s.iter().map(|c| c.to_string()).collect(),
            None => st.samples[rule as usize]
                .iter()
                .map(|c| c.to_string())
                .collect(),
        },
        evidence: hit
            .evidence
            .iter()
            .map(|&(name, v)| (Cow::Borrowed(name), v))
            .collect(),
    }
}

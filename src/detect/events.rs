//! Builds a [`DetectionEvent`] from a key's state, the rule and the hit: the window's counts,
//! the key's top peers/origids/SPCs and the rule's sample calls. Ids are `<sensor>:det-NNNNNN`,
//! from a counter shared by the shards.

use super::features::{KeyKind, VERSTATS};
use super::fingerprint::fingerprint_hex;
use super::keys::KeyState;
use super::rules::{Hit, Rule};
use crate::clock::Timestamp;
use crate::record::{
    AttestMix, DetectionEvent, DetectionKey, DetectionState, PeerCalls, DETECTION_SCHEMA,
};
use std::collections::BTreeMap;

pub fn detection_id(sensor: &str, n: u64) -> String {
    format!("{sensor}:det-{n:06}")
}

#[allow(clippy::too_many_arguments)]
pub fn build(
    sensor: &str,
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
    let verstat_mix: BTreeMap<&'static str, u64> = VERSTATS
        .iter()
        .zip(c.verstat.iter())
        .filter(|(_, n)| **n > 0)
        .map(|((_, name), n)| (*name, u64::from(*n)))
        .collect();
    DetectionEvent {
        schema: DETECTION_SCHEMA,
        detection_id: detection_id(sensor, id),
        state,
        rule: rule.name(),
        severity: rule.severity(),
        key: DetectionKey {
            kind: st.kind.as_str(),
            value: st.value.to_string(),
        },
        fingerprint,
        window: hit.window.label(),
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
        evidence: hit.evidence.iter().copied().collect(),
    }
}

//! The key kinds, from ONE table ([`KINDS`]): each row names the kind, says how a call's key
//! of that kind is hashed and written, which rules watch it and how shares are judged there.
//! Arrays indexed by kind are sized by [`KIND_COUNT`], so adding a row is the only edit a new
//! kind needs (plus its extractor); a rule watches a kind only if the row lists it.
//!
//! Kinds whose key stands for one originator (fingerprint, origid, caller) judge a rule by the
//! share of bad calls; kinds that carry many originators (a peer, a peer's signer at one
//! attestation level) judge it by a burst of bad calls against the key's own earlier rate, so
//! a busy peer's everyday share of odd calls never fires and a campaign hidden in it still
//! does. This module must never hold state: it is the catalogue, not the tables.

use super::features::{Attest, CallKeys};
use super::fingerprint::fingerprint_hex;
use super::hash::Hash64;
use super::rules::Rule;

/// The kinds of key a detector keeps windows for (the discriminant is the row in [`KINDS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyKind {
    Fingerprint = 0,
    Peer = 1,
    PeerSigner = 2,
    Origid = 3,
    OrigTn = 4,
}

/// How a kind's key judges a rule's badness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judge {
    /// Share of bad calls (one originator behind the key).
    Share,
    /// Bad calls well above the key's own earlier rate (many originators behind the key).
    Burst,
    /// Either: a fingerprint is one setup, but a campaign may copy a busy setup's traits.
    ShareOrBurst,
}

pub struct KindDef {
    pub kind: KeyKind,
    /// Label in events (`key.kind`) and metrics (`{kind}`).
    pub name: &'static str,
    /// The key's hash (None: the call has no key of this kind), from a hasher seeded per kind.
    pub hash: fn(&CallKeys, Hash64) -> Option<u64>,
    /// The key as written in events.
    pub value: fn(&CallKeys) -> Option<String>,
    /// Bit set of the rules watching this kind (see [`rules_mask`]).
    pub rules: u16,
    pub judge: Judge,
}

const fn rules_mask(rules: &[Rule]) -> u16 {
    let mut m = 0u16;
    let mut i = 0;
    while i < rules.len() {
        m |= 1 << rules[i] as u16;
        i += 1;
    }
    m
}

use Rule::*;

pub const KINDS: [KindDef; 5] = [
    KindDef {
        kind: KeyKind::Fingerprint,
        name: "fingerprint",
        hash: |k, _| Some(fingerprint_key_hash(k.fingerprint)),
        value: |k| Some(fingerprint_hex(k.fingerprint)),
        rules: rules_mask(&[
            NeighbourSpoofing,
            OrigidCallerChurn,
            UnsignedFlood,
            InvalidCallerId,
            SequentialDialling,
            OneRing,
            ReplayedPassport,
            ShortCalls,
        ]),
        judge: Judge::ShareOrBurst,
    },
    KindDef {
        kind: KeyKind::Peer,
        name: "peer",
        hash: |k, h| Some(h.bytes(k.peer.as_bytes()).finish()),
        value: |k| Some(k.peer.to_string()),
        // Not caller churn: a peer's callers always churn.
        rules: rules_mask(&[
            NeighbourSpoofing,
            UnsignedFlood,
            InvalidCallerId,
            SequentialDialling,
            OneRing,
            ReplayedPassport,
            ShortCalls,
        ]),
        judge: Judge::Burst,
    },
    KindDef {
        kind: KeyKind::PeerSigner,
        name: "peer_signer",
        hash: |k, h| {
            let s = k.signer.as_ref()?;
            Some(
                h.bytes(k.peer.as_bytes())
                    .bytes(s.spc.as_bytes())
                    .u64(s.attest as u64)
                    .finish(),
            )
        },
        value: |k| {
            let s = k.signer.as_ref()?;
            Some(format!(
                "{}/{}/{}",
                k.peer,
                s.spc.as_str(),
                s.attest.as_str()
            ))
        },
        // Only signed calls have this key: no unsigned flood here.
        rules: rules_mask(&[
            NeighbourSpoofing,
            OrigidCallerChurn,
            InvalidCallerId,
            SequentialDialling,
            OneRing,
            ReplayedPassport,
            ShortCalls,
        ]),
        judge: Judge::Burst,
    },
    KindDef {
        kind: KeyKind::Origid,
        name: "origid",
        hash: |k, h| k.origid.as_deref().map(|o| h.bytes(o.as_bytes()).finish()),
        value: |k| k.origid.as_ref().map(|o| o.to_string()),
        rules: rules_mask(&[
            NeighbourSpoofing,
            OrigidCallerChurn,
            InvalidCallerId,
            SequentialDialling,
            OneRing,
            ReplayedPassport,
            ShortCalls,
        ]),
        judge: Judge::Share,
    },
    KindDef {
        kind: KeyKind::OrigTn,
        name: "orig_tn",
        hash: |k, h| k.orig_tn.map(|t| h.bytes(t.as_bytes()).finish()),
        value: |k| k.orig_tn.map(|t| t.to_string()),
        rules: rules_mask(&[
            NeighbourSpoofing,
            InvalidCallerId,
            SequentialDialling,
            OneRing,
            ReplayedPassport,
            ShortCalls,
        ]),
        judge: Judge::Share,
    },
];

pub const KIND_COUNT: usize = KINDS.len();

/// The hash of a fingerprint's key (for looking a fingerprint's state up from another key).
pub fn fingerprint_key_hash(fp: u64) -> u64 {
    Hash64::seeded(KeyKind::Fingerprint as u64).u64(fp).finish()
}

/// Every kind, in table order.
pub const KEY_KINDS: [KeyKind; KIND_COUNT] = {
    let mut out = [KeyKind::Fingerprint; KIND_COUNT];
    let mut i = 0;
    while i < KIND_COUNT {
        out[i] = KINDS[i].kind;
        i += 1;
    }
    out
};

// The discriminant is the row: checked at compile time.
const _: () = {
    let mut i = 0;
    while i < KIND_COUNT {
        assert!(KINDS[i].kind as usize == i);
        i += 1;
    }
};

impl KeyKind {
    pub fn def(self) -> &'static KindDef {
        &KINDS[self as usize]
    }

    pub fn as_str(self) -> &'static str {
        self.def().name
    }

    pub fn watches(self, rule: Rule) -> bool {
        self.def().rules & (1 << rule as u16) != 0
    }

    pub fn judge(self) -> Judge {
        self.def().judge
    }
}

impl Attest {
    pub fn as_str(self) -> &'static str {
        match self {
            Attest::A => "A",
            Attest::B => "B",
            Attest::C => "C",
            Attest::None => "none",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::rules::RULES;
    use super::*;

    /// Issue #13: every rule can fire on at least two kinds, so a campaign that defeats one
    /// key (a fresh origid, a rotating User-Agent) still meets the rule on another.
    #[test]
    fn every_rule_watches_at_least_two_kinds_and_names_are_unique() {
        for rule in RULES {
            let kinds: Vec<&str> = KEY_KINDS
                .iter()
                .filter(|k| k.watches(rule))
                .map(|k| k.as_str())
                .collect();
            assert!(kinds.len() >= 2, "{} only on {kinds:?}", rule.name());
        }
        let names: std::collections::HashSet<&str> = KINDS.iter().map(|d| d.name).collect();
        assert_eq!(names.len(), KIND_COUNT);
        assert!(!KeyKind::Peer.watches(Rule::OrigidCallerChurn));
        assert!(!KeyKind::PeerSigner.watches(Rule::UnsignedFlood));
    }
}

//! The rules: each combines volume (a minimum of calls in a window) with a badness signal (a
//! share of calls with a bad trait), so legitimate bulk senders (stable signed caller IDs,
//! normal answer rates and durations) never fire. Rule names are a contract with the
//! evaluation. Pure functions of a key's state: no I/O, no clock.

use super::features::KeyKind;
use super::keys::KeyState;
use super::window::{View, WindowSpan, SPANS};
use crate::clock::Timestamp;
use crate::config::DetectRules;
use crate::record::Severity;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    NeighbourSpoofing = 0,
    OrigidCallerChurn = 1,
    UnsignedFlood = 2,
    InvalidCallerId = 3,
    SequentialDialling = 4,
    OneRing = 5,
    ReplayedPassport = 6,
    ShortCalls = 7,
}

pub const RULE_COUNT: usize = 8;

pub const RULES: [Rule; RULE_COUNT] = [
    Rule::NeighbourSpoofing,
    Rule::OrigidCallerChurn,
    Rule::UnsignedFlood,
    Rule::InvalidCallerId,
    Rule::SequentialDialling,
    Rule::OneRing,
    Rule::ReplayedPassport,
    Rule::ShortCalls,
];

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::NeighbourSpoofing => "neighbour_spoofing",
            Rule::OrigidCallerChurn => "origid_caller_churn",
            Rule::UnsignedFlood => "unsigned_flood",
            Rule::InvalidCallerId => "invalid_caller_id",
            Rule::SequentialDialling => "sequential_dialling",
            Rule::OneRing => "one_ring",
            Rule::ReplayedPassport => "replayed_passport",
            Rule::ShortCalls => "short_calls",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            Rule::NeighbourSpoofing | Rule::ReplayedPassport | Rule::InvalidCallerId => {
                Severity::High
            }
            Rule::UnsignedFlood | Rule::OrigidCallerChurn | Rule::OneRing => Severity::Medium,
            Rule::SequentialDialling | Rule::ShortCalls => Severity::Medium,
        }
    }

    /// The key kinds a rule watches. A peer carries everyone's traffic: share rules would be
    /// diluted there, and a burst judged per peer cannot tell its own calls from the peer's
    /// steady unsigned background (its samples would name background calls), so the unsigned
    /// burst is judged per fingerprint, where the flood's own setup shows.
    pub fn applies(self, kind: KeyKind) -> bool {
        match self {
            Rule::UnsignedFlood => kind == KeyKind::Fingerprint,
            Rule::OrigidCallerChurn => matches!(kind, KeyKind::Fingerprint | KeyKind::Origid),
            _ => kind != KeyKind::Peer,
        }
    }

    fn windows(self) -> &'static [WindowSpan] {
        match self {
            Rule::UnsignedFlood => &SPANS[..1],
            // A rate: distinct callers within a minute (slower churn is everyday traffic).
            Rule::OrigidCallerChurn => &SPANS[..1],
            _ => &SPANS,
        }
    }
}

/// A rule holding on a key: the window it holds in and the signals that crossed thresholds.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub window: WindowSpan,
    pub evidence: Vec<(&'static str, f64)>,
}

/// An open detection of one rule on one key.
#[derive(Clone, Debug)]
pub struct OpenEvent {
    pub id: u64,
    pub last_emit: Timestamp,
    pub last_hold: Timestamp,
    pub hit: Hit,
    /// The rule's sample calls when it last held (a closing event must not report calls that
    /// came after the campaign, when the rule no longer held).
    pub samples: Vec<std::sync::Arc<str>>,
}

fn ratio(a: u32, b: u32) -> f64 {
    if b == 0 {
        0.0
    } else {
        f64::from(a) / f64::from(b)
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Context a rule needs besides the key.
pub struct Ctx<'a> {
    pub cfg: &'a DetectRules,
    pub now: Timestamp,
    /// Stream time of the detector's first call.
    pub started: Timestamp,
    pub warmup_us: i64,
}

/// Whether `rule` holds on `st`, in the shortest window where it does.
pub fn check(rule: Rule, st: &KeyState, ctx: &Ctx<'_>) -> Option<Hit> {
    for &span in rule.windows() {
        let view = st.window(span).view();
        if let Some(evidence) = check_view(rule, st, &view, ctx) {
            let evidence = evidence.into_iter().map(|(k, v)| (k, round3(v))).collect();
            return Some(Hit {
                window: span,
                evidence,
            });
        }
    }
    None
}

fn check_view(
    rule: Rule,
    st: &KeyState,
    v: &View<'_>,
    ctx: &Ctx<'_>,
) -> Option<Vec<(&'static str, f64)>> {
    let r = ctx.cfg;
    let c = &v.counts;
    let per_min = |n: u32| f64::from(n) / v.minutes(ctx.now);
    match rule {
        Rule::NeighbourSpoofing => {
            if c.calls < r.neighbour_min_calls {
                return None;
            }
            let share = ratio(c.neighbour, c.calls);
            if share < r.neighbour_min_share {
                return None;
            }
            let self_share = ratio(c.self_call, c.calls);
            let churn = v.distinct_orig() as f64 / f64::from(c.calls);
            if self_share < r.neighbour_min_share && churn < r.neighbour_min_caller_churn {
                return None;
            }
            Some(vec![
                ("neighbour_share", share),
                ("self_call_share", self_share),
                ("caller_churn", churn),
                ("calls_per_min", per_min(c.calls)),
            ])
        }
        Rule::OrigidCallerChurn => {
            // A fingerprint stands for one signer only when its calls are signed.
            if st.kind == KeyKind::Fingerprint && ratio(c.unsigned, c.calls) > 0.5 {
                return None;
            }
            if c.calls < r.churn_min_callers {
                return None;
            }
            let distinct = v.distinct_orig();
            let churn = distinct as f64 / f64::from(c.calls);
            if distinct < u64::from(r.churn_min_callers) || churn < r.churn_min_ratio {
                return None;
            }
            // Behind an origid, one setup (fingerprint) must carry the calls: an origid shared
            // by many PBXs and phones is a carrier's, not a dialer's.
            let top = st.fingerprints.top().first().map_or(0, |f| f.count);
            let concentration = top as f64 / st.fingerprints.total().max(1) as f64;
            if st.kind == KeyKind::Origid && concentration < r.churn_min_fingerprint_share {
                return None;
            }
            Some(vec![
                ("distinct_callers", distinct as f64),
                ("fingerprint_share", concentration),
                ("caller_churn", churn),
                ("calls_per_min", per_min(c.calls)),
            ])
        }
        Rule::UnsignedFlood => {
            if c.unsigned < r.unsigned_min_calls {
                return None;
            }
            let share = ratio(c.unsigned, c.calls);
            if st.kind == KeyKind::Fingerprint && share < r.unsigned_min_share {
                return None;
            }
            let rate = per_min(c.unsigned);
            // The key's own earlier unsigned rate: the 60-minute view without the last minute.
            // A key first seen during the sensor's warm-up learns its rate before it may
            // fire; a key first seen after it is new traffic (baseline 0 until it has history).
            let long = st.window(WindowSpan::M60).view();
            let history_min = (long.minutes(ctx.now) - v.minutes(ctx.now)).max(0.0);
            let born_warm = st.created.0 - ctx.started.0 >= ctx.warmup_us;
            let baseline = if history_min >= 1.0 {
                f64::from(long.counts.unsigned.saturating_sub(c.unsigned)) / history_min
            } else if born_warm {
                0.0
            } else {
                return None;
            };
            if rate < r.unsigned_burst_factor * baseline.max(1.0) {
                return None;
            }
            Some(vec![
                ("unsigned_calls", f64::from(c.unsigned)),
                ("unsigned_share", share),
                ("unsigned_per_min", rate),
                ("baseline_unsigned_per_min", baseline),
            ])
        }
        Rule::InvalidCallerId => {
            let share = ratio(c.invalid, c.calls);
            if c.invalid < r.invalid_min_calls || share < r.invalid_min_share {
                return None;
            }
            Some(vec![
                ("invalid_calls", f64::from(c.invalid)),
                ("invalid_share", share),
            ])
        }
        Rule::SequentialDialling => {
            let share = ratio(c.sequential, c.calls);
            if c.calls < r.sequential_min_calls || share < r.sequential_min_share {
                return None;
            }
            Some(vec![
                ("sequential_share", share),
                ("not_found_share", ratio(c.not_found, c.ended)),
                ("calls_per_min", per_min(c.calls)),
            ])
        }
        Rule::OneRing => {
            let share = ratio(c.quick_cancel, c.ended);
            if c.ended < r.one_ring_min_calls || share < r.one_ring_min_share {
                return None;
            }
            Some(vec![
                ("one_ring_share", share),
                ("asr", ratio(c.answered, c.ended)),
            ])
        }
        Rule::ReplayedPassport => {
            if c.replayed < r.replayed_min_calls {
                return None;
            }
            Some(vec![
                ("replayed_calls", f64::from(c.replayed)),
                ("replayed_share", ratio(c.replayed, c.calls)),
            ])
        }
        Rule::ShortCalls => {
            if c.ended < r.short_min_calls || c.answered == 0 {
                return None;
            }
            let asr = ratio(c.answered, c.ended);
            let short = ratio(c.short_answered, c.answered);
            if asr > r.short_max_asr || short < r.short_min_share {
                return None;
            }
            Some(vec![
                ("asr", asr),
                ("short_share", short),
                (
                    "acd_s",
                    c.duration_ms as f64 / 1000.0 / f64::from(c.answered),
                ),
            ])
        }
    }
}

//! The rules: each combines volume (a minimum of calls in a window) with a badness signal (a
//! share of calls with a bad trait), so legitimate bulk senders (stable signed caller IDs,
//! normal answer rates and durations) never fire. Rule names are a contract with the
//! evaluation. Pure functions of a key's state: no I/O, no clock.

use super::keys::KeyState;
use super::kinds::{Judge, KeyKind};
use super::window::{Counts, View, WindowSpan, SPANS};
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

    fn windows(self) -> &'static [WindowSpan] {
        match self {
            // A burst: the last minute, or ten for a flood that starts slowly.
            Rule::UnsignedFlood => &SPANS[..2],
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

/// The key's history of `pick` calls before the view: (calls, minutes) in the 60-minute window
/// without the view, once that covers a minute. None while the key has less history (and
/// always for the 60-minute view itself).
fn history(
    st: &KeyState,
    v: &View<'_>,
    ctx: &Ctx<'_>,
    pick: fn(&Counts) -> u32,
) -> Option<(f64, f64)> {
    if v.span == WindowSpan::M60 {
        return None;
    }
    let long = st.window(WindowSpan::M60).view();
    let minutes = (long.minutes(ctx.now) - v.minutes(ctx.now)).max(0.0);
    (minutes >= 1.0).then(|| {
        (
            f64::from(pick(&long.counts).saturating_sub(pick(&v.counts))),
            minutes,
        )
    })
}

/// The key was first seen after the warm-up: new traffic (a key seen during it must learn its
/// rate before a burst can count).
fn born_warm(st: &KeyState, ctx: &Ctx<'_>) -> bool {
    st.created.0 - ctx.started.0 >= ctx.warmup_us
}

/// Whether the view's `pick` count is a burst over the key's history `(calls, minutes)`: at
/// least `min`, `factor` times the count the history's rate predicts, and `burst_min_z`
/// standard deviations above it in the conditional test of two Poisson rates (given all the
/// calls of view and history, the view's share is binomial with p = its share of the time),
/// which also weighs how little a short history says. Without history (a key new after the
/// warm-up) only `min` applies. Returns the expected count.
fn burst(
    v: &View<'_>,
    ctx: &Ctx<'_>,
    pick: fn(&Counts) -> u32,
    history: Option<(f64, f64)>,
    min: u32,
    factor: f64,
) -> Option<f64> {
    let bad = pick(&v.counts);
    if bad < min {
        return None;
    }
    let Some((before, before_min)) = history else {
        return Some(0.0);
    };
    let bad = f64::from(bad);
    let minutes = v.minutes(ctx.now);
    let expected = before / before_min * minutes;
    if bad < factor * expected.max(1.0) {
        return None;
    }
    let n = bad + before;
    let p = minutes / (minutes + before_min);
    let z = (bad - n * p) / (n * p * (1.0 - p)).max(1e-9).sqrt();
    (z >= ctx.cfg.burst_min_z).then_some(expected)
}

/// A rule's badness on a key. Share-judged kinds, and a key first seen after the warm-up that
/// has no history yet (its calls are its own), take the share test; burst-judged kinds with
/// history take the burst test; fingerprints take either. Evidence names a burst.
fn bad_enough(
    share_holds: impl FnOnce() -> bool,
    st: &KeyState,
    v: &View<'_>,
    ctx: &Ctx<'_>,
    pick: fn(&Counts) -> u32,
    min: u32,
) -> Option<Vec<(&'static str, f64)>> {
    let judge = st.kind.judge();
    let before = match judge {
        Judge::Share => None,
        _ => history(st, v, ctx, pick),
    };
    let share_applies = match judge {
        Judge::Share | Judge::ShareOrBurst => true,
        Judge::Burst => before.is_none() && born_warm(st, ctx),
    };
    if share_applies && share_holds() {
        return Some(Vec::new());
    }
    let expected = burst(v, ctx, pick, Some(before?), min, ctx.cfg.burst_factor)?;
    Some(vec![
        ("burst_calls", f64::from(pick(&v.counts))),
        ("expected_calls", expected),
    ])
}

/// The key's callers repeat over ten minutes (a call centre's DIDs, a business's lines)
/// rather than change with every call.
fn callers_repeat(st: &KeyState, r: &DetectRules) -> bool {
    let v = st.window(WindowSpan::M10).view();
    v.counts.calls > 0 && (v.distinct_orig() as f64 / f64::from(v.counts.calls)) < r.churn_min_ratio
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
    let mut ev = match rule {
        Rule::NeighbourSpoofing => {
            let share = ratio(c.neighbour, c.calls);
            let self_share = ratio(c.self_call, c.calls);
            let churn = || v.distinct_orig() as f64 / f64::from(c.calls.max(1));
            let mut ev = bad_enough(
                || {
                    c.calls >= r.neighbour_min_calls
                        && share >= r.neighbour_min_share
                        && (self_share >= r.neighbour_min_share
                            || churn() >= r.neighbour_min_caller_churn)
                },
                st,
                v,
                ctx,
                |c| c.neighbour,
                r.neighbour_min_calls,
            )?;
            ev.extend([
                ("neighbour_share", share),
                ("self_call_share", self_share),
                ("caller_churn", churn()),
                ("calls_per_min", per_min(c.calls)),
            ]);
            ev
        }
        Rule::OrigidCallerChurn => {
            // A fingerprint stands for one signer only when its calls are signed.
            if st.kind == KeyKind::Fingerprint && ratio(c.unsigned, c.calls) > 0.5 {
                return None;
            }
            if c.calls < r.churn_min_callers {
                return None;
            }
            // Caller IDs the signer vouched for (A) are its customer's own numbers: many of
            // them behind one origination point is a call centre, not a spoofing dialer.
            let a_share = ratio(c.attest[0], c.calls);
            if a_share > r.churn_max_a_share {
                return None;
            }
            // Behind an origid, one setup (fingerprint) must carry the calls: an origid shared
            // by many PBXs and phones is a carrier's, not a dialer's. (Checked before the
            // distinct count, which costs a pass over the sketches.)
            let top = st.fingerprints.top().first().map_or(0, |f| f.count);
            let concentration = top as f64 / st.fingerprints.total().max(1) as f64;
            if st.kind == KeyKind::Origid && concentration < r.churn_min_fingerprint_share {
                return None;
            }
            let distinct = v.distinct_orig();
            let churn = distinct as f64 / f64::from(c.calls);
            if distinct < u64::from(r.churn_min_callers) || churn < r.churn_min_ratio {
                return None;
            }
            if callers_repeat(st, r) {
                return None;
            }
            // Where a key carries many originators (a fingerprint's everyday callers churn
            // too), the churning calls must also be new traffic: a burst of calls, or a key
            // first seen after the warm-up (its calls are its own).
            let mut ev = match st.kind.judge() {
                Judge::Share => Vec::new(),
                _ => {
                    let new_key = born_warm(st, ctx) && history(st, v, ctx, |c| c.calls).is_none();
                    bad_enough(|| new_key, st, v, ctx, |c| c.calls, r.churn_min_callers)?
                }
            };
            ev.extend([
                ("distinct_callers", distinct as f64),
                ("fingerprint_share", concentration),
                ("caller_churn", churn),
                ("a_share", a_share),
                ("calls_per_min", per_min(c.calls)),
            ]);
            ev
        }
        Rule::UnsignedFlood => {
            let share = ratio(c.unsigned, c.calls);
            if st.kind.judge() != Judge::Burst && share < r.unsigned_min_share {
                return None;
            }
            if v.span == WindowSpan::M60 {
                return None;
            }
            // Always a burst: a key new after the warm-up has an earlier rate of 0.
            let pick: fn(&Counts) -> u32 = |c| c.unsigned;
            let before = history(st, v, ctx, pick);
            if before.is_none() && !born_warm(st, ctx) {
                return None;
            }
            let expected = burst(
                v,
                ctx,
                pick,
                before,
                r.unsigned_min_calls,
                r.unsigned_burst_factor,
            )?;
            let minutes = v.minutes(ctx.now);
            vec![
                ("unsigned_calls", f64::from(c.unsigned)),
                ("unsigned_share", share),
                ("unsigned_per_min", per_min(c.unsigned)),
                ("baseline_unsigned_per_min", expected / minutes),
            ]
        }
        Rule::InvalidCallerId => {
            let share = ratio(c.invalid, c.calls);
            let mut ev = bad_enough(
                || c.invalid >= r.invalid_min_calls && share >= r.invalid_min_share,
                st,
                v,
                ctx,
                |c| c.invalid,
                r.invalid_min_calls,
            )?;
            ev.extend([
                ("invalid_calls", f64::from(c.invalid)),
                ("invalid_share", share),
            ]);
            ev
        }
        Rule::SequentialDialling => {
            let share = ratio(c.sequential, c.calls);
            let mut ev = bad_enough(
                || c.calls >= r.sequential_min_calls && share >= r.sequential_min_share,
                st,
                v,
                ctx,
                |c| c.sequential,
                r.sequential_min_calls,
            )?;
            ev.extend([
                ("sequential_share", share),
                ("not_found_share", ratio(c.not_found, c.ended)),
                ("calls_per_min", per_min(c.calls)),
            ]);
            ev
        }
        Rule::OneRing => {
            let share = ratio(c.quick_cancel, c.ended);
            let mut ev = bad_enough(
                || c.ended >= r.one_ring_min_calls && share >= r.one_ring_min_share,
                st,
                v,
                ctx,
                |c| c.quick_cancel,
                r.one_ring_min_calls,
            )?;
            ev.extend([
                ("one_ring_share", share),
                ("asr", ratio(c.answered, c.ended)),
            ]);
            ev
        }
        Rule::ReplayedPassport => {
            // A replayed PASSporT is bad in itself: a count, on every kind.
            if c.replayed < r.replayed_min_calls {
                return None;
            }
            vec![
                ("replayed_calls", f64::from(c.replayed)),
                ("replayed_share", ratio(c.replayed, c.calls)),
            ]
        }
        Rule::ShortCalls => {
            let asr = ratio(c.answered, c.ended);
            let short = ratio(c.short_answered, c.answered);
            let mut ev = bad_enough(
                || {
                    c.ended >= r.short_min_calls
                        && c.answered > 0
                        && asr <= r.short_max_asr
                        && short >= r.short_min_share
                },
                st,
                v,
                ctx,
                |c| c.short_answered,
                r.short_min_calls,
            )?;
            ev.extend([
                ("asr", asr),
                ("short_share", short),
                (
                    "acd_s",
                    c.duration_ms as f64 / 1000.0 / f64::from(c.answered.max(1)),
                ),
            ]);
            ev
        }
    };
    ev.retain(|(_, v)| v.is_finite());
    Some(ev)
}

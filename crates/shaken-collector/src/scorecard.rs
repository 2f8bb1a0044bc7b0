//! Provider scorecards and the non-cooperative list (docs/collector.md, "Automated
//! traceback"; issue #14 item 5), from the traceback tables: per provider over a window, its
//! hops by role and its traceback requests by outcome, with the reasons that make it
//! non-cooperative (requests never answered, answered late). Deadlines are applied first.
//!
//! It must never name a provider without a reason, and never count a request outside the
//! window.

use crate::traceback::{sweep, TracebackError};
use rusqlite::Connection;
use serde::Serialize;
use shaken_wire::Timestamp;

/// A provider's record over a window (DESIGN §9 "provider scorecard", the traceback part).
#[derive(Debug, Default, Serialize)]
pub struct Scorecard {
    pub provider: String,
    pub ocns: Vec<String>,
    /// Tracebacks (started in the window) in which it was the originating provider, the
    /// gateway, or an intermediate / terminating hop.
    pub as_originator: u64,
    pub as_gateway: u64,
    pub as_intermediate: u64,
    /// Traceback requests made to it in the window, by outcome.
    pub requests_answered_in_time: u64,
    pub requests_answered_late: u64,
    pub requests_never_answered: u64,
    pub requests_open: u64,
    /// Why it is non-cooperative (empty: it is not).
    pub reasons: Vec<String>,
}

/// Every provider's scorecard over traceback activity since `since`.
pub fn scorecards(
    conn: &Connection,
    since: Timestamp,
    now: Timestamp,
) -> Result<Vec<Scorecard>, TracebackError> {
    sweep(conn, now)?;
    let mut q = conn.prepare_cached(
        "SELECT p.id, p.name,
           (SELECT COUNT(*) FROM traceback_hops h JOIN tracebacks t ON t.id = h.traceback_id
             WHERE h.provider_id = p.id AND t.created_us >= ?1 AND h.role = 'originating'),
           (SELECT COUNT(*) FROM traceback_hops h JOIN tracebacks t ON t.id = h.traceback_id
             WHERE h.provider_id = p.id AND t.created_us >= ?1 AND h.role = 'gateway'),
           (SELECT COUNT(*) FROM traceback_hops h JOIN tracebacks t ON t.id = h.traceback_id
             WHERE h.provider_id = p.id AND t.created_us >= ?1 AND h.role IN ('intermediate', 'terminating')),
           (SELECT COUNT(*) FROM traceback_requests q WHERE q.provider_id = p.id AND q.created_us >= ?1 AND q.status = 'answered'),
           (SELECT COUNT(*) FROM traceback_requests q WHERE q.provider_id = p.id AND q.created_us >= ?1 AND q.status = 'answered_late'),
           (SELECT COUNT(*) FROM traceback_requests q WHERE q.provider_id = p.id AND q.created_us >= ?1 AND q.status = 'non_responsive'),
           (SELECT COUNT(*) FROM traceback_requests q WHERE q.provider_id = p.id AND q.created_us >= ?1 AND q.status = 'open')
         FROM providers p ORDER BY p.name",
    )?;
    let mut out = Vec::new();
    let mut rows = q.query([since.micros()])?;
    while let Some(r) = rows.next()? {
        let n = |i| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
        let mut s = Scorecard {
            provider: r.get(1)?,
            ocns: conn
                .prepare_cached(
                    "SELECT ocn FROM provider_ocns WHERE provider_id = ?1 ORDER BY ocn",
                )?
                .query_map([r.get::<_, i64>(0)?], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?,
            as_originator: n(2)?,
            as_gateway: n(3)?,
            as_intermediate: n(4)?,
            requests_answered_in_time: n(5)?,
            requests_answered_late: n(6)?,
            requests_never_answered: n(7)?,
            requests_open: n(8)?,
            reasons: Vec::new(),
        };
        if s.requests_never_answered > 0 {
            s.reasons.push(format!(
                "missed the deadline of {} traceback request(s) and never answered",
                s.requests_never_answered
            ));
        }
        if s.requests_answered_late > 0 {
            s.reasons.push(format!(
                "answered {} traceback request(s) after the deadline",
                s.requests_answered_late
            ));
        }
        out.push(s);
    }
    Ok(out)
}

/// The non-cooperative providers' scorecards as CSV (provider, OCNs, counts, reasons).
pub fn noncooperative_csv(cards: &[Scorecard]) -> String {
    let field = |v: &str| format!("\"{}\"", v.replace('"', "\"\""));
    let mut out = String::from(
        "provider,ocns,requests_never_answered,requests_answered_late,requests_answered_in_time,reasons\n",
    );
    for c in cards.iter().filter(|c| !c.reasons.is_empty()) {
        out.push_str(&format!(
            "{},{},{},{},{},{}\n",
            field(&c.provider),
            field(&c.ocns.join(" ")),
            c.requests_never_answered,
            c.requests_answered_late,
            c.requests_answered_in_time,
            field(&c.reasons.join("; "))
        ));
    }
    out
}

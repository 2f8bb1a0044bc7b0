//! Automated cross-carrier traceback (docs/collector.md, "Automated traceback"; DESIGN §9),
//! SQLite only for now. A traceback of a call (orig, dest, at) walks upstream hop by hop: at a
//! provider, its sensors' CallRecord of the call (same canonical orig and dest within
//! `window` of `at`, an exact PASSporT match preferred) names the upstream that handed it the
//! call; a registered OCN is the next hop, a customer (no peer) is the origin, a foreign peer
//! (no OCN) stops the chain at the gateway. A provider with no record of the call gets a
//! traceback request with a deadline; its answer (`upstream_ocn` or origin) continues the
//! chain, a missed deadline marks the hop non-responsive. Every "now" comes from one
//! [`Clock`].
//!
//! It must never follow more than [`MAX_HOPS`] hops or visit a provider twice in a chain,
//! never read more than [`MAX_CANDIDATES`] records per hop, never let a provider answer
//! another provider's request, and never store a provider token (only its SHA-256).

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};
use shaken_wire::Timestamp;
use std::sync::Arc;

/// Where "now" comes from (the system clock in the binary, a fixed one in tests).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| Timestamp::from_system_time(std::time::SystemTime::now()))
}

/// Longest chain followed; a longer one ends `too_long` (real chains have 5-6 hops).
pub const MAX_HOPS: usize = 16;
/// Records of one call read per hop at most (one call per leg; more means a flood of the
/// same orig/dest pair in the window).
pub const MAX_CANDIDATES: u32 = 64;
/// Lookups that hit [`MAX_CANDIDATES`] (the rest of the pair's records were not read), for
/// `shaken_collector_traceback_candidates_capped_total`.
pub static CANDIDATES_CAPPED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// The schema version of this module's tables (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;

/// Migrations by version: index `i` takes the database from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &["
CREATE INDEX IF NOT EXISTS records_call_tns ON records
    (json_extract(body, '$.dest_tn'), json_extract(body, '$.orig_tn')) WHERE kind = 'call';
CREATE TABLE IF NOT EXISTS tracebacks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    orig TEXT NOT NULL,
    dest TEXT NOT NULL,
    at_us INTEGER NOT NULL,
    status TEXT NOT NULL,
    origin_kind TEXT,
    created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS traceback_hops (
    traceback_id INTEGER NOT NULL REFERENCES tracebacks (id),
    idx INTEGER NOT NULL,
    provider_id INTEGER NOT NULL REFERENCES providers (id),
    role TEXT NOT NULL,
    upstream_ocn TEXT,
    upstream_peer TEXT,
    record_id TEXT,
    passport TEXT,
    request_id INTEGER,
    answer TEXT,
    at_us INTEGER NOT NULL,
    PRIMARY KEY (traceback_id, idx)
);
CREATE TABLE IF NOT EXISTS traceback_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    traceback_id INTEGER NOT NULL REFERENCES tracebacks (id),
    hop_idx INTEGER NOT NULL,
    provider_id INTEGER NOT NULL REFERENCES providers (id),
    created_us INTEGER NOT NULL,
    deadline_us INTEGER NOT NULL,
    status TEXT NOT NULL,
    answer TEXT,
    answered_us INTEGER
);
CREATE INDEX IF NOT EXISTS traceback_requests_open ON traceback_requests (status, deadline_us);
CREATE TABLE IF NOT EXISTS provider_tokens (
    token_sha256 TEXT PRIMARY KEY,
    provider_id INTEGER NOT NULL UNIQUE REFERENCES providers (id),
    created_us INTEGER NOT NULL
);
"];

/// Brings this module's tables to [`SCHEMA_VERSION`] (after the records and registry tables).
pub fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (v, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        tracing::info!(version = v + 1, "collector database: migrating");
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE;{sql}PRAGMA user_version = {};COMMIT;",
            v + 1
        ))?;
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum TracebackError {
    #[error("{field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    #[error("no provider's records hold a call from {orig} to {dest} near {at}")]
    NoRecord {
        orig: String,
        dest: String,
        at: String,
    },
    #[error("no {0} with that id")]
    NotFound(&'static str),
    #[error("this request belongs to another provider")]
    NotYours,
    #[error("this request was answered already")]
    Answered,
    #[error(transparent)]
    Provider(#[from] crate::providers::ProviderError),
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
}

fn invalid(field: &'static str, problem: impl Into<String>) -> TracebackError {
    TracebackError::Invalid {
        field,
        problem: problem.into(),
    }
}

/// `POST /v1/tracebacks`: the subject call. TNs are canonical (digits only, as the sensors
/// write `orig_tn`/`dest_tn`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    pub orig: String,
    pub dest: String,
    /// RFC 3339.
    pub at: String,
}

/// `POST /v1/requests/{id}/answer`: exactly one of the two.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// The OCN of the provider that handed us the call.
    pub upstream_ocn: Option<String>,
    /// "customer": the call came from our own customer (we are the origin).
    pub origin: Option<String>,
}

/// How a traceback is run: the record window and the request deadline.
#[derive(Clone, Copy, Debug)]
pub struct Tuning {
    /// A record matches the subject within this many µs of `at`.
    pub window_us: i64,
    /// A traceback request's deadline after it is made, µs (24 h by default).
    pub deadline_us: i64,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            window_us: 5_000_000,
            deadline_us: 24 * 3600 * 1_000_000,
        }
    }
}

/// What a hop record's upstream means for the chain (the hop-resolution rule).
#[derive(Debug, PartialEq, Eq)]
pub enum Upstream {
    /// A registered provider (its id): the chain goes on there.
    Peer(i64),
    /// No peer: the provider's own customer. Origin found.
    Customer,
    /// A named peer without an OCN: a foreign carrier. The chain stops at this gateway.
    Foreign,
    /// An OCN the registry does not know: the chain stops here.
    Unregistered(String),
}

/// The rule: `peer`/`ocn` as the sensor wrote them; `lookup` finds a registered OCN's provider.
pub fn classify(
    peer: Option<&str>,
    ocn: Option<&str>,
    lookup: impl FnOnce(&str) -> Option<i64>,
) -> Upstream {
    match ocn.filter(|o| !o.is_empty()) {
        Some(o) => match lookup(o) {
            Some(id) => Upstream::Peer(id),
            None => Upstream::Unregistered(o.to_string()),
        },
        None => match peer.filter(|p| !p.is_empty() && *p != "unknown") {
            Some(_) => Upstream::Foreign,
            None => Upstream::Customer,
        },
    }
}

/// The fields of a stored CallRecord the rule reads.
#[derive(Deserialize)]
struct HopBody {
    record_id: String,
    observed_at: String,
    #[serde(default)]
    upstream: Option<UpstreamBody>,
    #[serde(default)]
    shaken: Option<ShakenBody>,
}

#[derive(Deserialize)]
struct UpstreamBody {
    peer: Option<String>,
    ocn: Option<String>,
}

#[derive(Deserialize)]
struct ShakenBody {
    spc: Option<String>,
    origid: Option<String>,
    iat: Option<i64>,
}

impl ShakenBody {
    /// The PASSporT's identity as the record keeps it (signer, origid, iat): equal on two
    /// hops when the Identity header was passed on unchanged.
    fn key(&self) -> Option<String> {
        match (&self.spc, &self.origid, self.iat) {
            (Some(s), Some(o), Some(i)) => Some(format!("{s}/{o}/{i}")),
            _ => None,
        }
    }
}

/// A provider's record of the subject call.
struct Found {
    provider_id: i64,
    record_id: String,
    observed_us: i64,
    peer: Option<String>,
    ocn: Option<String>,
    passport: Option<String>,
}

/// The best record of (orig, dest) near `at` at `provider` (any provider when None): the one
/// whose PASSporT is `passport`, else the nearest in time.
fn find_record(
    conn: &Connection,
    provider: Option<i64>,
    orig: &str,
    dest: &str,
    at_us: i64,
    window_us: i64,
    passport: Option<&str>,
) -> rusqlite::Result<Option<Found>> {
    let mut q = conn.prepare_cached(
        "SELECT t.provider_id, r.body FROM records r JOIN sensor_tokens t ON t.sensor_id = r.sensor_id
         WHERE r.kind = 'call' AND json_extract(r.body, '$.dest_tn') = ?1
           AND json_extract(r.body, '$.orig_tn') = ?2 AND (?3 IS NULL OR t.provider_id = ?3)
         LIMIT ?4",
    )?;
    let mut rows = q.query(params![dest, orig, provider, MAX_CANDIDATES])?;
    let mut best: Option<(bool, i64, Found)> = None;
    let mut read = 0u32;
    while let Some(row) = rows.next()? {
        read += 1;
        if read == MAX_CANDIDATES {
            CANDIDATES_CAPPED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(
                orig,
                dest,
                "traceback: more records of one call pair than read"
            );
        }
        let body: String = row.get(1)?;
        // A stored body the rule cannot read is no evidence (ingest validated it as JSON).
        let Ok(h) = serde_json::from_str::<HopBody>(&body) else {
            continue;
        };
        let Some(t) = Timestamp::parse_rfc3339(&h.observed_at) else {
            continue;
        };
        let dist = (t.micros() - at_us).abs();
        if dist > window_us {
            continue;
        }
        let pp = h.shaken.as_ref().and_then(ShakenBody::key);
        let exact = passport.is_some() && pp.as_deref() == passport;
        // When looking for the first hop (any provider), the latest record is the
        // terminating provider's: each hop sees the call later than its upstream.
        let score = if provider.is_none() {
            -t.micros()
        } else {
            dist
        };
        let better = match &best {
            None => true,
            Some((be, bs, _)) => (exact, -score) > (*be, -*bs),
        };
        if better {
            let (peer, ocn) = h.upstream.map_or((None, None), |u| (u.peer, u.ocn));
            best = Some((
                exact,
                score,
                Found {
                    provider_id: row.get(0)?,
                    record_id: h.record_id,
                    observed_us: t.micros(),
                    peer,
                    ocn,
                    passport: pp,
                },
            ));
        }
    }
    Ok(best.map(|b| b.2))
}

fn provider_by_ocn(conn: &Connection, ocn: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT provider_id FROM provider_ocns WHERE ocn = ?1")?
        .query_row([ocn], |r| r.get(0))
        .optional()
}

fn check_tn(field: &'static str, tn: &str) -> Result<(), TracebackError> {
    if (7..=15).contains(&tn.len()) && tn.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(invalid(
            field,
            "a canonical TN: 7 to 15 digits, no '+' (as in the records' orig_tn/dest_tn)",
        ))
    }
}

/// Starts a traceback of `s` and resolves it as far as the records go; its id.
pub fn start(
    conn: &mut Connection,
    s: &Subject,
    tuning: Tuning,
    now: Timestamp,
) -> Result<i64, TracebackError> {
    check_tn("orig", &s.orig)?;
    check_tn("dest", &s.dest)?;
    let at = Timestamp::parse_rfc3339(&s.at).ok_or_else(|| invalid("at", "not RFC 3339"))?;
    let tx = conn.transaction()?;
    let first = find_record(
        &tx,
        None,
        &s.orig,
        &s.dest,
        at.micros(),
        tuning.window_us,
        None,
    )?
    .ok_or_else(|| TracebackError::NoRecord {
        orig: s.orig.clone(),
        dest: s.dest.clone(),
        at: s.at.clone(),
    })?;
    tx.execute(
        "INSERT INTO tracebacks (orig, dest, at_us, status, created_us, updated_us) VALUES (?1, ?2, ?3, 'in_progress', ?4, ?4)",
        params![s.orig, s.dest, at.micros(), now.micros()],
    )?;
    let id = tx.last_insert_rowid();
    let subject = Walk {
        id,
        orig: &s.orig,
        dest: &s.dest,
        at_us: at.micros(),
        tuning,
        now,
    };
    subject.walk(&tx, 0, first.provider_id, None)?;
    tx.commit()?;
    Ok(id)
}

/// One resolution pass of traceback `id`.
struct Walk<'a> {
    id: i64,
    orig: &'a str,
    dest: &'a str,
    at_us: i64,
    tuning: Tuning,
    now: Timestamp,
}

impl Walk<'_> {
    /// Resolves from hop `idx` at `provider` on, until the origin, a stop or a request.
    fn walk(
        &self,
        tx: &Transaction,
        mut idx: i64,
        mut provider: i64,
        mut passport: Option<String>,
    ) -> rusqlite::Result<()> {
        loop {
            let seen: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM traceback_hops WHERE traceback_id = ?1 AND provider_id = ?2)",
                params![self.id, provider],
                |r| r.get(0),
            )?;
            if seen || idx as usize >= MAX_HOPS {
                return self.finish(tx, if seen { "loop" } else { "too_long" }, None);
            }
            let found = find_record(
                tx,
                Some(provider),
                self.orig,
                self.dest,
                self.at_us,
                self.tuning.window_us,
                passport.as_deref(),
            )?;
            let Some(f) = found else {
                return self.request(tx, idx, provider);
            };
            let up = classify(f.peer.as_deref(), f.ocn.as_deref(), |o| {
                provider_by_ocn(tx, o).ok().flatten()
            });
            let (role, end) = match &up {
                Upstream::Peer(_) if idx == 0 => ("terminating", None),
                Upstream::Peer(_) => ("intermediate", None),
                Upstream::Customer => ("originating", Some(("complete", "customer"))),
                Upstream::Foreign => ("gateway", Some(("complete", "foreign"))),
                Upstream::Unregistered(_) => {
                    ("intermediate", Some(("unregistered_upstream", "unknown")))
                }
            };
            tx.execute(
                "INSERT INTO traceback_hops (traceback_id, idx, provider_id, role, upstream_ocn, upstream_peer, record_id, passport, at_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![self.id, idx, provider, role, f.ocn, f.peer, f.record_id, f.passport, f.observed_us],
            )?;
            match (up, end) {
                (Upstream::Peer(next), _) => {
                    provider = next;
                    passport = f.passport;
                    idx += 1;
                }
                (_, Some((status, kind))) => return self.finish(tx, status, Some(kind)),
                (_, None) => unreachable!("every non-peer upstream ends the chain"),
            }
        }
    }

    fn finish(&self, tx: &Transaction, status: &str, origin: Option<&str>) -> rusqlite::Result<()> {
        tx.execute(
            "UPDATE tracebacks SET status = ?2, origin_kind = ?3, updated_us = ?4 WHERE id = ?1",
            params![self.id, status, origin, self.now.micros()],
        )?;
        Ok(())
    }

    /// No record at `provider`: a request with a deadline, and the hop waits for it.
    fn request(&self, tx: &Transaction, idx: i64, provider: i64) -> rusqlite::Result<()> {
        let now = self.now.micros();
        tx.execute(
            "INSERT INTO traceback_requests (traceback_id, hop_idx, provider_id, created_us, deadline_us, status)
             VALUES (?1, ?2, ?3, ?4, ?5, 'open')",
            params![self.id, idx, provider, now, now.saturating_add(self.tuning.deadline_us)],
        )?;
        let rid = tx.last_insert_rowid();
        tx.execute(
            "INSERT INTO traceback_hops (traceback_id, idx, provider_id, role, request_id, at_us)
             VALUES (?1, ?2, ?3, 'awaiting', ?4, ?5)",
            params![self.id, idx, provider, rid, now],
        )?;
        self.finish(tx, "awaiting", None)
    }
}

/// Marks every open request past its deadline non-responsive, and its traceback with it.
pub fn sweep(conn: &Connection, now: Timestamp) -> rusqlite::Result<usize> {
    let n = now.micros();
    conn.execute(
        "UPDATE tracebacks SET status = 'non_responsive', updated_us = ?1 WHERE id IN
           (SELECT traceback_id FROM traceback_requests WHERE status = 'open' AND deadline_us < ?1)",
        [n],
    )?;
    conn.execute(
        "UPDATE traceback_hops SET role = 'non_responsive' WHERE request_id IN
           (SELECT id FROM traceback_requests WHERE status = 'open' AND deadline_us < ?1)",
        [n],
    )?;
    conn.execute(
        "UPDATE traceback_requests SET status = 'non_responsive' WHERE status = 'open' AND deadline_us < ?1",
        [n],
    )
}

/// `provider` answers request `rid` (the ITG analyst may answer for anyone: `None`). A late
/// answer (past the deadline) still continues the chain and is kept as late.
pub fn answer(
    conn: &mut Connection,
    rid: i64,
    provider: Option<i64>,
    a: &Answer,
    tuning: Tuning,
    now: Timestamp,
) -> Result<i64, TracebackError> {
    sweep(conn, now)?;
    let tx = conn.transaction()?;
    let row: Option<(i64, i64, i64, String, String, String, i64)> = tx
        .query_row(
            "SELECT q.traceback_id, q.hop_idx, q.provider_id, q.status, t.orig, t.dest, t.at_us
             FROM traceback_requests q JOIN tracebacks t ON t.id = q.traceback_id WHERE q.id = ?1",
            [rid],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            },
        )
        .optional()?;
    let (tb, idx, owner, status, orig, dest, at_us) =
        row.ok_or(TracebackError::NotFound("request"))?;
    if provider.is_some_and(|p| p != owner) {
        return Err(TracebackError::NotYours);
    }
    if status != "open" && status != "non_responsive" {
        return Err(TracebackError::Answered);
    }
    let (up, text) = match (a.upstream_ocn.as_deref(), a.origin.as_deref()) {
        (Some(o), None)
            if o.is_empty() || o.len() > 8 || !o.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            return Err(invalid("upstream_ocn", "an OCN: 1 to 8 letters or digits"))
        }
        (Some(o), None) => (
            classify(Some("answer"), Some(o), |o| {
                provider_by_ocn(&tx, o).ok().flatten()
            }),
            format!("upstream_ocn {o}"),
        ),
        (None, Some("customer")) => (Upstream::Customer, "origin: our customer".to_string()),
        _ => {
            return Err(invalid(
                "answer",
                "exactly one of upstream_ocn (an OCN) or origin (\"customer\")",
            ))
        }
    };
    let late = if status == "open" {
        "answered"
    } else {
        "answered_late"
    };
    tx.execute(
        "UPDATE traceback_requests SET status = ?2, answer = ?3, answered_us = ?4 WHERE id = ?1",
        params![rid, late, text, now.micros()],
    )?;
    let (role, ocn) = match &up {
        Upstream::Customer => ("originating", None),
        _ if idx == 0 => ("terminating", a.upstream_ocn.clone()),
        _ => ("intermediate", a.upstream_ocn.clone()),
    };
    tx.execute(
        "UPDATE traceback_hops SET role = ?3, upstream_ocn = ?4, answer = ?5, at_us = ?6
         WHERE traceback_id = ?1 AND idx = ?2",
        params![tb, idx, role, ocn, text, now.micros()],
    )?;
    // The PASSporT seen downstream of the answering hop, to prefer an exact match upstream.
    let passport: Option<String> = tx
        .query_row(
            "SELECT passport FROM traceback_hops WHERE traceback_id = ?1 AND idx < ?2 AND record_id IS NOT NULL ORDER BY idx DESC LIMIT 1",
            params![tb, idx],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let w = Walk {
        id: tb,
        orig: &orig,
        dest: &dest,
        at_us,
        tuning,
        now,
    };
    match up {
        Upstream::Peer(next) => w.walk(&tx, idx + 1, next, passport)?,
        Upstream::Customer => w.finish(&tx, "complete", Some("customer"))?,
        Upstream::Foreign | Upstream::Unregistered(_) => {
            w.finish(&tx, "unregistered_upstream", Some("unknown"))?
        }
    }
    tx.commit()?;
    Ok(tb)
}

/// A hop as the API shows it.
#[derive(Debug, Serialize)]
pub struct HopView {
    pub provider: String,
    /// terminating | intermediate | gateway | originating | awaiting | non_responsive.
    pub role: String,
    pub upstream_ocn: Option<String>,
    pub upstream_peer: Option<String>,
    /// Evidence: the provider's CallRecord, or its answer to a request.
    pub record_id: Option<String>,
    pub answer: Option<String>,
    pub request_id: Option<i64>,
    pub at: String,
}

/// A traceback as the API shows it.
#[derive(Debug, Serialize)]
pub struct TracebackView {
    pub id: i64,
    pub orig: String,
    pub dest: String,
    pub at: String,
    /// in_progress | complete | awaiting | non_responsive | unregistered_upstream | loop |
    /// too_long.
    pub status: String,
    /// The origin provider (the last hop) when complete.
    pub origin: Option<String>,
    /// customer, or foreign (the call entered at a gateway).
    pub origin_kind: Option<String>,
    pub awaiting: Option<RequestView>,
    pub hops: Vec<HopView>,
}

/// A traceback request as the API shows it.
#[derive(Debug, Serialize)]
pub struct RequestView {
    pub id: i64,
    pub traceback_id: i64,
    pub provider: String,
    pub orig: String,
    pub dest: String,
    pub at: String,
    pub deadline: String,
    /// open | answered | answered_late | non_responsive.
    pub status: String,
    pub answer: Option<String>,
}

fn ts(us: i64) -> String {
    Timestamp(us).to_rfc3339()
}

const REQUEST_SELECT: &str = "SELECT q.id, q.traceback_id, p.name, t.orig, t.dest, t.at_us, q.deadline_us, q.status, q.answer
     FROM traceback_requests q JOIN tracebacks t ON t.id = q.traceback_id JOIN providers p ON p.id = q.provider_id";

fn request_row(r: &rusqlite::Row) -> rusqlite::Result<RequestView> {
    Ok(RequestView {
        id: r.get(0)?,
        traceback_id: r.get(1)?,
        provider: r.get(2)?,
        orig: r.get(3)?,
        dest: r.get(4)?,
        at: ts(r.get(5)?),
        deadline: ts(r.get(6)?),
        status: r.get(7)?,
        answer: r.get(8)?,
    })
}

/// Traceback `id` (after the deadlines are applied).
pub fn get(conn: &Connection, id: i64, now: Timestamp) -> Result<TracebackView, TracebackError> {
    sweep(conn, now)?;
    let head = conn
        .query_row(
            "SELECT orig, dest, at_us, status, origin_kind FROM tracebacks WHERE id = ?1",
            [id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            },
        )
        .optional()?
        .ok_or(TracebackError::NotFound("traceback"))?;
    let mut q = conn.prepare_cached(
        "SELECT p.name, h.role, h.upstream_ocn, h.upstream_peer, h.record_id, h.answer, h.request_id, h.at_us
         FROM traceback_hops h JOIN providers p ON p.id = h.provider_id WHERE h.traceback_id = ?1 ORDER BY h.idx",
    )?;
    let hops = q
        .query_map([id], |r| {
            Ok(HopView {
                provider: r.get(0)?,
                role: r.get(1)?,
                upstream_ocn: r.get(2)?,
                upstream_peer: r.get(3)?,
                record_id: r.get(4)?,
                answer: r.get(5)?,
                request_id: r.get(6)?,
                at: ts(r.get(7)?),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let awaiting = if head.3 == "awaiting" {
        conn.prepare_cached(&format!(
            "{REQUEST_SELECT} WHERE q.traceback_id = ?1 AND q.status = 'open'"
        ))?
        .query_row([id], request_row)
        .optional()?
    } else {
        None
    };
    let origin = (head.3 == "complete")
        .then(|| hops.last().map(|h| h.provider.clone()))
        .flatten();
    Ok(TracebackView {
        id,
        orig: head.0,
        dest: head.1,
        at: ts(head.2),
        status: head.3,
        origin,
        origin_kind: head.4,
        awaiting,
        hops,
    })
}

/// Requests of `provider` (every provider's for None), open ones unless `all`, newest first,
/// at most 1000.
pub fn requests(
    conn: &Connection,
    provider: Option<i64>,
    all: bool,
    now: Timestamp,
) -> Result<Vec<RequestView>, TracebackError> {
    sweep(conn, now)?;
    let mut q = conn.prepare_cached(&format!(
        "{REQUEST_SELECT} WHERE (?1 IS NULL OR q.provider_id = ?1) AND (?2 OR q.status = 'open')
         ORDER BY q.id DESC LIMIT 1000"
    ))?;
    let rows = q.query_map(params![provider, all], request_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// A new portal token for `provider` (by name), for its people or systems to list and answer
/// its requests; printed once, stored as its SHA-256; the previous one stops working.
pub fn issue_provider_token(
    conn: &mut Connection,
    provider: &str,
    now: Timestamp,
) -> Result<String, TracebackError> {
    let tx = conn.transaction()?;
    let (token, id) = crate::providers::new_token_for(&tx, provider)?;
    tx.execute("DELETE FROM provider_tokens WHERE provider_id = ?1", [id])?;
    tx.execute(
        "INSERT INTO provider_tokens (token_sha256, provider_id, created_us) VALUES (?1, ?2, ?3)",
        params![
            crate::providers::sha256_hex(token.as_bytes()),
            id,
            now.micros()
        ],
    )?;
    tx.commit()?;
    Ok(token)
}

/// The provider a portal token stands for.
pub fn lookup_provider_token(conn: &Connection, token: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT provider_id FROM provider_tokens WHERE token_sha256 = ?1")?
        .query_row([crate::providers::sha256_hex(token.as_bytes())], |r| {
            r.get(0)
        })
        .optional()
}

#[cfg(test)]
#[path = "traceback_tests.rs"]
mod tests;

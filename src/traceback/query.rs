//! The read side of the traceback store: a [`TracebackQuery`] parsed from untrusted text (HTTP
//! query parameters, CLI arguments), answered from the day partitions that cover its time
//! window with the stored CallRecords, oldest first.
//!
//! It must never write to the store (every connection is `SQLITE_OPEN_READ_ONLY`, so it is safe
//! beside a running writer), never canonicalize a number other than through
//! [`crate::sip::tn::canonicalize`], never panic on hostile input, and never return more than
//! [`MAX_RESULTS`] calls. An unknown call, or a time with no partition, is an empty answer.

use super::codec::{
    decode, stored_entry, tn_value, Corrupt, Entry, Lookup, COLUMNS, DAY_US, SLOTS,
};
use super::store::{day_of, has_table, partition_name, StoreError, LEGACY_TABLE};
use crate::clock::Timestamp;
use crate::sip::tn::canonicalize;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Widest time window (seconds either side of `at`).
pub const MAX_WINDOW_S: u32 = 86_400;
/// Most queries in one batch request.
pub const MAX_BATCH: usize = 1000;
/// Most calls in one answer; an answer that had more says `"truncated": true`.
pub const MAX_RESULTS: usize = 1000;
/// Default for the calls one request may return across all its queries (`http.traceback_max_calls`):
/// about 40 MB of answer at the size of today's records.
pub const MAX_REQUEST_CALLS: usize = 2000;
/// Window when none is given.
pub const DEFAULT_WINDOW_S: u32 = 300;

/// A bad query parameter: which one, and what is wrong with it (the value is not echoed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter `{param}`: {problem}")]
pub struct QueryError {
    pub param: &'static str,
    pub problem: String,
}

impl QueryError {
    fn new(param: &'static str, problem: impl Into<String>) -> Self {
        QueryError {
            param,
            problem: problem.into(),
        }
    }

    /// A short stable label, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self.param {
            "orig" => "query_bad_orig",
            "dest" => "query_bad_dest",
            "at" => "query_bad_at",
            "window_s" => "query_bad_window_s",
            _ => "query_bad_parameter",
        }
    }
}

/// "Calls to `dest` (from `orig`, if given) observed within `window_s` seconds of `at`."
/// Numbers are canonical (see [`crate::sip::tn`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracebackQuery {
    pub orig: Option<String>,
    pub dest: String,
    pub at: Timestamp,
    pub window_s: u32,
}

fn number(param: &'static str, v: &str) -> Result<String, QueryError> {
    canonicalize(v.as_bytes())
        .map(|tn| tn.to_string())
        .ok_or_else(|| QueryError::new(param, "not a telephone number"))
}

fn present(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|s| !s.is_empty())
}

impl TracebackQuery {
    /// Parses the parameters as given (`None` or empty = absent): `dest` and `at` (RFC 3339)
    /// are required, `orig` is optional, `window_s` defaults to 300 and is capped at
    /// [`MAX_WINDOW_S`].
    pub fn parse(
        orig: Option<&str>,
        dest: Option<&str>,
        at: Option<&str>,
        window_s: Option<&str>,
    ) -> Result<Self, QueryError> {
        let dest = present(dest).ok_or_else(|| QueryError::new("dest", "is required"))?;
        let dest = number("dest", dest)?;
        let orig = present(orig).map(|o| number("orig", o)).transpose()?;
        let at = present(at).ok_or_else(|| QueryError::new("at", "is required"))?;
        let at = Timestamp::parse_rfc3339(at).ok_or_else(|| {
            QueryError::new(
                "at",
                "not a valid RFC 3339 time: a real calendar date and time, offset at most ±23:59 (e.g. 2026-11-29T14:03:07Z)",
            )
        })?;
        let window_s = match present(window_s) {
            None => DEFAULT_WINDOW_S,
            Some(w) => {
                if !w.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(QueryError::new("window_s", "not a whole number of seconds"));
                }
                match w.parse::<u32>() {
                    Ok(w) if w <= MAX_WINDOW_S => w,
                    _ => {
                        return Err(QueryError::new(
                            "window_s",
                            format!("must be at most {MAX_WINDOW_S} seconds"),
                        ))
                    }
                }
            }
        };
        Ok(TracebackQuery {
            orig,
            dest,
            at,
            window_s,
        })
    }

    /// Observed-time bounds in µs, inclusive; the window is capped at [`MAX_WINDOW_S`] even
    /// for a query built by hand.
    fn bounds(&self) -> (i64, i64) {
        let w = i64::from(self.window_s.min(MAX_WINDOW_S)) * 1_000_000;
        (self.at.0.saturating_sub(w), self.at.0.saturating_add(w))
    }
}

/// Read-only access to a store directory; opens the partitions a query needs, per query.
pub struct Reader {
    dir: PathBuf,
}

impl Reader {
    /// The directory must exist; its partitions may not (yet).
    pub fn open(dir: &Path) -> Result<Reader, StoreError> {
        if !dir.is_dir() {
            return Err(StoreError::NoStore {
                path: dir.display().to_string(),
            });
        }
        Ok(Reader {
            dir: dir.to_path_buf(),
        })
    }

    /// The stored CallRecords matching the query, oldest first, at most [`MAX_RESULTS`].
    pub fn query(&self, q: &TracebackQuery) -> Result<Vec<Value>, StoreError> {
        self.query_limited(q, MAX_RESULTS)
    }

    fn query_limited(&self, q: &TracebackQuery, limit: usize) -> Result<Vec<Value>, StoreError> {
        let (lo, hi) = q.bounds();
        let mut out = Vec::new();
        for day in day_of(Timestamp(lo))..=day_of(Timestamp(hi)) {
            if out.len() >= limit {
                break;
            }
            let path = self.dir.join(partition_name(day));
            if !path.is_file() {
                continue;
            }
            let mut rows = query_partition(&path, day, q, (lo, hi), limit - out.len())?;
            // Oldest first across the partition's tables; a stable sort keeps ties in table order.
            rows.sort_by_key(|r| r.0);
            rows.truncate(limit - out.len());
            out.extend(rows.into_iter().map(|r| r.1));
        }
        Ok(out)
    }
}

/// Dictionary entries of one partition, fetched once per query.
struct DictCache<'c> {
    stmt: rusqlite::Statement<'c>,
    strings: HashMap<i64, Arc<str>>,
    blobs: HashMap<i64, Arc<[u8]>>,
}

impl DictCache<'_> {
    fn fetch(&mut self, id: i64) -> Result<SqlValue, Corrupt> {
        self.stmt
            .query_row([id], |r| r.get(0))
            .optional()
            .map_err(|_| Corrupt("dictionary lookup"))?
            .ok_or(Corrupt("unknown dictionary id"))
    }
}

impl Lookup for DictCache<'_> {
    fn get(&mut self, id: i64) -> Result<Arc<str>, Corrupt> {
        if let Some(s) = self.strings.get(&id) {
            return Ok(s.clone());
        }
        let Entry::Str(s) = stored_entry(self.fetch(id)?)? else {
            return Err(Corrupt("dictionary entry is not a string"));
        };
        let s: Arc<str> = Arc::from(s);
        self.strings.insert(id, s.clone());
        Ok(s)
    }

    fn blob(&mut self, id: i64) -> Result<Arc<[u8]>, Corrupt> {
        if let Some(b) = self.blobs.get(&id) {
            return Ok(b.clone());
        }
        let Entry::Profile(b) = stored_entry(self.fetch(id)?)? else {
            return Err(Corrupt("dictionary entry is not a profile"));
        };
        let b: Arc<[u8]> = Arc::from(b);
        self.blobs.insert(id, b.clone());
        Ok(b)
    }
}

/// The matching rows of one partition (at most `left` per table), with their observed µs:
/// format-1 rows from `calls`, format-2 rows from `call` and `call_x`.
fn query_partition(
    path: &Path,
    day: i64,
    q: &TracebackQuery,
    (lo, hi): (i64, i64),
    left: usize,
) -> Result<Vec<(i64, Value)>, StoreError> {
    let err = |e| StoreError::sqlite(path, e);
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    conn.busy_timeout(Duration::from_secs(2)).map_err(err)?;
    let left = i64::try_from(left).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    // A partition created by a writer killed before its schema committed has no table.
    if has_table(&conn, LEGACY_TABLE).map_err(err)? {
        let (sql, orig) = match &q.orig {
            Some(o) => (
                "SELECT observed_us, record FROM calls WHERE orig = ?5 AND dest = ?1 AND \
                 observed_us BETWEEN ?2 AND ?3 ORDER BY observed_us LIMIT ?4",
                Some(o.as_str()),
            ),
            None => (
                "SELECT observed_us, record FROM calls WHERE dest = ?1 AND \
                 observed_us BETWEEN ?2 AND ?3 ORDER BY observed_us LIMIT ?4",
                None,
            ),
        };
        let mut stmt = conn.prepare(sql).map_err(err)?;
        let mut rows = match orig {
            Some(o) => stmt.query(params![q.dest, lo, hi, left, o]),
            None => stmt.query(params![q.dest, lo, hi, left]),
        }
        .map_err(err)?;
        while let Some(row) = rows.next().map_err(err)? {
            let at: i64 = row.get(0).map_err(err)?;
            let text: String = row.get(1).map_err(err)?;
            let v = serde_json::from_str(&text).map_err(|source| StoreError::Decode {
                path: path.display().to_string(),
                source,
            })?;
            out.push((at, v));
        }
    }
    if !has_table(&conn, "call").map_err(err)? {
        return Ok(out);
    }
    let mut dict = DictCache {
        stmt: conn
            .prepare("SELECT v FROM dict WHERE id = ?1")
            .map_err(err)?,
        strings: HashMap::new(),
        blobs: HashMap::new(),
    };
    let day_start = day.saturating_mul(DAY_US);
    // Slot keys of the part of [lo, hi] inside this day; none when it misses the day.
    let slots = {
        let (a, b) = (lo.saturating_sub(day_start), hi.saturating_sub(day_start));
        (b >= 0 && a < DAY_US).then(|| (a.max(0) * SLOTS, b.min(DAY_US - 1) * SLOTS + SLOTS - 1))
    };
    for (table, bounds) in [("call", slots), ("call_x", Some((lo, hi)))] {
        let Some((k_lo, k_hi)) = bounds else { continue };
        let orig_clause = if q.orig.is_some() {
            "AND orig = ?5"
        } else {
            ""
        };
        let sql = format!(
            "SELECT k, {COLUMNS} FROM {table} WHERE dest = ?1 AND k BETWEEN ?2 AND ?3 \
             {orig_clause} ORDER BY k LIMIT ?4"
        );
        let mut stmt = conn.prepare(&sql).map_err(err)?;
        let dest = tn_value(&q.dest);
        let mut rows = match &q.orig {
            Some(o) => stmt.query(params![dest, k_lo, k_hi, left, tn_value(o)]),
            None => stmt.query(params![dest, k_lo, k_hi, left]),
        }
        .map_err(err)?;
        while let Some(row) = rows.next().map_err(err)? {
            let k: i64 = row.get(0).map_err(err)?;
            let mut cols: [SqlValue; 12] = std::array::from_fn(|_| SqlValue::Null);
            for (i, c) in cols.iter_mut().enumerate() {
                *c = row.get(i + 1).map_err(err)?;
            }
            let at = if table == "call" {
                day_start + k.div_euclid(SLOTS)
            } else {
                k
            };
            let corrupt = |source| StoreError::Corrupt {
                path: path.display().to_string(),
                source,
            };
            let rec = decode(Timestamp(at), cols, &mut dict).map_err(corrupt)?;
            let v = serde_json::to_value(&rec).map_err(|source| StoreError::Encode {
                record_id: rec.record_id.clone(),
                source,
            })?;
            out.push((at, v));
        }
    }
    Ok(out)
}

/// The traceback answer: `{"query": {orig, dest, at, window_s}, "calls": [...], "truncated"}`.
pub fn answer(reader: &Reader, q: &TracebackQuery) -> Result<Value, StoreError> {
    answer_within(reader, q, MAX_RESULTS).map(|(v, _)| v)
}

/// The answers to a batch of queries, sharing one budget of `max_calls` calls in total: once
/// it is spent, the later answers are empty and say `"truncated": true`. The second value says
/// whether any answer was cut.
pub fn answer_batch(
    reader: &Reader,
    queries: &[TracebackQuery],
    max_calls: usize,
) -> Result<(Vec<Value>, bool), StoreError> {
    let mut left = max_calls;
    let mut any_truncated = false;
    let mut out = Vec::with_capacity(queries.len());
    for q in queries {
        let (v, n) = answer_within(reader, q, left)?;
        left -= n;
        any_truncated |= v["truncated"] == Value::Bool(true);
        out.push(v);
    }
    Ok((out, any_truncated))
}

/// One answer with at most `budget` calls (never more than [`MAX_RESULTS`]), and how many it has.
fn answer_within(
    reader: &Reader,
    q: &TracebackQuery,
    budget: usize,
) -> Result<(Value, usize), StoreError> {
    let limit = budget.min(MAX_RESULTS);
    let mut calls = reader.query_limited(q, limit + 1)?;
    let truncated = calls.len() > limit;
    calls.truncate(limit);
    let n = calls.len();
    let v = json!({
        "query": {
            "orig": q.orig,
            "dest": q.dest,
            "at": q.at.to_rfc3339(),
            "window_s": q.window_s,
        },
        "calls": calls,
        "truncated": truncated,
    });
    Ok((v, n))
}

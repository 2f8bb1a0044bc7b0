//! The write side of the traceback store: CallRecords in SQLite files, one partition per UTC
//! day (`DIR/calls-YYYY-MM-DD.sqlite`, WAL, `synchronous=NORMAL`), written in batches on a
//! writer thread of their own, with retention by age and by disk cap.
//!
//! Every row is the record in the compact typed columns of [`super::codec`] (about 100 bytes a
//! call on disk, where the full JSON took 1.5-1.9 KB), keyed by its time slot, with one index,
//! on the called number. Partitions of the earlier JSON format are still read and written.
//!
//! It must never block the capture path (the writer is fed through a bounded channel), never
//! drop the current day's partition, never store a record twice (a record id already in a
//! partition, in any of its tables, is not stored again), and never
//! leave a partition corrupt after a kill: every batch is one transaction per partition.

use super::codec::{self, Dict, DAY_US, SLOTS};
use crate::clock::{Clock, Timestamp};
use crate::record::CallRecord;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the writer stores: a CallRecord. Format 2 encodes the record's fields and never uses
/// [`Storable::json`]; it stays for the pipeline's sink record, which carries the JSON anyway.
pub trait Storable {
    fn record(&self) -> &CallRecord;
    /// The record as one JSON object, if already serialized.
    fn json(&self) -> Option<&[u8]> {
        None
    }
}

impl Storable for CallRecord {
    fn record(&self) -> &CallRecord {
        self
    }
}

const SECS_PER_DAY: i64 = 86_400;
/// Day number (since 1970-01-01) of 9999-12-31: later timestamps are kept in that partition.
const LAST_DAY: i64 = 2_932_896;
/// Open partitions kept by the writer (today, yesterday, late stragglers).
const MAX_OPEN: usize = 4;
/// Page cache of each open partition's writer connection (at most [`MAX_OPEN`] of them).
const CACHE_KIB: i64 = 16 * 1024;
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
const MIB: u64 = 1024 * 1024;

/// Pragmas and schema of a partition the writer creates or opens (format 2, see
/// [`super::codec`]). A partition written by an earlier version keeps its `calls` table (one
/// JSON record per row): it is still read, and new rows go to the format-2 tables beside it.
fn init_sql() -> String {
    format!("BEGIN; {} COMMIT;", codec::SCHEMA)
}

/// The table of format-1 partitions (the full record JSON per row).
pub(crate) const LEGACY_TABLE: &str = "calls";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store directory {path}: {source}")]
    Dir { path: String, source: io::Error },
    #[error("store directory {path} does not exist or is not a directory")]
    NoStore { path: String },
    #[error("partition {path}: {source}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
    #[error("cannot remove partition file {path}: {source}")]
    Remove { path: String, source: io::Error },
    #[error("cannot encode record {record_id}: {source}")]
    Encode {
        record_id: String,
        source: serde_json::Error,
    },
    #[error("stored record in {path} is not valid JSON: {source}")]
    Decode {
        path: String,
        source: serde_json::Error,
    },
    #[error("partition {path}: {source}")]
    Corrupt {
        path: String,
        source: codec::Corrupt,
    },
}

impl StoreError {
    /// A short stable label, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Dir { .. } => "store_dir",
            StoreError::NoStore { .. } => "store_missing",
            StoreError::Sqlite { .. } => "store_sqlite",
            StoreError::Remove { .. } => "store_remove",
            StoreError::Encode { .. } => "store_encode",
            StoreError::Decode { .. } => "store_decode",
            StoreError::Corrupt { .. } => "store_corrupt",
        }
    }

    pub(crate) fn sqlite(path: &Path, source: rusqlite::Error) -> Self {
        StoreError::Sqlite {
            path: path.display().to_string(),
            source,
        }
    }
}

#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub dir: PathBuf,
    /// Partitions whose day is more than this many days before today are dropped.
    pub retention_days: u32,
    /// Total size of all partitions (with their -wal/-shm files); oldest dropped first above it.
    pub max_disk_mb: u64,
    /// Most records committed in one batch.
    pub batch_max: usize,
    /// A record is in the store at most this long after it is submitted to the writer.
    pub flush_interval: Duration,
}

impl StoreConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            dir: dir.into(),
            retention_days: 30,
            max_disk_mb: 10_240,
            batch_max: 1000,
            flush_interval: Duration::from_secs(1),
        }
    }
}

/// Day number (days since 1970-01-01, UTC) of a timestamp, clamped to years 1970..=9999 so
/// that every partition name parses back.
pub(crate) fn day_of(t: Timestamp) -> i64 {
    t.as_secs().div_euclid(SECS_PER_DAY).clamp(0, LAST_DAY)
}

/// `calls-YYYY-MM-DD.sqlite` of a day number.
pub(crate) fn partition_name(day: i64) -> String {
    let date = Timestamp::from_secs(day.clamp(0, LAST_DAY) * SECS_PER_DAY).to_rfc3339();
    format!("calls-{}.sqlite", date.get(..10).unwrap_or("1970-01-01"))
}

/// The day number a partition file name stands for; `None` for any other file.
pub(crate) fn partition_day(name: &str) -> Option<i64> {
    let date = name.strip_prefix("calls-")?.strip_suffix(".sqlite")?;
    if date.len() != 10 {
        return None;
    }
    let t = Timestamp::parse_rfc3339(&format!("{date}T00:00:00Z"))?;
    let day = day_of(t);
    (partition_name(day) == name).then_some(day)
}

/// The partition files of a directory, oldest first: (day, name, bytes incl. -wal and -shm).
fn list_partitions(dir: &Path) -> Result<Vec<(i64, String, u64)>, StoreError> {
    let dir_err = |source| StoreError::Dir {
        path: dir.display().to_string(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(dir_err)? {
        let entry = entry.map_err(dir_err)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(day) = partition_day(name) else {
            continue;
        };
        let size = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let base = dir.join(name);
        let bytes = size(base.clone())
            + size(dir.join(format!("{name}-wal")))
            + size(dir.join(format!("{name}-shm")));
        out.push((day, name.to_string(), bytes));
    }
    out.sort();
    Ok(out)
}

/// Removes a partition and its WAL/shared-memory files (a missing file is not an error).
fn remove_partition(dir: &Path, name: &str) -> Result<(), StoreError> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let path = dir.join(format!("{name}{suffix}"));
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StoreError::Remove {
                    path: path.display().to_string(),
                    source,
                })
            }
        }
    }
    Ok(())
}

/// A partition the writer has open: its connection, its dictionary, and whether it also has a
/// format-1 table (whose record ids a new row must not repeat).
struct Partition {
    conn: Connection,
    dict: Dict,
    legacy: bool,
}

/// Opens (creating if needed) a partition for writing: WAL, synchronous=NORMAL, schema, and
/// its dictionary loaded (at most [`codec::DICT_MAX`] strings).
fn open_partition(path: &Path) -> Result<Partition, StoreError> {
    let err = |e| StoreError::sqlite(path, e);
    let conn = Connection::open(path).map_err(err)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(err)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(err)?;
    // Rows arrive out of time order and the dest index is random: a bigger page cache and
    // fewer checkpoints keep the same pages from being read and synced again batch after batch.
    conn.pragma_update(None, "cache_size", -CACHE_KIB)
        .map_err(err)?;
    conn.pragma_update(None, "wal_autocheckpoint", 4096)
        .map_err(err)?;
    conn.execute_batch(&init_sql()).map_err(err)?;
    let legacy = has_table(&conn, LEGACY_TABLE).map_err(err)?;
    let dict = Dict::load(&conn).map_err(err)?;
    Ok(Partition { conn, dict, legacy })
}

pub(crate) fn has_table(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |_| Ok(()),
    )
    .optional()
    .map(|o| o.is_some())
}

/// The write side: owns the writer connections of the partitions it has touched lately.
pub struct Store {
    cfg: StoreConfig,
    open: BTreeMap<i64, Partition>,
    literal_strings: u64,
}

impl Store {
    /// Creates the directory if needed. Partitions left by a killed writer are recovered by
    /// SQLite (WAL replay) when they are next opened.
    pub fn open(cfg: StoreConfig) -> Result<Store, StoreError> {
        std::fs::create_dir_all(&cfg.dir).map_err(|source| StoreError::Dir {
            path: cfg.dir.display().to_string(),
            source,
        })?;
        // Fails early on an unreadable directory.
        list_partitions(&cfg.dir)?;
        Ok(Store {
            cfg,
            open: BTreeMap::new(),
            literal_strings: 0,
        })
    }

    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// Strings stored literally so far because a partition's dictionary was full.
    pub fn literal_strings(&self) -> u64 {
        self.literal_strings
    }

    fn partition(&mut self, day: i64) -> Result<&mut Partition, StoreError> {
        if !self.open.contains_key(&day) {
            let part = open_partition(&self.cfg.dir.join(partition_name(day)))?;
            self.open.insert(day, part);
        }
        match self.open.get_mut(&day) {
            Some(c) => Ok(c),
            None => Err(StoreError::NoStore {
                path: self.cfg.dir.display().to_string(),
            }),
        }
    }

    /// Commits the records, one transaction per partition touched. Returns how many were new
    /// (a `record_id` already stored is ignored). On error, partitions committed before the
    /// failing one keep their rows.
    pub fn insert_batch<T: Storable>(&mut self, records: &[T]) -> Result<usize, StoreError> {
        let mut by_day: BTreeMap<i64, Vec<&CallRecord>> = BTreeMap::new();
        for r in records {
            let r = r.record();
            by_day.entry(day_of(r.observed_at)).or_default().push(r);
        }
        let mut inserted = 0;
        for (day, recs) in by_day {
            let path = self.cfg.dir.join(partition_name(day));
            let part = self.partition(day)?;
            let result = insert_day(part, day, &recs).map_err(|e| StoreError::sqlite(&path, e));
            self.literal_strings += std::mem::take(&mut self.partition(day)?.dict.full);
            match result {
                Ok(n) => inserted += n,
                Err(e) => {
                    // The in-memory dictionary may name ids the rollback removed: reload it.
                    self.open.remove(&day);
                    return Err(e);
                }
            }
        }
        // Keep only the newest few writer connections open.
        while self.open.len() > MAX_OPEN {
            self.open.pop_first();
        }
        Ok(inserted)
    }

    /// Drops partitions whose day is more than `retention_days` before `now`'s day, then the
    /// oldest while the total exceeds `max_disk_mb`. Today's partition is never dropped (when it
    /// alone is over the cap, that is logged and it is kept). Returns the dropped file names,
    /// oldest first.
    pub fn enforce_retention(&mut self, now: Timestamp) -> Result<Vec<String>, StoreError> {
        let today = day_of(now);
        let oldest_kept = today.saturating_sub(i64::from(self.cfg.retention_days));
        let cap = self.cfg.max_disk_mb.saturating_mul(MIB);
        let mut parts = list_partitions(&self.cfg.dir)?;
        let mut total: u64 = parts.iter().map(|p| p.2).sum();
        let mut dropped = Vec::new();
        let mut i = 0;
        while i < parts.len() {
            let (day, ref name, bytes) = parts[i];
            if day == today {
                i += 1;
                continue;
            }
            let reason = if day < oldest_kept {
                "retention"
            } else if total > cap {
                "disk_cap"
            } else {
                i += 1;
                continue;
            };
            self.open.remove(&day);
            remove_partition(&self.cfg.dir, name)?;
            tracing::info!(partition = %name, bytes, reason, "traceback store: partition dropped");
            total = total.saturating_sub(bytes);
            dropped.push(parts.remove(i).1);
        }
        if total > cap {
            tracing::warn!(
                total_bytes = total,
                cap_bytes = cap,
                "traceback store: over its disk cap with only today's partition left; kept"
            );
        }
        Ok(dropped)
    }

    /// Partition file names and their sizes (with -wal/-shm), oldest first.
    pub fn partitions(&self) -> Vec<(String, u64)> {
        list_partitions(&self.cfg.dir)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, name, bytes)| (name, bytes))
            .collect()
    }
}

const INSERT_SLOT: &str = "INSERT OR IGNORE INTO call (k, dest, orig, rid, cid, peer, verstat,
    attest, origid, spc, x5u, fp, rest) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
const INSERT_OVERFLOW: &str = "INSERT OR IGNORE INTO call_x (k, dest, orig, rid, cid, peer,
    verstat, attest, origid, spc, x5u, fp, rest)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

/// One partition's share of a batch, in one transaction. A record goes to the first free slot
/// of its µs (so calls of the same µs are answered in the order they were stored, as format 1
/// did), unless a slot on the way holds the same record id (a duplicate); with no free slot, or
/// a time outside the day, to `call_x`.
fn insert_day(part: &mut Partition, day: i64, recs: &[&CallRecord]) -> rusqlite::Result<usize> {
    let tx = part.conn.transaction()?;
    let mut inserted = 0;
    {
        let mut slot_stmt = tx.prepare_cached(INSERT_SLOT)?;
        let mut rid_at = tx.prepare_cached("SELECT rid FROM call WHERE k = ?1")?;
        let mut legacy = part
            .legacy
            .then(|| tx.prepare_cached("SELECT 1 FROM calls WHERE record_id = ?1"))
            .transpose()?;
        let mut dict_stmt = tx.prepare_cached("INSERT INTO dict (id, v) VALUES (?1, ?2)")?;
        for r in recs {
            if let Some(stmt) = legacy.as_mut() {
                if stmt.exists([&r.record_id])? {
                    continue;
                }
            }
            let cols = codec::encode(r, &mut part.dict);
            for (id, v) in part.dict.take_new() {
                dict_stmt.execute(params![id, v])?;
            }
            let off = r.observed_at.0.wrapping_sub(day.wrapping_mul(DAY_US));
            let mut placed = false;
            if (0..DAY_US).contains(&off) {
                for slot in 0..SLOTS {
                    let k = off * SLOTS + slot;
                    let key = Value::Integer(k);
                    let n =
                        slot_stmt.execute(params_from_iter(std::iter::once(&key).chain(&cols)))?;
                    if n == 1 {
                        inserted += 1;
                        placed = true;
                        break;
                    }
                    let held: Value = rid_at.query_row([k], |row| row.get(0))?;
                    if held == cols[2] {
                        placed = true;
                        break;
                    }
                }
            }
            if !placed {
                let mut x = tx.prepare_cached(INSERT_OVERFLOW)?;
                let key = Value::Integer(r.observed_at.0);
                inserted += x.execute(params_from_iter(std::iter::once(&key).chain(&cols)))?;
            }
        }
    }
    tx.commit()?;
    Ok(inserted)
}

/// What the writer thread has done, for metrics.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Records newly stored.
    pub inserted: AtomicU64,
    /// Records ignored because their `record_id` was already stored.
    pub duplicates: AtomicU64,
    /// Batches committed.
    pub batches: AtomicU64,
    /// Failed batches (their records are lost) and failed retention runs.
    pub errors: AtomicU64,
    pub partitions_dropped: AtomicU64,
    /// Strings stored literally because their partition's dictionary was full
    /// ([`codec::DICT_MAX`]): the store still answers, each row just takes more room.
    pub dict_full: AtomicU64,
}

/// Starts the writer thread. It commits what arrives on `rx` in batches of at most
/// `batch_max`, at most `flush_interval` after the first record of a batch arrived; enforces
/// retention at start and hourly; when every sender is gone it flushes and returns (the
/// result of that last flush).
pub fn spawn_writer<T: Storable + Send + 'static>(
    store: Store,
    rx: crossbeam_channel::Receiver<T>,
    stats: Arc<WriterStats>,
    clock: Arc<dyn Clock>,
) -> std::thread::JoinHandle<Result<(), StoreError>> {
    std::thread::spawn(move || run_writer(store, rx, &stats, clock.as_ref()))
}

fn run_writer<T: Storable>(
    mut store: Store,
    rx: crossbeam_channel::Receiver<T>,
    stats: &WriterStats,
    clock: &dyn Clock,
) -> Result<(), StoreError> {
    use crossbeam_channel::RecvTimeoutError;
    let batch_max = store.cfg.batch_max.max(1);
    let flush_interval = store.cfg.flush_interval;
    let mut batch: Vec<T> = Vec::with_capacity(batch_max.min(10_000));
    let mut flush_at: Option<Instant> = None;
    retention(&mut store, stats, clock);
    let mut retention_at = Instant::now() + RETENTION_EVERY;
    loop {
        let wake = flush_at.map_or(retention_at, |f| f.min(retention_at));
        match rx.recv_deadline(wake) {
            Ok(rec) => {
                batch.push(rec);
                flush_at.get_or_insert_with(|| Instant::now() + flush_interval);
                // Take what is already queued without waking up once per record.
                while batch.len() < batch_max {
                    match rx.try_recv() {
                        Ok(rec) => batch.push(rec),
                        Err(_) => break,
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return if batch.is_empty() {
                    Ok(())
                } else {
                    commit(&mut store, &mut batch, stats)
                };
            }
        }
        let now = Instant::now();
        if batch.len() >= batch_max || flush_at.is_some_and(|f| now >= f) {
            if let Err(e) = commit(&mut store, &mut batch, stats) {
                tracing::error!(error = %e, kind = e.kind(), "traceback store: batch lost");
            }
            flush_at = None;
        }
        if now >= retention_at {
            retention(&mut store, stats, clock);
            retention_at = now + RETENTION_EVERY;
        }
    }
}

fn commit<T: Storable>(
    store: &mut Store,
    batch: &mut Vec<T>,
    stats: &WriterStats,
) -> Result<(), StoreError> {
    let result = store.insert_batch(batch);
    stats
        .dict_full
        .store(store.literal_strings(), Ordering::Relaxed);
    match &result {
        Ok(n) => {
            stats.inserted.fetch_add(*n as u64, Ordering::Relaxed);
            let dups = batch.len().saturating_sub(*n) as u64;
            stats.duplicates.fetch_add(dups, Ordering::Relaxed);
            stats.batches.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {
            stats.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    batch.clear();
    result.map(|_| ())
}

fn retention(store: &mut Store, stats: &WriterStats, clock: &dyn Clock) {
    match store.enforce_retention(clock.now()) {
        Ok(dropped) => {
            stats
                .partitions_dropped
                .fetch_add(dropped.len() as u64, Ordering::Relaxed);
        }
        Err(e) => {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, kind = e.kind(), "traceback store: retention failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip() {
        let t = Timestamp::parse_rfc3339("2026-11-29T23:59:59.999999Z").unwrap_or_default();
        let day = day_of(t);
        assert_eq!(partition_name(day), "calls-2026-11-29.sqlite");
        assert_eq!(partition_day("calls-2026-11-29.sqlite"), Some(day));
        assert_eq!(day_of(Timestamp(t.0 + 1)), day + 1);
        assert_eq!(
            partition_name(day_of(Timestamp(i64::MAX))),
            "calls-9999-12-31.sqlite"
        );
        assert_eq!(
            partition_name(day_of(Timestamp(i64::MIN))),
            "calls-1970-01-01.sqlite"
        );
        for other in [
            "calls-2026-11-29.sqlite-wal",
            "calls-2026-13-01.sqlite",
            "calls-2026-02-31.sqlite",
            "calls-26-11-29.sqlite",
            "x.sqlite",
            "calls-2026-11-29T0.sqlite",
        ] {
            assert_eq!(partition_day(other), None, "{other}");
        }
    }
}

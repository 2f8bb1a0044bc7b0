//! The collector's SQLite store: every record once per kind (`UNIQUE (kind, record_id)`: a
//! detection may carry the id of a call), every batch once (`idempotency_key PRIMARY KEY`,
//! bound to the SHA-256 of its body), inserted in one transaction per batch so a batch is
//! either wholly in or not at all. WAL mode, so inspection reads never wait for ingest.
//! Rows go in by multi-row INSERTs of up to [`ROWS_PER_INSERT`] (prepared once, cached).
//!
//! Durability ([`Synchronous`]): with `full` (the default) the WAL is fsynced at every commit,
//! so a batch answered 2xx survives a power loss; with `normal` a power loss (not a crash of
//! the process) can roll back the batches committed since the last checkpoint although the
//! sensors were told they were stored, and they have deleted them from their spools.
//!
//! It must never store a record twice, never half a batch, never take a known key for a
//! different body, and never interpret records beyond their id, kind and sensor (the body is
//! kept and served verbatim).

use crate::error::CollectorError;
use crate::providers::{self, NewProvider, Provider, ProviderError, SensorPrincipal};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

/// The records table's columns and constraints (also for the migration below).
const RECORDS_COLUMNS: &str = "(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    sensor_id TEXT,
    received_at TEXT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (kind, record_id)
)";

const SCHEMA: &str = "
CREATE INDEX IF NOT EXISTS records_kind_seq ON records (kind, seq);
CREATE TABLE IF NOT EXISTS batches (
    idempotency_key TEXT PRIMARY KEY,
    received_at TEXT NOT NULL,
    records INTEGER NOT NULL,
    inserted INTEGER NOT NULL,
    body_sha256 TEXT
);
";

/// Databases made before ids were unique per kind and keys bound to a body: the records table
/// is rebuilt with the new constraint (same rows, same sequence numbers) and the batches
/// table gains its digest column (NULL for old keys: they keep their old meaning).
const MIGRATE_RECORDS: &str = "
INSERT INTO records_new (seq, record_id, kind, sensor_id, received_at, body)
    SELECT seq, record_id, kind, sensor_id, received_at, body FROM records;
DROP TABLE records;
ALTER TABLE records_new RENAME TO records;
CREATE INDEX IF NOT EXISTS records_kind_seq ON records (kind, seq);
";

/// One parsed line of a batch.
pub struct Incoming {
    pub record_id: String,
    /// "call", "detection" or "other", from the `schema` field.
    pub kind: &'static str,
    pub sensor_id: Option<String>,
    pub body: String,
}

/// What a batch came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Stored {
    /// New batch: records inserted and records already present.
    Batch { inserted: u64, duplicates: u64 },
    /// The Idempotency-Key was seen before with this body: nothing inserted.
    SeenKey,
    /// The Idempotency-Key was seen before with another body: nothing inserted (409).
    KeyConflict,
}

pub struct Db {
    conn: Connection,
}

/// SQLite's `synchronous` setting for the WAL (see the module doc for what each can lose).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Synchronous {
    /// fsync the WAL at every commit: nothing answered 2xx is lost to a power failure.
    #[default]
    Full,
    /// fsync only at checkpoints: faster; a power loss can lose acknowledged batches.
    Normal,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// Rows per INSERT statement: fewer statement executions per batch, well under SQLite's limit
/// of bound variables (5 per row).
pub const ROWS_PER_INSERT: usize = 64;

fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT OR IGNORE INTO records (record_id, kind, sensor_id, received_at, body) VALUES ",
    );
    for i in 0..rows {
        sql.push_str(if i == 0 {
            "(?,?,?,?,?)"
        } else {
            ",(?,?,?,?,?)"
        });
    }
    sql
}

impl Db {
    pub fn open(path: &Path) -> Result<Db, CollectorError> {
        Self::open_with(path, Synchronous::default())
    }

    pub fn open_with(path: &Path, sync: Synchronous) -> Result<Db, CollectorError> {
        let err = |source| CollectorError::Db {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", sync.pragma())
            .map_err(err)?;
        // 32 MiB of page cache (default 2): the unique index on random record ids stays in it.
        conn.pragma_update(None, "cache_size", -32768)
            .map_err(err)?;
        // Pages read through a mapping instead of a read() copy each (a profile of ingest
        // showed ~44% of its CPU in the kernel, much of it page-cache copies).
        conn.pragma_update(None, "mmap_size", 256i64 << 20)
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS records {RECORDS_COLUMNS};{SCHEMA}{}",
            crate::providers::SCHEMA
        ))
        .map_err(err)?;
        migrate(&conn).map_err(err)?;
        crate::traceback::migrate(&conn).map_err(err)?;
        Ok(Db { conn })
    }

    /// Stores a batch whose inflated body has SHA-256 `digest` (hex). An empty batch stores
    /// nothing and does not use up its key.
    pub fn store(
        &mut self,
        key: Option<&str>,
        digest: &str,
        batch: &[Incoming],
    ) -> Result<Stored, CollectorError> {
        if batch.is_empty() {
            return Ok(Stored::Batch {
                inserted: 0,
                duplicates: 0,
            });
        }
        let now =
            shaken_wire::Timestamp::from_system_time(std::time::SystemTime::now()).to_rfc3339();
        let tx = self.conn.transaction()?;
        if let Some(k) = key {
            let seen: Option<Option<String>> = tx
                .query_row(
                    "SELECT body_sha256 FROM batches WHERE idempotency_key = ?1",
                    [k],
                    |r| r.get(0),
                )
                .optional()?;
            match seen {
                Some(Some(d)) if d != digest => return Ok(Stored::KeyConflict),
                Some(_) => return Ok(Stored::SeenKey),
                None => {}
            }
        }
        let mut inserted = 0u64;
        for rows in batch.chunks(ROWS_PER_INSERT) {
            let mut ins = tx.prepare_cached(&insert_sql(rows.len()))?;
            let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(rows.len() * 5);
            for r in rows {
                values.extend([
                    &r.record_id as &dyn rusqlite::ToSql,
                    &r.kind,
                    &r.sensor_id,
                    &now,
                    &r.body,
                ]);
            }
            // OR IGNORE: the changes are the rows inserted, the rest were already there.
            inserted += ins.execute(values.as_slice())? as u64;
        }
        if let Some(k) = key {
            tx.execute(
                "INSERT OR IGNORE INTO batches (idempotency_key, received_at, records, inserted, body_sha256) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![k, now, batch.len() as i64, inserted as i64, digest],
            )?;
        }
        tx.commit()?;
        Ok(Stored::Batch {
            inserted,
            duplicates: batch.len() as u64 - inserted,
        })
    }

    /// Another connection to the same database file (WAL: it reads while ingest writes), for
    /// token lookups that must not wait behind a batch; None for an in-memory database.
    pub fn reader(&self) -> Result<Option<Db>, CollectorError> {
        match self.conn.path().filter(|p| !p.is_empty()) {
            Some(p) => Ok(Some(Db::open_with(Path::new(p), Synchronous::default())?)),
            None => Ok(None),
        }
    }

    /// The connection, for the traceback module's queries (`crate::traceback`).
    pub fn conn(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub fn conn_ref(&self) -> &Connection {
        &self.conn
    }

    pub fn add_provider(&mut self, p: &NewProvider) -> Result<i64, ProviderError> {
        providers::add(&mut self.conn, p)
    }

    pub fn providers(&self) -> Result<Vec<Provider>, ProviderError> {
        providers::list(&self.conn)
    }

    pub fn issue_token(&mut self, provider: &str, sensor: &str) -> Result<String, ProviderError> {
        providers::issue_token(&mut self.conn, provider, sensor)
    }

    pub fn lookup_token(&self, token: &str) -> Result<Option<SensorPrincipal>, ProviderError> {
        providers::lookup_token(&self.conn, token)
    }

    /// For a batch pushed with a token of provider `provider_id`: the first record whose
    /// sensor is not that provider's (no `sensor_id`, a sensor nobody registered, or another
    /// provider's), with the reason (the `provider_mismatch_total` label).
    pub fn foreign_record<'a>(
        &self,
        provider_id: i64,
        batch: &'a [Incoming],
    ) -> Result<Option<(&'a Incoming, &'static str)>, ProviderError> {
        let owners = providers::sensor_providers(
            &self.conn,
            batch.iter().filter_map(|r| r.sensor_id.as_deref()),
        )?;
        Ok(batch.iter().find_map(|r| {
            let reason = match r.sensor_id.as_deref().map(|s| owners.get(s)) {
                None => "no_sensor_id",
                Some(None) => "unknown_sensor",
                Some(Some(&p)) if p != provider_id => "other_provider",
                Some(Some(_)) => return None,
            };
            Some((r, reason))
        }))
    }

    /// One page of `kind` after sequence number `after`, oldest first: at most `limit` bodies
    /// and, past the first, no more than `max_bytes` in total; and the last sequence number
    /// in the page.
    pub fn page(
        &self,
        kind: &str,
        after: i64,
        limit: u32,
        max_bytes: usize,
    ) -> Result<(Vec<String>, Option<i64>), CollectorError> {
        let mut q = self.conn.prepare_cached(
            "SELECT seq, body FROM records WHERE kind = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let mut rows = q.query(params![kind, after, limit])?;
        let (mut out, mut total, mut last) = (Vec::new(), 0usize, None);
        while let Some(row) = rows.next()? {
            let body: String = row.get(1)?;
            if !out.is_empty() && total + body.len() > max_bytes {
                break;
            }
            total += body.len();
            last = Some(row.get(0)?);
            out.push(body);
        }
        Ok((out, last))
    }
}

fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let records_sql: String = conn.query_row(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'records'",
        [],
        |r| r.get(0),
    )?;
    if !records_sql.contains("UNIQUE (kind, record_id)") {
        tracing::info!("collector database: making record ids unique per kind");
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE;CREATE TABLE records_new {RECORDS_COLUMNS};{MIGRATE_RECORDS}COMMIT;"
        ))?;
    }
    let has_digest = conn
        .prepare("SELECT body_sha256 FROM batches LIMIT 0")
        .is_ok();
    if !has_digest {
        conn.execute_batch("ALTER TABLE batches ADD COLUMN body_sha256 TEXT")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, kind: &'static str) -> Incoming {
        Incoming {
            record_id: id.into(),
            kind,
            sensor_id: None,
            body: format!("{{\"record_id\":\"{id}\"}}"),
        }
    }

    #[test]
    fn an_old_database_is_migrated_to_ids_unique_per_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE records (seq INTEGER PRIMARY KEY AUTOINCREMENT,
                record_id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, sensor_id TEXT,
                received_at TEXT NOT NULL, body TEXT NOT NULL);
             CREATE TABLE batches (idempotency_key TEXT PRIMARY KEY, received_at TEXT NOT NULL,
                records INTEGER NOT NULL, inserted INTEGER NOT NULL);
             INSERT INTO records (record_id, kind, received_at, body) VALUES ('x', 'call', 't', '{}');
             INSERT INTO batches VALUES ('old-key', 't', 1, 1);",
        )
        .unwrap();
        drop(old);
        let mut db = Db::open(&path).unwrap();
        assert_eq!(
            db.store(Some("k"), "d1", &[rec("x", "detection")]).unwrap(),
            Stored::Batch {
                inserted: 1,
                duplicates: 0
            }
        );
        // A key from before digests keeps meaning "seen".
        assert_eq!(
            db.store(Some("old-key"), "d2", &[rec("y", "call")])
                .unwrap(),
            Stored::SeenKey
        );
        assert_eq!(db.page("call", 0, 10, 1 << 20).unwrap().0, ["{}"]);
        drop(db);
        // Opening again does not migrate again.
        Db::open(&path).unwrap();
    }

    #[test]
    fn multi_row_inserts_count_inserted_and_duplicate_rows_across_chunks() {
        let mut db = Db::open(Path::new(":memory:")).unwrap();
        let first: Vec<Incoming> = (0..100).map(|i| rec(&format!("r{i}"), "call")).collect();
        assert_eq!(
            db.store(Some("a"), "d1", &first).unwrap(),
            Stored::Batch {
                inserted: 100,
                duplicates: 0
            }
        );
        // 2.5 chunks, 60 of them already stored, spread over the chunks.
        let second: Vec<Incoming> = (40..200).map(|i| rec(&format!("r{i}"), "call")).collect();
        assert_eq!(
            db.store(Some("b"), "d2", &second).unwrap(),
            Stored::Batch {
                inserted: 100,
                duplicates: 60
            }
        );
        let (page, _) = db.page("call", 0, 1000, 1 << 30).unwrap();
        assert_eq!(page.len(), 200);
        assert_eq!(page[199], "{\"record_id\":\"r199\"}");
    }

    #[test]
    fn keys_are_bound_to_their_body_and_empty_batches_use_none() {
        let mut db = Db::open(Path::new(":memory:")).unwrap();
        assert_eq!(
            db.store(Some("k"), "d0", &[]).unwrap(),
            Stored::Batch {
                inserted: 0,
                duplicates: 0
            }
        );
        assert_eq!(
            db.store(Some("k"), "d1", &[rec("a", "call")]).unwrap(),
            Stored::Batch {
                inserted: 1,
                duplicates: 0
            }
        );
        assert_eq!(
            db.store(Some("k"), "d1", &[rec("a", "call")]).unwrap(),
            Stored::SeenKey
        );
        assert_eq!(
            db.store(Some("k"), "d2", &[rec("b", "call")]).unwrap(),
            Stored::KeyConflict
        );
    }
}

//! The collector's SQLite store: every record once (`record_id UNIQUE`), every batch once
//! (`idempotency_key PRIMARY KEY`), inserted in one transaction per batch so a batch is either
//! wholly in or not at all. WAL mode, so inspection reads never wait for ingest.
//!
//! It must never store a record twice, never half a batch, and never interpret records beyond
//! their id, kind and sensor (the body is kept verbatim).

use super::error::CollectorError;
use crate::clock::{Clock, SystemClock};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    sensor_id TEXT,
    received_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_kind_seq ON records (kind, seq);
CREATE TABLE IF NOT EXISTS batches (
    idempotency_key TEXT PRIMARY KEY,
    received_at TEXT NOT NULL,
    records INTEGER NOT NULL,
    inserted INTEGER NOT NULL
);
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
    /// The Idempotency-Key was seen before: nothing inserted.
    SeenKey,
}

pub struct Db {
    conn: Connection,
}

impl Db {
    pub fn open(path: &Path) -> Result<Db, CollectorError> {
        let err = |source| CollectorError::Db {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        Ok(Db { conn })
    }

    pub fn store(
        &mut self,
        key: Option<&str>,
        batch: &[Incoming],
    ) -> Result<Stored, CollectorError> {
        let now = SystemClock.now().to_rfc3339();
        let tx = self.conn.transaction()?;
        if let Some(k) = key {
            let seen: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM batches WHERE idempotency_key = ?1",
                    [k],
                    |r| r.get(0),
                )
                .optional()?;
            if seen.is_some() {
                return Ok(Stored::SeenKey);
            }
        }
        let mut inserted = 0u64;
        {
            let mut ins = tx.prepare_cached(
                "INSERT OR IGNORE INTO records (record_id, kind, sensor_id, received_at, body)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for r in batch {
                inserted +=
                    ins.execute(params![r.record_id, r.kind, r.sensor_id, now, r.body])? as u64;
            }
        }
        if let Some(k) = key {
            tx.execute(
                "INSERT OR IGNORE INTO batches (idempotency_key, received_at, records, inserted) VALUES (?1, ?2, ?3, ?4)",
                params![k, now, batch.len() as i64, inserted as i64],
            )?;
        }
        tx.commit()?;
        Ok(Stored::Batch {
            inserted,
            duplicates: batch.len() as u64 - inserted,
        })
    }

    /// Records of `kind` after sequence number `after`, oldest first: (seq, body).
    pub fn list(
        &self,
        kind: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, String)>, CollectorError> {
        let mut q = self.conn.prepare_cached(
            "SELECT seq, body FROM records WHERE kind = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let rows = q.query_map(params![kind, after, limit], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

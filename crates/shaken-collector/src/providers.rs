//! The provider registry (docs/collector.md, "Providers"): voice service providers with their
//! OCNs, Robocall Mitigation Database number, contacts and flags, and the sensor tokens each
//! one holds. A token stands for one sensor of one provider; a batch pushed with it may only
//! carry records of sensors registered to that provider (the ingest route refuses the rest).
//!
//! It must never store a token itself (only its SHA-256), never let an OCN or a sensor belong
//! to two providers, and never let a token of one provider vouch for another's sensor.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::Digest;
use std::collections::HashMap;

/// The registry's tables (created with the rest of the database).
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS providers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    rmd_number TEXT,
    contacts TEXT NOT NULL,
    flags TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS provider_ocns (
    ocn TEXT PRIMARY KEY,
    provider_id INTEGER NOT NULL REFERENCES providers (id)
);
CREATE TABLE IF NOT EXISTS sensor_tokens (
    token_sha256 TEXT PRIMARY KEY,
    provider_id INTEGER NOT NULL REFERENCES providers (id),
    sensor_id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
";

/// What the ITG knows about a provider's standing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// Removed from the FCC's Robocall Mitigation Database.
    RmdRemoved,
    /// Received a cease-and-desist letter.
    CeaseAndDesist,
    /// Subject of a blocking order.
    BlockingOrder,
}

impl Flag {
    fn as_str(self) -> &'static str {
        match self {
            Flag::RmdRemoved => "rmd_removed",
            Flag::CeaseAndDesist => "cease_and_desist",
            Flag::BlockingOrder => "blocking_order",
        }
    }

    fn parse(s: &str) -> Option<Flag> {
        [Flag::RmdRemoved, Flag::CeaseAndDesist, Flag::BlockingOrder]
            .into_iter()
            .find(|f| f.as_str() == s)
    }
}

/// A provider to register.
#[derive(Clone, Debug, Default)]
pub struct NewProvider {
    pub name: String,
    pub ocns: Vec<String>,
    pub rmd_number: Option<String>,
    pub contacts: Vec<String>,
    pub flags: Vec<Flag>,
}

/// A registered provider, as `provider list` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Provider {
    pub id: i64,
    pub name: String,
    pub ocns: Vec<String>,
    pub rmd_number: Option<String>,
    pub contacts: Vec<String>,
    pub flags: Vec<Flag>,
    /// Sensors holding a token of this provider.
    pub sensors: Vec<String>,
    pub created_at: String,
}

/// Who an issued token stands for (put in the ingest request's extensions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SensorPrincipal {
    pub provider_id: i64,
    pub sensor_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    #[error("a provider named {0:?} exists already")]
    NameTaken(String),
    #[error("OCN {ocn} belongs to provider {owner:?} already")]
    OcnTaken { ocn: String, owner: String },
    #[error("no provider named {0:?} (see `provider list`)")]
    UnknownProvider(String),
    #[error("sensor {sensor:?} belongs to provider {owner:?}; a sensor has one provider")]
    SensorTaken { sensor: String, owner: String },
    #[error("no randomness for a token: {0}")]
    Random(String),
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
}

fn invalid(field: &'static str, problem: impl Into<String>) -> ProviderError {
    ProviderError::Invalid {
        field,
        problem: problem.into(),
    }
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now() -> String {
    shaken_wire::Timestamp::from_system_time(std::time::SystemTime::now()).to_rfc3339()
}

/// An OCN: the four characters NECA assigns (digits and capital letters).
fn check_ocn(ocn: &str) -> Result<(), ProviderError> {
    if ocn.len() == 4
        && ocn
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    {
        Ok(())
    } else {
        Err(invalid(
            "ocn",
            format!("{ocn:?} is not an OCN (4 digits or capital letters)"),
        ))
    }
}

fn check_text(field: &'static str, v: &str, max: usize) -> Result<(), ProviderError> {
    if v.trim().is_empty() || v.len() > max || v.chars().any(char::is_control) {
        return Err(invalid(
            field,
            format!("must be 1 to {max} printable characters"),
        ));
    }
    Ok(())
}

/// Registers `p`; its id.
pub fn add(conn: &mut Connection, p: &NewProvider) -> Result<i64, ProviderError> {
    check_text("name", &p.name, 200)?;
    if p.ocns.is_empty() {
        return Err(invalid("ocn", "at least one OCN"));
    }
    p.ocns.iter().try_for_each(|o| check_ocn(o))?;
    if let Some(r) = &p.rmd_number {
        check_text("rmd", r, 64)?;
    }
    p.contacts
        .iter()
        .try_for_each(|c| check_text("contact", c, 320))?;
    let tx = conn.transaction()?;
    let exists: Option<i64> = tx
        .query_row("SELECT id FROM providers WHERE name = ?1", [&p.name], |r| {
            r.get(0)
        })
        .optional()?;
    if exists.is_some() {
        return Err(ProviderError::NameTaken(p.name.clone()));
    }
    for ocn in &p.ocns {
        let owner: Option<String> = tx
            .query_row(
                "SELECT p.name FROM provider_ocns o JOIN providers p ON p.id = o.provider_id WHERE o.ocn = ?1",
                [ocn],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(owner) = owner {
            return Err(ProviderError::OcnTaken {
                ocn: ocn.clone(),
                owner,
            });
        }
    }
    let mut flags: Vec<&str> = p.flags.iter().map(|f| f.as_str()).collect();
    flags.sort_unstable();
    flags.dedup();
    tx.execute(
        "INSERT INTO providers (name, rmd_number, contacts, flags, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            p.name,
            p.rmd_number,
            p.contacts.join("\n"),
            flags.join(","),
            now()
        ],
    )?;
    let id = tx.last_insert_rowid();
    for ocn in &p.ocns {
        // The same OCN twice in one command is one OCN.
        tx.execute(
            "INSERT OR IGNORE INTO provider_ocns (ocn, provider_id) VALUES (?1, ?2)",
            params![ocn, id],
        )?;
    }
    tx.commit()?;
    Ok(id)
}

/// Every provider, by name.
pub fn list(conn: &Connection) -> Result<Vec<Provider>, ProviderError> {
    let mut out = Vec::new();
    let mut q = conn.prepare(
        "SELECT id, name, rmd_number, contacts, flags, created_at FROM providers ORDER BY name",
    )?;
    let mut rows = q.query([])?;
    while let Some(r) = rows.next()? {
        let split = |s: String, sep: char| -> Vec<String> {
            s.split(sep)
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        };
        let id: i64 = r.get(0)?;
        out.push(Provider {
            id,
            name: r.get(1)?,
            ocns: column(
                conn,
                "SELECT ocn FROM provider_ocns WHERE provider_id = ?1 ORDER BY ocn",
                id,
            )?,
            rmd_number: r.get(2)?,
            contacts: split(r.get(3)?, '\n'),
            flags: split(r.get(4)?, ',')
                .iter()
                .filter_map(|f| Flag::parse(f))
                .collect(),
            sensors: column(
                conn,
                "SELECT sensor_id FROM sensor_tokens WHERE provider_id = ?1 ORDER BY sensor_id",
                id,
            )?,
            created_at: r.get(5)?,
        });
    }
    Ok(out)
}

fn column(conn: &Connection, sql: &str, id: i64) -> rusqlite::Result<Vec<String>> {
    let mut q = conn.prepare_cached(sql)?;
    let rows = q.query_map([id], |r| r.get(0))?;
    rows.collect()
}

/// A new token for `sensor` of provider `provider` (by name), printed once and stored as its
/// SHA-256. A sensor that had a token gets a new one and the old one stops working.
pub fn issue_token(
    conn: &mut Connection,
    provider: &str,
    sensor: &str,
) -> Result<String, ProviderError> {
    check_text("sensor", sensor, 256)?;
    let tx = conn.transaction()?;
    let (token, id) = new_token_for(&tx, provider)?;
    let owner: Option<(i64, String)> = tx
        .query_row(
            "SELECT p.id, p.name FROM sensor_tokens t JOIN providers p ON p.id = t.provider_id WHERE t.sensor_id = ?1",
            [sensor],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match owner {
        Some((owner_id, owner)) if owner_id != id => {
            return Err(ProviderError::SensorTaken {
                sensor: sensor.to_string(),
                owner,
            })
        }
        Some(_) => {
            tx.execute("DELETE FROM sensor_tokens WHERE sensor_id = ?1", [sensor])?;
        }
        None => {}
    }
    tx.execute(
        "INSERT INTO sensor_tokens (token_sha256, provider_id, sensor_id, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![sha256_hex(token.as_bytes()), id, sensor, now()],
    )?;
    tx.commit()?;
    Ok(token)
}

/// A new random token (64 hex digits) and the id of the provider named `provider`.
pub(crate) fn new_token_for(
    tx: &rusqlite::Transaction,
    provider: &str,
) -> Result<(String, i64), ProviderError> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| ProviderError::Random(e.to_string()))?;
    let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let id: i64 = tx
        .query_row(
            "SELECT id FROM providers WHERE name = ?1",
            [provider],
            |r| r.get(0),
        )
        .optional()?
        .ok_or_else(|| ProviderError::UnknownProvider(provider.to_string()))?;
    Ok((token, id))
}

/// Who `token` stands for, if it was issued (looked up by its hash: the comparison never
/// touches the secret byte by byte).
pub fn lookup_token(
    conn: &Connection,
    token: &str,
) -> Result<Option<SensorPrincipal>, ProviderError> {
    let mut q = conn.prepare_cached(
        "SELECT provider_id, sensor_id FROM sensor_tokens WHERE token_sha256 = ?1",
    )?;
    Ok(q.query_row([sha256_hex(token.as_bytes())], |r| {
        Ok(SensorPrincipal {
            provider_id: r.get(0)?,
            sensor_id: r.get(1)?,
        })
    })
    .optional()?)
}

/// The provider of each of `sensors` that is registered.
pub fn sensor_providers<'a>(
    conn: &Connection,
    sensors: impl IntoIterator<Item = &'a str>,
) -> Result<HashMap<String, i64>, ProviderError> {
    let mut q =
        conn.prepare_cached("SELECT provider_id FROM sensor_tokens WHERE sensor_id = ?1")?;
    let mut out = HashMap::new();
    for s in sensors {
        if out.contains_key(s) {
            continue;
        }
        if let Some(p) = q.query_row([s], |r| r.get(0)).optional()? {
            out.insert(s.to_string(), p);
        }
    }
    Ok(out)
}

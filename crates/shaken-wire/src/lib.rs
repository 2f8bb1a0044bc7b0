//! shaken-wire: the records shaken-sensor writes and the collector reads, in one place both
//! build on. [`CallRecord`] and [`DetectionEvent`] (with everything they contain) serialize to
//! the JSON every sink writes and deserialize from it; [`RecordHead`] reads only a record's
//! identity; [`Timestamp`] is their time type with the one strict RFC 3339 parser.
//!
//! It must never depend on capture, crypto or server code (the collector links it without
//! libpcap), and never change the bytes a record serializes to.

mod head;
mod record;
mod schema;
mod time;

pub use head::{RecordHead, DETECTION_ID_INFIX};
pub use record::*;
pub use schema::{RecordKind, SchemaId, KNOWN as KNOWN_SCHEMAS};
pub use time::{Timestamp, RFC3339_LEN};

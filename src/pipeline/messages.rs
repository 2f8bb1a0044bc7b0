//! Typed messages between stages. A [`Batch`] carries up to [`BATCH_ITEMS`] SIP messages in one
//! buffer, so a channel operation and an allocation are amortised over many messages; batches
//! are recycled back to the capture side.

use crate::capture::packet::Transport;
use crate::clock::Timestamp;
use std::net::SocketAddr;
use std::time::Instant;

pub const BATCH_ITEMS: usize = 64;
pub const BATCH_BYTES: usize = 64 * 1024;

#[derive(Clone, Copy, Debug)]
pub struct BatchItem {
    pub ts: Timestamp,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub transport: Transport,
    /// HEP capture agent id (None from libpcap).
    pub agent: Option<u32>,
    pub start: u32,
    pub len: u32,
}

#[derive(Debug, Default)]
pub struct Batch {
    pub buf: Vec<u8>,
    pub items: Vec<BatchItem>,
    /// At most one message per batch is timed for stage latency: its index and the arrival of
    /// the frame that produced it (see `metrics::latency`).
    pub sample: Option<(u32, Instant)>,
}

impl Batch {
    pub fn with_capacity() -> Self {
        Batch {
            buf: Vec::with_capacity(BATCH_BYTES),
            items: Vec::with_capacity(BATCH_ITEMS),
            sample: None,
        }
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.items.clear();
        self.sample = None;
    }

    pub fn is_full(&self) -> bool {
        self.items.len() >= BATCH_ITEMS || self.buf.len() >= BATCH_BYTES
    }

    pub fn message(&self, item: &BatchItem) -> &[u8] {
        let start = item.start as usize;
        &self.buf[start..start + item.len as usize]
    }
}

pub enum WorkerMsg {
    Batch(Batch),
    /// Time moved on (packet time in replay, the clock live): expire what is due.
    Tick(Timestamp),
    /// Capture is over: close every open call as of this time, then stop.
    Shutdown(Timestamp),
}

/// A finished call on its way from a worker to the sink. `json` is the record already
/// serialized (one JSON object, no newline) when an output needs it: workers serialize in
/// parallel, so the single sink thread only writes bytes (callgrind: serialization was a
/// quarter of an unsigned replay's instructions, all of it on the sink).
#[derive(Debug)]
pub struct SinkRecord {
    pub record: crate::record::CallRecord,
    pub json: Option<Vec<u8>>,
}

impl crate::traceback::store::Storable for SinkRecord {
    fn record(&self) -> &crate::record::CallRecord {
        &self.record
    }
    fn json(&self) -> Option<&[u8]> {
        self.json.as_deref()
    }
}

/// The records sink shares one record between its sinks; the store's queue holds it shared.
impl crate::traceback::store::Storable for std::sync::Arc<SinkRecord> {
    fn record(&self) -> &crate::record::CallRecord {
        &self.record
    }
    fn json(&self) -> Option<&[u8]> {
        self.json.as_deref()
    }
}

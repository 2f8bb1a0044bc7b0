//! Export stage: sinks that take records out of the sensor. JSON lines to a file or stdout
//! ([`jsonl`]); the durable spool ([`spool`]) and the collector client ([`push`]) that delivers
//! from it, with several batches out at once ([`inflight`]); HEPv3 to a HOMER endpoint
//! ([`hep`]). A sink never blocks the workers in live mode: its queue is bounded and what does
//! not fit is counted.

pub mod hep;
pub mod inflight;
pub mod jsonl;
pub mod push;
pub mod spool;

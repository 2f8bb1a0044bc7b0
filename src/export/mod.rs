//! Export stage: sinks that take CallRecords out of the sensor. Today: JSON lines to a file or
//! stdout ([`jsonl`]). A sink never blocks the workers in live mode: its queue is bounded and
//! what does not fit is counted.

pub mod jsonl;

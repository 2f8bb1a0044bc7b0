//! Traceback store: every CallRecord kept at the edge in an embedded SQLite store, partitioned
//! by day, so that a traceback request ("this call, from this number to that one, at about
//! this time: who handed it to you?") is answered at once from the sensor itself.
//!
//! Writes are batched on their own thread, off the hot path; reads never block writes (WAL).

pub mod codec;
pub mod query;
pub mod store;

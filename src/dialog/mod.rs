//! Dialog stage: groups SIP messages into calls (INVITE → provisional → final → ACK →
//! BYE/CANCEL, or a timeout) and turns each finished call into a
//! [`CallRecord`](crate::record::CallRecord).
//!
//! Each worker owns one [`table::DialogTable`] for the Call-IDs sharded to it, so no lock is
//! ever taken. The table is bounded: when full, the oldest call is closed and counted. This stage
//! must never keep a reference into packet memory past the message it is handling.

pub mod call;
pub mod table;
#[cfg(test)]
pub(crate) mod testkit;
pub mod texts;

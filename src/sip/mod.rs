//! SIP stage: framing and borrowed-view parsing of SIP messages (RFC 3261), URIs and
//! name-addr values, SDP summaries and telephone-number canonicalization.
//!
//! Parsers take `&[u8]` and return views into it; they never allocate per message on the
//! common path, never panic, and report malformed input as a typed [`error::SipError`].

pub mod error;
pub mod framing;
pub mod header;
pub mod message;
pub mod parse;
pub mod sdp;
pub mod tn;
pub mod uri;

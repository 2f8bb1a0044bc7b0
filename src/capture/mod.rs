//! Capture stage: frames from libpcap (live or file) are decoded down to SIP messages.
//!
//! Link layers, IP (with tunnels), fragment reassembly, UDP and TCP stream reassembly, and SIP
//! framing. Every table here is bounded and every dropped packet is counted by kind. This stage
//! must never parse SIP beyond framing, never block on a full queue in live mode, and never
//! panic on any byte sequence.

pub mod decode;
pub mod dedup;
pub mod defrag;
pub mod hep;
pub mod hep_listen;
pub mod hep_reorder;
pub mod packet;
pub mod source;
pub mod tcp;

//! The values that flow out of the capture stage: one framed SIP message with its addresses.

use crate::clock::Timestamp;
use std::net::SocketAddr;

/// Defined with the wire types it appears in; capture uses it, not the other way round.
pub use crate::record::Transport;

/// One complete SIP message as framed by the capture stage, borrowed from a frame, a
/// reassembled datagram or a TCP stream buffer.
#[derive(Clone, Copy, Debug)]
pub struct SipPayload<'a> {
    pub ts: Timestamp,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub transport: Transport,
    pub bytes: &'a [u8],
    /// Offsets of the Call-ID value inside `bytes`, found while framing.
    pub call_id: Option<(usize, usize)>,
    /// HEP capture agent id when the message came over HEP; None from libpcap.
    pub agent: Option<u32>,
}

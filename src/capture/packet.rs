//! The values that flow out of the capture stage: one framed SIP message with its addresses.

use crate::clock::Timestamp;
use std::net::SocketAddr;

/// The transport a SIP message was seen on. The records carry their own wire type
/// ([`crate::record::Transport`]); a call converts when its record is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl From<Transport> for crate::record::Transport {
    fn from(t: Transport) -> Self {
        match t {
            Transport::Udp => crate::record::Transport::Udp,
            Transport::Tcp => crate::record::Transport::Tcp,
        }
    }
}

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

//! The origin fingerprint: one 64-bit value (16 hex digits) for "calls from one originating
//! setup". Inputs are stable traits of who sent the call, never the caller ID (campaigns
//! rotate it) nor anything per call (Call-ID, tags, numbers, SDP addresses and session ids):
//! the upstream peer, the User-Agent, the hash of the INVITE's header names in order, the SDP
//! `o=` user and the offered codecs (all INVITE time), then the PASSporT's origid and the
//! signer's SPC from the verdict. Calls are announced to the detectors when the verdict is
//! known, so the fingerprint the detectors see and the one in the record are the same; an
//! unsigned call simply has no origid or SPC in it.

use super::hash::Hash64;

/// Hash of the INVITE-time traits (computed once per call, when the INVITE arrives).
pub fn origin_traits(
    peer: &str,
    user_agent: Option<&[u8]>,
    header_order_hash: u64,
    sdp_origin_user: Option<&[u8]>,
    codecs: &[&[u8]],
) -> u64 {
    let mut h = Hash64::seeded(0x5348_414b_454e)
        .bytes(peer.as_bytes())
        .bytes(user_agent.unwrap_or(b"\0none"))
        .u64(header_order_hash)
        .bytes(sdp_origin_user.unwrap_or(b"\0none"))
        .u64(codecs.len() as u64);
    for c in codecs {
        h = h.bytes(c);
    }
    h.finish()
}

/// The call's fingerprint: INVITE traits plus the verdict's origid and SPC.
pub fn fingerprint(origin: u64, origid: Option<&str>, spc: Option<&str>) -> u64 {
    Hash64::default()
        .u64(origin)
        .bytes(origid.map_or(b"\0none".as_slice(), str::as_bytes))
        .bytes(spc.map_or(b"\0none".as_slice(), str::as_bytes))
        .finish()
}

pub fn fingerprint_hex(fp: u64) -> String {
    format!("{fp:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_traits_decide_and_caller_ids_cannot() {
        let a = origin_traits("alpha", Some(b"UA/1"), 42, Some(b"robo"), &[b"PCMU/8000"]);
        assert_eq!(
            a,
            origin_traits("alpha", Some(b"UA/1"), 42, Some(b"robo"), &[b"PCMU/8000"])
        );
        assert_ne!(
            a,
            origin_traits("beta", Some(b"UA/1"), 42, Some(b"robo"), &[b"PCMU/8000"])
        );
        assert_ne!(
            a,
            origin_traits("alpha", Some(b"UA/2"), 42, Some(b"robo"), &[b"PCMU/8000"])
        );
        assert_ne!(
            a,
            origin_traits("alpha", Some(b"UA/1"), 43, Some(b"robo"), &[b"PCMU/8000"])
        );
        assert_ne!(
            a,
            origin_traits("alpha", Some(b"UA/1"), 42, None, &[b"PCMU/8000"])
        );
        assert_ne!(
            a,
            origin_traits("alpha", Some(b"UA/1"), 42, Some(b"robo"), &[b"PCMA/8000"])
        );
        let f = fingerprint(
            a,
            Some("e32f4189-cb86-460f-bb92-bd3acb89f29c"),
            Some("111A"),
        );
        assert_ne!(f, fingerprint(a, None, Some("111A")));
        assert_ne!(
            f,
            fingerprint(a, Some("e32f4189-cb86-460f-bb92-bd3acb89f29c"), None)
        );
        let hex = fingerprint_hex(f);
        assert_eq!(hex.len(), 16);
        assert_eq!(u64::from_str_radix(&hex, 16).unwrap(), f);
        assert_eq!(fingerprint_hex(0xab), "00000000000000ab");
    }
}

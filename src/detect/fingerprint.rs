//! The origin fingerprint: one 64-bit value (16 hex digits) for "calls from one originating
//! setup". Inputs are only traits that stay the same from call to call of one campaign: the
//! upstream peer, the User-Agent, the hash of the INVITE's header names in order, the SDP `o=`
//! user and the offered codecs (INVITE time), then the signer's SPC and the x5u host from the
//! verdict. Never anything an originator varies per call: not the caller ID (campaigns rotate
//! it), not the PASSporT's origid (many signers, Asterisk among them, mint one per call; it is
//! a key kind of its own), not SDP session id/version, Call-ID, tags, branch, ports or
//! Max-Forwards. [`of_call`] is the one place the verdict's part is added: the dialog's call
//! and a record whose verdict landed after the call ended both go through it.

use super::hash::Hash64;
use crate::record::ShakenResult;

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

/// The host of an x5u URL as written (scheme, user info, port and path dropped; ASCII case
/// folded). Not a validation: the certificate fetcher judges the URL; this only groups calls.
fn x5u_host(x5u: &str) -> &str {
    let rest = x5u.split_once("://").map_or(x5u, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    }
}

/// The call's fingerprint: INVITE traits plus the signer (SPC and x5u host) of its verdict.
/// `verdict` is None (or without PASSporT fields) for an unsigned call.
pub fn of_call(origin: u64, verdict: Option<&ShakenResult>) -> u64 {
    let spc = verdict.and_then(|v| v.spc.as_deref());
    let host = verdict.and_then(|v| v.x5u.as_deref()).map(x5u_host);
    let mut h = Hash64::default()
        .u64(origin)
        .bytes(spc.map_or(b"\0none".as_slice(), str::as_bytes));
    match host {
        Some(host) => {
            for b in host.bytes() {
                h = h.u64(u64::from(b.to_ascii_lowercase()));
            }
            h.u64(host.len() as u64).finish()
        }
        None => h.bytes(b"\0none").finish(),
    }
}

pub fn fingerprint_hex(fp: u64) -> String {
    format!("{fp:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(origid: &str, spc: &str, x5u: &str) -> ShakenResult {
        ShakenResult {
            origid: Some(origid.into()),
            spc: Some(spc.into()),
            x5u: Some(x5u.into()),
            attest: Some("B".into()),
            identity_headers: 1,
            ..ShakenResult::default()
        }
    }

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
        let hex = fingerprint_hex(a);
        assert_eq!(hex.len(), 16);
        assert_eq!(u64::from_str_radix(&hex, 16).unwrap(), a);
        assert_eq!(fingerprint_hex(0xab), "00000000000000ab");
    }

    /// Issue #13: a signer minting a fresh origid (and the campaign a fresh caller ID and
    /// attestation) per call must not split the campaign into one fingerprint per call; the
    /// signer itself (SPC, x5u host) is a stable trait and does separate setups.
    #[test]
    fn origid_and_attestation_are_not_part_of_the_fingerprint_but_the_signer_is() {
        let o = origin_traits("alpha", Some(b"UA/1"), 42, Some(b"robo"), &[b"PCMU/8000"]);
        let x5u = "https://cert.example/sti/111A.pem";
        let f = of_call(o, Some(&signed("e32f4189-cb86-460f", "111A", x5u)));
        let mut other = signed("0b1c2d3e-aaaa-bbbb", "111A", x5u);
        other.attest = Some("C".into());
        assert_eq!(f, of_call(o, Some(&other)));
        // Port, user info, path and case of the x5u host do not matter; the host does.
        assert_eq!(
            f,
            of_call(
                o,
                Some(&signed("x", "111A", "https://u@CERT.example:443/other.pem"))
            )
        );
        assert_ne!(
            f,
            of_call(
                o,
                Some(&signed("x", "111A", "https://certs2.example/a.pem"))
            )
        );
        assert_ne!(f, of_call(o, Some(&signed("x", "222B", x5u))));
        assert_ne!(f, of_call(o, None));
        assert_eq!(of_call(o, None), of_call(o, Some(&ShakenResult::default())));
        assert_eq!(x5u_host("https://[2001:db8::1]:8443/c.pem"), "2001:db8::1");
        assert_eq!(x5u_host("garbage"), "garbage");
    }
}

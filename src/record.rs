//! The records the sensor writes. Their types are the `shaken-wire` crate's (shared with the
//! collector; docs/architecture.md, "Records") and re-exported here; what only the sensor
//! computes lives here: stable record ids and readable text from wire bytes.

pub use shaken_wire::*;

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;

/// A record id that is unique per observed call and the same every time it is computed for that
/// call (so a retried push is recognised as a duplicate): `sensor:` and a UUID-formatted
/// 128-bit hash of the Call-ID, the INVITE's timestamp and its source.
pub fn record_id(sensor: &str, call_id: &[u8], at: Timestamp, src: SocketAddr) -> String {
    let half = |salt: u8| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        salt.hash(&mut h);
        call_id.hash(&mut h);
        at.hash(&mut h);
        src.hash(&mut h);
        h.finish()
    };
    let (hi, lo) = (half(1), half(2));
    // Version 8 (custom) and the RFC 9562 variant, so it parses as a UUID.
    let hi = (hi & !0xF000) | 0x8000;
    let lo = (lo & !(0b11 << 62)) | (0b10 << 62);
    format!(
        "{sensor}:{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0xFFFF,
        lo >> 48,
        lo & 0xFFFF_FFFF_FFFF
    )
}

/// Bytes as seen on the wire, kept readable: invalid UTF-8 becomes U+FFFD, length is capped.
pub fn lossy(bytes: &[u8], max: usize) -> String {
    let cut = &bytes[..bytes.len().min(max)];
    String::from_utf8_lossy(cut).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_id_is_stable_and_distinct() {
        let src: SocketAddr = "198.51.100.10:5060".parse().unwrap();
        let a = record_id("edge-1", b"abc@h", Timestamp(5), src);
        assert_eq!(a, record_id("edge-1", b"abc@h", Timestamp(5), src));
        assert_ne!(a, record_id("edge-1", b"abc@h", Timestamp(6), src));
        assert_ne!(a, record_id("edge-1", b"abd@h", Timestamp(5), src));
        let uuid = a.strip_prefix("edge-1:").unwrap();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "8");
    }
}

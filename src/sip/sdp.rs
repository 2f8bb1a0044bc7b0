//! A lenient summary of an SDP body (RFC 8866): origin user and address, connection address,
//! the first media lines and the codecs named by `a=rtpmap`: the traits the campaign
//! fingerprint uses.
//!
//! It never fails (malformed lines are skipped), never allocates (fixed-capacity lists; extra
//! media and codecs are counted, not kept) and reads each body byte at most a few times.

use memchr::memchr;

use super::header::trim;
use super::message::BoundedVec;

/// One `m=` line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Media<'a> {
    /// `audio`, `video`, `image`, ...
    pub kind: &'a [u8],
    /// Transport port (a `/count` suffix is dropped); 0 when it is not a number.
    pub port: u16,
    /// `RTP/AVP`, `RTP/SAVP`, `udptl`, ...
    pub proto: &'a [u8],
    /// The format list as received (`0 8 101`).
    pub formats: &'a [u8],
}

/// What the sensor keeps of an SDP body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SdpSummary<'a> {
    /// `o=` username (`-` when the offerer has none).
    pub origin_user: Option<&'a [u8]>,
    /// `o=` unicast address.
    pub origin_addr: Option<&'a [u8]>,
    /// First `c=` connection address (session level, or the first media's).
    pub conn_addr: Option<&'a [u8]>,
    /// The first 4 `m=` lines.
    pub media: BoundedVec<Media<'a>, 4>,
    /// Every `m=` line, kept or not.
    pub media_count: u16,
    /// Encoding names of `a=rtpmap` lines (`PCMU/8000`), in order of appearance, up to 8.
    pub codecs: BoundedVec<&'a [u8], 8>,
    /// Every `a=rtpmap` line, kept or not.
    pub codec_count: u16,
}

/// Summarises an SDP body; anything that is not SDP just yields an empty summary.
pub fn parse_sdp(body: &[u8]) -> SdpSummary<'_> {
    let mut s = SdpSummary::default();
    let mut rest = body;
    while !rest.is_empty() {
        let end = memchr(b'\n', rest).unwrap_or(rest.len());
        let line = trim(&rest[..end]);
        rest = rest.get(end + 1..).unwrap_or(&[]);
        let (kind, value) = match line {
            [k, b'=', v @ ..] => (*k, v),
            _ => continue,
        };
        match kind {
            b'o' if s.origin_user.is_none() => {
                let mut f = fields(value);
                s.origin_user = f.next();
                s.origin_addr = f.nth(4);
            }
            b'c' if s.conn_addr.is_none() => s.conn_addr = fields(value).nth(2),
            b'm' => {
                s.media_count = s.media_count.saturating_add(1);
                if let Some(m) = media(value) {
                    // A full list just drops the extra media (counted above).
                    let _ = s.media.push(m);
                }
            }
            b'a' => {
                if let Some(rtpmap) = value.strip_prefix(b"rtpmap:") {
                    if let Some(enc) = fields(rtpmap).nth(1) {
                        s.codec_count = s.codec_count.saturating_add(1);
                        let _ = s.codecs.push(enc);
                    }
                }
            }
            _ => {}
        }
    }
    s
}

fn fields(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b' ' || b == b'\t')
        .filter(|f| !f.is_empty())
}

/// The first white-space separated field of `v` and what follows it.
fn next_field(v: &[u8]) -> (&[u8], &[u8]) {
    let v = trim(v);
    let end = v
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(v.len());
    (&v[..end], &v[end..])
}

fn media(v: &[u8]) -> Option<Media<'_>> {
    let (kind, rest) = next_field(v);
    let (port, rest) = next_field(rest);
    let (proto, rest) = next_field(rest);
    if kind.is_empty() || proto.is_empty() {
        return None;
    }
    let port = port.split(|&b| b == b'/').next().unwrap_or(port);
    let port = if port.is_empty() || port.len() > 5 || !port.iter().all(u8::is_ascii_digit) {
        0
    } else {
        let n = port.iter().fold(0u32, |a, &d| a * 10 + u32::from(d - b'0'));
        u16::try_from(n).unwrap_or(0)
    };
    Some(Media {
        kind,
        port,
        proto,
        formats: trim(rest),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &[u8] = b"v=0\r\n\
o=sonus 1234 5678 IN IP4 198.51.100.10\r\n\
s=-\r\n\
c=IN IP4 198.51.100.20\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
m=video 0/2 RTP/AVP 31\r\n\
c=IN IP4 203.0.113.1\r\n";

    #[test]
    fn summarises_offer() {
        let s = parse_sdp(SDP);
        assert_eq!(s.origin_user, Some(&b"sonus"[..]));
        assert_eq!(s.origin_addr, Some(&b"198.51.100.10"[..]));
        assert_eq!(s.conn_addr, Some(&b"198.51.100.20"[..]));
        assert_eq!(s.media.len(), 2);
        assert_eq!(s.media_count, 2);
        let m = s.media[0];
        assert_eq!(
            (m.kind, m.port, m.proto, m.formats),
            (&b"audio"[..], 49170, &b"RTP/AVP"[..], &b"0 8 101"[..])
        );
        assert_eq!((s.media[1].kind, s.media[1].port), (&b"video"[..], 0));
        assert_eq!(
            s.codecs.as_slice(),
            &[&b"PCMU/8000"[..], b"PCMA/8000", b"telephone-event/8000"]
        );
    }

    #[test]
    fn bounded_and_lenient() {
        let mut body = b"v=0\nm=audio 99999 RTP/AVP 0\nm=audio x RTP/AVP\nm=audio 1\n".to_vec();
        for i in 0..20 {
            body.extend_from_slice(
                format!("m=audio {i} RTP/AVP 0\na=rtpmap:0 PCMU/8000\n").as_bytes(),
            );
        }
        let s = parse_sdp(&body);
        assert_eq!(s.media_count, 23);
        assert_eq!(s.media.len(), 4);
        assert_eq!(s.media[0].port, 0);
        assert_eq!(s.media[1].formats, b"");
        assert_eq!(s.codecs.len(), 8);
        assert_eq!(s.codec_count, 20);
        for junk in [
            &b""[..],
            b"\0\0\0",
            b"=",
            b"o=",
            b"o=a",
            b"c=IN",
            b"a=rtpmap:",
            b"\xff=\xff\n\n",
            b"m=",
        ] {
            let s = parse_sdp(junk);
            assert!(s.media.is_empty());
        }
        assert_eq!(parse_sdp(b"o=only").origin_user, Some(&b"only"[..]));
        assert_eq!(parse_sdp(b"o=only").origin_addr, None);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(v in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let s = parse_sdp(&v);
            proptest::prop_assert!(s.media.len() <= 4 && s.codecs.len() <= 8);
        }
    }
}

//! The SIP messages of one scenario call: the dialog script (which message at which offset from
//! the INVITE) and the bytes of each message, written the way the call's upstream SBC writes
//! them (header order and number format vary by peer). Never emits a message a real UA could
//! not send in that dialog state.

use super::plan::{CallSpec, End, PEERS, SENSOR_SBC};
use std::fmt::Write as _;

/// One message of a call's dialog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Invite,
    Trying,
    Ringing,
    Answer,
    AckAnswer,
    Bye { by_caller: bool },
    ByeOk { by_caller: bool },
    Cancel,
    CancelOk,
    Final(u16),
    AckFinal,
}

impl Step {
    /// True when the message goes from the upstream peer to us.
    pub fn from_peer(self) -> bool {
        match self {
            Step::Invite | Step::AckAnswer | Step::Cancel | Step::AckFinal => true,
            Step::Bye { by_caller } => by_caller,
            Step::ByeOk { by_caller } => !by_caller,
            _ => false,
        }
    }
}

/// The messages after the INVITE, with their offsets in milliseconds (increasing).
pub fn script(c: &CallSpec) -> Vec<(u32, Step)> {
    let mut s = vec![(c.trying_ms, Step::Trying)];
    if let Some(r) = c.ringing_ms {
        s.push((r, Step::Ringing));
    }
    match c.end {
        End::Answered {
            answer_ms,
            duration_ms,
            caller_hangs_up,
        } => {
            let bye = answer_ms + duration_ms.max(500);
            s.push((answer_ms, Step::Answer));
            s.push((answer_ms + 40, Step::AckAnswer));
            s.push((
                bye,
                Step::Bye {
                    by_caller: caller_hangs_up,
                },
            ));
            s.push((
                bye + 30,
                Step::ByeOk {
                    by_caller: caller_hangs_up,
                },
            ));
        }
        End::Rejected { at_ms, code } => {
            s.push((at_ms, Step::Final(code)));
            s.push((at_ms + 30, Step::AckFinal));
        }
        End::Cancelled { at_ms } => {
            s.push((at_ms, Step::Cancel));
            s.push((at_ms + 20, Step::CancelOk));
            s.push((at_ms + 25, Step::Final(487)));
            s.push((at_ms + 50, Step::AckFinal));
        }
    }
    s
}

fn reason(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        200 => "OK",
        404 => "Not Found",
        408 => "Request Timeout",
        480 => "Temporarily Unavailable",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        503 => "Service Unavailable",
        603 => "Decline",
        _ => "Error",
    }
}

/// Addresses of one call: the peer SBC and ours.
pub struct Ends {
    pub peer_ip: [u8; 4],
    pub our_ip: [u8; 4],
}

pub fn ends(c: &CallSpec) -> Ends {
    let n = PEERS[c.peer as usize].net;
    Ends {
        peer_ip: [n[0], n[1], n[2], c.host],
        our_ip: SENSOR_SBC,
    }
}

fn ip(a: [u8; 4]) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

/// The number as this peer writes it in a URI user part.
fn user(style: u8, tn: &str) -> String {
    match style {
        // "+1NPANXXXXXX"
        0 => format!("+{tn}"),
        // "1NPANXXXXXX"
        1 => tn.to_string(),
        // Ten digits when it is a NANP number, else as it is.
        _ => {
            if tn.len() == 11 {
                tn[1..].to_string()
            } else {
                tn.to_string()
            }
        }
    }
}

/// Deterministic per-call tokens (tags, branch) derived from the Call-ID.
fn token(c: &CallSpec, salt: u64) -> String {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325 ^ salt;
    for b in c.call_id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
    }
    format!("{:x}", h & 0xffff_ffff_ffff)
}

fn sdp(owner: &str, ip: &str, session: u64, port: u32) -> String {
    format!(
        "v=0\r\no={owner} {session} {session} IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

/// Renders one message. `identity` is the Identity header value of the INVITE (if signed);
/// `media_port` is this call's RTP port (distinct per call).
pub fn render(c: &CallSpec, step: Step, identity: Option<&str>, media_port: u32) -> Vec<u8> {
    render_as(
        c,
        step,
        identity,
        media_port,
        PEERS[c.peer as usize].style,
        &ends(c),
    )
}

/// [`render`] with the sending SBC's writing style and the two addresses given by the caller
/// (the network scenario's interconnects are not the single-sensor `PEERS`).
pub fn render_as(
    c: &CallSpec,
    step: Step,
    identity: Option<&str>,
    media_port: u32,
    style: u8,
    e: &Ends,
) -> Vec<u8> {
    let (peer, us) = (ip(e.peer_ip), ip(e.our_ip));
    let caller = user(style, &c.caller);
    let callee = user(style, &c.callee);
    let phone = if style == 2 { "" } else { ";user=phone" };
    let from = format!("<sip:{caller}@{peer}{phone}>;tag={}", token(c, 1));
    let to_plain = format!("<sip:{callee}@{us}{phone}>");
    let to_tagged = format!("{to_plain};tag={}", token(c, 2));
    let branch = format!("z9hG4bK{}", token(c, 3));
    let via_peer = format!("SIP/2.0/UDP {peer}:5060;branch={branch}");
    let cid = &c.call_id;
    let mut m = String::with_capacity(1400);
    let session = u64::from_str_radix(&token(c, 4)[..8.min(token(c, 4).len())], 16).unwrap_or(1);
    match step {
        Step::Invite => {
            let body = sdp(c.sdp_user, &peer, session, media_port);
            let ruri = format!("sip:{callee}@{us}:5060{phone}");
            let pai = format!("<sip:{caller}@{peer}{phone}>");
            let contact = format!("<sip:{caller}@{peer}:5060;transport=udp>");
            let _ = write!(m, "INVITE {ruri} SIP/2.0\r\n");
            let id_line = identity
                .map(|i| format!("Identity: {i}\r\n"))
                .unwrap_or_default();
            match style {
                0 => {
                    let _ = write!(
                        m,
                        "Via: {via_peer}\r\nMax-Forwards: 69\r\nFrom: {from}\r\nTo: {to_plain}\r\n\
                         Call-ID: {cid}\r\nCSeq: 1 INVITE\r\nContact: {contact}\r\n\
                         P-Asserted-Identity: {pai}\r\n{id_line}User-Agent: {}\r\n\
                         Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, UPDATE\r\n\
                         Supported: timer, 100rel\r\nSession-Expires: 1800\r\n",
                        c.user_agent
                    );
                }
                1 => {
                    let _ = write!(
                        m,
                        "Via: {via_peer}\r\nFrom: {from}\r\nTo: {to_plain}\r\nCall-ID: {cid}\r\n\
                         CSeq: 1 INVITE\r\nMax-Forwards: 68\r\nContact: {contact}\r\n\
                         P-Asserted-Identity: {pai}\r\nPrivacy: none\r\n{id_line}\
                         Server: {}\r\nAllow: INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE\r\n",
                        c.user_agent
                    );
                }
                _ => {
                    let _ = write!(
                        m,
                        "Via: {via_peer}\r\nCall-ID: {cid}\r\nFrom: {from}\r\nTo: {to_plain}\r\n\
                         CSeq: 1 INVITE\r\nContact: {contact}\r\nMax-Forwards: 70\r\n\
                         P-Asserted-Identity: {pai}\r\nUser-Agent: {}\r\n{id_line}\
                         Allow: INVITE, ACK, CANCEL, BYE\r\n",
                        c.user_agent
                    );
                }
            }
            let _ = write!(
                m,
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
        Step::Trying | Step::Ringing | Step::Answer | Step::Final(_) | Step::CancelOk => {
            let (code, cseq, to) = match step {
                Step::Trying => (100, "1 INVITE", &to_plain),
                Step::Ringing => (180, "1 INVITE", &to_tagged),
                Step::Answer => (200, "1 INVITE", &to_tagged),
                Step::Final(code) => (code, "1 INVITE", &to_tagged),
                _ => (200, "1 CANCEL", &to_tagged),
            };
            let _ = write!(
                m,
                "SIP/2.0 {code} {}\r\nVia: {via_peer}\r\nFrom: {from}\r\nTo: {to}\r\n\
                 Call-ID: {cid}\r\nCSeq: {cseq}\r\n",
                reason(code)
            );
            if matches!(step, Step::Ringing | Step::Answer) {
                let _ = write!(m, "Contact: <sip:{callee}@{us}:5060>\r\n");
            }
            if step == Step::Answer {
                let body = sdp(
                    "sensor-sbc",
                    &us,
                    session ^ 0x5a5a,
                    40_000 + media_port % 20_000,
                );
                let _ = write!(
                    m,
                    "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            } else {
                m.push_str("Content-Length: 0\r\n\r\n");
            }
        }
        Step::AckAnswer | Step::AckFinal | Step::Cancel => {
            let (method, to, br, ruri) = match step {
                Step::AckAnswer => (
                    "ACK",
                    &to_tagged,
                    format!("z9hG4bK{}", token(c, 5)),
                    format!("sip:{callee}@{us}:5060"),
                ),
                Step::AckFinal => (
                    "ACK",
                    &to_tagged,
                    branch.clone(),
                    format!("sip:{callee}@{us}:5060{phone}"),
                ),
                _ => (
                    "CANCEL",
                    &to_plain,
                    branch.clone(),
                    format!("sip:{callee}@{us}:5060{phone}"),
                ),
            };
            let _ = write!(
                m,
                "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {peer}:5060;branch={br}\r\n\
                 Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\n\
                 CSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
            );
        }
        Step::Bye { by_caller } => {
            if by_caller {
                let _ = write!(
                    m,
                    "BYE sip:{callee}@{us}:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {peer}:5060;branch=z9hG4bK{}\r\n\
                     Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to_tagged}\r\nCall-ID: {cid}\r\n\
                     CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
                    token(c, 6)
                );
            } else {
                let _ = write!(
                    m,
                    "BYE sip:{caller}@{peer}:5060;transport=udp SIP/2.0\r\nVia: SIP/2.0/UDP {us}:5060;branch=z9hG4bK{}\r\n\
                     Max-Forwards: 70\r\nFrom: {to_tagged}\r\nTo: {from}\r\nCall-ID: {cid}\r\n\
                     CSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
                    token(c, 7)
                );
            }
        }
        Step::ByeOk { by_caller } => {
            if by_caller {
                let _ = write!(
                    m,
                    "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {peer}:5060;branch=z9hG4bK{}\r\nFrom: {from}\r\n\
                     To: {to_tagged}\r\nCall-ID: {cid}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
                    token(c, 6)
                );
            } else {
                let _ = write!(
                    m,
                    "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {us}:5060;branch=z9hG4bK{}\r\nFrom: {to_tagged}\r\n\
                     To: {from}\r\nCall-ID: {cid}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
                    token(c, 7)
                );
            }
        }
    }
    m.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::plan::Signing;

    fn call(end: End) -> CallSpec {
        CallSpec {
            start_us: 0,
            group: 0,
            peer: 0,
            host: 10,
            caller: "12025550143".into(),
            callee: "13035550177".into(),
            signing: Signing::Unsigned,
            trying_ms: 20,
            ringing_ms: Some(300),
            end,
            user_agent: "UA",
            sdp_user: "-",
            call_id: "abc@198.51.100.10".into(),
        }
    }

    #[test]
    fn scripts_follow_the_dialog() {
        let steps: Vec<Step> = script(&call(End::Cancelled { at_ms: 2000 }))
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        assert_eq!(
            steps,
            [
                Step::Trying,
                Step::Ringing,
                Step::Cancel,
                Step::CancelOk,
                Step::Final(487),
                Step::AckFinal
            ]
        );
        let s = script(&call(End::Answered {
            answer_ms: 5000,
            duration_ms: 60_000,
            caller_hangs_up: false,
        }));
        assert!(s.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(
            s.last().unwrap(),
            &(65_030, Step::ByeOk { by_caller: false })
        );
    }

    #[test]
    fn messages_parse_with_the_sensor_parser() {
        let c = call(End::Answered {
            answer_ms: 5000,
            duration_ms: 60_000,
            caller_hangs_up: true,
        });
        for (_, step) in std::iter::once((0, Step::Invite)).chain(script(&c)) {
            let bytes = render(
                &c,
                step,
                Some("a.b.c;info=<https://x.example/a.pem>;alg=ES256;ppt=shaken"),
                20_000,
            );
            let limits = crate::sip::message::ParseLimits::default();
            let msg = crate::sip::parse::parse(&bytes, &limits)
                .unwrap_or_else(|e| panic!("{step:?}: {e}\n{}", String::from_utf8_lossy(&bytes)));
            assert_eq!(msg.call_id, b"abc@198.51.100.10", "{step:?}");
        }
    }
}

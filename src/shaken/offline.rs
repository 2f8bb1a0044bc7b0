//! `shaken-sensor verify`: verification of single INVITEs for investigations. An input is a
//! file holding one raw SIP message, `-` for stdin, or a pcap/pcapng capture (every INVITE in
//! it). One JSON object per INVITE. Unlike the pipeline it may wait for a certificate: it is a
//! command, not a worker.

use super::service::{CertLookup, ShakenService};
use super::verify::{CallNumbers, HeaderCheck};
use crate::capture::decode::{DecodeSettings, Decoder};
use crate::capture::source::{Next, PcapSource};
use crate::clock::Clock;
use crate::config::Config;
use crate::dialog::call::invite_numbers;
use crate::record::DivResult;
use crate::sip::message::{Method, StartLine};
use crate::sip::parse::parse;
use serde::Serialize;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest raw SIP message file accepted.
const MAX_MESSAGE_FILE: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("{input}: {source}")]
    Read {
        input: String,
        source: std::io::Error,
    },
    #[error("{input}: larger than {MAX_MESSAGE_FILE} bytes and not a capture file")]
    TooLarge { input: String },
    #[error("{input}: {reason}")]
    Capture { input: String, reason: String },
    #[error("writing output: {0}")]
    Write(std::io::Error),
}

/// One line of `verify` output.
#[derive(Debug, Serialize, PartialEq)]
pub struct VerifyLine {
    pub input: String,
    pub call_id: String,
    pub verstat: Option<String>,
    pub attest: Option<String>,
    pub orig: Option<String>,
    pub dest: Option<String>,
    pub origid: Option<String>,
    pub spc: Option<String>,
    pub x5u: Option<String>,
    pub code: Option<u16>,
    pub reason: Option<String>,
    pub replayed: bool,
    pub div: Vec<DivResult>,
}

fn is_capture(head: &[u8]) -> bool {
    matches!(
        head.get(..4),
        Some(
            [0xd4, 0xc3, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0xc3, 0xd4]
                | [0x4d, 0x3c, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0x3c, 0x4d]
                | [0x0a, 0x0d, 0x0d, 0x0a]
        )
    )
}

/// The SIP messages of one input.
fn messages(input: &str, cfg: &Config) -> Result<Vec<Vec<u8>>, OfflineError> {
    let read_err = |source| OfflineError::Read {
        input: input.to_string(),
        source,
    };
    // One raw message: what was read so far plus the rest, capped.
    let whole_message = |mut buf: Vec<u8>, rest: &mut dyn Read| {
        rest.take(MAX_MESSAGE_FILE + 1 - buf.len() as u64)
            .read_to_end(&mut buf)
            .map_err(read_err)?;
        if buf.len() as u64 > MAX_MESSAGE_FILE {
            return Err(OfflineError::TooLarge {
                input: input.into(),
            });
        }
        Ok(vec![buf])
    };
    if input == "-" {
        return whole_message(Vec::new(), &mut std::io::stdin());
    }
    let mut head = [0u8; 4];
    let mut f = std::fs::File::open(input).map_err(read_err)?;
    let n = f.read(&mut head).map_err(read_err)?;
    if !is_capture(&head[..n]) {
        return whole_message(head[..n].to_vec(), &mut f);
    }
    let cap_err = |reason: String| OfflineError::Capture {
        input: input.to_string(),
        reason,
    };
    let mut source = PcapSource::open_file(Path::new(input)).map_err(|e| cap_err(e.to_string()))?;
    let mut decoder = Decoder::new(DecodeSettings::from_config(&cfg.capture));
    let linktype = source.linktype();
    let mut out = Vec::new();
    loop {
        match source.next_frame().map_err(|e| cap_err(e.to_string()))? {
            Next::Frame(f) => {
                decoder.decode(linktype, f.ts, f.data, &mut |p| out.push(p.bytes.to_vec()))
            }
            Next::Idle => {}
            Next::End => break,
        }
    }
    Ok(out)
}

/// Completes every check waiting for a certificate (and its CRL, when revocation is
/// checked), waiting at most the fetch deadline for each.
fn complete(svc: &ShakenService, checks: &mut [HeaderCheck], now: i64) {
    let mut urls: Vec<String> = checks
        .iter()
        .filter_map(|c| c.awaited_x5u().map(str::to_string))
        .collect();
    urls.sort();
    urls.dedup();
    let wait = |pending: usize, rx: &mpsc::Receiver<()>| {
        let deadline = Instant::now() + svc.fetch_timeout + Duration::from_secs(1);
        for _ in 0..pending {
            if rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .is_err()
            {
                break;
            }
        }
    };
    let (tx, rx) = mpsc::channel::<()>();
    // A URL the fetch policy refuses fails at once and is not cached: its answer is kept
    // here, or a later peek would only say it is still missing.
    let first: Vec<CertLookup> = urls
        .iter()
        .map(|url| {
            let tx = tx.clone();
            svc.lookup(
                url,
                Box::new(move || {
                    let _ = tx.send(());
                }),
            )
        })
        .collect();
    let pending = first
        .iter()
        .filter(|l| matches!(l, CertLookup::Pending))
        .count();
    wait(pending, &rx);
    let lookups: Vec<(String, CertLookup)> = urls
        .into_iter()
        .zip(first)
        .map(|(u, l)| match l {
            CertLookup::Pending => {
                let l = svc.peek(&u);
                (u, l)
            }
            done => (u, done),
        })
        .collect();
    let mut pending = 0;
    for (_, lookup) in &lookups {
        if let CertLookup::Ready(entry) = lookup {
            if let Ok(chain) = &entry.0 {
                let tx = tx.clone();
                if svc.prefetch_crl(
                    chain,
                    Box::new(move || {
                        let _ = tx.send(());
                    }),
                ) {
                    pending += 1;
                }
            }
        }
    }
    wait(pending, &rx);
    for (url, lookup) in &lookups {
        for c in checks
            .iter_mut()
            .filter(|c| c.awaited_x5u() == Some(url.as_str()))
        {
            svc.finish(c, lookup, now);
        }
    }
}

/// Verifies every INVITE of every input; returns how many were written.
pub fn verify_inputs(
    cfg: &Config,
    inputs: &[String],
    clock: Arc<dyn Clock>,
    out: &mut dyn Write,
) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    let svc = ShakenService::from_config(&cfg.shaken, clock.clone())?;
    let limits = crate::sip::message::ParseLimits {
        max_headers: cfg.sip.max_headers,
        max_header_line: cfg.sip.max_header_line,
    };
    let mut written = 0;
    for input in inputs {
        for raw in messages(input, cfg)? {
            let msg = match parse(&raw, &limits) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(input = %input, error = %e, "not a SIP message we can read; skipped");
                    continue;
                }
            };
            if !matches!(
                msg.start,
                StartLine::Request {
                    method: Method::Invite,
                    ..
                }
            ) {
                continue;
            }
            let now = clock.now().as_secs();
            let n = invite_numbers(&msg);
            let numbers = CallNumbers {
                orig: n.orig,
                dest: [n.ruri, n.to],
            };
            let mut checks: Vec<HeaderCheck> = msg
                .identity
                .iter()
                .map(|h| svc.verifier.precheck(h, &numbers, now))
                .collect();
            complete(&svc, &mut checks, now);
            let v = svc.verifier.verdict(msg.call_id, &checks, now);
            let line = VerifyLine {
                input: input.clone(),
                call_id: String::from_utf8_lossy(msg.call_id).into_owned(),
                verstat: v.verstat,
                attest: v.attest,
                orig: n.orig.map(|t| t.to_string()),
                dest: n.ruri.or(n.to).map(|t| t.to_string()),
                origid: v.origid,
                spc: v.spc,
                x5u: v.x5u,
                code: v.code,
                reason: v.reason,
                replayed: v.replayed,
                div: v.div,
            };
            serde_json::to_writer(&mut *out, &line)?;
            out.write_all(b"\n").map_err(OfflineError::Write)?;
            written += 1;
        }
    }
    out.flush().map_err(OfflineError::Write)?;
    Ok(written)
}

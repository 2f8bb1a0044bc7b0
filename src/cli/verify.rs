//! `shaken-sensor verify`: verification of single INVITEs for investigations. An input is a
//! file holding one raw SIP message, `-` for stdin, or a pcap/pcapng capture (every INVITE in
//! it). One JSON object per INVITE, and one per input it could not judge (`skipped` says why),
//! so no input is silently ignored. Unlike the pipeline it may wait for a certificate: it is a
//! command, not a worker. It lives here, not in `shaken`, because it reads captures and
//! builds call numbers: verification itself must not depend on capture or dialog code. It
//! must never be used by the pipeline (it blocks on certificate fetches).

use super::{init_logging, load_config, UsageError};
use crate::capture::decode::{DecodeSettings, Decoder};
use crate::capture::source::{Next, PcapSource};
use crate::clock::{Clock, ManualClock, SystemClock, Timestamp};
use crate::config::{Config, SeededCert};
use crate::dialog::call::invite_numbers;
use crate::record::DivResult;
use crate::shaken::service::{CertLookup, SetupError, ShakenService};
use crate::shaken::verify::HeaderCheck;
use crate::sip::message::{Method, StartLine};
use crate::sip::parse::parse;
use anyhow::Result;
use serde::Serialize;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    #[arg(required = true)]
    pub inputs: Vec<String>,
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// STI-CA trust anchors: PEM file or directory (repeatable; added to the config's).
    #[arg(long = "trust-anchors")]
    pub trust_anchors: Vec<String>,
    /// Serve an x5u URL from a local PEM file instead of fetching it: URL=FILE (repeatable).
    #[arg(long = "cert")]
    pub certs: Vec<String>,
    /// Allow an x5u host (or host:port) that resolves to a private or loopback address.
    #[arg(long = "x5u-allow")]
    pub x5u_allow: Vec<String>,
    /// Verify as of this time (Unix seconds) instead of now: for old captures and tokens.
    #[arg(long)]
    pub now: Option<i64>,
    /// Largest |now - iat| accepted, seconds (default: the config's, 60).
    #[arg(long = "max-iat-age")]
    pub max_iat_age: Option<u64>,
}

pub fn main(a: Args) -> Result<ExitCode> {
    let mut cfg = load_config(a.config.as_deref())?;
    init_logging(&cfg);
    let sh = &mut cfg.shaken;
    sh.trust_anchors.extend(a.trust_anchors);
    for c in a.certs {
        let (url, file) = c
            .split_once('=')
            .ok_or_else(|| UsageError(format!("--cert {c:?}: expected URL=FILE")))?;
        sh.certs.push(SeededCert {
            url: url.to_string(),
            file: file.to_string(),
        });
    }
    sh.x5u.allowed_hosts.extend(a.x5u_allow);
    if let Some(age) = a.max_iat_age {
        sh.max_iat_age_s = age;
    }
    cfg.validate("command line").map_err(UsageError::from)?;
    let clock: Arc<dyn Clock> = match a.now {
        Some(t) => Arc::new(ManualClock::new(Timestamp::from_secs(t))),
        None => Arc::new(SystemClock),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let report = verify_inputs(&cfg, &a.inputs, clock, &mut out).map_err(|e| {
        match e.downcast::<SetupError>() {
            // Trust anchors or seeded certificates named by the operator that cannot be used.
            Ok(s) if !matches!(*s, SetupError::Fetcher(_) | SetupError::Runtime(_)) => {
                anyhow::Error::new(UsageError(format!(
                    "{s}; check --trust-anchors, --cert and the [shaken] section of the configuration"
                )))
            }
            Ok(s) => anyhow::Error::new(*s).context("verify"),
            Err(e) => anyhow::anyhow!(e).context("verify"),
        }
    })?;
    if report.unreadable > 0 {
        // Every input got its line on stdout; the status tells a script that some were not
        // SIP messages or captures at all.
        return Err(UsageError(format!(
            "{} of {} inputs were neither a SIP message nor a pcap/pcapng capture (see their \"skipped\" lines)",
            report.unreadable,
            a.inputs.len()
        ))
        .into());
    }
    Ok(ExitCode::SUCCESS)
}

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
    /// Set on a line for something that was not judged: "unreadable" (not a file we can
    /// read, or a broken capture), "not_sip", "not_invite", "no_invite" (a capture without
    /// one); `reason` then says more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<&'static str>,
}

impl VerifyLine {
    fn skipped(input: &str, kind: &'static str, reason: String) -> Self {
        VerifyLine {
            input: input.to_string(),
            call_id: String::new(),
            verstat: None,
            attest: None,
            orig: None,
            dest: None,
            origid: None,
            spc: None,
            x5u: None,
            code: None,
            reason: Some(reason),
            replayed: false,
            div: Vec::new(),
            skipped: Some(kind),
        }
    }
}

/// What `verify_inputs` wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// INVITEs judged.
    pub verified: usize,
    /// Inputs that were not readable as a SIP message or a capture.
    pub unreadable: usize,
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

/// The SIP messages of one input, and whether it was a capture.
fn messages(input: &str, cfg: &Config) -> Result<(Vec<Vec<u8>>, bool), OfflineError> {
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
        Ok((vec![buf], false))
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
    Ok((out, true))
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

/// Verifies every INVITE of every input; one line per INVITE and per input or message that
/// could not be judged.
pub fn verify_inputs(
    cfg: &Config,
    inputs: &[String],
    clock: Arc<dyn Clock>,
    out: &mut dyn Write,
) -> Result<VerifyReport, Box<dyn std::error::Error + Send + Sync>> {
    let svc = ShakenService::from_config(&cfg.shaken, clock.clone())?;
    let limits = crate::sip::message::ParseLimits {
        max_headers: cfg.sip.max_headers,
        max_header_line: cfg.sip.max_header_line,
    };
    let mut report = VerifyReport::default();
    let emit = |line: &VerifyLine, out: &mut dyn Write| -> Result<(), OfflineError> {
        serde_json::to_writer(&mut *out, line)
            .map_err(|e| OfflineError::Write(std::io::Error::other(e)))?;
        out.write_all(b"\n").map_err(OfflineError::Write)
    };
    for input in inputs {
        let (raws, from_capture) = match messages(input, cfg) {
            Ok(m) => m,
            Err(e @ OfflineError::Write(_)) => return Err(e.into()),
            Err(e) => {
                report.unreadable += 1;
                emit(
                    &VerifyLine::skipped(input, "unreadable", e.to_string()),
                    out,
                )?;
                continue;
            }
        };
        let mut invites = 0;
        for raw in &raws {
            let msg = match parse(raw, &limits) {
                Ok(m) => m,
                Err(e) => {
                    // In a capture, a payload on a SIP port that does not parse is counted by
                    // the pipeline, not judged; a file given as one message must be SIP.
                    if !from_capture {
                        report.unreadable += 1;
                        let why = format!("not a SIP message: {e}");
                        emit(&VerifyLine::skipped(input, "not_sip", why), out)?;
                    }
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
                if !from_capture {
                    let why = "a SIP message but not an INVITE; only INVITEs carry the Identity that is verified".to_string();
                    emit(&VerifyLine::skipped(input, "not_invite", why), out)?;
                }
                continue;
            }
            invites += 1;
            let now = clock.now().as_secs();
            let numbers = invite_numbers(&msg);
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
                orig: numbers.orig.map(|t| t.to_string()),
                dest: numbers.dest().map(|t| t.to_string()),
                origid: v.origid,
                spc: v.spc,
                x5u: v.x5u,
                code: v.code,
                reason: v.reason,
                replayed: v.replayed,
                div: v.div,
                skipped: None,
            };
            emit(&line, out)?;
            report.verified += 1;
        }
        if from_capture && invites == 0 {
            let why = format!(
                "a capture with {} SIP messages on the configured ports and no INVITE",
                raws.len()
            );
            emit(&VerifyLine::skipped(input, "no_invite", why), out)?;
        }
    }
    out.flush().map_err(OfflineError::Write)?;
    Ok(report)
}

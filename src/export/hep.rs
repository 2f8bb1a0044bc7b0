//! HEP output (`[export.hep]`): hands the SIP messages of flagged calls (or of every call) to a
//! HOMER / heplify-server endpoint as HEPv3 over UDP, so NOC staff see them in the tool they
//! already use. In `detections` mode the messages of recent calls are held (bounded by bytes
//! and by packet time) until a DetectionEvent opens; the messages of its sample calls then go
//! out with the detection id in the correlation chunk.
//!
//! Never blocks the pipeline: the capture side offers copies into a bounded queue and what does
//! not fit, what the socket will not take and what the byte cap pushes out are counted
//! (`hep_export_messages_total{outcome}`). Never sends anything but the SIP it was offered.

use crate::capture::hep::{encode_v3, Hep3Out};
use crate::capture::packet::{SipPayload, Transport};
use crate::clock::Timestamp;
use crate::config::{HepExportConfig, HepExportMode};
use crate::metrics::Metrics;
use crossbeam_channel::{bounded, never, select, Receiver, Sender, TrySendError};
use prometheus::IntCounter;
use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::thread::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum HepExportError {
    #[error("export.hep: cannot open a UDP socket towards {addr}: {source}")]
    Socket {
        addr: String,
        source: std::io::Error,
    },
    #[error("export.hep: cannot start its thread: {0}")]
    Spawn(std::io::Error),
}

/// One SIP message copied off the capture path.
struct Tapped {
    ts: Timestamp,
    src: SocketAddr,
    dst: SocketAddr,
    transport: Transport,
    call_id: Box<[u8]>,
    bytes: Box<[u8]>,
}

/// The capture side's handle: offers each framed SIP message, never waits.
#[derive(Clone)]
pub struct HepTap {
    tx: Sender<Tapped>,
    dropped: IntCounter,
}

impl HepTap {
    pub fn offer(&self, p: &SipPayload<'_>) {
        let call_id = p
            .call_id
            .and_then(|(s, e)| p.bytes.get(s..e))
            .unwrap_or_default();
        let t = Tapped {
            ts: p.ts,
            src: p.src,
            dst: p.dst,
            transport: p.transport,
            call_id: call_id.into(),
            bytes: p.bytes.into(),
        };
        if let Err(TrySendError::Full(_)) = self.tx.try_send(t) {
            self.dropped.inc();
        }
    }
}

/// The running exporter: a tap per capture thread, the detections' sender, one thread.
pub struct HepExport {
    tap: HepTap,
    detections: Sender<(String, Vec<String>)>,
    handle: JoinHandle<()>,
}

impl HepExport {
    pub fn start(cfg: &HepExportConfig, metrics: Arc<Metrics>) -> Result<Self, HepExportError> {
        let sock_err = |source| HepExportError::Socket {
            addr: cfg.address.clone(),
            source,
        };
        let to: SocketAddr = cfg
            .address
            .parse()
            .map_err(|e| sock_err(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
        let local: SocketAddr = if to.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal")
        } else {
            "[::]:0".parse().expect("literal")
        };
        let sock = UdpSocket::bind(local).map_err(sock_err)?;
        sock.connect(to).map_err(sock_err)?;
        sock.set_nonblocking(true).map_err(sock_err)?;
        let (tx, rx) = bounded(cfg.queue_messages);
        let (det_tx, det_rx) = bounded(1024);
        let outcome = |o: &str| metrics.hep_export_messages.with_label_values(&[o]);
        let exporter = Exporter {
            sock,
            mode: cfg.mode,
            capture_id: cfg.capture_id,
            auth_key: (!cfg.auth_key.is_empty()).then(|| cfg.auth_key.as_bytes().to_vec()),
            max_bytes: cfg.buffer_mb << 20,
            retain_us: (cfg.retain_s as i64).saturating_mul(1_000_000),
            calls: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            newest: Timestamp::ZERO,
            buf: Vec::with_capacity(2048),
            sent: outcome("sent"),
            dropped: outcome("dropped"),
            too_large: outcome("too_large"),
            evicted: outcome("evicted"),
        };
        let tap = HepTap {
            tx,
            dropped: outcome("dropped"),
        };
        let handle = std::thread::Builder::new()
            .name("export-hep".into())
            .spawn(move || exporter.run(rx, det_rx))
            .map_err(HepExportError::Spawn)?;
        tracing::info!(to = %to, mode = ?cfg.mode, "HEP export running");
        Ok(HepExport {
            tap,
            detections: det_tx,
            handle,
        })
    }

    pub fn tap(&self) -> HepTap {
        self.tap.clone()
    }

    /// What the detections sink calls for every event that opened.
    pub fn detections(&self) -> Sender<(String, Vec<String>)> {
        self.detections.clone()
    }

    /// After the capture threads and the detections sink have dropped their handles: sends
    /// what is still queued and stops.
    pub fn finish(self) {
        drop(self.tap);
        drop(self.detections);
        let _ = self.handle.join();
    }
}

/// Messages of one call held for a detection that may name it.
struct Held {
    first: Timestamp,
    msgs: Vec<Tapped>,
}

struct Exporter {
    sock: UdpSocket,
    mode: HepExportMode,
    capture_id: u32,
    auth_key: Option<Vec<u8>>,
    max_bytes: usize,
    retain_us: i64,
    calls: HashMap<Box<[u8]>, Held>,
    /// Calls in order of their first message, for eviction by age and by the byte cap.
    order: VecDeque<(Timestamp, Box<[u8]>)>,
    bytes: usize,
    newest: Timestamp,
    buf: Vec<u8>,
    sent: IntCounter,
    dropped: IntCounter,
    too_large: IntCounter,
    evicted: IntCounter,
}

impl Exporter {
    fn run(mut self, msgs: Receiver<Tapped>, dets: Receiver<(String, Vec<String>)>) {
        let (mut msgs, mut dets) = (Some(msgs), Some(dets));
        while msgs.is_some() || dets.is_some() {
            let m = msgs.clone().unwrap_or_else(never);
            let d = dets.clone().unwrap_or_else(never);
            select! {
                recv(m) -> t => match t {
                    Ok(t) => self.on_message(t),
                    Err(_) => msgs = None,
                },
                recv(d) -> ev => match ev {
                    Ok((id, calls)) => {
                        // Messages already queued belong to calls the detection may name.
                        if let Some(rx) = &msgs {
                            while let Ok(t) = rx.try_recv() {
                                self.on_message(t);
                            }
                        }
                        self.on_detection(&id, &calls);
                    }
                    Err(_) => dets = None,
                },
            }
        }
    }

    fn on_message(&mut self, t: Tapped) {
        match self.mode {
            HepExportMode::All => self.send(&t, None),
            HepExportMode::Detections => self.hold(t),
        }
    }

    fn hold(&mut self, t: Tapped) {
        self.newest = self.newest.max(t.ts);
        let size = t.bytes.len() + t.call_id.len();
        if size > self.max_bytes {
            self.evicted.inc();
            return;
        }
        self.bytes += size;
        match self.calls.get_mut(&t.call_id) {
            Some(h) => h.msgs.push(t),
            None => {
                self.order.push_back((t.ts, t.call_id.clone()));
                self.calls.insert(
                    t.call_id.clone(),
                    Held {
                        first: t.ts,
                        msgs: vec![t],
                    },
                );
            }
        }
        loop {
            let over_cap = self.bytes > self.max_bytes;
            let too_old = self
                .order
                .front()
                .is_some_and(|(at, _)| self.newest.0 - at.0 > self.retain_us);
            if !(over_cap || too_old) {
                break;
            }
            let Some((at, id)) = self.order.pop_front() else {
                break;
            };
            // A Call-ID seen again after its eviction has a newer entry: keep that one.
            if self.calls.get(&id).is_none_or(|h| h.first != at) {
                continue;
            }
            if let Some(h) = self.calls.remove(&id) {
                for m in &h.msgs {
                    self.bytes -= m.bytes.len() + m.call_id.len();
                }
                // Ageing out is the normal end of an unflagged call; the byte cap is a limit.
                if over_cap && !too_old {
                    self.evicted.inc_by(h.msgs.len() as u64);
                }
            }
        }
    }

    fn on_detection(&mut self, id: &str, calls: &[String]) {
        let Exporter {
            calls: held,
            sock,
            buf,
            capture_id,
            auth_key,
            sent,
            dropped,
            too_large,
            ..
        } = self;
        for call in calls {
            let Some(h) = held.get(call.as_bytes()) else {
                continue;
            };
            for m in &h.msgs {
                let out = hep_out(m, *capture_id, auth_key.as_deref(), Some(id.as_bytes()));
                send_one(sock, buf, &out, [sent, dropped, too_large]);
            }
        }
    }

    fn send(&mut self, m: &Tapped, correlation: Option<&[u8]>) {
        let out = hep_out(m, self.capture_id, self.auth_key.as_deref(), correlation);
        send_one(
            &self.sock,
            &mut self.buf,
            &out,
            [&self.sent, &self.dropped, &self.too_large],
        );
    }
}

fn hep_out<'a>(
    m: &'a Tapped,
    capture_id: u32,
    auth_key: Option<&'a [u8]>,
    correlation_id: Option<&'a [u8]>,
) -> Hep3Out<'a> {
    Hep3Out {
        src: m.src,
        dst: m.dst,
        ip_proto: proto(m.transport),
        ts: m.ts,
        capture_id,
        auth_key,
        correlation_id,
        payload: &m.bytes,
    }
}

fn send_one(sock: &UdpSocket, buf: &mut Vec<u8>, out: &Hep3Out<'_>, c: [&IntCounter; 3]) {
    let [sent, dropped, too_large] = c;
    if encode_v3(out, buf).is_none() {
        too_large.inc();
        return;
    }
    // Non-blocking: a full socket buffer or an unreachable receiver loses the message.
    match sock.send(buf) {
        Ok(_) => sent.inc(),
        Err(_) => dropped.inc(),
    }
}

fn proto(t: Transport) -> u8 {
    match t {
        Transport::Udp => 17,
        Transport::Tcp => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(bytes: &[u8]) -> SipPayload<'_> {
        SipPayload {
            ts: Timestamp::from_secs(1_795_000_000),
            src: "192.0.2.1:5060".parse().unwrap(),
            dst: "192.0.2.2:5060".parse().unwrap(),
            transport: Transport::Udp,
            bytes,
            call_id: Some((0, 3)),
            agent: None,
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let metrics = Metrics::new();
        let (tx, rx) = bounded(2);
        let tap = HepTap {
            tx,
            dropped: metrics.hep_export_messages.with_label_values(&["dropped"]),
        };
        for _ in 0..5 {
            tap.offer(&payload(b"abc OPTIONS"));
        }
        assert_eq!(rx.len(), 2);
        assert_eq!(
            metrics
                .hep_export_messages
                .with_label_values(&["dropped"])
                .get(),
            3
        );
    }

    #[test]
    fn held_calls_are_bounded_by_bytes_and_by_age() {
        let metrics = Arc::new(Metrics::new());
        let cfg = HepExportConfig {
            enabled: true,
            address: "127.0.0.1:9".into(),
            buffer_mb: 1,
            retain_s: 10,
            ..HepExportConfig::default()
        };
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let c = |o: &str| metrics.hep_export_messages.with_label_values(&[o]);
        let mut e = Exporter {
            sock,
            mode: HepExportMode::Detections,
            capture_id: 0,
            auth_key: None,
            max_bytes: cfg.buffer_mb << 20,
            retain_us: 10_000_000,
            calls: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            newest: Timestamp::ZERO,
            buf: Vec::new(),
            sent: c("sent"),
            dropped: c("dropped"),
            too_large: c("too_large"),
            evicted: c("evicted"),
        };
        let big = vec![b'x'; 300 << 10];
        for (i, t) in [0, 1, 2, 3, 4].into_iter().enumerate() {
            e.hold(Tapped {
                ts: Timestamp::from_secs(1_000 + t),
                src: "192.0.2.1:5060".parse().unwrap(),
                dst: "192.0.2.2:5060".parse().unwrap(),
                transport: Transport::Udp,
                call_id: format!("call-{i}").into_bytes().into(),
                bytes: big.clone().into(),
            });
            assert!(e.bytes <= 1 << 20);
        }
        // 1 MiB holds three 300 KiB calls: the two oldest were pushed out by the cap.
        assert_eq!(e.calls.len(), 3);
        assert_eq!(c("evicted").get(), 2);
        // Eleven seconds later the rest age out (not counted: the normal end of a call).
        e.hold(Tapped {
            ts: Timestamp::from_secs(1_015),
            src: "192.0.2.1:5060".parse().unwrap(),
            dst: "192.0.2.2:5060".parse().unwrap(),
            transport: Transport::Udp,
            call_id: b"late".to_vec().into(),
            bytes: b"x".to_vec().into(),
        });
        assert_eq!(e.calls.len(), 1);
        assert_eq!(c("evicted").get(), 2);
    }
}

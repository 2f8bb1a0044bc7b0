//! The HEP listeners (`[capture.hep]`): UDP datagrams and HEPv3 TCP streams from proxies, SBCs
//! and capture agents, handed to a capture thread as a [`FrameSource`] of HEP packets.
//!
//! Listener threads only receive and frame: they never parse beyond HEPv3's length field (the
//! capture thread's decoder checks everything, auth key included, and counts its errors). Every
//! resource is bounded and every loss counted in `hep_frames_dropped_total{reason}`: packet size
//! (`too_large`), queued packets (`queue`; a full queue never blocks a listener), TCP connections
//! (`connections`), and TCP streams that are not HEPv3 (`stream`, closed). Datagrams the
//! kernel drops because the UDP socket's buffer overflowed are read from /proc/net/udp and
//! reported as the source's kernel drops (`capture_drops_total{where="kernel"}`).

use super::hep;
use super::source::{DropCounters, FrameKind, FrameSource, Next, SourceError};
use crate::clock::{Clock, Timestamp};
use crate::config::HepConfig;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum HepListenError {
    #[error("capture.hep: cannot listen on {transport} {addr}: {source}")]
    Bind {
        transport: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("capture.hep: cannot start a listener thread: {0}")]
    Spawn(std::io::Error),
}

/// How often a blocked listener looks at its stop flag (and the longest shutdown waits for it).
const POLL: Duration = Duration::from_millis(100);
/// The capture thread's wait for a packet: short, so partial batches flush promptly.
const IDLE_WAIT: Duration = Duration::from_millis(1);

struct Received {
    arrival: Timestamp,
    data: Vec<u8>,
}

/// What listener threads share.
#[derive(Clone)]
struct Shared {
    tx: Sender<Received>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    done: Shutdown,
    max_frame: usize,
}

impl Shared {
    fn offer(&self, data: Vec<u8>, transport: &'static str) {
        self.metrics
            .hep_frames
            .with_label_values(&[transport])
            .inc();
        let item = Received {
            arrival: self.clock.now(),
            data,
        };
        match self.tx.try_send(item) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.dropped("queue"),
            Err(TrySendError::Disconnected(_)) => self.done.trigger(),
        }
    }

    fn dropped(&self, reason: &str) {
        self.metrics
            .hep_frames_dropped
            .with_label_values(&[reason])
            .inc();
    }

    fn done(&self) -> bool {
        self.done.is_set()
    }
}

/// The listeners of one `[capture.hep]` section, read as one live source.
pub struct HepSource {
    rx: Receiver<Received>,
    current: Option<Received>,
    done: Shutdown,
    threads: Vec<JoinHandle<()>>,
    name: String,
    /// Where the listeners are bound (port 0 in the config resolves here).
    pub udp_addr: Option<SocketAddr>,
    /// Inode of the UDP socket, to find its drop counter in /proc/net/udp.
    udp_inode: Option<u64>,
    pub tcp_addr: Option<SocketAddr>,
}

impl HepSource {
    /// Binds the configured listeners and starts their threads.
    pub fn start(
        cfg: &HepConfig,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, HepListenError> {
        let (tx, rx) = bounded(cfg.queue_frames);
        let shared = Shared {
            tx,
            metrics,
            clock,
            done: Shutdown::new(),
            max_frame: cfg.max_frame_bytes,
        };
        let mut src = HepSource {
            rx,
            current: None,
            done: shared.done.clone(),
            threads: Vec::new(),
            name: "hep".into(),
            udp_addr: None,
            udp_inode: None,
            tcp_addr: None,
        };
        let bind_err = |transport, addr: &str| {
            let addr = addr.to_string();
            move |source| HepListenError::Bind {
                transport,
                addr,
                source,
            }
        };
        if !cfg.listen_udp.is_empty() {
            let sock = udp_socket(&cfg.listen_udp, cfg.udp_buffer_mb << 20)
                .map_err(bind_err("udp", &cfg.listen_udp))?;
            src.udp_addr = sock.local_addr().ok();
            src.udp_inode = socket_inode(&sock);
            let s = shared.clone();
            src.spawn("hep-udp", move || udp_loop(sock, s))?;
        }
        if !cfg.listen_tcp.is_empty() {
            let l = TcpListener::bind(&cfg.listen_tcp).map_err(bind_err("tcp", &cfg.listen_tcp))?;
            l.set_nonblocking(true)
                .map_err(bind_err("tcp", &cfg.listen_tcp))?;
            src.tcp_addr = l.local_addr().ok();
            let s = shared.clone();
            let max_conn = cfg.max_connections;
            src.spawn("hep-tcp", move || accept_loop(l, s, max_conn))?;
        }
        tracing::info!(udp = ?src.udp_addr, tcp = ?src.tcp_addr, "HEP listeners running");
        Ok(src)
    }

    fn spawn(
        &mut self,
        name: &str,
        f: impl FnOnce() + Send + 'static,
    ) -> Result<(), HepListenError> {
        let h = std::thread::Builder::new()
            .name(name.into())
            .spawn(f)
            .map_err(HepListenError::Spawn)?;
        self.threads.push(h);
        Ok(())
    }
}

impl Drop for HepSource {
    fn drop(&mut self) {
        self.done.trigger();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl FrameSource for HepSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> FrameKind {
        FrameKind::Hep
    }
    fn is_live(&self) -> bool {
        true
    }
    fn drops(&mut self) -> Option<DropCounters> {
        let inode = self.udp_inode?;
        Some(DropCounters {
            kernel: udp_drops(inode)?,
            ..DropCounters::default()
        })
    }

    fn next_frame(&mut self) -> Result<Next<'_>, SourceError> {
        match self.rx.recv_timeout(IDLE_WAIT) {
            Ok(r) => {
                let r = self.current.insert(r);
                Ok(Next::Frame(super::source::Frame {
                    ts: r.arrival,
                    data: &r.data,
                    wire_len: r.data.len() as u32,
                }))
            }
            Err(RecvTimeoutError::Timeout) => Ok(Next::Idle),
            Err(RecvTimeoutError::Disconnected) => Ok(Next::End),
        }
    }
}

fn udp_socket(addr: &str, buffer: usize) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::new(ErrorKind::InvalidInput, e))?;
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Bursts from many agents outrun one receiving thread for a moment; the kernel buffer
    // absorbs them (capped by net.core.rmem_max, so this may get less than asked).
    if let Err(e) = sock.set_recv_buffer_size(buffer) {
        tracing::warn!(error = %e, "capture.hep.udp_buffer_mb not applied");
    }
    sock.bind(&addr.into())?;
    sock.set_read_timeout(Some(POLL))?;
    Ok(sock.into())
}

fn socket_inode(sock: &UdpSocket) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::io::AsRawFd;
    std::fs::metadata(format!("/proc/self/fd/{}", sock.as_raw_fd()))
        .ok()
        .map(|m| m.ino())
}

/// The kernel's count of datagrams dropped at this socket (receive buffer full): the last
/// column of its line in /proc/net/udp or udp6, found by inode (the tenth column).
fn udp_drops(inode: u64) -> Option<u64> {
    let wanted = inode.to_string();
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.get(9) == Some(&wanted.as_str()) {
                return cols.last().and_then(|d| d.parse().ok());
            }
        }
    }
    None
}

fn udp_loop(sock: UdpSocket, s: Shared) {
    // One byte more than the limit tells an oversized datagram from one that just fits.
    let mut buf = vec![0u8; s.max_frame + 1];
    while !s.done() {
        match sock.recv_from(&mut buf) {
            Ok((n, _)) if n > s.max_frame => s.dropped("too_large"),
            Ok((n, _)) => s.offer(buf[..n].to_vec(), "udp"),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!(error = %e, "HEP UDP receive failed");
                std::thread::sleep(POLL);
            }
        }
    }
}

fn accept_loop(l: TcpListener, s: Shared, max_conn: usize) {
    let active = Arc::new(AtomicUsize::new(0));
    let mut conns: Vec<JoinHandle<()>> = Vec::new();
    while !s.done() {
        conns.retain(|h| !h.is_finished());
        match l.accept() {
            Ok((stream, peer)) => {
                if active.load(Ordering::Relaxed) >= max_conn {
                    s.dropped("connections");
                    tracing::debug!(%peer, "HEP connection refused: capture.hep.max_connections");
                    continue;
                }
                active.fetch_add(1, Ordering::Relaxed);
                s.metrics.hep_connections_active.inc();
                let (s2, active2) = (s.clone(), active.clone());
                let spawned = std::thread::Builder::new()
                    .name("hep-tcp-conn".into())
                    .spawn(move || {
                        tcp_conn(stream, &s2);
                        active2.fetch_sub(1, Ordering::Relaxed);
                        s2.metrics.hep_connections_active.dec();
                    });
                match spawned {
                    Ok(h) => conns.push(h),
                    Err(e) => {
                        active.fetch_sub(1, Ordering::Relaxed);
                        s.metrics.hep_connections_active.dec();
                        s.dropped("connections");
                        tracing::warn!(error = %e, "HEP connection thread not started");
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL / 10),
            Err(e) => {
                tracing::warn!(error = %e, "HEP TCP accept failed");
                std::thread::sleep(POLL);
            }
        }
    }
    for h in conns {
        let _ = h.join();
    }
}

/// Reads HEPv3 packets from one stream; anything else closes it (HEP has no resync marker
/// that a stream of garbage could not fake).
fn tcp_conn(mut stream: TcpStream, s: &Shared) {
    if stream.set_read_timeout(Some(POLL)).is_err() {
        return;
    }
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = [0u8; 16384];
    while !s.done() {
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => return,
        }
        let mut pos = 0;
        loop {
            match hep::frame_len(&buf[pos..]) {
                Ok(Some(len)) if len > s.max_frame => {
                    s.dropped("too_large");
                    s.dropped("stream");
                    return;
                }
                Ok(Some(len)) if buf.len() - pos >= len => {
                    s.offer(buf[pos..pos + len].to_vec(), "tcp");
                    pos += len;
                }
                Ok(_) => break,
                Err(_) => {
                    s.dropped("stream");
                    return;
                }
            }
        }
        buf.drain(..pos);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use std::io::Write;

    fn cfg() -> HepConfig {
        HepConfig {
            enabled: true,
            listen_udp: "127.0.0.1:0".into(),
            listen_tcp: "127.0.0.1:0".into(),
            max_frame_bytes: 1000,
            max_connections: 1,
            queue_frames: 4,
            ..HepConfig::default()
        }
    }

    fn packet(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        hep::encode_v3(
            &hep::Hep3Out {
                src: "192.0.2.1:5060".parse().unwrap(),
                dst: "192.0.2.2:5060".parse().unwrap(),
                ip_proto: 17,
                ts: Timestamp::from_secs(1_795_000_000),
                capture_id: 1,
                auth_key: None,
                correlation_id: None,
                payload: body,
            },
            &mut out,
        )
        .unwrap();
        out
    }

    fn next(src: &mut HepSource) -> Option<Vec<u8>> {
        for _ in 0..2000 {
            if let Next::Frame(f) = src.next_frame().unwrap() {
                return Some(f.data.to_vec());
            }
        }
        None
    }

    #[test]
    fn udp_and_tcp_frames_arrive_and_limits_count() {
        let metrics = Arc::new(Metrics::new());
        let mut src = HepSource::start(&cfg(), metrics.clone(), Arc::new(SystemClock)).unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p1 = packet(b"OPTIONS sip:a SIP/2.0\r\n\r\n");
        udp.send_to(&p1, src.udp_addr.unwrap()).unwrap();
        assert_eq!(next(&mut src).unwrap(), p1);
        udp.send_to(&[b'x'; 1001], src.udp_addr.unwrap()).unwrap();

        // Two packets in one write, the second split across writes.
        let mut tcp = TcpStream::connect(src.tcp_addr.unwrap()).unwrap();
        let p2 = packet(b"BYE sip:b SIP/2.0\r\n\r\n");
        let mut both = p1.clone();
        both.extend_from_slice(&p2[..10]);
        tcp.write_all(&both).unwrap();
        tcp.flush().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        tcp.write_all(&p2[10..]).unwrap();
        assert_eq!(next(&mut src).unwrap(), p1);
        assert_eq!(next(&mut src).unwrap(), p2);
        // A second connection is over max_connections (1): refused and counted.
        let _second = TcpStream::connect(src.tcp_addr.unwrap()).unwrap();
        let dropped = |r: &str| metrics.hep_frames_dropped.with_label_values(&[r]).get();
        for _ in 0..100 {
            if dropped("connections") == 1 && dropped("too_large") == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(dropped("connections"), 1);
        assert_eq!(dropped("too_large"), 1);
        // Garbage on the stream closes it.
        tcp.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        for _ in 0..100 {
            if dropped("stream") == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(dropped("stream"), 1);
        assert_eq!(metrics.hep_frames.with_label_values(&["tcp"]).get(), 2);
    }

    #[test]
    fn kernel_drops_of_a_full_socket_buffer_are_read_back() {
        let sock = udp_socket("127.0.0.1:0", 1 << 20).unwrap();
        let inode = socket_inode(&sock).unwrap();
        assert_eq!(udp_drops(inode), Some(0));
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Nobody reads: once the buffer (a few MiB at most) is full the kernel drops the rest.
        for _ in 0..20_000 {
            let _ = tx.send_to(&[0u8; 1400], sock.local_addr().unwrap());
        }
        assert!(udp_drops(inode).unwrap() > 0);
    }

    #[test]
    fn full_queue_drops_and_counts() {
        let metrics = Arc::new(Metrics::new());
        let src = HepSource::start(&cfg(), metrics.clone(), Arc::new(SystemClock)).unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = packet(b"OPTIONS sip:a SIP/2.0\r\n\r\n");
        for _ in 0..10 {
            udp.send_to(&p, src.udp_addr.unwrap()).unwrap();
        }
        let got = || metrics.hep_frames.with_label_values(&["udp"]).get();
        for _ in 0..100 {
            if got() == 10 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(got(), 10);
        // Nothing reads the source: 4 queued, 6 dropped.
        let dropped = metrics
            .hep_frames_dropped
            .with_label_values(&["queue"])
            .get();
        assert_eq!(dropped, 6);
        drop(src);
    }
}

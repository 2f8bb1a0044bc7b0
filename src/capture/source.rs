//! Packet sources: libpcap on a live interface or a capture file (pcap or pcapng). This is the
//! only place that talks to libpcap (the crate's only FFI, through the `pcap` crate).
//!
//! A source hands out borrowed frames with their capture timestamp; it never interprets them.

use crate::clock::Timestamp;
use crate::config::CaptureConfig;
use pcap::{Active, Capture, Offline};
use std::os::unix::io::{AsRawFd, RawFd};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot open capture file {path}: {source}")]
    OpenFile { path: String, source: pcap::Error },
    #[error(
        "{path} is not a pcap or pcapng capture ({source}); replay reads files written by \
         tcpdump -w, dumpcap or Wireshark"
    )]
    NotACapture { path: String, source: pcap::Error },
    #[error("cannot open interface {iface}: {source}")]
    OpenLive { iface: String, source: pcap::Error },
    #[error("interface {iface} does not exist on this host (it has: {available})")]
    NoSuchInterface { iface: String, available: String },
    #[error(
        "no permission to capture on interface {iface} ({source}): run as root, or give the \
         binary CAP_NET_RAW and CAP_NET_ADMIN (setcap cap_net_raw,cap_net_admin=eip BINARY), \
         or start it with the systemd unit, which grants them"
    )]
    NoPermission { iface: String, source: pcap::Error },
    #[error("interface {iface} (link type {linktype}): BPF filter {filter:?} rejected: {source}")]
    Filter {
        iface: String,
        linktype: String,
        filter: String,
        source: pcap::Error,
    },
    #[error("reading {name}: {source}")]
    Read { name: String, source: pcap::Error },
}

/// One captured frame, borrowed from libpcap's buffer until the next call.
#[derive(Debug)]
pub struct Frame<'a> {
    pub ts: Timestamp,
    pub data: &'a [u8],
    /// Length on the wire; larger than `data.len()` when the snaplen cut the frame.
    pub wire_len: u32,
}

pub enum Next<'a> {
    Frame(Frame<'a>),
    /// Live capture only: no packet within the read timeout (a chance to do periodic work).
    Idle,
    End,
}

/// How the capture thread decodes a source's frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// A link-layer frame of this libpcap link type.
    Link(i32),
    /// One HEP packet (the listener's framing already removed).
    Hep,
}

/// Anything that feeds frames to a capture thread: a capture file, a live interface, the HEP
/// listeners. Frames are borrowed until the next call.
pub trait FrameSource: Send {
    fn name(&self) -> &str;
    fn kind(&self) -> FrameKind;
    /// Live sources drop on a full queue and run on the clock; files wait and run on packet time.
    fn is_live(&self) -> bool;
    fn next_frame(&mut self) -> Result<Next<'_>, SourceError>;
    /// Counters of packets lost before they reached us (libpcap live only).
    fn drops(&mut self) -> Option<DropCounters> {
        None
    }
}

/// libpcap's own counters for a live interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounters {
    pub received: u64,
    /// Dropped because the kernel buffer was full (ps_drop).
    pub kernel: u64,
    /// Dropped by the interface or driver (ps_ifdrop).
    pub interface: u64,
}

enum Handle {
    /// Non-blocking, with the descriptor to wait on: libpcap's own read timeout does not fire
    /// on Linux while no packet arrives, which would leave the stop flag unchecked.
    Live(Capture<Active>, RawFd),
    File(Capture<Offline>),
}

pub struct PcapSource {
    handle: Handle,
    linktype: i32,
    name: String,
    /// Live: the last read found the ring empty and reported Idle without waiting, so the
    /// caller could send its partial batches first; the next empty read waits.
    drained: bool,
}

/// A libpcap packet header's timestamp. `time_t` and `suseconds_t` differ in width between
/// platforms, hence the casts.
#[allow(clippy::unnecessary_cast)]
pub fn packet_time(h: &pcap::PacketHeader) -> Timestamp {
    Timestamp::from_parts(h.ts.tv_sec as i64, h.ts.tv_usec as i64)
}

/// Waits until `fd` is readable or `timeout_ms` passes (an interrupted wait just returns).
fn wait_readable(fd: RawFd, timeout_ms: i32) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is a valid, initialised pollfd that outlives the call, and nfds is 1.
    unsafe {
        libc::poll(&mut pfd, 1, timeout_ms);
    }
}

/// Read timeout for live capture: bounds how long periodic work (timeouts, stats) waits, and
/// how long the kernel holds a partly filled TPACKET_V3 block before handing it over — so it
/// is also the worst capture latency at low packet rates (`stage_latency_seconds{stage=
/// "capture"}`): 100 ms measured p50 at 100 calls/s, hence a short one. At 10,000 signed
/// INVITEs/s a block holds a burst that the workers then verify one by one: 10 ms gave an
/// INVITE-to-verdict p50 of ~2 ms; 1 ms costs at most a thousand wake-ups a second.
const LIVE_TIMEOUT_MS: i32 = 1;

impl PcapSource {
    pub fn open_file(path: &Path) -> Result<Self, SourceError> {
        let cap = Capture::from_file(path).map_err(|source| {
            let path_s = path.display().to_string();
            // libpcap says "unknown file format" or "truncated dump file" for a file it can
            // read but does not understand: that is the operator's file, not a missing one.
            if std::fs::File::open(path).is_ok() && path.is_file() {
                SourceError::NotACapture {
                    path: path_s,
                    source,
                }
            } else {
                SourceError::OpenFile {
                    path: path_s,
                    source,
                }
            }
        })?;
        Ok(PcapSource {
            linktype: cap.get_datalink().0,
            handle: Handle::File(cap),
            name: path.display().to_string(),
            drained: false,
        })
    }

    /// Opens `iface` and installs the BPF filter that `filter` builds for the interface's link
    /// type (known only once the device is open: "any" is Linux cooked, "lo" Ethernet).
    pub fn open_live(
        iface: &str,
        cfg: &CaptureConfig,
        filter: &dyn Fn(i32) -> String,
    ) -> Result<Self, SourceError> {
        let open_err = |source| open_live_error(iface, source);
        let cap = Capture::from_device(iface)
            .map_err(open_err)?
            .snaplen(cfg.snaplen as i32)
            .promisc(cfg.promiscuous)
            .buffer_size((cfg.buffer_size_mb as i32).saturating_mul(1 << 20))
            .timeout(LIVE_TIMEOUT_MS)
            .open()
            .map_err(open_err)?;
        let mut cap = cap.setnonblock().map_err(open_err)?;
        let linktype = cap.get_datalink().0;
        let filter = filter(linktype);
        tracing::info!(iface, linktype = %linktype_name(linktype), filter = %filter, "capture filter");
        cap.filter(&filter, true)
            .map_err(|source| SourceError::Filter {
                iface: iface.to_string(),
                linktype: linktype_name(linktype),
                filter: filter.clone(),
                source,
            })?;
        let fd = cap.as_raw_fd();
        Ok(PcapSource {
            linktype,
            handle: Handle::Live(cap, fd),
            name: iface.to_string(),
            drained: false,
        })
    }

    pub fn linktype(&self) -> i32 {
        self.linktype
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_live(&self) -> bool {
        matches!(self.handle, Handle::Live(..))
    }

    pub fn next_frame(&mut self) -> Result<Next<'_>, SourceError> {
        let result = match &mut self.handle {
            Handle::Live(c, fd) => {
                let fd = *fd;
                match c.next_packet() {
                    Err(pcap::Error::TimeoutExpired) => {
                        // First empty read: return at once so the caller flushes what it
                        // batched (waiting first held the last messages of a burst for a
                        // whole timeout: measured 250 ms parse latency). Then wait.
                        if self.drained {
                            wait_readable(fd, LIVE_TIMEOUT_MS);
                        }
                        self.drained = !self.drained;
                        return Ok(Next::Idle);
                    }
                    other => {
                        self.drained = false;
                        other
                    }
                }
            }
            Handle::File(c) => c.next_packet(),
        };
        match result {
            Ok(p) => Ok(Next::Frame(Frame {
                ts: packet_time(p.header),
                data: p.data,
                wire_len: p.header.len,
            })),
            Err(pcap::Error::TimeoutExpired) => Ok(Next::Idle),
            Err(pcap::Error::NoMorePackets) => Ok(Next::End),
            Err(source) => Err(SourceError::Read {
                name: self.name.clone(),
                source,
            }),
        }
    }

    /// Kernel and interface drop counters (live only; files have none).
    pub fn drops(&mut self) -> Option<DropCounters> {
        match &mut self.handle {
            Handle::Live(c, _) => c.stats().ok().map(|s| DropCounters {
                received: s.received.into(),
                kernel: s.dropped.into(),
                interface: s.if_dropped.into(),
            }),
            Handle::File(_) => None,
        }
    }
}

impl FrameSource for PcapSource {
    fn name(&self) -> &str {
        PcapSource::name(self)
    }
    fn kind(&self) -> FrameKind {
        FrameKind::Link(self.linktype)
    }
    fn is_live(&self) -> bool {
        PcapSource::is_live(self)
    }
    fn next_frame(&mut self) -> Result<Next<'_>, SourceError> {
        PcapSource::next_frame(self)
    }
    fn drops(&mut self) -> Option<DropCounters> {
        PcapSource::drops(self)
    }
}

/// Classifies a failure to open an interface into what the operator must do about it.
fn open_live_error(iface: &str, source: pcap::Error) -> SourceError {
    let text = source.to_string();
    let names = interface_names();
    // libpcap reports a missing device in words that vary by version ("No such device
    // exists", "SIOCGIFINDEX: No such device"); the list of devices is the reliable test.
    if !names.is_empty() && !names.iter().any(|n| n == iface) {
        return SourceError::NoSuchInterface {
            iface: iface.to_string(),
            available: names.join(", "),
        };
    }
    if text.contains("ermission") || text.contains("not permitted") {
        return SourceError::NoPermission {
            iface: iface.to_string(),
            source,
        };
    }
    SourceError::OpenLive {
        iface: iface.to_string(),
        source,
    }
}

/// The interfaces libpcap can open here ("any" included on Linux); empty when it cannot
/// list them.
pub fn interface_names() -> Vec<String> {
    pcap::Device::list()
        .map(|d| d.into_iter().map(|d| d.name).collect())
        .unwrap_or_default()
}

/// A link type's libpcap name, e.g. "LINUX_SLL", or its number.
pub fn linktype_name(linktype: i32) -> String {
    pcap::Linktype(linktype)
        .get_name()
        .unwrap_or_else(|_| linktype.to_string())
}

/// The link types a live capture on `iface` can open with: "any" is Linux cooked (v1 or v2,
/// depending on the libpcap version); a named interface's type comes from the kernel
/// (`/sys/class/net/IFACE/type`: Ethernet and loopback capture as Ethernet, tunnels without a
/// link layer as raw IP). Used to check a filter without opening a device.
pub fn live_linktypes(iface: &str) -> Vec<i32> {
    use super::decode::linktype;
    if iface == "any" {
        return vec![linktype::LINUX_SLL, linktype::LINUX_SLL2];
    }
    let arphrd = std::fs::read_to_string(format!("/sys/class/net/{iface}/type"))
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok());
    match arphrd {
        // ARPHRD_NONE (tun, WireGuard) and ARPHRD_RAWIP: no link layer.
        // DLT_RAW as libpcap reports it on Linux.
        Some(65534) | Some(519) => vec![12],
        _ => vec![linktype::ETHERNET],
    }
}

/// Compiles `filter` for `linktype` without a device, as the live capture would.
pub fn compile_filter(filter: &str, linktype: i32) -> Result<(), pcap::Error> {
    Capture::dead(pcap::Linktype(linktype))?
        .compile(filter, true)
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::decode::linktype;
    use crate::config::Config;

    #[test]
    fn auto_filter_compiles_for_every_live_link_type() {
        let cfg = Config::default();
        for lt in [
            linktype::ETHERNET,
            linktype::LINUX_SLL,
            linktype::LINUX_SLL2,
            12,
        ] {
            let f = cfg.bpf_filter(lt);
            compile_filter(&f, lt).unwrap_or_else(|e| panic!("{}: {e}: {f}", linktype_name(lt)));
        }
        // What "auto" was before issue 19: a vlan clause libpcap refuses on "any".
        let ethernet = cfg.bpf_filter(linktype::ETHERNET);
        let err = compile_filter(&ethernet, linktype::LINUX_SLL).unwrap_err();
        assert!(err.to_string().contains("VLAN"), "{err}");
    }

    #[test]
    fn any_is_linux_cooked() {
        assert_eq!(
            live_linktypes("any"),
            [linktype::LINUX_SLL, linktype::LINUX_SLL2]
        );
        assert_eq!(live_linktypes("lo"), [linktype::ETHERNET]);
    }
}

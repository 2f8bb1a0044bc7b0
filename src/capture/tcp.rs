//! TCP stream reassembly with SIP framing: each direction of a connection is a byte stream,
//! rebuilt from segments in any order (retransmissions trimmed, out-of-order data held) and cut
//! into SIP messages with Content-Length framing.
//!
//! Streams already open when capture starts are picked up at the first line that looks like a
//! SIP start line; after garbage, an unframeable message or a gap that cannot be filled, the
//! stream resynchronises the same way. Every stream, the stream table and the total buffered
//! bytes are bounded; idle streams expire. In-order segments are framed in place, copying only
//! a trailing partial message. This module must never buffer without bound, never re-scan a
//! growing partial message once per segment (hostile tiny segments), never trust a sequence
//! number without wrapping arithmetic, and never panic on any input.

use crate::capture::packet::{SipPayload, Transport};
use crate::clock::Timestamp;
use crate::sip::framing::{
    find_message_start, frame, keepalive_len, parse_decimal, FrameMode, FrameOutcome,
};
use ahash::RandomState;
use memchr::{memchr, memchr_iter, memrchr};
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;

/// Bounds of the stream table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpLimits {
    /// Directions (src→dst) tracked at once.
    pub max_streams: usize,
    /// Bytes buffered per direction, partial message and out-of-order segments included.
    pub max_stream_bytes: usize,
    /// Bytes buffered across all streams.
    pub max_total_bytes: usize,
    /// Microseconds without a segment after which a stream is dropped.
    pub idle_timeout_us: i64,
    /// Largest SIP message accepted.
    pub max_message: usize,
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits {
            max_streams: 65_536,
            max_stream_bytes: 256 << 10,
            max_total_bytes: 128 << 20,
            idle_timeout_us: 300_000_000,
            max_message: 65_535,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpFlags {
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
}

/// One TCP segment, borrowed from its frame.
#[derive(Clone, Copy, Debug)]
pub struct TcpSegment<'a> {
    pub ts: Timestamp,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub flags: TcpFlags,
    pub payload: &'a [u8],
}

/// Counters; the owning thread publishes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpStats {
    pub segments: u64,
    /// Segments carrying bytes already seen (wholly or partly).
    pub retransmissions: u64,
    /// Segments held because bytes before them are missing.
    pub out_of_order: u64,
    /// Gaps given up on (budget exceeded, or FIN/RST with data missing).
    pub gaps_skipped: u64,
    pub streams_evicted: u64,
    pub streams_timed_out: u64,
    /// Non-SIP or unframeable bytes skipped while resynchronising, and partial messages
    /// dropped at a skipped gap.
    pub bytes_discarded: u64,
    /// Places where a SIP message was expected and framing failed.
    pub framing_errors: u64,
    pub messages: u64,
}

/// A line shorter than this may still turn out to be a SIP start line
/// ("SUBSCRIBE sips:" is 15 bytes); from this length on, `looks_like_sip_start` decides.
const START_DECIDE: usize = 16;

/// Budget charged per held out-of-order segment on top of its bytes (map node, allocation),
/// so that a flood of 1-byte segments cannot hold far more memory than accounted.
const OOO_OVERHEAD: usize = 64;

/// A partial-message buffer that empties keeps at most this capacity.
const KEEP_CAPACITY: usize = 16 << 10;

/// Segments longer than this are truncated (no real segment comes near; it keeps the signed
/// 32-bit sequence comparisons meaningful).
const MAX_SEGMENT: usize = 1 << 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct StreamKey {
    src: SocketAddr,
    dst: SocketAddr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sync {
    /// The buffer starts at a message boundary.
    InSync,
    /// Looking for a SIP start line; `at_line_start` says whether the buffer's first byte may
    /// begin one (otherwise skip to after the next line feed first).
    Resync { at_line_start: bool },
}

/// When framing the partial message again could change the outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    /// Frame on every new byte.
    Any,
    /// Headers incomplete: only a blank line (searched from `scan_from`) or reaching
    /// `max_message` can change the outcome.
    BlankLine { scan_from: usize },
    /// Headers complete: the message ends at this buffer length.
    Length(usize),
}

#[derive(Debug)]
struct Stream {
    /// Sequence number of the next byte expected.
    next_seq: u32,
    /// Stream offset of that byte (never wraps), for keying out-of-order segments.
    next_off: u64,
    syn_seq: Option<u32>,
    /// In-order bytes not yet framed: the start of a partial message, or a short tail that
    /// may begin a start line while resynchronising.
    buf: Vec<u8>,
    /// Out-of-order segments keyed by stream offset; every key is > `next_off`.
    ooo: BTreeMap<u64, Vec<u8>>,
    /// Accounted size of `ooo` (bytes plus per-segment overhead).
    ooo_bytes: usize,
    sync: Sync,
    wait: Wait,
    last_ts: Timestamp,
    touch: u64,
}

/// Per-push context: limits, counters and where messages go.
struct Ctx<'a> {
    stats: &'a mut TcpStats,
    max_message: usize,
    budget: usize,
    ts: Timestamp,
    src: SocketAddr,
    dst: SocketAddr,
    out: &'a mut dyn FnMut(SipPayload<'_>),
}

impl Ctx<'_> {
    fn emit(&mut self, bytes: &[u8], call_id: Option<(usize, usize)>) {
        self.stats.messages += 1;
        (self.out)(SipPayload {
            ts: self.ts,
            src: self.src,
            dst: self.dst,
            transport: Transport::Tcp,
            bytes,
            call_id,
            agent: None,
        });
    }
}

impl Stream {
    fn new(next_seq: u32, syn_seq: Option<u32>, sync: Sync, ts: Timestamp) -> Self {
        Stream {
            next_seq,
            next_off: 0,
            syn_seq,
            buf: Vec::new(),
            ooo: BTreeMap::new(),
            ooo_bytes: 0,
            sync,
            wait: Wait::Any,
            last_ts: ts,
            touch: 0,
        }
    }

    fn bytes(&self) -> usize {
        self.buf.len().saturating_add(self.ooo_bytes)
    }

    /// Data starting at sequence number `seq`.
    fn segment(&mut self, seq: u32, data: &[u8], cx: &mut Ctx<'_>) {
        if data.is_empty() {
            return;
        }
        // Signed distance from the next expected byte, modulo 2^32.
        let diff = seq.wrapping_sub(self.next_seq) as i32;
        let data = if diff < 0 {
            cx.stats.retransmissions += 1;
            let seen = diff.unsigned_abs() as usize;
            match data.get(seen..) {
                Some(rest) if !rest.is_empty() => rest,
                _ => return,
            }
        } else if diff > 0 {
            let off = self.next_off.saturating_add(u64::from(diff.unsigned_abs()));
            self.future(off, data, cx);
            return;
        } else {
            data
        };
        self.in_order(data, cx);
        self.drain_ooo(cx);
        self.enforce_budget(cx);
    }

    /// Bytes at `next_off`: framed in place when nothing is buffered, else appended.
    fn in_order(&mut self, data: &[u8], cx: &mut Ctx<'_>) {
        self.advance(data.len());
        if self.buf.is_empty() {
            let used = run(data, &mut self.sync, cx);
            self.buf.extend_from_slice(data.get(used..).unwrap_or(&[]));
            self.update_wait();
        } else {
            self.buf.extend_from_slice(data);
            self.process_buf(cx);
        }
    }

    fn advance(&mut self, n: usize) {
        self.next_seq = self.next_seq.wrapping_add(n as u32);
        self.next_off = self.next_off.saturating_add(n as u64);
    }

    fn process_buf(&mut self, cx: &mut Ctx<'_>) {
        let run_now = match self.wait {
            Wait::Any => true,
            Wait::Length(n) => self.buf.len() >= n,
            Wait::BlankLine { scan_from } => {
                let found = self.buf.len() >= cx.max_message
                    || has_blank_line(self.buf.get(scan_from..).unwrap_or(&[]));
                if !found {
                    self.wait = Wait::BlankLine {
                        scan_from: self.buf.len().saturating_sub(2),
                    };
                }
                found
            }
        };
        if !run_now {
            return;
        }
        let used = run(&self.buf, &mut self.sync, cx);
        self.buf.drain(..used.min(self.buf.len()));
        self.update_wait();
    }

    fn update_wait(&mut self) {
        self.wait = if self.sync == Sync::InSync {
            wait_hint(&self.buf)
        } else {
            Wait::Any
        };
        if self.buf.is_empty() && self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        }
    }

    /// A segment that starts after `next_off`.
    fn future(&mut self, off: u64, data: &[u8], cx: &mut Ctx<'_>) {
        loop {
            if off <= self.next_off {
                // A skipped gap made it (partly) in order.
                let seen = usize::try_from(self.next_off - off).unwrap_or(usize::MAX);
                if let Some(rest) = data.get(seen..).filter(|r| !r.is_empty()) {
                    self.in_order(rest, cx);
                    self.drain_ooo(cx);
                }
                self.enforce_budget(cx);
                return;
            }
            let cost = data.len().saturating_add(OOO_OVERHEAD);
            if self.bytes().saturating_add(cost) <= cx.budget {
                match self.ooo.entry(off) {
                    Entry::Vacant(v) => {
                        cx.stats.out_of_order += 1;
                        v.insert(data.to_vec());
                        self.ooo_bytes = self.ooo_bytes.saturating_add(cost);
                    }
                    Entry::Occupied(mut o) => {
                        if o.get().len() < data.len() {
                            self.ooo_bytes = self
                                .ooo_bytes
                                .saturating_sub(o.get().len())
                                .saturating_add(data.len());
                            o.insert(data.to_vec());
                        } else {
                            cx.stats.retransmissions += 1;
                        }
                    }
                }
                return;
            }
            // Over budget: give up on the gap and jump to the earliest data held.
            let first = self.ooo.keys().next().map_or(off, |&k| k.min(off));
            self.skip_to(first, cx);
            self.drain_ooo(cx);
        }
    }

    /// Moves held segments that are now in order into the stream.
    fn drain_ooo(&mut self, cx: &mut Ctx<'_>) {
        while let Some(entry) = self.ooo.first_entry() {
            let off = *entry.key();
            if off > self.next_off {
                break;
            }
            let seg = entry.remove();
            self.ooo_bytes = self
                .ooo_bytes
                .saturating_sub(seg.len().saturating_add(OOO_OVERHEAD));
            let seen = usize::try_from(self.next_off - off).unwrap_or(usize::MAX);
            if seen > 0 {
                cx.stats.retransmissions += 1;
            }
            if let Some(rest) = seg.get(seen..).filter(|r| !r.is_empty()) {
                self.in_order(rest, cx);
            }
        }
    }

    /// Abandons the bytes between `next_off` and `to`, and the partial message before them.
    fn skip_to(&mut self, to: u64, cx: &mut Ctx<'_>) {
        cx.stats.gaps_skipped += 1;
        cx.stats.bytes_discarded += self.buf.len() as u64;
        self.buf.clear();
        let delta = to.saturating_sub(self.next_off);
        self.next_seq = self.next_seq.wrapping_add(delta as u32);
        self.next_off = self.next_off.saturating_add(delta);
        self.sync = Sync::Resync {
            at_line_start: true,
        };
        self.wait = Wait::Any;
    }

    fn enforce_budget(&mut self, cx: &mut Ctx<'_>) {
        while self.bytes() > cx.budget {
            if let Some(&first) = self.ooo.keys().next() {
                self.skip_to(first, cx);
                self.drain_ooo(cx);
            } else {
                // The partial message alone is over budget (max_message > max_stream_bytes).
                cx.stats.framing_errors += 1;
                cx.stats.bytes_discarded += self.buf.len() as u64;
                let at_line_start = self.buf.last() == Some(&b'\n');
                self.buf.clear();
                self.sync = Sync::Resync { at_line_start };
                self.wait = Wait::Any;
            }
        }
    }

    /// FIN/RST: frames whatever follows missing data, skipping the gaps.
    fn flush(&mut self, cx: &mut Ctx<'_>) {
        while let Some(&first) = self.ooo.keys().next() {
            self.skip_to(first, cx);
            self.drain_ooo(cx);
        }
    }

    /// Drops everything buffered (the total byte budget needs it back).
    fn drop_buffers(&mut self, stats: &mut TcpStats) {
        stats.bytes_discarded += self.buf.len() as u64;
        if !self.buf.is_empty() {
            self.sync = Sync::Resync {
                at_line_start: self.buf.last() == Some(&b'\n'),
            };
        }
        if !self.ooo.is_empty() {
            stats.gaps_skipped += 1;
        }
        self.buf = Vec::new();
        self.ooo.clear();
        self.ooo_bytes = 0;
        self.wait = Wait::Any;
    }
}

/// Frames messages from the start of `data`, resynchronising past anything that is not SIP.
/// Returns how many bytes were consumed; the rest is a partial message (or a short tail that
/// may begin a start line) to keep.
fn run(data: &[u8], sync: &mut Sync, cx: &mut Ctx<'_>) -> usize {
    let mut pos = 0usize;
    loop {
        let rest = data.get(pos..).unwrap_or(&[]);
        let Some(&first) = rest.first() else {
            return pos;
        };
        match *sync {
            Sync::InSync => {
                let k = keepalive_len(rest);
                if k > 0 {
                    pos = pos.saturating_add(k);
                    continue;
                }
                match frame(rest, FrameMode::Stream, cx.max_message) {
                    FrameOutcome::Complete(f) => {
                        let len = f.len.clamp(1, rest.len());
                        cx.emit(rest.get(..len).unwrap_or(rest), f.call_id);
                        pos = pos.saturating_add(len);
                    }
                    FrameOutcome::Incomplete => return pos,
                    FrameOutcome::NotSip | FrameOutcome::Invalid(_) => {
                        cx.stats.framing_errors += 1;
                        cx.stats.bytes_discarded += 1;
                        *sync = Sync::Resync {
                            at_line_start: first == b'\n',
                        };
                        pos = pos.saturating_add(1);
                    }
                }
            }
            Sync::Resync { at_line_start } => {
                let (skip, next) = resync(rest, at_line_start);
                cx.stats.bytes_discarded += skip as u64;
                pos = pos.saturating_add(skip);
                *sync = next;
                if next != Sync::InSync {
                    return pos;
                }
            }
        }
    }
}

/// Bytes to discard before a SIP start line, and the state after them. When no start line is
/// found, a short last line is kept (it may be the beginning of one).
fn resync(buf: &[u8], at_line_start: bool) -> (usize, Sync) {
    let start = if at_line_start {
        0
    } else {
        match memchr(b'\n', buf) {
            Some(i) => i + 1,
            None => {
                return (
                    buf.len(),
                    Sync::Resync {
                        at_line_start: false,
                    },
                )
            }
        }
    };
    let tail = buf.get(start..).unwrap_or(&[]);
    if let Some(p) = find_message_start(tail) {
        return (start + p, Sync::InSync);
    }
    let last_line = memrchr(b'\n', tail).map_or(0, |i| i + 1);
    if tail.len() - last_line < START_DECIDE {
        (
            start + last_line,
            Sync::Resync {
                at_line_start: true,
            },
        )
    } else {
        (
            buf.len(),
            Sync::Resync {
                at_line_start: false,
            },
        )
    }
}

/// For an incomplete message at the start of `buf`: when framing could next succeed or fail.
/// Mirrors `frame`'s header rules; a wrong guess only costs an extra framing pass or, if too
/// large, would delay delivery, so it errs towards `Any`.
fn wait_hint(buf: &[u8]) -> Wait {
    if buf.len() < START_DECIDE {
        return Wait::Any;
    }
    let Some(header_end) = blank_line_end(buf) else {
        return Wait::BlankLine {
            scan_from: buf.len().saturating_sub(2),
        };
    };
    match content_length(buf.get(..header_end).unwrap_or(&[])) {
        Some(n) => Wait::Length(header_end.saturating_add(n)),
        None => Wait::Any,
    }
}

fn has_blank_line(buf: &[u8]) -> bool {
    blank_line_end(buf).is_some()
}

/// End of the first empty line ("\n\n" or "\n\r\n"), i.e. where the body starts.
fn blank_line_end(buf: &[u8]) -> Option<usize> {
    memchr_iter(b'\n', buf).find_map(|i| match (buf.get(i + 1), buf.get(i + 2)) {
        (Some(b'\n'), _) => Some(i + 2),
        (Some(b'\r'), Some(b'\n')) => Some(i + 3),
        _ => None,
    })
}

/// The last Content-Length (or `l`) value in a header block, 0 when absent, None when a
/// value does not parse (framing reports that, so the hint stays out of the way).
fn content_length(block: &[u8]) -> Option<usize> {
    let mut pos = memchr(b'\n', block)? + 1;
    let mut n = 0;
    while let Some(nl) = block.get(pos..).and_then(|b| memchr(b'\n', b)) {
        let line = block.get(pos..pos + nl).unwrap_or(&[]);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if let Some(colon) = memchr(b':', line) {
            let name = trim(line.get(..colon).unwrap_or(&[]));
            if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
                n = parse_decimal(trim(line.get(colon + 1..).unwrap_or(&[])))?;
            }
        }
        pos += nl + 1;
    }
    Some(n)
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(v.len());
    let v = v.get(start..).unwrap_or(&[]);
    let end = v
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t' | b'\r'))
        .map_or(0, |p| p + 1);
    v.get(..end).unwrap_or(&[])
}

/// Reassembles TCP streams into SIP messages within fixed bounds.
#[derive(Debug)]
pub struct TcpReassembler {
    limits: TcpLimits,
    streams: HashMap<StreamKey, Stream, RandomState>,
    /// (touch, key) in activity order; entries whose stream was touched since are skipped.
    lru: VecDeque<(u64, StreamKey)>,
    touches: u64,
    total: usize,
    stats: TcpStats,
}

impl TcpReassembler {
    pub fn new(limits: TcpLimits) -> Self {
        TcpReassembler {
            limits,
            streams: HashMap::with_hasher(RandomState::new()),
            lru: VecDeque::new(),
            touches: 0,
            total: 0,
            stats: TcpStats::default(),
        }
    }

    /// Feed one segment; calls `out` once per complete SIP message, in stream order, with
    /// transport Tcp, ts = timestamp of the segment that completed the message, src/dst of
    /// this direction, bytes borrowed from the segment or the stream buffer, and call_id
    /// offsets from framing.
    pub fn push(&mut self, seg: TcpSegment<'_>, out: &mut dyn FnMut(SipPayload<'_>)) {
        self.stats.segments += 1;
        let key = StreamKey {
            src: seg.src,
            dst: seg.dst,
        };
        let payload = seg.payload.get(..MAX_SEGMENT).unwrap_or(seg.payload);
        if seg.flags.rst {
            let reverse = StreamKey {
                src: seg.dst,
                dst: seg.src,
            };
            for k in [key, reverse] {
                self.with_stream(k, seg.ts, out, |st, cx| st.flush(cx));
                self.remove(&k);
            }
            return;
        }
        let data_seq = if seg.flags.syn {
            let isn = seg.seq;
            let same = self
                .streams
                .get(&key)
                .is_some_and(|s| s.syn_seq == Some(isn));
            if !same {
                // New connection (or a reused 4-tuple): start afresh.
                self.remove(&key);
                let st = Stream::new(isn.wrapping_add(1), Some(isn), Sync::InSync, seg.ts);
                self.insert(key, st);
            }
            isn.wrapping_add(1)
        } else {
            if !self.streams.contains_key(&key) {
                if payload.is_empty() {
                    return;
                }
                // Picked up mid-connection: find the first message start.
                let sync = Sync::Resync {
                    at_line_start: true,
                };
                self.insert(key, Stream::new(seg.seq, None, sync, seg.ts));
            }
            seg.seq
        };
        self.touch(key, seg.ts);
        self.reserve(key, payload.len());
        self.with_stream(key, seg.ts, out, |st, cx| {
            st.segment(data_seq, payload, cx);
            if seg.flags.fin {
                st.flush(cx);
            }
        });
        if seg.flags.fin {
            self.remove(&key);
        }
    }

    /// Drops streams idle for longer than the idle timeout.
    pub fn expire(&mut self, now: Timestamp) -> usize {
        let idle = self.limits.idle_timeout_us;
        let total = &mut self.total;
        let mut n = 0usize;
        self.streams.retain(|_, s| {
            let keep = now.0.saturating_sub(s.last_ts.0) <= idle;
            if !keep {
                n += 1;
                *total = total.saturating_sub(s.bytes());
            }
            keep
        });
        self.stats.streams_timed_out += n as u64;
        self.compact_lru();
        n
    }

    /// Directions currently tracked.
    pub fn active_streams(&self) -> usize {
        self.streams.len()
    }

    /// Bytes held across all streams (out-of-order segments include a fixed per-segment
    /// overhead).
    pub fn buffered_bytes(&self) -> usize {
        self.total
    }

    pub fn stats(&self) -> &TcpStats {
        &self.stats
    }

    fn budget(&self) -> usize {
        self.limits
            .max_stream_bytes
            .min(self.limits.max_total_bytes)
    }

    /// Runs `f` on a stream with a context, keeping the total byte count right.
    fn with_stream(
        &mut self,
        key: StreamKey,
        ts: Timestamp,
        out: &mut dyn FnMut(SipPayload<'_>),
        f: impl FnOnce(&mut Stream, &mut Ctx<'_>),
    ) {
        let budget = self.budget();
        let Some(st) = self.streams.get_mut(&key) else {
            return;
        };
        let before = st.bytes();
        let mut cx = Ctx {
            stats: &mut self.stats,
            max_message: self.limits.max_message,
            budget,
            ts,
            src: key.src,
            dst: key.dst,
            out,
        };
        f(st, &mut cx);
        self.total = self.total.saturating_sub(before).saturating_add(st.bytes());
    }

    fn insert(&mut self, key: StreamKey, st: Stream) {
        while self.streams.len() >= self.limits.max_streams.max(1) {
            if !self.evict_lru(None) {
                break;
            }
        }
        self.streams.insert(key, st);
    }

    fn remove(&mut self, key: &StreamKey) {
        if let Some(s) = self.streams.remove(key) {
            self.total = self.total.saturating_sub(s.bytes());
            self.compact_lru();
        }
    }

    fn touch(&mut self, key: StreamKey, ts: Timestamp) {
        self.touches = self.touches.wrapping_add(1);
        if let Some(s) = self.streams.get_mut(&key) {
            s.touch = self.touches;
            s.last_ts = ts;
            self.lru.push_back((self.touches, key));
        }
        self.compact_lru();
    }

    /// Makes room in the total budget for up to `len` more bytes in stream `key`.
    fn reserve(&mut self, key: StreamKey, len: usize) {
        let need = len.min(self.budget());
        let max = self.limits.max_total_bytes;
        while self.total.saturating_add(need) > max {
            if !self.evict_lru(Some(key)) {
                break;
            }
        }
        if self.total.saturating_add(need) > max {
            if let Some(st) = self.streams.get_mut(&key) {
                self.total = self.total.saturating_sub(st.bytes());
                st.drop_buffers(&mut self.stats);
            }
        }
    }

    /// Evicts the least recently active stream other than `keep`. False when there is none.
    fn evict_lru(&mut self, keep: Option<StreamKey>) -> bool {
        let mut kept = None;
        let mut evicted = false;
        while let Some((touch, key)) = self.lru.pop_front() {
            if !matches!(self.streams.get(&key), Some(s) if s.touch == touch) {
                continue;
            }
            if Some(key) == keep {
                kept = Some((touch, key));
                continue;
            }
            if let Some(s) = self.streams.remove(&key) {
                self.total = self.total.saturating_sub(s.bytes());
            }
            self.stats.streams_evicted += 1;
            evicted = true;
            break;
        }
        if let Some(k) = kept {
            self.lru.push_front(k);
        }
        evicted
    }

    /// Keeps the activity queue proportional to the table.
    fn compact_lru(&mut self) {
        if self.lru.len() > self.streams.len().saturating_mul(2).saturating_add(64) {
            let streams = &self.streams;
            self.lru
                .retain(|(touch, key)| streams.get(key).is_some_and(|s| s.touch == *touch));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a() -> SocketAddr {
        "192.0.2.1:5060".parse().unwrap()
    }

    fn b() -> SocketAddr {
        "198.51.100.2:5060".parse().unwrap()
    }

    fn invite(tag: &str, body_len: usize) -> Vec<u8> {
        let body: String = "v=0 sdp line\r\n".repeat(body_len / 14 + 1)[..body_len].to_string();
        format!(
            "INVITE sip:+13035550177@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/TCP 198.51.100.10\r\n\
             Call-ID: {tag}@host\r\nContent-Type: application/sdp\r\nContent-Length: {body_len}\r\n\r\n{body}"
        )
        .into_bytes()
    }

    fn ok(tag: &str) -> Vec<u8> {
        format!("SIP/2.0 200 OK\r\ni: {tag}@host\r\nl: 0\r\n\r\n").into_bytes()
    }

    #[derive(Debug, PartialEq, Eq)]
    struct Msg {
        bytes: Vec<u8>,
        call_id: Option<Vec<u8>>,
        ts: Timestamp,
        src: SocketAddr,
        dst: SocketAddr,
    }

    const SYN: TcpFlags = TcpFlags {
        syn: true,
        fin: false,
        rst: false,
    };
    const FIN: TcpFlags = TcpFlags {
        syn: false,
        fin: true,
        rst: false,
    };
    const RST: TcpFlags = TcpFlags {
        syn: false,
        fin: false,
        rst: true,
    };
    const NONE: TcpFlags = TcpFlags {
        syn: false,
        fin: false,
        rst: false,
    };

    fn push_from(
        r: &mut TcpReassembler,
        src: SocketAddr,
        dst: SocketAddr,
        seq: u32,
        flags: TcpFlags,
        payload: &[u8],
        micros: i64,
    ) -> Vec<Msg> {
        let mut got = Vec::new();
        let seg = TcpSegment {
            ts: Timestamp(micros),
            src,
            dst,
            seq,
            flags,
            payload,
        };
        r.push(seg, &mut |p: SipPayload<'_>| {
            assert_eq!(p.transport, Transport::Tcp);
            got.push(Msg {
                bytes: p.bytes.to_vec(),
                call_id: p.call_id.map(|(s, e)| p.bytes[s..e].to_vec()),
                ts: p.ts,
                src: p.src,
                dst: p.dst,
            });
        });
        assert!(r.buffered_bytes() <= r.limits.max_total_bytes);
        got
    }

    fn push(r: &mut TcpReassembler, seq: u32, flags: TcpFlags, payload: &[u8]) -> Vec<Msg> {
        push_from(r, a(), b(), seq, flags, payload, 0)
    }

    fn bytes(msgs: &[Msg]) -> Vec<Vec<u8>> {
        msgs.iter().map(|m| m.bytes.clone()).collect()
    }

    fn concat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn several_messages_in_one_segment() {
        let mut r = TcpReassembler::new(TcpLimits::default());
        assert!(push(&mut r, 1000, SYN, b"").is_empty());
        let (m1, m2, m3) = (invite("one", 120), ok("two"), invite("three", 0));
        let got = push_from(&mut r, a(), b(), 1001, NONE, &concat(&[&m1, &m2, &m3]), 7);
        assert_eq!(bytes(&got), vec![m1, m2, m3]);
        assert_eq!(got[0].call_id.as_deref(), Some(&b"one@host"[..]));
        assert_eq!(got[1].call_id.as_deref(), Some(&b"two@host"[..]));
        assert_eq!(
            (got[2].ts, got[2].src, got[2].dst),
            (Timestamp(7), a(), b())
        );
        assert_eq!(r.buffered_bytes(), 0);
        assert_eq!(r.stats().messages, 3);
        assert_eq!(r.stats().bytes_discarded, 0);
    }

    #[test]
    fn one_message_split_over_many_segments() {
        let m = invite("split", 200);
        for size in [1usize, 7, 100] {
            let mut r = TcpReassembler::new(TcpLimits::default());
            push(&mut r, 0, SYN, b"");
            let mut seq = 1u32;
            let mut got = Vec::new();
            let chunks: Vec<&[u8]> = m.chunks(size).collect();
            for (i, c) in chunks.iter().enumerate() {
                let out = push_from(&mut r, a(), b(), seq, NONE, c, i as i64);
                if i + 1 < chunks.len() {
                    assert!(out.is_empty(), "size {size}: early message at chunk {i}");
                }
                got.extend(out);
                seq += c.len() as u32;
            }
            assert_eq!(bytes(&got), vec![m.clone()], "size {size}");
            assert_eq!(got[0].ts, Timestamp(chunks.len() as i64 - 1));
            assert_eq!(r.buffered_bytes(), 0);
        }
    }

    #[test]
    fn out_of_order_and_retransmitted_segments() {
        let (m1, m2, m3) = (invite("a", 50), ok("b"), invite("c", 300));
        let stream = concat(&[&m1, &m2, &m3]);
        let cuts = [0, 40, 90, 150, 200, 260, stream.len()];
        let seg = |i: usize| (1 + cuts[i] as u32, &stream[cuts[i]..cuts[i + 1]]);
        let mut r = TcpReassembler::new(TcpLimits::default());
        push(&mut r, 0, SYN, b"");
        let mut got = Vec::new();
        for i in [0usize, 2, 4, 1, 1, 3, 0, 5, 2] {
            let (s, d) = seg(i);
            got.extend(push(&mut r, s, NONE, d));
        }
        // A retransmission overlapping old and no data, then one re-covering everything.
        got.extend(push(&mut r, 30, NONE, &stream[29..]));
        assert_eq!(bytes(&got), vec![m1, m2, m3]);
        assert!(r.stats().out_of_order >= 2);
        assert!(r.stats().retransmissions >= 4);
        assert_eq!(r.stats().bytes_discarded, 0);
        assert_eq!(r.buffered_bytes(), 0);
    }

    #[test]
    fn mid_stream_start_skips_junk_before_a_message() {
        let m = invite("mid", 40);
        let junk = b"a=rtpmap:0 PCMU/8000\r\nsome body tail without sip\r\n";
        let mut r = TcpReassembler::new(TcpLimits::default());
        let got = push(&mut r, 777_777, NONE, &concat(&[junk, &m]));
        assert_eq!(bytes(&got), vec![m.clone()]);
        assert_eq!(r.stats().bytes_discarded, junk.len() as u64);
        // A start-line lookalike in the middle of a junk line is not a message start, even
        // when the line was cut across segments.
        let mut r = TcpReassembler::new(TcpLimits::default());
        let line = b"xxxxxxxxxxxxxxxxxxxxxxxxxxxx";
        assert!(push(&mut r, 5, NONE, line).is_empty());
        let fake = b"INVITE sip:fake@h SIP/2.0\r\nContent-Length: 0\r\n\r\n";
        let second = concat(&[fake, &m]);
        let got = push(&mut r, 5 + line.len() as u32, NONE, &second);
        assert_eq!(bytes(&got), vec![m.clone()]);
        // A short partial line at the end of junk is kept: it may be a start line.
        let mut r = TcpReassembler::new(TcpLimits::default());
        let (head, tail) = m.split_at(4);
        assert!(push(&mut r, 1, NONE, &concat(&[b"junk\r\n", head])).is_empty());
        let got = push(&mut r, 11, NONE, tail);
        assert_eq!(bytes(&got), vec![m]);
    }

    #[test]
    fn keepalive_crlfs_between_messages() {
        let (m1, m2) = (ok("k1"), invite("k2", 10));
        let mut r = TcpReassembler::new(TcpLimits::default());
        push(&mut r, 9, SYN, b"");
        let mut seq = 10u32;
        let mut got = Vec::new();
        for part in [
            &b"\r\n\r\n"[..],
            &m1,
            b"\r\n",
            b"\r\n\r\n",
            &m2,
            b"\r\n\r\n",
        ] {
            got.extend(push(&mut r, seq, NONE, part));
            seq += part.len() as u32;
        }
        assert_eq!(bytes(&got), vec![m1, m2]);
        assert_eq!(r.stats().framing_errors, 0);
        assert_eq!(r.stats().bytes_discarded, 0);
        assert_eq!(r.buffered_bytes(), 0);
    }

    #[test]
    fn gap_over_budget_is_skipped_and_later_messages_come_out() {
        let limits = TcpLimits {
            max_stream_bytes: 4096,
            ..TcpLimits::default()
        };
        let mut r = TcpReassembler::new(limits);
        push(&mut r, 0, SYN, b"");
        let first = invite("before", 20);
        assert_eq!(bytes(&push(&mut r, 1, NONE, &first)), vec![first.clone()]);
        let lost = invite("lost", 400);
        let later: Vec<Vec<u8>> = (0..20).map(|i| invite(&format!("l{i}"), 200)).collect();
        let mut seq = 1 + (first.len() + lost.len()) as u32;
        let mut got = Vec::new();
        for m in &later {
            got.extend(push(&mut r, seq, NONE, m));
            seq += m.len() as u32;
            assert!(r.buffered_bytes() <= 4096);
        }
        assert_eq!(r.stats().gaps_skipped, 1);
        // Everything after the gap comes out except what is still held under the budget.
        assert!(got.len() >= 12, "{}", got.len());
        assert_eq!(bytes(&got), later[..got.len()].to_vec());
        // The lost segment arriving late is old data now.
        assert!(push(&mut r, 1 + first.len() as u32, NONE, &lost).is_empty());
        // FIN flushes the rest.
        let fin = push(&mut r, seq, FIN, b"");
        assert_eq!(got.len() + fin.len(), later.len());
        assert_eq!(r.active_streams(), 0);
        assert_eq!(r.buffered_bytes(), 0);
    }

    #[test]
    fn fin_and_rst_clean_up() {
        let m = ok("fin");
        let mut r = TcpReassembler::new(TcpLimits::default());
        push(&mut r, 0, SYN, b"");
        push_from(&mut r, b(), a(), 500, SYN, b"", 0);
        assert_eq!(r.active_streams(), 2);
        // FIN carrying the last message delivers it, then removes that direction only.
        assert_eq!(bytes(&push(&mut r, 1, FIN, &m)), vec![m.clone()]);
        assert_eq!(r.active_streams(), 1);
        // A FIN after a gap still delivers what follows the gap.
        push(&mut r, 0, SYN, b"");
        let (m1, m2) = (ok("x"), ok("y"));
        assert!(push(&mut r, 1 + m1.len() as u32 + 3, NONE, &m2).is_empty());
        let got = push(&mut r, 1 + (m1.len() + 3 + m2.len()) as u32, FIN, b"");
        assert_eq!(bytes(&got), vec![m2]);
        assert_eq!(r.stats().gaps_skipped, 1);
        // RST removes both directions and frees their bytes.
        push(&mut r, 0, SYN, b"");
        push(&mut r, 1, NONE, &m[..10]);
        push_from(&mut r, b(), a(), 501, NONE, &m[..5], 0);
        assert!(r.buffered_bytes() > 0);
        push_from(&mut r, b(), a(), 506, RST, b"", 0);
        assert_eq!(r.active_streams(), 0);
        assert_eq!(r.buffered_bytes(), 0);
    }

    #[test]
    fn idle_streams_expire() {
        let mut r = TcpReassembler::new(TcpLimits::default());
        push_from(&mut r, a(), b(), 0, NONE, b"INVITE sip:x", 0);
        push_from(&mut r, b(), a(), 0, NONE, b"SIP/2.0 1", 200_000_000);
        assert_eq!(r.active_streams(), 2);
        assert_eq!(r.buffered_bytes(), 12 + 9);
        assert_eq!(r.expire(Timestamp(300_000_000)), 0);
        assert_eq!(r.expire(Timestamp(300_000_001)), 1);
        assert_eq!(r.active_streams(), 1);
        assert_eq!(r.buffered_bytes(), 9);
        assert_eq!(r.stats().streams_timed_out, 1);
    }

    #[test]
    fn table_full_evicts_least_recently_active() {
        let limits = TcpLimits {
            max_streams: 2,
            ..TcpLimits::default()
        };
        let mut r = TcpReassembler::new(limits);
        let port = |p: u16| SocketAddr::new(a().ip(), p);
        let m = ok("evict");
        let (head, tail) = m.split_at(20);
        for p in [1, 2] {
            push_from(&mut r, port(p), b(), 0, SYN, b"", 0);
            push_from(&mut r, port(p), b(), 1, NONE, head, 0);
        }
        // Stream 1 is active again, so stream 2 is the least recently active.
        push_from(&mut r, port(1), b(), 1, NONE, b"", 0);
        push_from(&mut r, port(3), b(), 0, SYN, b"", 0);
        assert_eq!(r.stats().streams_evicted, 1);
        assert_eq!(r.active_streams(), 2);
        let seq = 1 + head.len() as u32;
        assert_eq!(
            bytes(&push_from(&mut r, port(1), b(), seq, NONE, tail, 0)),
            vec![m.clone()]
        );
        // Stream 2 lost its partial message; it comes back as a mid-stream pickup.
        assert!(push_from(&mut r, port(2), b(), seq, NONE, tail, 0).is_empty());
        assert_eq!(r.stats().streams_evicted, 2);
        assert_eq!(r.active_streams(), 2);
    }

    #[test]
    fn total_budget_is_never_exceeded() {
        let limits = TcpLimits {
            max_total_bytes: 3000,
            max_stream_bytes: 2000,
            ..TcpLimits::default()
        };
        let mut r = TcpReassembler::new(limits);
        let m = invite("big", 1500);
        for p in 1..20u16 {
            let src = SocketAddr::new(a().ip(), p);
            push_from(&mut r, src, b(), 0, SYN, b"", 0);
            push_from(&mut r, src, b(), 1, NONE, &m[..1000], 0);
            assert!(r.buffered_bytes() <= 3000);
        }
        assert_eq!(r.stats().streams_evicted, 16);
        // The most recent stream survived and completes its message.
        let src = SocketAddr::new(a().ip(), 19);
        assert_eq!(
            bytes(&push_from(&mut r, src, b(), 1001, NONE, &m[1000..], 0)),
            vec![m]
        );
    }

    #[test]
    fn body_spanning_segments_waits_for_content_length() {
        let m = invite("body", 600);
        let header_end = m.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let mut r = TcpReassembler::new(TcpLimits::default());
        push(&mut r, 0, SYN, b"");
        let cuts = [0, header_end - 2, header_end + 1, header_end + 300, m.len()];
        let mut got = Vec::new();
        for w in cuts.windows(2) {
            assert!(got.is_empty());
            got.extend(push(&mut r, 1 + w[0] as u32, NONE, &m[w[0]..w[1]]));
        }
        assert_eq!(bytes(&got), vec![m]);
    }

    #[test]
    fn oversized_message_rejected_without_unbounded_buffering() {
        let limits = TcpLimits {
            max_message: 1000,
            ..TcpLimits::default()
        };
        let after = ok("after");
        // Content-Length beyond the limit.
        let mut r = TcpReassembler::new(limits);
        push(&mut r, 0, SYN, b"");
        let big = invite("big", 14 * 357);
        let stream = concat(&[&big, &after]);
        let mut got = Vec::new();
        for (i, c) in stream.chunks(500).enumerate() {
            got.extend(push(&mut r, 1 + (i * 500) as u32, NONE, c));
            assert!(r.buffered_bytes() <= 1000);
        }
        assert!(r.stats().framing_errors >= 1);
        assert_eq!(bytes(&got).last(), Some(&after));
        // Headers that never end.
        let mut r = TcpReassembler::new(limits);
        push(&mut r, 0, SYN, b"");
        let mut seq = 1u32;
        let mut got = push(&mut r, seq, NONE, b"INVITE sip:x@h SIP/2.0\r\n");
        seq += 24;
        for _ in 0..200 {
            let line = b"X-Junk: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
            got.extend(push(&mut r, seq, NONE, line));
            seq += line.len() as u32;
            assert!(r.buffered_bytes() < 1000);
        }
        got.extend(push(&mut r, seq, NONE, &after));
        assert_eq!(bytes(&got), vec![after]);
        assert!(r.stats().framing_errors >= 1);
    }

    #[test]
    fn sequence_numbers_wrap_at_2_pow_32() {
        let (m1, m2) = (invite("w1", 100), invite("w2", 100));
        let stream = concat(&[&m1, &m2]);
        let isn = u32::MAX - 60;
        let mut r = TcpReassembler::new(TcpLimits::default());
        push(&mut r, isn, SYN, b"");
        let base = isn.wrapping_add(1);
        let cuts = [0, 30, 90, 200, stream.len()];
        let seq = |i: usize| base.wrapping_add(cuts[i] as u32);
        let mut got = Vec::new();
        // Out of order across the wrap, plus a retransmission from before it.
        got.extend(push(&mut r, seq(1), NONE, &stream[cuts[1]..cuts[2]]));
        got.extend(push(&mut r, seq(0), NONE, &stream[cuts[0]..cuts[1]]));
        got.extend(push(&mut r, seq(0), NONE, &stream[cuts[0]..cuts[2]]));
        got.extend(push(&mut r, seq(3), NONE, &stream[cuts[3]..cuts[4]]));
        got.extend(push(&mut r, seq(2), NONE, &stream[cuts[2]..cuts[3]]));
        assert_eq!(bytes(&got), vec![m1, m2]);
        assert_eq!(r.buffered_bytes(), 0);
    }

    #[test]
    fn syn_retransmission_keeps_state_and_new_syn_resets() {
        let m = ok("syn");
        let mut r = TcpReassembler::new(TcpLimits::default());
        push(&mut r, 100, SYN, b"");
        push(&mut r, 101, NONE, &m[..10]);
        push(&mut r, 100, SYN, b"");
        assert_eq!(bytes(&push(&mut r, 111, NONE, &m[10..])), vec![m.clone()]);
        push(&mut r, 101 + m.len() as u32, NONE, &m[..10]);
        assert_eq!(r.buffered_bytes(), 10);
        push(&mut r, 9000, SYN, b"");
        assert_eq!(r.buffered_bytes(), 0);
        assert_eq!(bytes(&push(&mut r, 9001, NONE, &m)), vec![m]);
    }

    #[test]
    fn bare_ack_for_unknown_stream_creates_nothing() {
        let mut r = TcpReassembler::new(TcpLimits::default());
        push(&mut r, 5, NONE, b"");
        push(&mut r, 5, FIN, b"");
        assert_eq!(r.active_streams(), 0);
    }

    #[test]
    fn wait_hint_never_delays_framing() {
        let msgs = [
            invite("h", 300),
            ok("h"),
            b"SIP/2.0 180 Ringing\nl : 5\n\nabcde".to_vec(),
            b"BYE sip:a@b SIP/2.0\r\nContent-Length:  \t12 \r\nContent-Length: 3\r\n\r\nxyz"
                .to_vec(),
        ];
        let max = 65_535;
        for m in &msgs {
            for cut in 1..m.len() {
                let prefix = &m[..cut];
                if frame(prefix, FrameMode::Stream, max) != FrameOutcome::Incomplete {
                    continue;
                }
                let hint = wait_hint(prefix);
                for later in cut + 1..=m.len() {
                    if frame(&m[..later], FrameMode::Stream, max) == FrameOutcome::Incomplete {
                        continue;
                    }
                    let would_run = match hint {
                        Wait::Any => true,
                        Wait::Length(n) => later >= n,
                        Wait::BlankLine { scan_from } => {
                            later >= max || has_blank_line(&m[scan_from..later])
                        }
                    };
                    assert!(would_run, "cut {cut} later {later} hint {hint:?}");
                }
            }
        }
    }
}

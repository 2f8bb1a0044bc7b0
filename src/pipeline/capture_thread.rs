//! A capture thread: reads its sources (files one after another, one live interface, or the
//! HEP listeners),
//! decodes every frame and dispatches the SIP messages. It also drives time: every second of
//! packet time (replay) or clock time (live) it expires reassembly state, ticks the workers and
//! publishes its counters.

use super::dispatch::Dispatcher;
use crate::capture::decode::Decoder;
use crate::capture::source::{DropCounters, FrameKind, FrameSource, Next, SourceError};
use crate::clock::{Clock, ManualClock, Timestamp};
use crate::metrics::latency::{LocalLatency, Stage, SAMPLE_EVERY};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TICK_US: i64 = 1_000_000;
/// Live: the longest a message may wait in a partly filled batch. At 10,000 signed INVITEs/s
/// over two workers a batch of 64 takes ~13 ms to fill, so this bound is the INVITE-to-verdict
/// latency (5 ms gave a p99 near 10 ms); a flush costs one channel send per worker.
const LIVE_FLUSH: Duration = Duration::from_micros(500);

pub struct CaptureThread {
    pub sources: Vec<Box<dyn FrameSource>>,
    pub decoder: Decoder,
    pub dispatcher: Dispatcher,
    pub metrics: Arc<Metrics>,
    pub stop: Shutdown,
    pub clock: Arc<dyn Clock>,
    /// Label of `packets_total{source}`: "file" or the interface name.
    pub label: String,
    pub progress: bool,
    pub stats_interval: Duration,
    /// Replay: the clock that follows packet time (verification and certificate cache).
    pub packet_clock: Option<Arc<ManualClock>>,
    /// Readiness of capture (/healthz): a source that fails marks it not ok.
    pub health: Arc<crate::health::Component>,
}

#[derive(Debug, Default)]
pub struct CaptureOutcome {
    /// The latest packet time seen (replay) or the clock at the end (live).
    pub last_ts: Timestamp,
    pub read_errors: Vec<String>,
}

/// What has already been published, so each publish adds only the difference.
#[derive(Default)]
struct Published {
    frames: u64,
    bytes: u64,
    ignored: u64,
    duplicates: u64,
    errors: BTreeMap<&'static str, u64>,
    reassembly: BTreeMap<(&'static str, &'static str), u64>,
    queue_drops: u64,
    batches_allocated: u64,
    pcap: DropCounters,
}

impl CaptureThread {
    pub fn run(self) -> CaptureOutcome {
        let CaptureThread {
            sources,
            mut decoder,
            mut dispatcher,
            metrics,
            stop,
            clock,
            label,
            progress,
            stats_interval,
            packet_clock,
            health,
        } = self;
        let mut published = Published::default();
        let mut latency = LocalLatency::new(metrics.latency.clone());
        let mut sampled: u64 = 0;
        let mut outcome = CaptureOutcome::default();
        let mut next_tick = i64::MIN;
        let started = Instant::now();
        let mut last_progress = started;
        let mut last_flush = started;
        let mut last_stats = started;
        for mut source in sources {
            let kind = source.kind();
            let live = source.is_live();
            let mut frames: u64 = 0;
            loop {
                if stop.is_set() || dispatcher.workers_gone {
                    break;
                }
                let now_ts;
                match source.next_frame() {
                    Ok(Next::Frame(f)) => {
                        frames += 1;
                        sampled += 1;
                        // One frame in SAMPLE_EVERY is timed: a counter test per frame, a
                        // clock read per sample.
                        let arrival = (sampled % SAMPLE_EVERY == 0).then(Instant::now);
                        if let Some(a) = arrival {
                            if live {
                                latency.record(Stage::Capture, since_packet_time(f.ts));
                            }
                            dispatcher.sample = Some(a);
                            dispatcher.sample_used = false;
                        }
                        let out =
                            &mut |p: crate::capture::packet::SipPayload<'_>| dispatcher.push(&p);
                        match kind {
                            FrameKind::Link(linktype) => {
                                decoder.decode(linktype, f.ts, f.data, out)
                            }
                            FrameKind::Hep => decoder.decode_hep(f.ts, f.data, out),
                        }
                        if let Some(a) = arrival {
                            if dispatcher.sample_used {
                                latency.record_since(Stage::Decode, a);
                            }
                            dispatcher.sample = None;
                        }
                        outcome.last_ts = outcome.last_ts.max(f.ts);
                        now_ts = if live { clock.now() } else { outcome.last_ts };
                    }
                    Ok(Next::Idle) => {
                        now_ts = clock.now();
                        decoder.release_held(now_ts, &mut |p| dispatcher.push(&p));
                        dispatcher.flush();
                        last_flush = Instant::now();
                    }
                    Ok(Next::End) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "capture source failed; moving on");
                        if live {
                            health.set_failed(format!("{}: {e}", source.name()));
                        }
                        outcome.read_errors.push(e.to_string());
                        if matches!(e, SourceError::Read { .. }) {
                            metrics
                                .decode_errors
                                .with_label_values(&["capture_read"])
                                .inc();
                        }
                        break;
                    }
                }
                if live && last_flush.elapsed() >= LIVE_FLUSH {
                    dispatcher.flush();
                    last_flush = Instant::now();
                }
                if now_ts.0 >= next_tick {
                    if let Some(c) = &packet_clock {
                        c.advance_to(now_ts);
                    }
                    decoder.expire(now_ts);
                    dispatcher.tick(now_ts);
                    if live && last_stats.elapsed() >= stats_interval {
                        if let Some(d) = source.drops() {
                            publish_pcap_drops(&metrics, &mut published, d);
                        }
                        last_stats = Instant::now();
                    }
                    publish(&metrics, &label, &decoder, &dispatcher, &mut published);
                    latency.maybe_merge();
                    next_tick = now_ts.0 + TICK_US;
                }
                if progress
                    && frames % 4096 == 0
                    && last_progress.elapsed() >= Duration::from_secs(1)
                {
                    last_progress = Instant::now();
                    let secs = started.elapsed().as_secs_f64().max(1e-9);
                    let s = &decoder.stats;
                    eprint!(
                        "\r{}: {} packets, {:.1} MB, {:.0} packets/s, {} SIP messages   ",
                        source.name(),
                        s.frames,
                        s.bytes as f64 / 1e6,
                        s.frames as f64 / secs,
                        s.sip_messages
                    );
                    let _ = std::io::stderr().flush();
                }
            }
            if live {
                if let Some(d) = source.drops() {
                    publish_pcap_drops(&metrics, &mut published, d);
                }
                outcome.last_ts = clock.now();
            }
        }
        if progress {
            eprintln!();
        }
        decoder.flush_held(&mut |p| dispatcher.push(&p));
        dispatcher.flush();
        publish(&metrics, &label, &decoder, &dispatcher, &mut published);
        latency.merge();
        outcome
    }
}

/// Wall-clock time since a live frame's kernel timestamp (zero if the clock stepped back).
fn since_packet_time(ts: crate::clock::Timestamp) -> Duration {
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    Duration::from_micros(now_us.saturating_sub(ts.0).max(0) as u64)
}

fn publish_pcap_drops(m: &Metrics, p: &mut Published, d: DropCounters) {
    // libpcap's counters are per handle and only grow (they wrap at 2^32 on some platforms).
    let kernel = d.kernel.saturating_sub(p.pcap.kernel);
    let iface = d.interface.saturating_sub(p.pcap.interface);
    m.capture_drops
        .with_label_values(&["kernel"])
        .inc_by(kernel);
    m.capture_drops.with_label_values(&["iface"]).inc_by(iface);
    p.pcap = d;
}

fn publish(m: &Metrics, label: &str, d: &Decoder, disp: &Dispatcher, p: &mut Published) {
    let s = &d.stats;
    m.packets
        .with_label_values(&[label])
        .inc_by(s.frames - p.frames);
    m.capture_bytes
        .with_label_values(&[label])
        .inc_by(s.bytes - p.bytes);
    m.packets_ignored.inc_by(s.ignored - p.ignored);
    p.frames = s.frames;
    p.bytes = s.bytes;
    p.ignored = s.ignored;
    let copies = d.copies();
    m.duplicate_packets
        .inc_by(copies.duplicates.saturating_sub(p.duplicates));
    p.duplicates = copies.duplicates;
    for (kind, &n) in &s.errors {
        let before = p.errors.entry(kind).or_insert(0);
        if n > *before {
            m.decode_errors
                .with_label_values(&[kind])
                .inc_by(n - *before);
            *before = n;
        }
    }
    let df = d.defrag().stats();
    let tc = d.tcp().stats();
    let events: [(&'static str, &'static str, u64); 17] = [
        ("defrag", "completed", df.completed),
        ("defrag", "timed_out", df.timed_out),
        ("defrag", "evicted", df.evicted),
        ("defrag", "duplicate", df.duplicates),
        ("defrag", "overlap_conflict", df.overlap_conflicts),
        ("defrag", "too_large", df.too_large),
        ("defrag", "inconsistent", df.inconsistent),
        ("defrag", "too_fragmented", df.too_fragmented),
        ("tcp", "retransmission", tc.retransmissions),
        ("tcp", "out_of_order", tc.out_of_order),
        ("tcp", "gap_skipped", tc.gaps_skipped),
        ("tcp", "stream_evicted", tc.streams_evicted),
        ("tcp", "stream_timed_out", tc.streams_timed_out),
        ("tcp", "bytes_discarded", tc.bytes_discarded),
        ("tcp", "framing_error", tc.framing_errors),
        ("tcp", "message", tc.messages),
        ("dedup", "evicted", copies.evicted),
    ];
    for (table, event, n) in events {
        let before = p.reassembly.entry((table, event)).or_insert(0);
        if n > *before {
            m.reassembly_events
                .with_label_values(&[table, event])
                .inc_by(n - *before);
            *before = n;
        }
    }
    // Each capture thread owns its tables: one gauge per source.
    let gauge = |g: &prometheus::IntGaugeVec, v: usize| g.with_label_values(&[label]).set(v as i64);
    gauge(&m.fragments_pending, d.defrag().pending());
    gauge(&m.fragment_bytes, d.defrag().buffered_bytes());
    gauge(&m.tcp_streams_active, d.tcp().active_streams());
    gauge(&m.tcp_buffered_bytes, d.tcp().buffered_bytes());
    if disp.batches_allocated > p.batches_allocated {
        m.batch_pool_events
            .with_label_values(&["allocated"])
            .inc_by(disp.batches_allocated - p.batches_allocated);
        p.batches_allocated = disp.batches_allocated;
    }
    if disp.dropped_messages > p.queue_drops {
        m.capture_drops
            .with_label_values(&["queue"])
            .inc_by(disp.dropped_messages - p.queue_drops);
        p.queue_drops = disp.dropped_messages;
    }
}

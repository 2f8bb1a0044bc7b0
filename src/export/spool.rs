//! The durable spool between the sensor and the collector: two append-only segment logs on
//! disk, one per [`Kind`] (DetectionEvents, CallRecords), each with an ack file saying how far
//! delivery got. A record is *accepted* once [`Spool::append`] returned; it leaves the spool
//! only when the collector acknowledged it ([`Spool::ack`]), when it was dead-lettered, or when
//! the size cap sheds it (counted in `records_shed_total`).
//!
//! Several batches may be out at once ([`Spool::next_batch`], [`Spool::delivered`]): the ack
//! position then moves only over a contiguous run of delivered batches ([`InFlight`]), and the
//! ends of the batches out are kept in `DIR/{detection,call}/inflight` so a restart cuts them
//! at the same places (same Idempotency-Keys).
//!
//! Layout: `DIR/{detection,call}/seg-NNNNNNNNNNNNNNNN.log` and `DIR/{detection,call}/ack`.
//! Frame: `len u32 LE | crc32 u32 LE | appended_at_ms u64 LE | payload (len bytes)`; the CRC
//! covers the timestamp and the payload. On open every segment is scanned: a torn or corrupt
//! tail (SIGKILL mid-write, power loss) is truncated at the last whole frame and counted.
//!
//! The spool knows nothing of the record types: it takes serialized JSON bytes and a kind, so
//! any producer can feed it. It must never hold more than `max_bytes` on disk (the cap sheds the
//! oldest CallRecord segments first, DetectionEvents only when no CallRecord is left), never
//! lose an unacknowledged record except by a counted shed, and never panic on a damaged file.

use super::inflight::InFlight;
use crate::clock::{Clock, SystemClock};
use crate::metrics::Metrics;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Frame header: length, CRC, append time.
pub const FRAME_HEADER: u64 = 16;
/// Largest record accepted (bytes of JSON). A CallRecord is ~1-2 KB.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// The two priority classes: detections are delivered before call records and shed last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Detection,
    CallRecord,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Detection, Kind::CallRecord];

    /// Directory name, metric label and part of the Idempotency-Key.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Detection => "detection",
            Kind::CallRecord => "call",
        }
    }

    fn index(self) -> usize {
        match self {
            Kind::Detection => 0,
            Kind::CallRecord => 1,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fsync after every appended batch: an accepted record survives power loss.
    EveryBatch,
    /// fsync at most this often ([`Spool::sync_if_due`]); a SIGKILL loses nothing (the page
    /// cache survives it), a power loss at most this much.
    Interval(Duration),
}

#[derive(Clone, Debug)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    /// Cap on the bytes of all segments of both classes.
    pub max_bytes: u64,
    pub fsync: FsyncPolicy,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("record of {0} bytes is larger than the spool's limit of {MAX_RECORD_BYTES}")]
    TooLarge(usize),
    #[error("spool.max_bytes {0} is too small (at least 64 KiB)")]
    CapTooSmall(u64),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A place in a class's log: segment id and byte offset in it. Ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// Records read for delivery, from the ack position on. Acknowledge with [`Spool::ack`].
#[derive(Debug)]
pub struct Batch {
    pub kind: Kind,
    pub start: Position,
    pub end: Position,
    pub records: Vec<Vec<u8>>,
    /// Append time (Unix ms) of the first record: how long delivery is behind.
    pub first_appended_ms: u64,
    /// Records per segment, so an ack after a shed subtracts only what is still counted.
    per_segment: Vec<(u64, u64)>,
}

impl Batch {
    pub fn payload_bytes(&self) -> usize {
        self.records.iter().map(|r| r.len()).sum()
    }
}

#[derive(Debug)]
struct Segment {
    id: u64,
    bytes: u64,
    records: u64,
}

struct ClassLog {
    kind: Kind,
    dir: PathBuf,
    segments: Vec<Segment>,
    writer: Option<BufWriter<File>>,
    ack: Position,
    /// Records after the ack position.
    pending: u64,
    dirty: bool,
    /// Batches out for delivery through [`Spool::next_batch`], tagged with their per-segment
    /// record counts.
    inflight: InFlight<Vec<(u64, u64)>>,
}

struct Inner {
    classes: [ClassLog; 2],
    max_bytes: u64,
    segment_bytes: u64,
    fsync: FsyncPolicy,
    last_sync: Instant,
    metrics: Arc<Metrics>,
}

/// The spool. Cheap to share (`Arc`); every method takes `&self` and locks briefly.
pub struct Spool {
    inner: Mutex<Inner>,
    id: String,
}

/// Wall-clock milliseconds (also in replay: the age of the backlog is real time).
pub fn now_ms() -> u64 {
    (SystemClock.now().micros() / 1000).max(0) as u64
}

/// The spool's identity, created with it (`DIR/id`): batch ids built from positions stay unique
/// even when a spool directory is wiped and recreated, so the collector never mistakes a new
/// batch for one it has seen.
fn instance_id(dir: &Path) -> Result<String, SpoolError> {
    let path = dir.join("id");
    if let Ok(id) = fs::read_to_string(&path) {
        let id = id.trim();
        if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Ok(id.to_string());
        }
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(
        &(SystemClock.now().micros(), std::process::id(), dir),
        &mut h,
    );
    let id = format!("{:016x}", std::hash::Hasher::finish(&h));
    fs::write(&path, format!("{id}\n")).map_err(io_err(&path))?;
    Ok(id)
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("seg-{id:016}.log"))
}

fn crc(ts: &[u8; 8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(ts);
    h.update(payload);
    h.finalize()
}

/// One frame read from `r`: (append ms, payload); None at a clean end or a torn/corrupt frame
/// (the caller tells them apart by the offset it reached vs the file length).
fn read_frame(r: &mut impl Read) -> Option<(u64, Vec<u8>)> {
    let mut head = [0u8; FRAME_HEADER as usize];
    r.read_exact(&mut head).ok()?;
    let len = u32::from_le_bytes(head[0..4].try_into().ok()?) as usize;
    let sum = u32::from_le_bytes(head[4..8].try_into().ok()?);
    let ts: [u8; 8] = head[8..16].try_into().ok()?;
    if len > MAX_RECORD_BYTES {
        return None;
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).ok()?;
    (crc(&ts, &payload) == sum).then(|| (u64::from_le_bytes(ts), payload))
}

/// Scans a segment: the length of its whole, valid frames and their count, plus the count of
/// those starting at or after `from`.
fn scan(path: &Path, from: u64) -> Result<(u64, u64, u64), SpoolError> {
    let f = File::open(path).map_err(io_err(path))?;
    let mut r = io::BufReader::with_capacity(1 << 16, f);
    let (mut good, mut count, mut after) = (0u64, 0u64, 0u64);
    while let Some((_, p)) = read_frame(&mut r) {
        if good >= from {
            after += 1;
        }
        good += FRAME_HEADER + p.len() as u64;
        count += 1;
    }
    Ok((good, count, after))
}

impl ClassLog {
    fn open(root: &Path, kind: Kind, metrics: &Metrics) -> Result<ClassLog, SpoolError> {
        let dir = root.join(kind.as_str());
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut ids: Vec<u64> = fs::read_dir(&dir)
            .map_err(io_err(&dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_prefix("seg-")?
                    .strip_suffix(".log")?
                    .parse()
                    .ok()
            })
            .collect();
        ids.sort_unstable();
        let mut ack = read_ack(&dir.join("ack"));
        // Segments wholly before the ack were delivered; a crash between ack and delete left them.
        for id in ids.iter().filter(|&&id| id < ack.segment) {
            let _ = fs::remove_file(segment_path(&dir, *id));
        }
        ids.retain(|&id| id >= ack.segment);
        if ids.first().is_some_and(|&first| first > ack.segment) || ids.is_empty() {
            ack = Position {
                segment: ids.first().copied().unwrap_or(ack.segment),
                offset: 0,
            };
        }
        let mut segments = Vec::with_capacity(ids.len());
        let mut pending = 0;
        for id in ids {
            let path = segment_path(&dir, id);
            let from = if id == ack.segment { ack.offset } else { 0 };
            let (good, count, after) = scan(&path, from)?;
            let len = fs::metadata(&path).map_err(io_err(&path))?.len();
            if good < len {
                tracing::warn!(
                    segment = %path.display(),
                    kept_bytes = good,
                    dropped_bytes = len - good,
                    "spool: torn or corrupt tail truncated"
                );
                metrics.spool_torn_tail.inc();
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                f.set_len(good).map_err(io_err(&path))?;
                f.sync_all().map_err(io_err(&path))?;
            }
            if id == ack.segment && ack.offset > good {
                ack.offset = good;
            }
            pending += after;
            segments.push(Segment {
                id,
                bytes: good,
                records: count,
            });
        }
        let inflight = InFlight::resume(ack, read_boundaries(&dir.join("inflight")));
        Ok(ClassLog {
            kind,
            dir,
            segments,
            writer: None,
            ack,
            pending,
            dirty: false,
            inflight,
        })
    }

    fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// The writer on the last segment, rolling to a new one past `segment_bytes`.
    fn writer(&mut self, segment_bytes: u64) -> Result<&mut BufWriter<File>, SpoolError> {
        let roll = self
            .segments
            .last()
            .is_none_or(|s| s.bytes >= segment_bytes);
        if roll {
            self.flush_writer()?;
            self.writer = None;
            let id = self.segments.last().map_or(self.ack.segment, |s| s.id + 1);
            self.segments.push(Segment {
                id,
                bytes: 0,
                records: 0,
            });
        }
        if self.writer.is_none() {
            let id = self.segments.last().map_or(0, |s| s.id);
            let path = segment_path(&self.dir, id);
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io_err(&path))?;
            self.writer = Some(BufWriter::with_capacity(1 << 16, f));
        }
        Ok(self.writer.as_mut().expect("writer just opened"))
    }

    fn flush_writer(&mut self) -> Result<(), SpoolError> {
        if let Some(w) = self.writer.as_mut() {
            w.flush().map_err(io_err(&self.dir))?;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), SpoolError> {
        if let Some(w) = self.writer.as_mut() {
            w.flush().map_err(io_err(&self.dir))?;
            if self.dirty {
                w.get_ref().sync_data().map_err(io_err(&self.dir))?;
            }
        }
        self.dirty = false;
        Ok(())
    }

    /// Deletes the oldest segment, returning the undelivered records it held.
    fn shed_oldest(&mut self) -> Result<u64, SpoolError> {
        if self.segments.is_empty() {
            return Ok(0);
        }
        if self.segments.len() == 1 {
            self.writer = None; // the active segment goes too; the next append starts a new one
        }
        let seg = self.segments.remove(0);
        let undelivered = if seg.id == self.ack.segment {
            self.pending
                .min(seg.records)
                .min(self.undelivered_in_head(&seg)?)
        } else {
            seg.records
        };
        let path = segment_path(&self.dir, seg.id);
        fs::remove_file(&path).map_err(io_err(&path))?;
        self.pending -= undelivered.min(self.pending);
        self.ack = Position {
            segment: self.segments.first().map_or(seg.id + 1, |s| s.id),
            offset: 0,
        };
        self.inflight.skip_to(self.ack);
        write_ack(&self.dir, self.ack)?;
        Ok(undelivered)
    }

    fn undelivered_in_head(&self, seg: &Segment) -> Result<u64, SpoolError> {
        if self.ack.offset == 0 {
            return Ok(seg.records);
        }
        let (_, _, after) = scan(&segment_path(&self.dir, seg.id), self.ack.offset)?;
        Ok(after)
    }
}

impl ClassLog {
    /// Up to the limits (at least one record) from `from` on, ending at `stop` if given; None
    /// when there is nothing there.
    fn read_from(
        &self,
        from: Position,
        stop: Option<Position>,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Option<Batch>, SpoolError> {
        let mut pos = from;
        let mut batch = Batch {
            kind: self.kind,
            start: pos,
            end: pos,
            records: Vec::new(),
            first_appended_ms: 0,
            per_segment: Vec::new(),
        };
        let mut bytes = 0usize;
        let first = pos.segment;
        'segments: for seg in self.segments.iter().filter(|s| s.id >= first) {
            if seg.id > pos.segment {
                pos = Position {
                    segment: seg.id,
                    offset: 0,
                };
            }
            if pos.offset >= seg.bytes {
                continue;
            }
            let path = segment_path(&self.dir, seg.id);
            let mut f = File::open(&path).map_err(io_err(&path))?;
            f.seek(SeekFrom::Start(pos.offset)).map_err(io_err(&path))?;
            let mut r = io::BufReader::with_capacity(1 << 16, f.take(seg.bytes - pos.offset));
            let mut here = 0;
            // Set when a limit is reached: the batch ends here, inside this segment.
            let mut full = false;
            while pos.offset < seg.bytes {
                if batch.records.len() >= max_records || stop.is_some_and(|s| pos >= s) {
                    full = true;
                    break;
                }
                let Some((ts, payload)) = read_frame(&mut r) else {
                    // Shorter than its recorded length: damaged under us. Its rest is skipped.
                    tracing::error!(segment = %path.display(), offset = pos.offset, "spool: unreadable frame");
                    break;
                };
                if !batch.records.is_empty() && bytes + payload.len() > max_bytes {
                    full = true;
                    break;
                }
                if batch.records.is_empty() {
                    batch.first_appended_ms = ts;
                    batch.start = pos;
                }
                pos.offset += FRAME_HEADER + payload.len() as u64;
                bytes += payload.len();
                batch.records.push(payload);
                here += 1;
            }
            if here > 0 {
                batch.per_segment.push((seg.id, here));
            }
            batch.end = pos;
            if full || batch.records.len() >= max_records || bytes >= max_bytes {
                break 'segments;
            }
        }
        Ok((!batch.records.is_empty()).then_some(batch))
    }

    /// Delivered records leave the pending count (those of segments still here and not behind
    /// the ack point: a shed already took the others off).
    fn uncount(&mut self, per_segment: &[(u64, u64)]) {
        for (seg, n) in per_segment {
            if self.segments.iter().any(|s| s.id == *seg) && *seg >= self.ack.segment {
                self.pending -= (*n).min(self.pending);
            }
        }
    }

    /// Moves the ack point to `end`, deletes segments wholly behind it (never the one being
    /// written) and writes the ack file.
    fn move_ack(&mut self, end: Position) -> Result<(), SpoolError> {
        self.ack = end;
        while self.segments.len() > 1 {
            let first = &self.segments[0];
            let done = first.id < self.ack.segment
                || (first.id == self.ack.segment && self.ack.offset >= first.bytes);
            if !done {
                break;
            }
            let path = segment_path(&self.dir, first.id);
            fs::remove_file(&path).map_err(io_err(&path))?;
            self.segments.remove(0);
            if self.ack.segment < self.segments[0].id {
                self.ack = Position {
                    segment: self.segments[0].id,
                    offset: 0,
                };
            }
        }
        write_ack(&self.dir, self.ack)
    }
}

/// The batch ends a previous run had out (`DIR/kind/inflight`, one `segment offset` a line);
/// missing or garbled lines are skipped: the worst case is a batch cut differently, which the
/// collector's per-record deduplication still absorbs.
fn read_boundaries(path: &Path) -> Vec<Position> {
    // The pusher keeps it to a few thousand lines; a larger file is not ours to trust.
    if fs::metadata(path).is_ok_and(|m| m.len() > 1 << 20) {
        tracing::warn!(file = %path.display(), "spool: inflight file too large; ignored");
        return Vec::new();
    }
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .take(1 << 16)
        .filter_map(|l| {
            let (a, b) = l.trim().split_once(' ')?;
            Some(Position {
                segment: a.parse().ok()?,
                offset: b.parse().ok()?,
            })
        })
        .collect()
}

/// Like the ack file: temporary file and rename, not fsynced (after a power loss batches may
/// be cut differently, and per-record deduplication at the collector still holds).
fn write_boundaries(dir: &Path, ends: &[Position]) -> Result<(), SpoolError> {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(ends.len() * 24);
    for e in ends {
        let _ = writeln!(text, "{} {}", e.segment, e.offset);
    }
    let tmp = dir.join("inflight.tmp");
    fs::write(&tmp, text).map_err(io_err(&tmp))?;
    fs::rename(&tmp, dir.join("inflight")).map_err(io_err(dir))
}

fn read_ack(path: &Path) -> Position {
    let text = fs::read_to_string(path).unwrap_or_default();
    let mut it = text.split_whitespace().map(|s| s.parse::<u64>());
    match (it.next(), it.next()) {
        (Some(Ok(segment)), Some(Ok(offset))) => Position { segment, offset },
        _ => Position::default(),
    }
}

/// Written to a temporary file and renamed, so a crash leaves the old or the new ack, never a
/// mix. Not fsynced: losing an ack only means re-sending records the collector deduplicates.
fn write_ack(dir: &Path, pos: Position) -> Result<(), SpoolError> {
    let tmp = dir.join("ack.tmp");
    fs::write(&tmp, format!("{} {}\n", pos.segment, pos.offset)).map_err(io_err(&tmp))?;
    fs::rename(&tmp, dir.join("ack")).map_err(io_err(dir))
}

impl Spool {
    /// Opens (or creates) the spool in `cfg.dir`, truncating torn tails.
    pub fn open(cfg: &SpoolConfig, metrics: Arc<Metrics>) -> Result<Spool, SpoolError> {
        if cfg.max_bytes < 64 * 1024 {
            return Err(SpoolError::CapTooSmall(cfg.max_bytes));
        }
        fs::create_dir_all(&cfg.dir).map_err(io_err(&cfg.dir))?;
        let classes = [
            ClassLog::open(&cfg.dir, Kind::Detection, &metrics)?,
            ClassLog::open(&cfg.dir, Kind::CallRecord, &metrics)?,
        ];
        let inner = Inner {
            classes,
            max_bytes: cfg.max_bytes,
            // Shedding works by whole segments: at most 1/16 of the cap goes per shed.
            segment_bytes: (cfg.max_bytes / 16).clamp(16 * 1024, 8 << 20),
            fsync: cfg.fsync,
            last_sync: Instant::now(),
            metrics,
        };
        let spool = Spool {
            inner: Mutex::new(inner),
            id: instance_id(&cfg.dir)?,
        };
        spool.lock().publish();
        Ok(spool)
    }

    /// This spool's identity (stable across restarts, new when the directory is recreated).
    pub fn id(&self) -> &str {
        &self.id
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent-enough state (files are the truth).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends records of one kind. When it returns Ok they are in the log (and fsynced under
    /// [`FsyncPolicy::EveryBatch`]). Then applies the size cap.
    pub fn append<R: AsRef<[u8]>>(&self, kind: Kind, records: &[R]) -> Result<(), SpoolError> {
        if let Some(big) = records.iter().find(|r| r.as_ref().len() > MAX_RECORD_BYTES) {
            return Err(SpoolError::TooLarge(big.as_ref().len()));
        }
        let mut inner = self.lock();
        let segment_bytes = inner.segment_bytes;
        let ts = now_ms().to_le_bytes();
        let log = &mut inner.classes[kind.index()];
        let dir = log.dir.clone();
        for r in records {
            let payload = r.as_ref();
            let w = log.writer(segment_bytes)?;
            let mut head = [0u8; FRAME_HEADER as usize];
            head[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
            head[4..8].copy_from_slice(&crc(&ts, payload).to_le_bytes());
            head[8..16].copy_from_slice(&ts);
            w.write_all(&head).map_err(io_err(&dir))?;
            w.write_all(payload).map_err(io_err(&dir))?;
            let seg = log.segments.last_mut().expect("writer made a segment");
            seg.bytes += FRAME_HEADER + payload.len() as u64;
            seg.records += 1;
            log.pending += 1;
        }
        log.flush_writer()?;
        log.dirty = true;
        if inner.fsync == FsyncPolicy::EveryBatch {
            inner.classes[kind.index()].sync()?;
        }
        inner.enforce_cap()?;
        inner.publish();
        Ok(())
    }

    /// Under [`FsyncPolicy::Interval`], fsyncs when the interval has passed. Cheap otherwise.
    pub fn sync_if_due(&self) -> Result<(), SpoolError> {
        let mut inner = self.lock();
        if let FsyncPolicy::Interval(every) = inner.fsync {
            if inner.last_sync.elapsed() >= every {
                inner.sync_all()?;
            }
        }
        Ok(())
    }

    /// fsyncs both logs now (shutdown).
    pub fn sync(&self) -> Result<(), SpoolError> {
        self.lock().sync_all()
    }

    /// Up to `max_records` / `max_bytes` (at least one record) of `kind` from its ack position,
    /// or None when everything of that kind was delivered. Reading again without an ack gives
    /// the same records (one batch at a time; see [`Spool::next_batch`] for several).
    pub fn read_batch(
        &self,
        kind: Kind,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Option<Batch>, SpoolError> {
        let inner = self.lock();
        let log = &inner.classes[kind.index()];
        if log.pending == 0 {
            return Ok(None);
        }
        log.read_from(log.ack, None, max_records, max_bytes)
    }

    /// Marks a batch from [`Spool::read_batch`] delivered (or dead-lettered): the ack position
    /// moves past it, fully delivered segments are deleted. An ack for records already shed is
    /// harmless.
    pub fn ack(&self, batch: &Batch) -> Result<(), SpoolError> {
        let mut inner = self.lock();
        let log = &mut inner.classes[batch.kind.index()];
        if batch.end <= log.ack {
            return Ok(());
        }
        log.uncount(&batch.per_segment);
        log.move_ack(batch.end)?;
        log.inflight.skip_to(log.ack);
        inner.publish();
        Ok(())
    }

    /// The next batch of `kind` to send while others may still be out: it starts where the
    /// last one handed out ended (or at the ack position), and ends where a previous run cut
    /// one if it had (so it carries the same Idempotency-Key). Its end is recorded on disk
    /// before it is returned. None when nothing is left to hand out.
    pub fn next_batch(
        &self,
        kind: Kind,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Option<Batch>, SpoolError> {
        let mut inner = self.lock();
        let log = &mut inner.classes[kind.index()];
        let from = log.inflight.cursor().max(log.ack);
        let Some(batch) = log.read_from(from, log.inflight.stop_at(), max_records, max_bytes)?
        else {
            return Ok(None);
        };
        log.inflight
            .dispatch(batch.start, batch.end, batch.per_segment.clone());
        write_boundaries(&log.dir, &log.inflight.boundaries())?;
        Ok(Some(batch))
    }

    /// A batch from [`Spool::next_batch`] was delivered (or dead-lettered). The ack position
    /// moves only when this closes a contiguous run from it: a batch acknowledged before an
    /// earlier one waits for that one.
    pub fn delivered(&self, batch: &Batch) -> Result<(), SpoolError> {
        let mut inner = self.lock();
        let log = &mut inner.classes[batch.kind.index()];
        let Some((end, done)) = log.inflight.complete(batch.start) else {
            return Ok(());
        };
        if end <= log.ack {
            return Ok(());
        }
        for per_segment in &done {
            log.uncount(per_segment);
        }
        log.move_ack(end)?;
        inner.publish();
        Ok(())
    }

    /// Batches handed out by [`Spool::next_batch`] and not yet part of the acknowledged run.
    pub fn in_flight(&self, kind: Kind) -> usize {
        self.lock().classes[kind.index()].inflight.len()
    }

    /// Whether records of `kind` wait that no batch out covers yet.
    pub fn unsent(&self, kind: Kind) -> bool {
        let inner = self.lock();
        let log = &inner.classes[kind.index()];
        let from = log.inflight.cursor().max(log.ack);
        log.segments.last().is_some_and(|s| {
            from < Position {
                segment: s.id,
                offset: s.bytes,
            }
        })
    }

    /// Undelivered records of `kind`.
    pub fn pending(&self, kind: Kind) -> u64 {
        self.lock().classes[kind.index()].pending
    }

    /// Bytes on disk for `kind` (delivered records in the head segment included until it goes).
    pub fn bytes(&self, kind: Kind) -> u64 {
        self.lock().classes[kind.index()].bytes()
    }
}

impl Inner {
    fn sync_all(&mut self) -> Result<(), SpoolError> {
        for c in &mut self.classes {
            c.sync()?;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Sheds whole segments, oldest CallRecords first, until the spool fits its cap.
    fn enforce_cap(&mut self) -> Result<(), SpoolError> {
        while self.classes.iter().map(|c| c.bytes()).sum::<u64>() > self.max_bytes {
            let victim = if self.classes[Kind::CallRecord.index()].segments.is_empty() {
                Kind::Detection
            } else {
                Kind::CallRecord
            };
            let log = &mut self.classes[victim.index()];
            if log.segments.is_empty() {
                break;
            }
            let shed = log.shed_oldest()?;
            tracing::warn!(
                class = victim.as_str(),
                records = shed,
                max_bytes = self.max_bytes,
                "spool full: oldest undelivered records shed"
            );
            self.metrics
                .records_shed
                .with_label_values(&[victim.as_str()])
                .inc_by(shed);
        }
        Ok(())
    }

    fn publish(&self) {
        for c in &self.classes {
            let label = [c.kind.as_str()];
            self.metrics
                .spool_bytes
                .with_label_values(&label)
                .set(c.bytes() as i64);
            self.metrics
                .spool_records
                .with_label_values(&label)
                .set(c.pending as i64);
        }
    }
}

#[cfg(test)]
mod tests;

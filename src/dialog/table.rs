//! The per-worker dialog table: Call-ID → [`Call`], bounded, with timeouts driven by the time
//! the pipeline hands in (packet time in replay, the clock live), never by the system clock.
//! It tells what happens to calls as [`CallEvent`]s: a call's start once its verdict is known,
//! its record once it has ended and its verdict is known. A call that ends while its verdict is
//! pending waits here, closed, until verification gives the verdict ([`DialogTable::apply`]);
//! the table never verifies anything itself.

use super::call::{Call, Seen, Verdict};
use crate::clock::Timestamp;
use crate::config::DialogConfig;
use crate::detect::features::CallStart;
use crate::peers::SharedPeers;
use crate::record::{CallRecord, EndedBy, ShakenResult};
use crate::shaken::verify::CallNumbers;
use crate::sip::message::{Method, SipMessage, StartLine};
use crate::sip::uri::{param, parse_name_addr};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

#[derive(Clone, Copy, Debug)]
pub struct DialogLimits {
    pub max_dialogs: usize,
    pub invite_timeout_s: u64,
    pub max_call_s: u64,
}

impl DialogLimits {
    /// This worker's share of the configured limits.
    pub fn for_worker(cfg: &DialogConfig, workers: usize) -> Self {
        DialogLimits {
            max_dialogs: (cfg.max_dialogs / workers.max(1)).max(1),
            invite_timeout_s: cfg.invite_timeout_s,
            max_call_s: cfg.max_call_duration_s,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DialogStats {
    pub created: u64,
    /// Closed calls forgotten before their linger time because the recently-closed set was full.
    pub recently_closed_evictions: u64,
    pub invite_retransmissions: u64,
    pub reinvites: u64,
    /// In-dialog messages (responses to an INVITE, BYE, CANCEL, ACK, ...) for calls we never
    /// saw start: the capture began mid-call, or the INVITE was lost.
    pub unmatched: u64,
    /// Messages for a call closed moments ago: the ACK after a failure, the 200 for a BYE.
    pub after_close: u64,
    /// Requests and responses outside any call: REGISTER, OPTIONS, SUBSCRIBE, MESSAGE, ...
    pub out_of_dialog: u64,
    pub closed_caller: u64,
    pub closed_callee: u64,
    pub closed_timeout: u64,
    pub closed_evicted: u64,
    pub closed_shutdown: u64,
}

impl DialogStats {
    fn closed(&mut self, by: EndedBy) {
        match by {
            EndedBy::Caller => self.closed_caller += 1,
            EndedBy::Callee => self.closed_callee += 1,
            EndedBy::Timeout => self.closed_timeout += 1,
            EndedBy::Evicted => self.closed_evicted += 1,
            EndedBy::Shutdown => self.closed_shutdown += 1,
        }
    }
}

/// What the table tells about its calls.
// Handed by value straight to the caller's sink and never stored: boxing the record would
// cost an allocation per call.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum CallEvent {
    /// The call's verdict is known while it is open (at once when verification is off): its
    /// features for the detectors. Only when the table announces starts.
    Started(CallStart),
    /// The call ended and its verdict is known: its record. `announced`: the detectors got its
    /// start (false when the verdict came after the call ended).
    Ended { record: CallRecord, announced: bool },
}

/// A call that ended while its verdict was pending.
struct Held {
    call: Box<Call>,
    by: EndedBy,
    at: Timestamp,
}

pub struct DialogTable {
    /// Boxed so the map's slots stay small: remove/insert churn leaves tombstones, and hashbrown
    /// then doubles its table, which must not double the memory of every call with it.
    calls: HashMap<Rc<[u8]>, Box<Call>, ahash::RandomState>,
    /// Creation order for evicting the oldest call; entries of calls already closed are skipped
    /// lazily and compacted when they outnumber the live ones.
    order: VecDeque<(u64, Rc<[u8]>)>,
    next_created: u64,
    limits: DialogLimits,
    /// Swapped by a SIGHUP reload; read once per new call (lock-free).
    peers: SharedPeers,
    sensor_id: Arc<str>,
    recently_closed: RecentlyClosed,
    /// Ended calls waiting for their verdict; bounded by the calls verification keeps pending
    /// (`shaken.max_pending`), each of which gets a verdict by its deadline.
    held: HashMap<Rc<[u8]>, Held, ahash::RandomState>,
    /// New calls wait for a verdict (verification is on).
    verify: bool,
    /// Calls' starts are told (`CallEvent::Started`; detection is on).
    announce: bool,
    pub stats: DialogStats,
}

/// Call-IDs (hashed) of calls closed in the last [`LINGER_US`], so their trailing messages are
/// recognised rather than counted as unmatched. Bounded by count and by time.
struct RecentlyClosed {
    hasher: ahash::RandomState,
    /// Call-ID hash → (closed at, the CSeq of the INVITE that ended).
    set: HashMap<u64, (Timestamp, u32), ahash::RandomState>,
    fifo: VecDeque<(u64, Timestamp)>,
    cap: usize,
}

/// How long a closed call's trailing messages are expected (RFC 3261 Timer D is 32 s).
const LINGER_US: i64 = 32_000_000;

impl RecentlyClosed {
    fn new(cap: usize) -> Self {
        RecentlyClosed {
            hasher: ahash::RandomState::new(),
            set: HashMap::default(),
            fifo: VecDeque::new(),
            cap: cap.max(16),
        }
    }

    /// Remembers a closed call; true when the set was full and a call still lingering had to
    /// be forgotten for it.
    fn insert(&mut self, call_id: &[u8], at: Timestamp, cseq: u32) -> bool {
        let h = self.hasher.hash_one(call_id);
        let mut evicted = false;
        if self.fifo.len() >= self.cap {
            evicted = self
                .fifo
                .front()
                .is_some_and(|(_, oldest)| at.0 - oldest.0 <= LINGER_US);
            self.pop_oldest();
        }
        self.set.insert(h, (at, cseq));
        self.fifo.push_back((h, at));
        evicted
    }

    fn len(&self) -> usize {
        self.fifo.len()
    }

    fn pop_oldest(&mut self) {
        if let Some((h, at)) = self.fifo.pop_front() {
            if self.set.get(&h).is_some_and(|(t, _)| *t == at) {
                self.set.remove(&h);
            }
        }
    }

    /// The CSeq of the INVITE of a call with this Call-ID closed moments ago.
    fn closed_cseq(&self, call_id: &[u8]) -> Option<u32> {
        self.set
            .get(&self.hasher.hash_one(call_id))
            .map(|(_, c)| *c)
    }

    fn expire(&mut self, now: Timestamp) {
        while self
            .fifo
            .front()
            .is_some_and(|(_, at)| now.0 - at.0 > LINGER_US)
        {
            self.pop_oldest();
        }
    }
}

fn has_to_tag(msg: &SipMessage<'_>) -> bool {
    parse_name_addr(msg.to)
        .ok()
        .and_then(|na| param(na.params, b"tag"))
        .is_some_and(|t| !t.is_empty())
}

/// Whether a message belongs to an INVITE dialog (as opposed to REGISTER, OPTIONS, ...).
fn is_dialog_message(msg: &SipMessage<'_>) -> bool {
    let method = match &msg.start {
        StartLine::Request { method, .. } => method,
        StartLine::Response { .. } => &msg.cseq.method,
    };
    matches!(
        method,
        Method::Invite
            | Method::Ack
            | Method::Bye
            | Method::Cancel
            | Method::Prack
            | Method::Update
            | Method::Info
    ) || (msg.is_request() && has_to_tag(msg))
}

impl DialogTable {
    pub fn new(limits: DialogLimits, peers: SharedPeers, sensor_id: Arc<str>) -> Self {
        DialogTable {
            calls: HashMap::default(),
            order: VecDeque::new(),
            next_created: 0,
            limits,
            peers,
            sensor_id,
            recently_closed: RecentlyClosed::new(limits.max_dialogs / 4),
            held: HashMap::default(),
            verify: false,
            announce: false,
            stats: DialogStats::default(),
        }
    }

    /// `verify`: new calls wait for a verdict from verification ([`DialogTable::apply`]);
    /// `announce`: the table emits `CallEvent::Started`. Set before the first message.
    pub fn set_events(&mut self, verify: bool, announce: bool) {
        self.verify = verify;
        self.announce = announce;
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Closed calls remembered for their trailing messages (bounded: `max_dialogs / 4`).
    pub fn recently_closed_len(&self) -> usize {
        self.recently_closed.len()
    }

    /// Ended calls waiting for their verdict.
    pub fn held_len(&self) -> usize {
        self.held.len()
    }

    /// The numbers the INVITE of an open call presented.
    pub fn numbers(&self, call_id: &[u8]) -> Option<CallNumbers> {
        self.calls.get(call_id).map(|c| *c.numbers())
    }

    /// Applies verification's verdict for a call: an ended call waiting for it is released
    /// (its record), an open call keeps it (and its start is told). False when no call has
    /// this Call-ID.
    pub fn apply(
        &mut self,
        call_id: &[u8],
        result: ShakenResult,
        emit: &mut dyn FnMut(CallEvent),
    ) -> bool {
        if let Some((key, mut held)) = self.held.remove_entry(call_id) {
            held.call.set_verdict(result);
            self.release(&key, held, emit);
            return true;
        }
        let Some(call) = self.calls.get_mut(call_id) else {
            return false;
        };
        call.set_verdict(result);
        if self.announce {
            if let Some(s) = call.detect_start(call_id) {
                emit(CallEvent::Started(s));
            }
        }
        true
    }

    /// Emits the records of ended calls still waiting for a verdict, without one (the end of a
    /// run, once verification has given every verdict it could), oldest first.
    pub fn release_held(&mut self, emit: &mut dyn FnMut(CallEvent)) {
        let mut held: Vec<(Rc<[u8]>, Held)> = self.held.drain().collect();
        held.sort_by_key(|(_, h)| h.call.created);
        for (key, h) in held {
            self.release(&key, h, emit);
        }
    }

    fn release(&self, key: &[u8], h: Held, emit: &mut dyn FnMut(CallEvent)) {
        let announced = h.call.announced();
        let record = h.call.into_record(key, h.by, h.at, &self.sensor_id);
        emit(CallEvent::Ended { record, announced });
    }

    /// Advances the call `msg` belongs to; `emit` receives the Call-ID and record of a call
    /// that ends.
    /// Returns true when `msg` started a new call (the moment to verify its Identity).
    pub fn handle(
        &mut self,
        msg: &SipMessage<'_>,
        seen: Seen,
        emit: &mut dyn FnMut(CallEvent),
    ) -> bool {
        let is_invite = matches!(
            msg.start,
            StartLine::Request {
                method: Method::Invite,
                ..
            }
        );
        if let Some(call) = self.calls.get_mut(msg.call_id) {
            if is_invite {
                if has_to_tag(msg) {
                    self.stats.reinvites += 1;
                } else if !call.retry(msg) {
                    self.stats.invite_retransmissions += 1;
                }
                return false;
            }
            if let Some(by) = call.on_message(msg, seen) {
                self.close(msg.call_id, by, seen.ts, emit);
            }
            return false;
        }
        let closed_cseq = self.recently_closed.closed_cseq(msg.call_id);
        // A new INVITE reusing a closed call's Call-ID with a higher CSeq is a new attempt
        // (after a redirect); with the same CSeq it is a late retransmission.
        if is_invite && closed_cseq.is_some_and(|c| msg.cseq.seq <= c) {
            self.stats.after_close += 1;
            return false;
        }
        if !is_invite || has_to_tag(msg) {
            if closed_cseq.is_some() {
                self.stats.after_close += 1;
            } else if is_dialog_message(msg) {
                self.stats.unmatched += 1;
            } else {
                self.stats.out_of_dialog += 1;
            }
            return false;
        }
        if self.calls.len() >= self.limits.max_dialogs {
            self.evict_oldest(seen.ts, emit);
        }
        let peers = self.peers.load();
        let peer = peers.lookup(seen.src.ip());
        let verdict = if self.verify {
            Verdict::Pending
        } else {
            Verdict::Unverified
        };
        let mut call = Box::new(Call::from_invite(
            msg,
            seen,
            peer,
            self.next_created,
            verdict,
        ));
        if self.announce {
            if let Some(s) = call.detect_start(msg.call_id) {
                emit(CallEvent::Started(s));
            }
        }
        let key: Rc<[u8]> = Rc::from(msg.call_id);
        self.order.push_back((self.next_created, key.clone()));
        self.next_created += 1;
        self.calls.insert(key, call);
        self.stats.created += 1;
        if self.order.len() > 2 * self.calls.len() + 1024 {
            let calls = &self.calls;
            self.order
                .retain(|(created, key)| calls.get(key).is_some_and(|c| c.created == *created));
        }
        true
    }

    fn close(
        &mut self,
        call_id: &[u8],
        by: EndedBy,
        at: Timestamp,
        emit: &mut dyn FnMut(CallEvent),
    ) {
        if let Some((key, call)) = self.calls.remove_entry(call_id) {
            self.stats.closed(by);
            if self.recently_closed.insert(&key, at, call.cseq()) {
                self.stats.recently_closed_evictions += 1;
            }
            let h = Held { call, by, at };
            if !matches!(h.call.verdict, Verdict::Pending) {
                return self.release(&key, h, emit);
            }
            // Verification settles an earlier call of this Call-ID before it verifies the next
            // one, so none should be waiting; if one is, its record goes out as it is.
            if let Some(earlier) = self.held.insert(key.clone(), h) {
                self.release(&key, earlier, emit);
            }
        }
    }

    fn evict_oldest(&mut self, now: Timestamp, emit: &mut dyn FnMut(CallEvent)) {
        while let Some((created, key)) = self.order.pop_front() {
            if self.calls.get(&key).is_some_and(|c| c.created == created) {
                self.close(&key, EndedBy::Evicted, now, emit);
                return;
            }
        }
    }

    /// Closes every call whose deadline has passed at `now`.
    pub fn expire(&mut self, now: Timestamp, emit: &mut dyn FnMut(CallEvent)) {
        self.recently_closed.expire(now);
        let (invite_s, call_s) = (self.limits.invite_timeout_s, self.limits.max_call_s);
        let expired: Vec<(Rc<[u8]>, Timestamp)> = self
            .calls
            .iter()
            .filter_map(|(k, c)| {
                let d = c.deadline(invite_s, call_s);
                (d <= now).then(|| (k.clone(), d))
            })
            .collect();
        for (key, deadline) in expired {
            self.close(&key, EndedBy::Timeout, deadline, emit);
        }
    }

    /// Closes every open call (shutdown or end of replay), oldest first.
    pub fn drain(&mut self, now: Timestamp, emit: &mut dyn FnMut(CallEvent)) {
        while let Some((created, key)) = self.order.pop_front() {
            if self.calls.get(&key).is_some_and(|c| c.created == created) {
                self.close(&key, EndedBy::Shutdown, now, emit);
            }
        }
        debug_assert!(self.calls.is_empty());
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;

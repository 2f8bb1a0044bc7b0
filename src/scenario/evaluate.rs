//! `shaken-sensor evaluate`: scores DetectionEvents (JSON lines from `replay --detections`)
//! against a scenario's labels. A detection belongs to the group (campaign, legitimate sender
//! or background) owning most of the sample Call-IDs of its first (opened) line; ties go to
//! background, so an event the labels cannot pin on a campaign counts against the detector.
//! Per campaign: detected, first rule, latency from the first INVITE to the first attributed
//! `opened` line, and whether that line names the campaign's peer first. False positives:
//! detections owned by background or a legitimate sender, and campaign detections that keep
//! firing (`updated`) on background samples in a window opened after the campaign's last call.
//! `closed` lines are never firings; those with background samples are only counted.
//!
//! It must never count an event for a campaign it was not attributed to, and never pass a
//! scenario silently when its inputs are missing or unreadable.

use crate::clock::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}, line {line}: {msg}")]
    Bad {
        path: PathBuf,
        line: usize,
        msg: String,
    },
}

#[derive(Debug, Deserialize)]
struct Label {
    call_id: String,
    campaign: String,
    kind: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct CampaignInfo {
    pub id: String,
    pub kind: String,
    pub peer: String,
    pub calls: u64,
    pub rate_per_s: f64,
    pub start: String,
    pub end: String,
}

#[derive(Debug, Deserialize)]
struct PeerEntry {
    peer: String,
}

#[derive(Debug, Deserialize)]
struct Event {
    detection_id: String,
    state: String,
    rule: String,
    #[serde(default)]
    first_seen: Option<String>,
    last_seen: String,
    #[serde(default)]
    peers: Vec<PeerEntry>,
    #[serde(default)]
    sample_call_ids: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CampaignResult {
    pub id: String,
    pub kind: String,
    pub peer: String,
    pub calls: u64,
    pub rate_per_s: f64,
    pub detected: bool,
    pub first_rule: Option<String>,
    pub latency_s: Option<f64>,
    pub right_peer: Option<bool>,
    /// Every rule that fired on it (distinct detections per rule).
    pub rules: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FalsePositive {
    pub detection_id: String,
    pub rule: String,
    /// "bg" or the legitimate sender's id.
    pub owner: String,
    pub peer: Option<String>,
    pub last_seen: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    pub max_latency_s: f64,
    pub campaigns: Vec<CampaignResult>,
    /// Distinct detections owned by background calls or legitimate senders.
    pub events_on_background: usize,
    pub false_positives: Vec<FalsePositive>,
    /// Detections whose sample Call-IDs are all unknown to the labels.
    pub unattributed: usize,
    /// `closed` lines whose samples are mostly background (not counted as false positives).
    pub closed_on_background: usize,
    pub detections: usize,
    pub passed: bool,
}

fn read(path: &Path) -> Result<String, EvaluateError> {
    std::fs::read_to_string(path).map_err(|source| EvaluateError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn json_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>, EvaluateError> {
    read(path)?
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| EvaluateError::Bad {
                path: path.to_path_buf(),
                line: i + 1,
                msg: e.to_string(),
            })
        })
        .collect()
}

fn time(path: &Path, s: &str) -> Result<Timestamp, EvaluateError> {
    Timestamp::parse_rfc3339(s).ok_or_else(|| EvaluateError::Bad {
        path: path.to_path_buf(),
        line: 0,
        msg: format!("not an RFC 3339 time: {s:?}"),
    })
}

/// The group owning most of the line's known sample Call-IDs; ties go to background.
fn majority<'a>(ev: &Event, owner_of: &HashMap<&str, (&'a str, bool)>) -> Option<(&'a str, bool)> {
    let mut votes: HashMap<&str, (usize, bool)> = HashMap::new();
    for id in &ev.sample_call_ids {
        if let Some((owner, camp)) = owner_of.get(id.as_str()) {
            let v = votes.entry(owner).or_insert((0, *camp));
            v.0 += 1;
        }
    }
    votes
        .into_iter()
        .max_by(|a, b| {
            a.1 .0
                .cmp(&b.1 .0)
                .then((!a.1 .1).cmp(&!b.1 .1))
                .then(b.0.cmp(a.0))
        })
        .map(|(o, (_, c))| (o, c))
}

pub fn evaluate(
    scenario: &Path,
    detections: &Path,
    max_latency_s: f64,
) -> Result<Evaluation, EvaluateError> {
    let labels: Vec<Label> = json_lines(&scenario.join("labels.jsonl"))?;
    let cpath = scenario.join("campaigns.json");
    let groups: Vec<CampaignInfo> =
        serde_json::from_str(&read(&cpath)?).map_err(|e| EvaluateError::Bad {
            path: cpath.clone(),
            line: 0,
            msg: e.to_string(),
        })?;
    let owner_of: HashMap<&str, (&str, bool)> = labels
        .iter()
        .map(|l| {
            let is_campaign = l.kind != "background" && l.kind != "legit_bulk";
            (l.call_id.as_str(), (l.campaign.as_str(), is_campaign))
        })
        .collect();
    let events: Vec<Event> = json_lines(detections)?;
    let mut results: Vec<CampaignResult> = groups
        .iter()
        .filter(|g| g.kind != "legit_bulk")
        .map(|g| CampaignResult {
            id: g.id.clone(),
            kind: g.kind.clone(),
            peer: g.peer.clone(),
            calls: g.calls,
            rate_per_s: g.rate_per_s,
            detected: false,
            first_rule: None,
            latency_s: None,
            right_peer: None,
            rules: BTreeMap::new(),
        })
        .collect();
    let starts: HashMap<&str, Timestamp> = groups
        .iter()
        .map(|g| Ok((g.id.as_str(), time(&cpath, &g.start)?)))
        .collect::<Result<_, EvaluateError>>()?;
    let mut seen_ids: HashMap<String, ()> = HashMap::new();
    let mut fp: Vec<FalsePositive> = Vec::new();
    let mut fp_ids: HashMap<String, ()> = HashMap::new();
    let mut unattributed: HashMap<String, ()> = HashMap::new();
    let mut closed_on_background = 0usize;
    // Earliest attributed opened event per campaign: (last_seen, rule, peer).
    let mut first: HashMap<String, (Timestamp, String, Option<String>)> = HashMap::new();
    let mut rules_seen: HashMap<(String, String), HashMap<String, ()>> = HashMap::new();
    let ends: HashMap<&str, Timestamp> = groups
        .iter()
        .map(|g| Ok((g.id.as_str(), time(&cpath, &g.end)?)))
        .collect::<Result<_, EvaluateError>>()?;
    // Owner of each detection: decided by its first line (the opened event, the firing).
    let mut owners: HashMap<String, Option<(String, bool)>> = HashMap::new();
    for ev in &events {
        seen_ids.insert(ev.detection_id.clone(), ());
        let line_owner = majority(ev, &owner_of);
        let owner = owners
            .entry(ev.detection_id.clone())
            .or_insert_with(|| line_owner.map(|(o, c)| (o.to_string(), c)))
            .clone();
        let Some((owner, is_campaign)) = owner else {
            unattributed.insert(ev.detection_id.clone(), ());
            continue;
        };
        let line_on_background = line_owner.is_some_and(|(_, c)| !c);
        let top = ev.peers.first().map(|p| p.peer.clone());
        // A closed line reports that the rule stopped holding; its samples may well be the
        // background that followed the campaign. It is counted, never a false positive.
        if ev.state == "closed" {
            closed_on_background += usize::from(line_on_background);
            if !is_campaign {
                continue;
            }
        }
        // An update whose samples are background and whose window opened after the
        // campaign's last call holds on background alone: a false positive too.
        let held_on_background = is_campaign
            && ev.state == "updated"
            && line_on_background
            && match (ev.first_seen.as_deref(), ends.get(owner.as_str())) {
                (Some(fs), Some(end)) => time(detections, fs)? > *end,
                _ => true,
            };
        if (!is_campaign || held_on_background) && ev.state != "closed" {
            if fp_ids.insert(ev.detection_id.clone(), ()).is_none() {
                fp.push(FalsePositive {
                    detection_id: ev.detection_id.clone(),
                    rule: ev.rule.clone(),
                    owner: line_owner.map_or(owner.clone(), |(o, _)| o.to_string()),
                    peer: top,
                    last_seen: ev.last_seen.clone(),
                });
            }
            continue;
        }
        if !is_campaign {
            continue;
        }
        rules_seen
            .entry((owner.clone(), ev.rule.clone()))
            .or_default()
            .insert(ev.detection_id.clone(), ());
        if ev.state == "opened" {
            let at = time(detections, &ev.last_seen)?;
            let e = first
                .entry(owner.clone())
                .or_insert((at, ev.rule.clone(), top.clone()));
            if at < e.0 {
                *e = (at, ev.rule.clone(), top);
            }
        }
    }
    for r in &mut results {
        for ((owner, rule), ids) in &rules_seen {
            if owner == &r.id {
                r.rules.insert(rule.clone(), ids.len() as u64);
            }
        }
        r.detected = !r.rules.is_empty();
        if let Some((at, rule, peer)) = first.get(&r.id) {
            let start = starts.get(r.id.as_str()).copied().unwrap_or(*at);
            r.first_rule = Some(rule.clone());
            r.latency_s = Some((at.0 - start.0) as f64 / 1e6);
            r.right_peer = Some(peer.as_deref() == Some(r.peer.as_str()));
        }
    }
    let passed = fp.is_empty()
        && results.iter().all(|r| {
            r.detected
                && r.right_peer == Some(true)
                && r.latency_s.is_some_and(|l| l <= max_latency_s)
        });
    Ok(Evaluation {
        max_latency_s,
        campaigns: results,
        events_on_background: fp.len(),
        false_positives: fp,
        unattributed: unattributed.len(),
        closed_on_background,
        detections: seen_ids.len(),
        passed,
    })
}

impl Evaluation {
    /// The table printed by `shaken-sensor evaluate`.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{:<22} {:<20} {:<18} {:>5} {:>6}  {:<8} {:<22} {:>9}  {:<5}\n",
            "campaign",
            "kind",
            "peer",
            "calls",
            "cps",
            "detected",
            "first rule",
            "latency",
            "peer?"
        );
        for r in &self.campaigns {
            s.push_str(&format!(
                "{:<22} {:<20} {:<18} {:>5} {:>6.1}  {:<8} {:<22} {:>9}  {:<5}\n",
                r.id,
                r.kind,
                r.peer,
                r.calls,
                r.rate_per_s,
                if r.detected { "yes" } else { "NO" },
                r.first_rule.as_deref().unwrap_or("-"),
                r.latency_s.map_or("-".to_string(), |l| format!("{l:.1} s")),
                match r.right_peer {
                    Some(true) => "yes",
                    Some(false) => "NO",
                    None => "-",
                },
            ));
        }
        s.push_str(&format!(
            "detections: {}; on background or legitimate senders: {}; unattributed: {}; \
             closed lines on background (not counted): {}\n",
            self.detections,
            self.events_on_background,
            self.unattributed,
            self.closed_on_background
        ));
        for f in &self.false_positives {
            s.push_str(&format!(
                "  false positive {} rule {} on {} (peer {}) at {}\n",
                f.detection_id,
                f.rule,
                f.owner,
                f.peer.as_deref().unwrap_or("-"),
                f.last_seen
            ));
        }
        s.push_str(if self.passed {
            "PASS\n"
        } else {
            "FAIL (a campaign missed, late, on the wrong peer, or an event on background)\n"
        });
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn scenario(dir: &Path) {
        write(
            dir,
            "labels.jsonl",
            concat!(
                r#"{"call_id":"b1","campaign":"bg","kind":"background","peer":"p1","first_invite_at":"2026-01-01T00:00:00Z"}"#,
                "\n",
                r#"{"call_id":"b2","campaign":"bg","kind":"background","peer":"p1","first_invite_at":"2026-01-01T00:00:01Z"}"#,
                "\n",
                r#"{"call_id":"s1","campaign":"school","kind":"legit_bulk","peer":"p2","first_invite_at":"2026-01-01T00:00:01Z"}"#,
                "\n",
                r#"{"call_id":"c1","campaign":"camp","kind":"one_ring","peer":"p2","first_invite_at":"2026-01-01T00:00:10Z"}"#,
                "\n",
                r#"{"call_id":"c2","campaign":"camp","kind":"one_ring","peer":"p2","first_invite_at":"2026-01-01T00:00:11Z"}"#,
                "\n",
                r#"{"call_id":"d1","campaign":"late","kind":"unsigned_flood","peer":"p3","first_invite_at":"2026-01-01T00:01:00Z"}"#,
                "\n",
            ),
        );
        write(
            dir,
            "campaigns.json",
            r#"[{"id":"school","kind":"legit_bulk","peer":"p2","calls":1,"rate_per_s":5.0,"start":"2026-01-01T00:00:01Z","end":"2026-01-01T00:00:01Z"},
                {"id":"camp","kind":"one_ring","peer":"p2","calls":2,"rate_per_s":1.0,"start":"2026-01-01T00:00:10Z","end":"2026-01-01T00:00:11Z"},
                {"id":"late","kind":"unsigned_flood","peer":"p3","calls":1,"rate_per_s":1.0,"start":"2026-01-01T00:01:00Z","end":"2026-01-01T00:01:00Z"}]"#,
        );
    }

    fn ev(id: &str, state: &str, rule: &str, at: &str, peer: &str, samples: &[&str]) -> String {
        held(id, state, rule, "2026-01-01T00:00:00Z", at, peer, samples)
    }

    /// An event line whose window starts at `from`.
    fn held(
        id: &str,
        state: &str,
        rule: &str,
        from: &str,
        at: &str,
        peer: &str,
        samples: &[&str],
    ) -> String {
        serde_json::json!({"detection_id": id, "state": state, "rule": rule, "first_seen": from,
            "last_seen": at, "peers": [{"peer": peer, "ocn": "1", "calls": 3}],
            "sample_call_ids": samples})
        .to_string()
    }

    #[test]
    fn attribution_latency_peer_and_false_positives() {
        let dir = tempfile::tempdir().unwrap();
        scenario(dir.path());
        let dets = [
            ev(
                "d-1",
                "opened",
                "volume_fanout",
                "2026-01-01T00:00:30Z",
                "p1",
                &["c1", "b1", "b2"],
            ),
            ev(
                "d-2",
                "opened",
                "one_ring",
                "2026-01-01T00:00:25.500Z",
                "p2",
                &["c1", "c2", "b1"],
            ),
            ev(
                "d-2",
                "updated",
                "one_ring",
                "2026-01-01T00:00:55Z",
                "p2",
                &["c1", "c2"],
            ),
            ev(
                "d-3",
                "opened",
                "short_calls",
                "2026-01-01T00:00:20Z",
                "p2",
                &["c1", "s1"],
            ),
            ev(
                "d-4",
                "opened",
                "unsigned_flood",
                "2026-01-01T00:02:30Z",
                "p9",
                &["d1"],
            ),
            ev(
                "d-5",
                "opened",
                "x",
                "2026-01-01T00:02:30Z",
                "p9",
                &["nobody"],
            ),
            ev(
                "d-2",
                "closed",
                "one_ring",
                "2026-01-01T00:03:00Z",
                "p2",
                &["c2", "b1", "b2"],
            ),
            // Held on background alone after the campaign's last call (00:00:11): a firing.
            held(
                "d-2",
                "updated",
                "one_ring",
                "2026-01-01T00:01:00Z",
                "2026-01-01T00:02:00Z",
                "p2",
                &["b1", "b2", "c2"],
            ),
        ];
        let d = write(dir.path(), "det.jsonl", &(dets.join("\n") + "\n"));
        let e = evaluate(dir.path(), &d, 60.0).unwrap();
        assert_eq!(e.detections, 5);
        assert_eq!(e.unattributed, 1);
        assert_eq!(e.closed_on_background, 1);
        // d-1 belongs to background (2 of 3), d-3 is a tie campaign/legit: background wins.
        assert_eq!(e.events_on_background, 3);
        let owners: Vec<&str> = e.false_positives.iter().map(|f| f.owner.as_str()).collect();
        assert_eq!(owners, ["bg", "school", "bg"]);
        assert_eq!(e.false_positives[2].detection_id, "d-2");
        let camp = &e.campaigns[0];
        assert_eq!(camp.id, "camp");
        assert!(camp.detected);
        assert_eq!(camp.first_rule.as_deref(), Some("one_ring"));
        assert_eq!(camp.latency_s, Some(15.5));
        assert_eq!(camp.right_peer, Some(true));
        let late = &e.campaigns[1];
        assert_eq!(late.latency_s, Some(90.0));
        assert_eq!(late.right_peer, Some(false));
        assert!(!e.passed);
        assert!(e.to_text().contains("FAIL"));
    }

    #[test]
    fn clean_run_passes_and_missing_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        scenario(dir.path());
        let dets = [
            ev(
                "d-2",
                "opened",
                "one_ring",
                "2026-01-01T00:00:20Z",
                "p2",
                &["c1", "c2"],
            ),
            ev(
                "d-4",
                "opened",
                "unsigned_flood",
                "2026-01-01T00:01:10Z",
                "p3",
                &["d1"],
            ),
            // Still inside the campaign's window: recent samples are background, not a firing.
            held(
                "d-2",
                "updated",
                "one_ring",
                "2026-01-01T00:00:05Z",
                "2026-01-01T00:00:40Z",
                "p2",
                &["b1", "b2"],
            ),
        ];
        let d = write(dir.path(), "det.jsonl", &(dets.join("\n") + "\n"));
        let e = evaluate(dir.path(), &d, 60.0).unwrap();
        assert!(e.passed, "{}", e.to_text());
        assert_eq!(e.campaigns[1].latency_s, Some(10.0));
        assert!(evaluate(dir.path(), &dir.path().join("none.jsonl"), 60.0).is_err());
    }
}

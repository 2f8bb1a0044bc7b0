//! [`RecordHead`]: the fields that identify a record of any kind and version, for readers that
//! keep records verbatim (the collector) and must not build the rest. Every field is optional
//! here; which ones a reader requires is its own rule.
//!
//! It must never allocate for a field that needs no unescaping, and never build the fields it
//! does not name (the parser skips them).

use serde::Deserialize;
use std::borrow::Cow;

/// What separates the sensor from the rest of a detection id: `<sensor>:det-<run>-NNNNNN`.
pub const DETECTION_ID_INFIX: &str = ":det-";

#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub struct RecordHead<'a> {
    #[serde(borrow, default)]
    pub schema: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub record_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub sensor_id: Option<Cow<'a, str>>,
    /// DetectionEvents: the detection the event belongs to.
    #[serde(borrow, default)]
    pub detection_id: Option<Cow<'a, str>>,
    /// DetectionEvents: opened, updated or closed (kept as sent).
    #[serde(borrow, default)]
    pub state: Option<Cow<'a, str>>,
    /// DetectionEvents: the capture time of the event (kept as sent).
    #[serde(borrow, default)]
    pub last_seen: Option<Cow<'a, str>>,
}

impl RecordHead<'_> {
    /// The record's family from its `schema`, when it has a known one.
    pub fn kind(&self) -> Option<crate::RecordKind> {
        crate::RecordKind::of_schema(self.schema.as_deref()?)
    }

    /// The sensor that made the record: its `sensor_id`, or for a DetectionEvent (which has
    /// none) the sensor its `detection_id` (`<sensor>:det-<run>-NNNNNN`) names.
    pub fn sensor(&self) -> Option<&str> {
        if let Some(s) = self.sensor_id.as_deref() {
            return Some(s);
        }
        self.detection_id
            .as_deref()?
            .rsplit_once(DETECTION_ID_INFIX)
            .map(|(sensor, _)| sensor)
            .filter(|s| !s.is_empty())
    }
}

//! Schema ids: every record names its type and version in its `schema` field. A [`SchemaId`]
//! is one this crate knows (typed records refuse any other); [`RecordKind`] is the family a
//! schema belongs to, for readers that keep records of versions they do not know yet.
//!
//! It must never accept a schema id it does not define as a typed record, and never change an
//! id's string (a breaking change of a record gets a new version instead).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;

/// A known schema id; serialized as its string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SchemaId(&'static str);

pub const CALL_SCHEMA: SchemaId = SchemaId("shaken-sensor/call/v1");
pub const DETECTION_SCHEMA: SchemaId = SchemaId("shaken-sensor/detection/v1");

/// Every schema id this crate has a type for.
pub const KNOWN: [SchemaId; 2] = [CALL_SCHEMA, DETECTION_SCHEMA];

impl SchemaId {
    pub const fn as_str(self) -> &'static str {
        self.0
    }

    pub fn kind(self) -> RecordKind {
        match RecordKind::of_schema(self.0) {
            Some(k) => k,
            // Every id above starts with its family's prefix (test below).
            None => unreachable!("schema id outside its family"),
        }
    }

    /// For `deserialize_with` on a CallRecord's `schema`: only [`CALL_SCHEMA`].
    pub fn call<'de, D: Deserializer<'de>>(d: D) -> Result<SchemaId, D::Error> {
        Self::expect(d, CALL_SCHEMA)
    }

    /// For `deserialize_with` on a DetectionEvent's `schema`: only [`DETECTION_SCHEMA`].
    pub fn detection<'de, D: Deserializer<'de>>(d: D) -> Result<SchemaId, D::Error> {
        Self::expect(d, DETECTION_SCHEMA)
    }

    fn expect<'de, D: Deserializer<'de>>(d: D, want: SchemaId) -> Result<SchemaId, D::Error> {
        let got = SchemaId::deserialize(d)?;
        if got == want {
            Ok(got)
        } else {
            Err(serde::de::Error::custom(format!(
                "schema {:?} where {:?} was expected",
                got.0, want.0
            )))
        }
    }
}

impl std::fmt::Display for SchemaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl Serialize for SchemaId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for SchemaId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<'de, str>::deserialize(d)?;
        KNOWN
            .into_iter()
            .find(|k| k.0 == s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown schema {s:?}")))
    }
}

/// The family of a record, whatever its version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    Call,
    Detection,
}

impl RecordKind {
    /// The family of `schema` (`shaken-sensor/call/<any version>` is a call), or None.
    pub fn of_schema(schema: &str) -> Option<RecordKind> {
        if schema.starts_with("shaken-sensor/call/") {
            Some(RecordKind::Call)
        } else if schema.starts_with("shaken-sensor/detection/") {
            Some(RecordKind::Detection)
        } else {
            None
        }
    }

    /// "call" or "detection": the collector's `kind` column.
    pub const fn as_str(self) -> &'static str {
        match self {
            RecordKind::Call => "call",
            RecordKind::Detection => "detection",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_ids_belong_to_their_family_and_others_are_refused() {
        assert_eq!(CALL_SCHEMA.kind(), RecordKind::Call);
        assert_eq!(DETECTION_SCHEMA.kind(), RecordKind::Detection);
        assert_eq!(
            RecordKind::of_schema("shaken-sensor/call/v2"),
            Some(RecordKind::Call)
        );
        assert_eq!(RecordKind::of_schema("shaken-sensor/calls/v1"), None);
        let id: SchemaId = serde_json::from_str("\"shaken-sensor/call/v1\"").unwrap();
        assert_eq!(id, CALL_SCHEMA);
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"shaken-sensor/call/v1\""
        );
        assert!(serde_json::from_str::<SchemaId>("\"shaken-sensor/call/v9\"").is_err());
    }
}

//! Campaign detection (docs/detection.md): per-call features and the origin fingerprint, sketches
//! (Count-Min, Space-Saving, HyperLogLog), rolling windows per key, rules, DetectionEvents, and
//! the feed that hands calls to the shard threads (spawned by `pipeline::detection`). Nothing here may block capture or
//! grow without bound: every table has a cap and a metric.

pub mod cms;
pub mod engine;
#[cfg(test)]
mod engine_tests;
pub mod events;
pub mod features;
pub mod feed;
pub mod fingerprint;
pub mod hash;
pub mod hll;
pub mod keys;
pub mod kinds;
pub mod nanp;
pub mod reorder;
pub mod rules;
pub mod space_saving;
pub mod window;

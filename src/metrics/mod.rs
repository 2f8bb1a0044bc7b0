//! Metrics for the NOC (Prometheus text format): the names in [`names`], the registry and the
//! typed handles in [`registry::Metrics`].
//!
//! Stages count locally and publish in bulk, so the hot path touches no shared cache line per
//! packet. Labels never carry phone numbers or IP addresses: peers are named, not addressed.

pub mod latency;
pub mod names;
pub mod registry;

pub use registry::Metrics;

//! shaken-sensor: a passive SIP / STIR-SHAKEN sensor for carrier network edges.
//!
//! Packets come in from libpcap (a live interface or a capture file), are decoded and
//! reassembled ([`capture`]), parsed as SIP ([`sip`]), grouped into calls ([`dialog`]) and
//! written out as one [`record::CallRecord`] per call. [`pipeline`] wires the stages together
//! from a [`config::Config`]; every stage counts what it drops in [`metrics`].
//!
//! Modules are public so that tests, benchmarks and fuzz targets can drive each stage alone.
//! The record types come from the `shaken-wire` crate and the HTTP layer from `shaken-httpd`,
//! both shared with the collector (`crates/shaken-collector`).

pub mod backpressure;
pub mod capture;
pub mod cli;
pub mod clock;
pub mod config;
pub mod detect;
pub mod dialog;
pub mod export;
pub mod health;
pub mod http;
/// The HTTP layer (its own crate, shared with the collector).
pub use shaken_httpd as httpd;
pub mod metrics;
pub mod peers;
pub mod pipeline;
pub mod record;
pub mod scenario;
pub mod shaken;
pub mod shutdown;
pub mod sip;
pub mod traceback;

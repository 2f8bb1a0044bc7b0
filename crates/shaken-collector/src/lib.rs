//! shaken-collector: the reference collector (the ITG side of docs/collector.md), served by the
//! `shaken-collector` binary. `POST /v1/ingest` takes gzip or plain NDJSON batches with a
//! bearer token, keeps each record once (UNIQUE record_id) and each batch once
//! (Idempotency-Key) in SQLite, and answers `GET /v1/records`, `GET /v1/detections`, `/metrics`
//! and `/healthz`; and automated cross-carrier traceback ([`traceback`]: `/v1/tracebacks`,
//! `/v1/requests`, provider scorecards). For tests it can be told to fail, rate-limit, refuse or slow down requests
//! ([`server::Faults`]).
//!
//! A crate of its own: records come from `shaken-wire`, the HTTP layer from `shaken-httpd`; it
//! must never depend on the sensor (no libpcap, no capture or STIR/SHAKEN code).

pub mod db;
pub mod error;
pub mod providers;
pub mod scorecard;
pub mod server;
pub mod traceback;

pub use error::CollectorError;

//! STIR/SHAKEN verification (RFC 8224, 8225, 8226, 8588; ATIS-1000074): Identity headers,
//! PASSporTs, x5u certificates and their chains to the configured STI-CA trust anchors,
//! TNAuthList, CRLs, freshness, TN match and the ES256 signature, ending in a verstat and a
//! precise reason.
//!
//! It depends on no capture or dialog code: callers hand it the Identity headers and the
//! call's numbers (the pipeline's workers, and `cli::verify` for the `verify` command).
//!
//! Every input here is hostile: sizes are capped before anything is decoded, every failure is
//! a typed error with its SIP code, and no network fetch ever blocks a pipeline worker.

pub mod b64;
pub mod cache;
pub mod certs;
pub mod crl;
pub mod fetch;
pub mod identity;
pub mod passport;
pub mod replay;
pub mod service;
pub mod tnauth;
pub mod verdict;
pub mod verify;

//! The labelled scenario generator and its evaluation (`shaken-sensor scenario` and
//! `shaken-sensor evaluate`): a synthetic but realistic SIP capture of background traffic,
//! legitimate bulk senders and injected illegal campaigns, with a label for every call, and a
//! scorer that compares the sensor's DetectionEvents against those labels.
//!
//! This is a development and evaluation tool: nothing here runs in the capture pipeline, and
//! nothing in the pipeline may depend on it.

pub mod evaluate;
pub mod generate;
pub mod network;
pub mod numbers;
pub mod pcap;
pub mod pki;
pub mod plan;
pub mod rng;
pub mod sip;

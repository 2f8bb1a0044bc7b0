//! The pipeline: builds every stage from a [`Config`](crate::config::Config) and wires them
//! (DESIGN §1). Capture threads (one per source) decode and frame SIP, then hand batches of
//! messages to worker threads over bounded crossbeam channels, sharded by Call-ID so one call
//! always meets the same worker and its dialog table needs no lock. Workers parse, track
//! dialogs and emit CallRecords to the sink thread.
//!
//! Live capture never waits on a full queue: it drops and counts. Replay waits, so an offline run
//! loses nothing. This is the only module that spawns threads or knows the whole shape.

pub mod capture_thread;
pub mod detection;
pub mod dispatch;
pub mod messages;
pub mod problems;
pub mod reload;
pub mod run;
pub mod summary;
pub mod verification;
pub mod worker;

pub use reload::LiveConfig;
pub use run::{run, Input, PipelineError, RunOptions};
pub use summary::Summary;

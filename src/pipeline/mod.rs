//! The pipeline: builds every stage from a [`Config`](crate::config::Config) and wires them
//! (docs/architecture.md). Capture threads (one per source) decode and frame SIP, then hand
//! batches of messages to worker threads over bounded crossbeam channels, sharded by Call-ID so
//! one call always meets the same worker and its dialog table needs no lock. Workers parse, track
//! dialogs and emit CallRecords to the sink thread.
//!
//! Each stage is a value started with `start(&Config, &Shared, ..)` and ended with `finish`
//! ([`stage`]); [`run`](run::run) starts them in order and finishes them in reverse, keeping the
//! first error. Live capture never waits on a full queue: it drops and counts. Replay waits, so
//! an offline run loses nothing (one [`Backpressure`](crate::backpressure::Backpressure) value,
//! chosen once). This is the only module that knows the whole shape and the only one that
//! spawns the pipeline's own threads (capture, workers, sinks, detectors, log summary). Not the
//! only one that spawns threads: the traceback store writer (`traceback::store`), the push
//! threads (`export::push`) and the x5u fetch runtime (`shaken::service`) start their own, owned
//! by values this module starts and finishes; the HTTP server (`http`) and the SIGHUP reload
//! thread are started by `cli::run` (docs/architecture.md, "Threads").

pub mod capture_stage;
pub mod capture_thread;
pub mod detection;
pub mod dispatch;
pub mod messages;
pub mod outputs;
pub mod problems;
pub mod reload;
pub mod run;
pub mod sink;
pub mod stage;
pub mod summary;
pub mod verification;
pub mod worker;
pub mod worker_pool;

pub use reload::LiveConfig;
pub use run::{run, Input, PipelineError, RunOptions};
pub use summary::Summary;

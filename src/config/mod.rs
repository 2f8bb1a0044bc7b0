//! Configuration: the TOML file's structs (every key documented in `config/sensor.toml`), their
//! defaults (in one place: the `Default` impls in [`model`]), loading and start-up validation.
//!
//! Unknown keys are errors. Every error names the file and the key. Nothing outside this module
//! reads the file or invents defaults of its own.

pub mod files;
pub mod load;
pub mod model;

pub use files::{check_files, load_checked, read_bounded};
pub use load::{load, ConfigError};
pub use model::*;

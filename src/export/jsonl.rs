//! JSON lines output: one CallRecord (or DetectionEvent) per line, to a file (appended) or
//! stdout.

use crate::record::CallRecord;
use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};

#[derive(Debug, thiserror::Error)]
pub enum JsonlError {
    #[error("cannot open output {path}: {source}")]
    Open { path: String, source: io::Error },
    #[error("writing output {path}: {source}")]
    Write { path: String, source: io::Error },
    /// The reader went away (`replay ... | head`): not a failure of ours.
    #[error("output {path} closed by its reader")]
    Closed { path: String },
}

impl JsonlError {
    fn from_io(path: &str, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::BrokenPipe {
            JsonlError::Closed {
                path: path.to_string(),
            }
        } else {
            JsonlError::Write {
                path: path.to_string(),
                source,
            }
        }
    }
}

pub struct JsonlWriter {
    out: BufWriter<Box<dyn Write + Send>>,
    path: String,
    line: Vec<u8>,
}

impl JsonlWriter {
    /// "-" is stdout; "" means no output (None); anything else a file, appended to.
    pub fn open(path: &str) -> Result<Option<JsonlWriter>, JsonlError> {
        let sink: Box<dyn Write + Send> = match path {
            "" => return Ok(None),
            "-" => Box::new(io::stdout()),
            p => Box::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|source| JsonlError::Open {
                        path: p.to_string(),
                        source,
                    })?,
            ),
        };
        Ok(Some(JsonlWriter {
            out: BufWriter::with_capacity(1 << 16, sink),
            path: path.to_string(),
            line: Vec::with_capacity(2048),
        }))
    }

    pub fn write(&mut self, record: &CallRecord) -> Result<(), JsonlError> {
        self.write_value(record)
    }

    /// Any of the wire types (plain structs whose serialization cannot fail).
    pub fn write_value<T: serde::Serialize>(&mut self, value: &T) -> Result<(), JsonlError> {
        self.line.clear();
        // Serializing plain structs into a Vec cannot fail.
        serde_json::to_writer(&mut self.line, value).expect("wire types serialize");
        self.line.push(b'\n');
        self.out
            .write_all(&self.line)
            .map_err(|source| JsonlError::from_io(&self.path, source))
    }

    /// One line that is already a serialized JSON object (without its newline).
    pub fn write_json(&mut self, json: &[u8]) -> Result<(), JsonlError> {
        self.out
            .write_all(json)
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|source| JsonlError::from_io(&self.path, source))
    }

    pub fn flush(&mut self) -> Result<(), JsonlError> {
        self.out
            .flush()
            .map_err(|source| JsonlError::from_io(&self.path, source))
    }
}

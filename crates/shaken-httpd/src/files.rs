//! Bounded reads of operator-given files (the sensor's configuration, trust anchors, seeded
//! certificates; token files of every server): opened without blocking, refused unless a
//! regular file, and read with a cap whatever size the file claims.
//!
//! It must never block on a FIFO, never read a device (`/dev/zero` reads forever), and never
//! hold more than the cap plus one byte of a file.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a regular file ({kind}); give a file")]
    NotRegular { path: String, kind: &'static str },
    #[error("{path}: larger than {max} bytes")]
    TooLarge { path: String, max: u64 },
}

impl FileError {
    /// What is wrong, without the path (for errors that name the path themselves).
    pub fn problem(&self) -> String {
        match self {
            FileError::Io { source, .. } => source.to_string(),
            FileError::NotRegular { kind, .. } => format!("not a regular file ({kind})"),
            FileError::TooLarge { max, .. } => format!("larger than {max} bytes"),
        }
    }
}

/// The whole of `path`, at most `max` bytes, if it is a regular file.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, FileError> {
    let label = || path.display().to_string();
    let io = |source| FileError::Io {
        path: label(),
        source,
    };
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let ft = file.metadata().map_err(io)?.file_type();
    if !ft.is_file() {
        let kind = if ft.is_dir() {
            "a directory"
        } else if ft.is_fifo() {
            "a pipe"
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device"
        } else if ft.is_socket() {
            "a socket"
        } else {
            "not a file"
        };
        return Err(FileError::NotRegular {
            path: label(),
            kind,
        });
    }
    let mut buf = Vec::new();
    file.take(max + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > max {
        return Err(FileError::TooLarge { path: label(), max });
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_pipes_and_directories_are_refused_and_files_capped() {
        for (p, kind) in [("/dev/zero", "a device"), ("/tmp", "a directory")] {
            match read_bounded(Path::new(p), 10) {
                Err(FileError::NotRegular { kind: k, .. }) => assert_eq!(k, kind),
                other => panic!("{p}: {other:?}"),
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a path we own, with a valid NUL-terminated string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(
            read_bounded(&fifo, 10),
            Err(FileError::NotRegular { kind: "a pipe", .. })
        ));
        let f = dir.path().join("f");
        std::fs::write(&f, b"0123456789").unwrap();
        assert_eq!(read_bounded(&f, 10).unwrap(), b"0123456789");
        assert!(matches!(
            read_bounded(&f, 9),
            Err(FileError::TooLarge { max: 9, .. })
        ));
    }
}

//! One rotated file: file-rotate's writer, with rotation by age added.

use distarch_core::LogFileConfig;
use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use std::io::{self, Write};
use std::time::{Duration, Instant};

/// A file rotated when it passes `max_size` (after a whole write, so lines stay
/// whole) or when it has been written to for `max_age`, keeping `keep` old files.
pub struct RotatingFile {
    inner: FileRotate<AppendCount>,
    max_age: Option<Duration>,
    since: Instant,
}

impl RotatingFile {
    /// Opens (appends to) the file of `config`, creating its directory.
    pub fn open(config: &LogFileConfig) -> io::Result<Self> {
        if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        // file-rotate opens the file itself and does not say when it cannot: check
        // here so that a bad path is an error at start-up, not lost lines.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.path)?;
        let limit = match config.max_size.0 {
            0 => ContentLimit::None,
            n => ContentLimit::BytesSurpassed(usize::try_from(n).unwrap_or(usize::MAX)),
        };
        let inner = FileRotate::new(
            &config.path,
            AppendCount::new(config.keep),
            limit,
            Compression::None,
            None,
        );
        Ok(RotatingFile {
            inner,
            max_age: config.max_age.non_zero(),
            since: Instant::now(),
        })
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.max_age.is_some_and(|age| self.since.elapsed() >= age) {
            self.inner.rotate()?;
            self.since = Instant::now();
        }
        self.inner.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        // One write call per buffer of whole lines: file-rotate rotates between
        // calls, never inside one.
        let mut rest = buf;
        while !rest.is_empty() {
            match self.write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

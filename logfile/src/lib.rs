//! distarch-logfile: the master's log written to files, beside standard output.
//!
//! How it works: [`LogFiles::open`] reads `launcher.log_file` and every group's
//! `log_file` and opens one [`RotatingFile`] for each (file-rotate does the
//! renaming: `run.log` → `run.log.1` → ..., keeping `keep` of them). Each file is
//! fed by a [`distarch_core::LogWriter`], so files hold exactly the lines standard
//! output would (text or JSON, timestamps on by default), written whole: a file is
//! rotated only between whole writes, so no line is ever split across two files.
//! [`LogFiles`] is an [`distarch_core::EventObserver`] that hands each event to a
//! thread of its own (see [`writer`]): the files are formatted and written beside
//! standard output, not after it, through a bounded queue (a slow disk slows the
//! run down; no line is dropped). A [`Reopen`] handle makes it open every file
//! again (after `logrotate` moved them, on SIGHUP or `reload`).

mod files;
mod rotate;
pub mod writer;

pub use files::{LogFileError, Reopen};
pub use rotate::RotatingFile;
pub use writer::LogFiles;

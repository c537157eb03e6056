//! The distarch worker protocol, version 1.
//!
//! How it works: a worker and its master exchange *lines* over a plain byte stream
//! (a pipe pair, an SSH channel, a container attach). A line that starts with the
//! byte `0x1E` (ASCII record separator, [`FRAME_MARKER`]) is a *frame*: the marker
//! followed by one JSON object with a `"type"` field. Any other line is plain log
//! text. The worker writes [`WorkerFrame`]s and plain lines on stdout (stderr lines
//! are plain log text at `warn`); the master writes [`MasterFrame`]s on the worker's
//! stdin, and closes stdin when it goes away.
//!
//! This crate holds the frame types, their encoding ([`encode_worker_frame`],
//! [`encode_master_frame`]), the classification of a received line ([`parse_worker_line`],
//! [`parse_master_line`]) and a [`LineSplitter`] that cuts a byte stream into lines
//! while never buffering more than a fixed bound. It depends on serde (and memchr for
//! fast newline search) only, so that workers can use it without pulling any runtime. `docs/protocol.md` in the
//! repository is the normative description.
#![forbid(unsafe_code)]

mod codec;
mod env;
mod frame;
mod lines;

pub use codec::{
    encode_master_frame, encode_worker_frame, parse_master_line, parse_worker_line, MasterLine,
    WorkerLine,
};
pub use env::{env_vars, ENV_PREFIX};
pub use frame::{Level, MasterFrame, WorkerFrame};
pub use lines::{LineSplitter, RawLine, DEFAULT_MAX_LINE};

/// The protocol version this crate speaks; given to workers as `DISTARCH_PROTOCOL`.
pub const PROTOCOL_VERSION: u32 = 1;

/// The byte that opens a frame line (ASCII record separator).
pub const FRAME_MARKER: u8 = 0x1E;

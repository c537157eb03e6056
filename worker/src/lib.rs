//! The distarch worker SDK: what a Rust program started by distarch uses to know
//! who it is, to log, to say it is alive and to stop cleanly.
//!
//! How it works: distarch starts each instance with `DISTARCH_*` environment
//! variables (its id, group, params, ...), reads the instance's stdout line by line
//! and writes to its stdin. [`Worker::from_env`] parses the variables. Everything
//! the worker tells the master (logs, `ready`, `ping`, `status`, `ended`) is a
//! *frame*: one line on stdout made of the byte `0x1E` and a JSON object, written
//! whole under the stdout lock so that it never mixes with `println!` output (plain
//! stdout lines are fine too: the master shows them as `info` logs, but do not leave
//! a partial line, as `print!` without a newline does, before a frame). A background
//! thread, started on first need, reads stdin: a `stop` frame or the end of stdin
//! (the master is gone) raises a stop flag that [`Worker::must_stop`] and
//! [`Worker::sleep`] see; the program never reads stdin itself. When the master is
//! gone the SDK also ends the process after a grace period (5 s by default,
//! [`Worker::with_master_gone_exit`]), so an orphaned worker never runs on.
//! `docs/protocol.md` in the repository is the normative description of the
//! protocol; this crate is one implementation of its worker side.
//!
//! ```no_run
//! distarch_worker::run(|worker| {
//!     let message: String = worker
//!         .params_json()
//!         .get("message")
//!         .and_then(|m| m.as_str())
//!         .unwrap_or("hello")
//!         .to_string();
//!     worker.ready();
//!     while worker.sleep(std::time::Duration::from_secs(1)) {
//!         worker.info(format!("{message} from {}/{}", worker.group_id(), worker.group_count()));
//!     }
//!     Ok::<(), std::io::Error>(())
//! })
//! ```
//!
//! Job pools: [`Worker::jobs`] iterates over the work items the master hands out
//! (asking for them with a credit), [`Worker::serve`] runs a handler on several
//! threads; each job is answered `done` (with a result) or `failed`.
//!
//! Features: `tracing` (default) adds a `tracing` layer (`Worker::tracing_layer`,
//! module `tracing`); `tokio` adds `Worker::stopped` and `Worker::sleep_async`.
#![forbid(unsafe_code)]

mod error;
mod identity;
mod jobs;
mod output;
mod run;
mod stop;
mod worker;

#[cfg(feature = "tokio")]
mod async_tokio;
#[cfg(feature = "tracing")]
pub mod tracing;

pub use distarch_protocol::Level;
pub use error::WorkerError;
pub use jobs::{Job, JobError, Jobs, DEFAULT_JOB_CREDIT};
pub use output::DEFAULT_PING_INTERVAL;
pub use run::{run, FAILURE_EXIT_CODE, NOT_STARTED_BY_DISTARCH_EXIT_CODE, SUCCESS_EXIT_CODE};
pub use stop::{StopReason, MASTER_GONE_EXIT_CODE};
pub use worker::{Worker, DEFAULT_MASTER_GONE_GRACE};

//! distarch-tui: `distarch top`, a live view of a running launch.
//!
//! How it works: a fetcher task ([`fetch`]) asks the run's control API for its
//! instances and for the recent output of what is selected, about once a second,
//! and hands the answers to the view over a channel. The view ([`app`] holds its
//! state, [`view`] draws it) runs on a thread of its own, reads keys with
//! crossterm, and draws with ratatui only when something changed, at most a few
//! times a second. Commands (stop, restart, suspend, resume, scale the selected
//! group) are asked for confirmation, then sent by the fetcher; their answers show
//! in the status line. The terminal is restored on every way out, a panic
//! included ([`term`]).

pub mod app;
mod fetch;
mod term;
mod view;

pub use term::{run, run_until, Exit, TopOptions};

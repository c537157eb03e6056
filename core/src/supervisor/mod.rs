//! Supervision: one task per instance ([`task`]), its output readers ([`reader`]),
//! activity clocks for timeouts, restart backoff, and the launcher's orders.

pub(crate) mod activity;
pub(crate) mod backoff;
pub(crate) mod control;
pub(crate) mod progress;
pub(crate) mod reader;
pub(crate) mod render;
pub(crate) mod task;
pub(crate) mod turns;

pub use control::StopHandle;

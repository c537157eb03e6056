//! distarch-metrics: a run as Prometheus metrics.
//!
//! How it works: [`RunMetrics`] holds a prometheus-client registry and every metric
//! of the run. Its [`RunMetrics::observer`] is an [`distarch_core::EventObserver`]
//! on the run's event stream: it counts starts, restarts, exits by reason, lines,
//! frames and bytes per group, and times each start until `ready`. Gauges of the
//! instances by group, transport and state are filled from the run's
//! [`distarch_core::Control::snapshot`] at each scrape. [`serve`] answers
//! `GET /metrics` on a TCP address with the OpenMetrics text. docs/metrics.md lists
//! every metric.

mod observe;
mod registry;
mod server;

pub use observe::MetricsObserver;
pub use registry::RunMetrics;
pub use server::{serve, MetricsServer, ServeError};

//! distarch-core: the configuration model, the placement plan, the [`Transport`]
//! trait, the per-instance supervisor and the [`Launcher`].
//!
//! How it works: a [`Config`] (loaded in layers by [`config::load`], or built in
//! code) names groups of identical instances and, per group, placements on
//! transports. [`build_plan`] checks it against a [`TransportRegistry`] and gives
//! every instance its ids. [`Launcher::run`] then starts one task per instance; the
//! task spawns the instance through its transport, reads its stdout/stderr as
//! protocol lines (frames or plain text), watches its activity for the group's
//! `timeout`, brings it down on orders (`stop` frame → grace → terminate → kill) and
//! restarts it per policy. Everything that happens is an [`Event`], delivered in
//! order to an [`EventSink`] on a thread of its own (the CLI's is a [`LogWriter`]);
//! the run ends with a [`RunReport`] whose [`RunReport::exit_code`] sums it up.
//!
//! ```no_run
//! use distarch_core::{Launcher, LogWriter, LogFormat};
//! # async fn demo(config: distarch_core::Config, registry: distarch_core::TransportRegistry) {
//! let launcher = Launcher::builder().config(config).registry(registry).build().unwrap();
//! let report = launcher.run(LogWriter::new(std::io::stdout(), LogFormat::Text)).await;
//! std::process::exit(report.exit_code());
//! # }
//! ```
#![forbid(unsafe_code)]

mod checks;
pub mod config;
pub mod control;
mod error;
mod escape;
mod events;
mod gc;
pub mod jobs;
mod launcher;
mod live_output;
mod output;
pub mod owner;
mod plan;
mod registry;
mod repeats;
mod report;
mod signals;
mod sink;
mod spec_builder;
mod stamp;
mod supervisor;
pub mod template;
pub mod trace;
mod transport;

pub use config::{
    BackoffConfig, ByteSize, CommandLine, Config, ControlConfig, GroupConfig, HumanDuration,
    LauncherConfig, LogFileConfig, LogFormat, MetricsConfig, PlacementConfig, RestartPolicy,
    TimeZone,
};
pub use control::{
    Control, ControlError, FeedEvent, Followed, InstanceSnapshot, InstanceState, LogFilter,
    ReloadOutcome, ScaleOutcome, Selector,
};
pub use error::{error_chain, ConfigError, ConfigErrors, InstanceError, SpawnError};
pub use events::{Event, InstanceLabel, LogLines, LogRecord, LogStream, StopReason, StopStep};
pub use gc::{GcReport, GcRequest};
pub use launcher::{new_run_id, Launcher, LauncherBuilder};
pub use live_output::{Follow, LiveOutput, OutputSettings};
pub use output::{event_level, format_json, format_text, format_text_at, EventFilter, LogWriter};
pub use plan::{
    build_plan, build_plan_limited, Plan, PlannedGroup, PlannedInstance, DEFAULT_MAX_INSTANCES,
    IMPLICIT_PLACEMENT, MAX_ARG_BYTES, MAX_EXEC_BYTES, PLACEMENT_KEYS,
};
pub use registry::{TransportRegistry, TransportResolver};
pub use report::{
    InstanceReport, Outcome, RunReport, EXIT_CONFIG, EXIT_FAILED, EXIT_INTERRUPTED,
    EXIT_JOBS_FAILED, EXIT_NOT_READY, EXIT_OK, EXIT_OUTPUT_LOST, EXIT_TERMINATED, EXIT_TIMEOUT,
};
pub use sink::{ChannelSink, EventObserver, EventSink, Observed};
pub use spec_builder::SpecBuilder;
pub use supervisor::StopHandle;
pub use transport::{
    ExitStatus, Instance, InstanceIo, InstanceSpec, PlacementPlan, PlacementRef, Prepared, Target,
    Transport,
};

/// Re-exported so transports and workers name one protocol crate.
pub use distarch_protocol as protocol;

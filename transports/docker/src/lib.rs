//! distarch-transport-docker: instances as containers on any Docker Engine API.
//!
//! How it works: a placement `{ transport = "docker", image = "...", instances = N }`
//! gives N containers on one engine (its `host`, else `DOCKER_HOST`, else the local
//! socket). The transport keeps one bollard client per engine, connected on first
//! use with the API version agreed with the engine, shared by every instance. Each
//! start creates a container named `distarch-<run>-<group>-<id>` and labelled with
//! the run, group, id and the master's identity, attaches to its stdin, stdout and
//! stderr (no tty, demultiplexed into pipes) *before* starting it so no output is
//! lost, starts it, and watches its end in a task (exit code from `wait`, OOM kills
//! from `inspect`). Terminate is `docker stop` with the grace period (the engine
//! sends SIGTERM, then SIGKILL), kill is `docker kill`, and the container is removed
//! once it has ended. The worker's stdin is open only while the master's attach is:
//! when the master goes, even by SIGKILL, the engine closes it and SDK workers exit;
//! a plain program is ended by a small stdin watcher the container's command line
//! runs under (when the image has `/bin/sh`); [`gc`] (and the next launch) removes
//! what remains of runs whose master is gone. An attach that drops while its
//! container runs (a connection blip, an engine restart) has closed the worker's
//! stdin for good: the instance is stopped and reported lost, and its output is
//! replayed from the container's log, from the last byte read to its end.
//!
//! ```no_run
//! use distarch_core::{Config, Launcher, LogFormat, LogWriter};
//! use distarch_transport_docker::{gc, DockerTransport, GcOptions};
//! # async fn demo(config: Config) -> Result<(), distarch_core::ConfigErrors> {
//! // Placements with `transport = "docker"` now run as containers.
//! let launcher = Launcher::builder()
//!     .config(config)
//!     .transport(DockerTransport::new())
//!     .build()?;
//! let report = launcher.run(LogWriter::new(std::io::stdout(), LogFormat::Text)).await;
//! // Later, or from another process: remove what runs whose master died left.
//! for engine in gc(&GcOptions::default()).await {
//!     println!("{engine}");
//! }
//! # let _ = report;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod api;
mod container;
mod engine;
mod gc;
mod images;
mod instance;
mod io;
pub mod labels;
mod live;
mod output;
mod settings;
mod transport;
mod watch;
mod wrapper;

pub use container::{container_name, create_body};
pub use engine::{check_address, ConnectError, EngineAddress, DEFAULT_HOST};
pub use gc::{engines_in_config, gc, gc_config, EngineGc, GcOptions};
pub use instance::DockerInstance;
pub use settings::{
    parse_size, ByteSize, DockerSettings, MountKind, MountSetting, PullPolicy,
    RESERVED_LABEL_PREFIX,
};
pub use transport::DockerTransport;

//! distarch-control: the control plane of a running distarch master.
//!
//! Every running master serves an HTTP/1.1 + JSON API on a Unix socket that only its
//! user can open (see [`rundir`] for where), and optionally on TCP with a bearer
//! token. The API is a thin layer over [`distarch_core::Control`]:
//!
//! | method and path        | what                                                  |
//! |------------------------|-------------------------------------------------------|
//! | `GET /v1/run`          | the run's descriptor and counts ([`wire::RunStatus`]) |
//! | `GET /v1/instances`    | every instance ([`wire::InstanceSnapshot`])           |
//! | `GET /v1/logs?...`     | buffered output as JSON lines, `follow=true` to go on |
//! | `GET /v1/events`       | every event from now on, as JSON lines                |
//! | `POST /v1/stop`        | stop instances, or the whole run                      |
//! | `POST /v1/suspend`     | stop groups and keep them stopped                     |
//! | `POST /v1/resume`      | start suspended groups again, same ids                |
//! | `POST /v1/scale`       | change a group's instance count                       |
//! | `POST /v1/restart`     | restart instances, optionally one at a time           |
//! | `POST /v1/reload`      | apply a new configuration (or re-read the old one)    |
//!
//! [`serve`] starts the server for a [`distarch_core::Control`]; [`Client`] and
//! [`find_run`] are what the CLI verbs use. docs/control.md describes the API.
#![forbid(unsafe_code)]

mod client;
mod discover;
mod routes;
pub mod rundir;
mod server;
pub mod wire;

pub use client::{Client, ClientError, Endpoint};
pub use discover::{find_run, live_runs, FindError, FoundRun};
pub use routes::Reloader;
pub use server::{serve, ControlServer, ServeError, ServeOptions};

//! The `kubernetes` transport of distarch: each instance runs as one pod.
//!
//! How it works: a placement names an image (and optionally a namespace, a
//! kubeconfig context, resources, ...). At the first spawn of a run in a namespace
//! the transport creates the run's owner object (a ConfigMap `distarch-<run>`
//! labelled with the master's host, pid and start time) and starts one watch on the
//! run's pods (`distarch.run=<run>`). Each instance start creates a pod
//! (`restartPolicy: Never`, container with `stdin`/`stdinOnce`, the `DISTARCH_*`
//! environment, an owner reference to the owner object), waits on the shared watch
//! until its container runs (failing fast with the reason on image pull errors or
//! when the scheduler cannot place it), attaches to its stdin through the API server
//! and follows its log for output (or, with `output = "attach"`, attaches its
//! stdout and stderr too, the log giving what came before the attach: splice.rs).
//! The exit code comes from the container status.
//! Stop deletes the pod with `gracePeriodSeconds` = the kill grace, kill deletes it
//! with 0. When the attach closes (master gone), the container's stdin reaches EOF
//! and SDK workers exit; deleting the owner cascades to every pod of the run, and
//! [`gc`] deletes the owners of masters that are gone. Every request goes through a
//! client-side token-bucket rate limit.
#![forbid(unsafe_code)]

mod client;
mod eof;
mod errors;
mod gc;
mod instance;
pub mod labels;
mod logs;
pub mod pod;
mod ratelimit;
mod settings;
mod splice;
mod start;
mod status;
mod transport;
mod watch;

pub use client::{connect, install_crypto_provider, Cluster, ClusterError, ClusterKey};
pub use gc::{gc, gc_config, scopes_in_config, GcAction, GcError, GcReport, GcScope};
pub use instance::{delete_params, grace_seconds};
pub use ratelimit::{RateLimit, RateLimitLayer};
pub use settings::{
    KubernetesSettings, OutputSource, PullPolicy, Resources, TolerationSetting, DEFAULT_API_BURST,
    DEFAULT_API_QPS,
};
pub use status::{progress, Progress};
pub use transport::{KubernetesTransport, NAME};

//! distarch-transport-ssh: instances on remote hosts over SSH (russh), with
//! nothing installed there but sshd, a POSIX shell and base tools.
//!
//! How it works: the [`SshTransport`]'s `plan` gives one target per host of a placement.
//! At spawn time the host entry is resolved (entry, then placement settings, then
//! `~/.ssh/config`), and the host's pool connects once (host key checked against
//! known_hosts, authentication with the agent's keys, then key files) and runs a
//! small POSIX sh agent ([`command::AGENT`]) in one session channel: the remote
//! login shell runs once per host, not once per instance. Every instance is then a
//! request to that agent, which starts the worker with `setsid` (its pid is its
//! process group), relays its stdout and stderr in counted chunks tagged with its
//! id, with a credit window per stream (a flooding worker waits alone), writes its
//! stdin, signals its group on request (only while it has not been reaped) and
//! reports how it ended (an exit code, or the signal that killed it) after its
//! last output. No value reaches a shell parser:
//! values travel on the agent's stdin and are used only as `"$@"` words. When the
//! master goes (the channel ends, or no keepalive for two periods), the agent
//! closes every worker's stdin, then after the stop grace sends SIGTERM to its
//! group, then SIGKILL; a connection that drops makes its instances lost.
#![forbid(unsafe_code)]

mod agent;
pub mod command;
mod connection;
mod hostkey;
mod instance;
mod pool;
mod resolve;
mod settings;
mod transport;

pub use agent::AgentError;
pub use connection::ConnectError;
pub use hostkey::{fingerprint, HostKeyError};
pub use instance::SshInstance;
pub use pool::PoolError;
pub use resolve::{expand_tilde, load_ssh_config, resolve, ResolvedHost, SshConfigError};
pub use settings::{
    HostEntry, HostKeyCheck, SshSettings, DEFAULT_CONNECT_TIMEOUT, DEFAULT_KEEPALIVE,
};
pub use transport::SshTransport;

//! distarch-transport-ssh: instances on remote hosts over SSH (russh), with
//! nothing installed there but sshd and a POSIX shell.
//!
//! How it works: the [`SshTransport`]'s `plan` gives one target per host of a placement.
//! At spawn time the host entry is resolved (entry, then placement settings, then
//! `~/.ssh/config`), and the instance gets a session channel from that host's pool
//! of connections: channels share connections, and a new connection is opened when
//! the server refuses a channel (OpenSSH `MaxSessions`). Connections verify the
//! host key against known_hosts and authenticate with the agent's keys, then key
//! files. The channel runs a small POSIX sh wrapper ([`command::WRAPPER`]) whose
//! arguments are single-quoted words, so no value reaches a shell parser. The
//! wrapper starts a watcher in a session of its own, reports the worker's pid and
//! then execs the worker with sshd's session pid, which is also its process group
//! id: terminate and kill run `kill -TERM|-KILL -<pgid>` in a short channel of their
//! own (OpenSSH refuses SSH `signal` requests in common setups). The watcher relays
//! the channel's stdin to the worker; when stdin ends
//! (the master closed it, died, or the connection dropped) it gives the worker's
//! process group the stop grace, then SIGTERM, then SIGKILL. The channel's stdout
//! and stderr are the worker's, the channel's exit status is the worker's, and a
//! channel that ends without one (a dropped connection) is an instance lost.
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

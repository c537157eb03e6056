//! Transport plugins, the master's side (docs/plugins.md): a transport that is an
//! external program, `distarch-transport-<name>`, started once per run and driven
//! over line-delimited JSON-RPC on its stdin/stdout.
//!
//! [`PluginTransport`] implements the core [`distarch_core::Transport`] trait over
//! that protocol, so the supervisor, control plane and metrics treat plugin
//! instances like any other; [`resolver`] is what the CLI installs on its
//! [`distarch_core::TransportRegistry`] to find plugins; [`check`] drives a plugin
//! through the protocol's scenarios (`distarch plugin-check`).

pub mod check;
mod conn;
mod transport;

pub use transport::{find_plugin, resolver, PluginTransport};

/// The plugin protocol version this master speaks (docs/plugins.md).
pub const PROTOCOL_VERSION: u64 = 1;

/// Prefix of plugin executables: `distarch-transport-<name>`.
pub const EXECUTABLE_PREFIX: &str = "distarch-transport-";

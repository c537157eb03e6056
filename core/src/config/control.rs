//! Settings of the control plane (`[launcher.control]`) and the `max_restarts`
//! value that accepts `"unlimited"`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Default size of each instance's in-memory log buffer, in bytes.
pub const DEFAULT_LOG_BUFFER: usize = 64 * 1024;

/// How the running master can be reached and how much output it keeps for `logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// Also serve the control API on this TCP address (`"127.0.0.1:7070"`), with a
    /// bearer token. The Unix socket is always served.
    pub listen: Option<String>,
    /// The bearer token for `listen`. When not set, one is generated and written to
    /// a 0600 file next to the run's socket.
    pub token: Option<String>,
    /// Bytes of recent output kept per instance for `distarch logs` (0 keeps none).
    pub log_buffer: usize,
    /// A rolling restart moves to the next instance when the previous one sent
    /// `ready`, or when it has run this long without sending it.
    pub rolling_delay: super::HumanDuration,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            listen: None,
            token: None,
            log_buffer: DEFAULT_LOG_BUFFER,
            rolling_delay: super::HumanDuration::from_secs(2),
        }
    }
}

/// `max_restarts` as written: a number, or `"unlimited"` (stored as `u32::MAX`).
pub(crate) mod max_restarts {
    use super::*;

    /// The stored value of `"unlimited"`.
    pub(crate) const UNLIMITED: u32 = u32::MAX;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Count(u32),
        Word(String),
    }

    pub(crate) fn serialize<S: Serializer>(value: &u32, s: S) -> Result<S::Ok, S::Error> {
        if *value == UNLIMITED {
            s.serialize_str("unlimited")
        } else {
            s.serialize_u32(*value)
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Count(n) => Ok(n),
            Raw::Word(w) if w == "unlimited" => Ok(UNLIMITED),
            Raw::Word(w) => Err(serde::de::Error::custom(format!(
                "`{w}` is not a number of restarts or \"unlimited\""
            ))),
        }
    }
}

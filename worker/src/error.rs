//! The errors of the worker SDK.

use std::error::Error as StdError;
use std::fmt;

/// Why a [`Worker`](crate::Worker) could not be built, or its params not read.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// A variable distarch always sets is missing: the program was not started by
    /// distarch (or its environment was cleared).
    #[error("not started by distarch: {name} is not set")]
    MissingVar {
        /// Name of the variable, e.g. `DISTARCH_ID`.
        name: &'static str,
    },
    /// A variable is set but its value cannot be used.
    #[error("{name} has an invalid value `{value}`")]
    InvalidVar {
        /// Name of the variable.
        name: &'static str,
        /// The value (cut to 80 characters).
        value: String,
        /// What is wrong with it.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The master speaks a protocol version this SDK does not know.
    #[error("DISTARCH_PROTOCOL: unsupported protocol version {found} (this worker speaks version {supported})")]
    UnsupportedProtocol {
        /// The version in `DISTARCH_PROTOCOL`.
        found: u32,
        /// The version this SDK speaks.
        supported: u32,
    },
    /// `DISTARCH_PARAMS` does not have the shape the caller asked for.
    #[error("DISTARCH_PARAMS does not match the expected type")]
    Params(#[source] serde_json::Error),
}

impl WorkerError {
    pub(crate) fn invalid(
        name: &'static str,
        value: &str,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        let mut shown: String = value.chars().take(80).collect();
        if shown.len() < value.len() {
            shown.push('…');
        }
        WorkerError::InvalidVar {
            name,
            value: shown,
            source: source.into(),
        }
    }
}

/// Displays an error followed by its chain of causes, `: `-separated.
pub(crate) struct Chain<'a>(pub &'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn chain_shows_the_causes() {
        let err = WorkerError::invalid("DISTARCH_ID", "x", "not a number");
        assert_eq!(
            Chain(&err).to_string(),
            "DISTARCH_ID has an invalid value `x`: not a number"
        );
    }
}

//! Error types shared by the core and the transports.

use std::fmt;

/// One problem found in the configuration, with the key path it concerns and
/// where the value came from (a file, the environment, a flag), when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path, e.g. `groups.first.placements.here.instances`.
    pub path: String,
    /// What is wrong, in lowercase words.
    pub message: String,
    /// Where the value came from (e.g. `distarch.toml`), when known.
    pub origin: Option<String>,
}

impl ConfigError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
            origin: None,
        }
    }

    /// The same problem, noting where the value came from.
    pub fn with_origin(mut self, origin: Option<String>) -> Self {
        if self.origin.is_none() {
            self.origin = origin;
        }
        self
    }

    /// The same problem at a sub-key of `prefix` (`prefix.path`).
    pub fn under(mut self, prefix: &str) -> Self {
        self.path = if self.path.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}.{}", self.path)
        };
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            // A problem with the configuration as a whole (e.g. its file).
            f.write_str(&self.message)?;
        } else {
            write!(f, "{}: {}", self.path, self.message)?;
        }
        if let Some(origin) = &self.origin {
            write!(f, " (from {origin})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration (never empty when returned as an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    /// `value` when `errors` is empty, else every one of them.
    pub fn or_value<T>(errors: Vec<ConfigError>, value: T) -> Result<T, ConfigErrors> {
        if errors.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Declares an error type made of a message and an optional boxed cause, with the
/// constructors `new(message)` and `with_source(message, source)`.
macro_rules! message_error {
    ($(#[$doc:meta])* $name:ident, $message_doc:literal) => {
        $(#[$doc])*
        #[derive(Debug, thiserror::Error)]
        #[error("{message}")]
        pub struct $name {
            #[doc = $message_doc]
            pub message: String,
            /// The underlying error.
            #[source]
            pub source: Option<BoxError>,
        }

        impl $name {
            /// An error described by `message`.
            pub fn new(message: impl Into<String>) -> Self {
                $name {
                    message: message.into(),
                    source: None,
                }
            }

            /// An error described by `message`, caused by `source`.
            pub fn with_source(
                message: impl Into<String>,
                source: impl std::error::Error + Send + Sync + 'static,
            ) -> Self {
                $name {
                    message: message.into(),
                    source: Some(Box::new(source)),
                }
            }
        }
    };
}

message_error!(
    /// An instance could not be started.
    SpawnError,
    "What failed, naming the place (host, engine, command)."
);

message_error!(
    /// A control operation on a running instance failed.
    InstanceError,
    "What failed."
);

impl SpawnError {
    /// The message followed by its chain of causes, on one line.
    pub fn chain(&self) -> String {
        error_chain(self)
    }
}

/// Formats an error and its sources as `outer: inner: innermost`.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let s = e.to_string();
        if !text.ends_with(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = e.source();
    }
    text
}

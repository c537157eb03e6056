//! Settings of a local placement.

use serde::Deserialize;

/// `{ transport = "local", instances = N, host = "label" }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSettings {
    /// Label shown in log prefixes and given as `DISTARCH_HOST` (default `localhost`).
    #[serde(default)]
    pub host: Option<String>,
}

//! Settings of what the master shows and keeps about a run: log files
//! (`launcher.log_file`, a group's `log_file`), timestamps, and the Prometheus
//! metrics endpoint (`[launcher.metrics]`).

use super::duration::HumanDuration;
use super::model::LogFormat;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::path::PathBuf;

/// A log file: where, in which format, and when it is rotated.
///
/// ```toml
/// [launcher.log_file]
/// path = "/var/log/distarch/run.log"
/// format = "json"        # default: text
/// max_size = "100MB"     # rotate when the file passes this size (0 = never)
/// max_age = "1d"         # rotate when the file is this old (0 = never)
/// keep = 5               # rotated files kept (run.log.1 is the newest)
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFileConfig {
    /// The file; rotated files are `PATH.1` (newest) to `PATH.<keep>`.
    pub path: PathBuf,
    /// `text` or `json`; default `text`.
    #[serde(default)]
    pub format: LogFormat,
    /// Rotate once the file has passed this size (`"100MB"`, `"512KiB"`, or bytes;
    /// 0 = never by size). Lines are never cut: a file may end a little past it.
    #[serde(default = "default_max_size")]
    pub max_size: ByteSize,
    /// Rotate once the file has been written to for this long (0 = never by age).
    #[serde(default)]
    pub max_age: HumanDuration,
    /// Rotated files kept besides the current one; older ones are deleted.
    #[serde(default = "default_keep")]
    pub keep: usize,
    /// Each text line starts with its RFC 3339 time (on by default in files).
    #[serde(default = "default_true")]
    pub timestamps: bool,
}

fn default_max_size() -> ByteSize {
    ByteSize(100 * 1000 * 1000)
}

fn default_keep() -> usize {
    5
}

fn default_true() -> bool {
    true
}

impl LogFileConfig {
    /// A text file at `path` with the default rotation (100 MB, 5 kept).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        LogFileConfig {
            path: path.into(),
            format: LogFormat::Text,
            max_size: default_max_size(),
            max_age: HumanDuration::default(),
            keep: default_keep(),
            timestamps: true,
        }
    }
}

/// The time zone of timestamps in text output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeZone {
    /// `2026-01-02T03:04:05.678Z`.
    #[default]
    Utc,
    /// The machine's local time with its offset: `2026-01-02T04:04:05.678+01:00`.
    Local,
}

/// The Prometheus endpoint (`[launcher.metrics]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `/metrics` on this TCP address (`"127.0.0.1:9464"`); not set = off.
    pub listen: Option<String>,
}

/// A size in bytes, written as a number of bytes or as a string with a unit:
/// `"512KiB"`, `"100MB"`, `"1G"` (k/M/G are powers of 1000, Ki/Mi/Gi of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct ByteSize(pub u64);

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let bad = || {
            format!("invalid size `{s}` (write e.g. \"100MB\", \"512KiB\", or a number of bytes)")
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1000,
            "ki" | "kib" => 1024,
            "m" | "mb" => 1000 * 1000,
            "mi" | "mib" => 1024 * 1024,
            "g" | "gb" => 1000 * 1000 * 1000,
            "gi" | "gib" => 1024 * 1024 * 1024,
            _ => return Err(bad()),
        };
        n.checked_mul(factor).map(ByteSize).ok_or_else(bad)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"100MB\" or a number of bytes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("a size cannot be negative ({v})")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_with_units() {
        assert_eq!("100MB".parse::<ByteSize>(), Ok(ByteSize(100_000_000)));
        assert_eq!("512KiB".parse::<ByteSize>(), Ok(ByteSize(512 * 1024)));
        assert_eq!(" 7 ".parse::<ByteSize>(), Ok(ByteSize(7)));
        assert!("12 parsecs".parse::<ByteSize>().is_err());
        assert!("".parse::<ByteSize>().is_err());
    }
}

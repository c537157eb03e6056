//! Durations written as human strings ("300ms", "30s", "5m"), 0 meaning "off" where
//! a key says so.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// A duration read from a human string such as `"300ms"`, `"30s"`, `"1h 5m"`; a bare
/// integer means seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        HumanDuration(Duration::from_secs(secs))
    }

    /// `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        HumanDuration(Duration::from_millis(ms))
    }

    /// The duration, or `None` when it is zero ("disabled").
    pub fn non_zero(self) -> Option<Duration> {
        (!self.0.is_zero()).then_some(self.0)
    }
}

impl From<Duration> for HumanDuration {
    fn from(d: Duration) -> Self {
        HumanDuration(d)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_zero() {
            f.write_str("0s")
        } else {
            write!(f, "{}", humantime::format_duration(self.0))
        }
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t == "0" {
            return Ok(HumanDuration(Duration::ZERO));
        }
        if let Ok(secs) = t.parse::<u64>() {
            return Ok(HumanDuration::from_secs(secs));
        }
        humantime::parse_duration(t)
            .map(HumanDuration)
            .map_err(|e| {
                format!("invalid duration `{s}`: {e} (write e.g. \"300ms\", \"30s\", \"5m\")")
            })
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"300ms\", \"30s\" or \"5m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HumanDuration, E> {
                Ok(HumanDuration::from_secs(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HumanDuration, E> {
                u64::try_from(v)
                    .map(HumanDuration::from_secs)
                    .map_err(|_| E::custom(format!("invalid duration `{v}`: must not be negative")))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_human_strings_and_seconds() {
        assert_eq!(
            "300ms".parse::<HumanDuration>(),
            Ok(HumanDuration::from_millis(300))
        );
        assert_eq!(
            "5m".parse::<HumanDuration>(),
            Ok(HumanDuration::from_secs(300))
        );
        assert_eq!("0s".parse::<HumanDuration>(), Ok(HumanDuration::default()));
        assert_eq!(
            "12".parse::<HumanDuration>(),
            Ok(HumanDuration::from_secs(12))
        );
        let err = "5 parsecs".parse::<HumanDuration>().unwrap_err();
        assert!(err.contains("invalid duration `5 parsecs`"), "{err}");
        assert_eq!(HumanDuration::from_millis(1500).to_string(), "1s 500ms");
    }
}

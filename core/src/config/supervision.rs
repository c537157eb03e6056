//! Supervision settings of a group that fit plain programs as well as protocol
//! speakers: the stop signal, the readiness rule and the dependencies on other groups.

use super::duration::HumanDuration;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The signal that politely stops a plain program (one that never sent a frame):
/// `SIGTERM` by default, any signal name (`TERM`, `SIGINT`, `hup`, ...) or number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StopSignal(i32);

/// Signal names and numbers as on Linux (x86-64, aarch64 and most others).
const SIGNALS: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("PWR", 30),
    ("SYS", 31),
];

impl StopSignal {
    /// SIGTERM, the default.
    pub const TERM: StopSignal = StopSignal(15);

    /// The signal number.
    pub fn number(self) -> i32 {
        self.0
    }

    /// The name without the `SIG` prefix (`TERM`), or the number as text.
    pub fn name(self) -> String {
        SIGNALS
            .iter()
            .find(|(_, n)| *n == self.0)
            .map(|(name, _)| (*name).to_string())
            .unwrap_or_else(|| self.0.to_string())
    }

    /// Parses `TERM`, `SIGTERM`, `sigterm` or `15`.
    pub fn parse(text: &str) -> Result<StopSignal, String> {
        let t = text.trim();
        if let Ok(n) = t.parse::<i32>() {
            return if (1..=64).contains(&n) {
                Ok(StopSignal(n))
            } else {
                Err(format!("signal number {n} is out of range (1 to 64)"))
            };
        }
        let upper = t.to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        SIGNALS
            .iter()
            .find(|(name, _)| *name == bare)
            .map(|(_, n)| StopSignal(*n))
            .ok_or_else(|| {
                format!("unknown signal `{text}` (expected a name such as TERM, INT, QUIT, HUP, USR1, or a number)")
            })
    }
}

impl Default for StopSignal {
    fn default() -> Self {
        StopSignal::TERM
    }
}

impl fmt::Display for StopSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIG{}", self.name())
    }
}

impl Serialize for StopSignal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for StopSignal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Text(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Number(n) => n.to_string(),
            Raw::Text(t) => t,
        };
        StopSignal::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// When an instance counts as ready, for workers that do not send the `ready`
/// frame themselves. A `ready` frame always counts too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum ReadyRule {
    /// A log line (plain or frame message, stdout or stderr) matches this regular
    /// expression (`ready = { log = "listening on" }`).
    Log(String),
    /// A TCP connection to this port (on 127.0.0.1) or `host:port` succeeds; local
    /// instances only (`ready = { tcp = 8080 }`).
    Tcp(TcpTarget),
    /// This long after the instance started (`ready = { delay = "2s" }`).
    Delay(HumanDuration),
}

/// A TCP port, or `host:port`, for [`ReadyRule::Tcp`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TcpTarget {
    /// A port on 127.0.0.1.
    Port(u16),
    /// `host:port`.
    Address(String),
}

impl TcpTarget {
    /// The address to connect to.
    pub fn address(&self) -> String {
        match self {
            TcpTarget::Port(p) => format!("127.0.0.1:{p}"),
            TcpTarget::Address(a) => a.clone(),
        }
    }
}

/// What a group waits for from a group it depends on before starting
/// (`depends_on = { db = "ready" }`), as docker compose and process-compose do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DependencyCondition {
    /// Every instance of the other group was started.
    Started,
    /// Every instance of the other group is (or was) ready.
    Ready,
    /// Every instance of the other group ended with exit code 0 (one-shot groups).
    Completed,
}

impl fmt::Display for DependencyCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DependencyCondition::Started => "started",
            DependencyCondition::Ready => "ready",
            DependencyCondition::Completed => "completed",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name_or_number() {
        assert_eq!(StopSignal::parse("TERM").map(|s| s.number()), Ok(15));
        assert_eq!(StopSignal::parse("sigint").map(|s| s.number()), Ok(2));
        assert_eq!(StopSignal::parse("3").map(|s| s.number()), Ok(3));
        assert_eq!(
            StopSignal::parse("USR1").map(|s| s.to_string()),
            Ok("SIGUSR1".to_string())
        );
        assert!(StopSignal::parse("SIGFOO")
            .unwrap_err()
            .contains("unknown signal `SIGFOO`"));
        assert!(StopSignal::parse("99").is_err());
    }
}

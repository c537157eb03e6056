//! Settings of an SSH placement and the host entries it lists.

use distarch_core::{ConfigError, HumanDuration};
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Default connect timeout (per attempt).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default interval between keepalives on a quiet connection.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(10);

/// How the server's host key is checked, like OpenSSH's `StrictHostKeyChecking`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyCheck {
    /// The key must be in known_hosts (default).
    #[default]
    Strict,
    /// An unknown host's key is accepted and recorded; a changed key is refused.
    AcceptNew,
    /// No check at all (tests and throw-away hosts only).
    Off,
}

/// `{ transport = "ssh", hosts = [...], instances = N, ... }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshSettings {
    /// Hosts, each `host`, `user@host` or `user@host:port` (`[v6addr]:port` too);
    /// `host` may be an alias of the ssh config.
    pub hosts: Vec<String>,
    /// User for hosts that name none (default: ssh config, then `$USER`).
    #[serde(default)]
    pub user: Option<String>,
    /// Port for hosts that name none (default: ssh config, then 22).
    #[serde(default)]
    pub port: Option<u16>,
    /// Private key files to try, in order, after the agent's keys.
    #[serde(default)]
    pub identity_files: Vec<PathBuf>,
    /// Name of the environment variable holding the passphrase of the key files.
    #[serde(default)]
    pub passphrase_env: Option<String>,
    /// Host key checking: `strict` (default), `accept-new` or `off`.
    #[serde(default)]
    pub host_key_check: HostKeyCheck,
    /// known_hosts file (default `~/.ssh/known_hosts`).
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
    /// ssh config file (default `~/.ssh/config`; `"none"` reads none).
    #[serde(default)]
    pub ssh_config: Option<PathBuf>,
    /// Timeout of one connection attempt, handshake and authentication included.
    #[serde(default)]
    pub connect_timeout: Option<HumanDuration>,
    /// Keepalive interval; three unanswered keepalives drop the connection.
    #[serde(default)]
    pub keepalive: Option<HumanDuration>,
}

impl SshSettings {
    /// Checks what can be checked without the network; errors are relative to the
    /// placement (`hosts[1]`, `passphrase_env`).
    pub fn check(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if self.hosts.is_empty() {
            errors.push(ConfigError::new("hosts", "must list at least one host"));
        }
        for (i, h) in self.hosts.iter().enumerate() {
            if let Err(e) = h.parse::<HostEntry>() {
                errors.push(ConfigError::new(format!("hosts[{i}]"), e));
            }
        }
        if let Some(name) = &self.passphrase_env {
            if name.is_empty() {
                errors.push(ConfigError::new(
                    "passphrase_env",
                    "must name an environment variable",
                ));
            }
        }
        if matches!(self.connect_timeout, Some(t) if t.0.is_zero()) {
            errors.push(ConfigError::new("connect_timeout", "must be more than 0"));
        }
        errors
    }

    /// The connect timeout in force.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
            .map(|d| d.0)
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT)
    }

    /// The keepalive interval in force (`None`: off).
    pub fn keepalive(&self) -> Option<Duration> {
        match self.keepalive {
            Some(d) => d.non_zero(),
            None => Some(DEFAULT_KEEPALIVE),
        }
    }
}

/// One entry of `hosts`: `[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostEntry {
    /// User given in the entry.
    pub user: Option<String>,
    /// Host name, address or ssh config alias.
    pub host: String,
    /// Port given in the entry.
    pub port: Option<u16>,
}

impl FromStr for HostEntry {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            format!("invalid host `{s}`: {why} (write `host`, `user@host` or `user@host:port`)")
        };
        if s.trim() != s || s.is_empty() {
            return Err(bad("empty or surrounded by spaces"));
        }
        let (user, rest) = match s.rsplit_once('@') {
            Some((u, r)) if !u.is_empty() => (Some(u.to_string()), r),
            Some(_) => return Err(bad("empty user")),
            None => (None, s),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (addr, after) = inner.split_once(']').ok_or_else(|| bad("missing `]`"))?;
            match after {
                "" => (addr, None),
                p => (
                    addr,
                    Some(p.strip_prefix(':').ok_or_else(|| bad("junk after `]`"))?),
                ),
            }
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if host.is_empty()
            || host
                .chars()
                .any(|c| c.is_whitespace() || c == '/' || c == '@')
        {
            return Err(bad("bad host name"));
        }
        let port = match port {
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?,
            ),
            None => None,
        };
        Ok(HostEntry {
            user,
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for HostEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_entries() {
        let e: HostEntry = "alice@db1:2222".parse().unwrap();
        assert_eq!(
            (e.user.as_deref(), e.host.as_str(), e.port),
            (Some("alice"), "db1", Some(2222))
        );
        let e: HostEntry = "web".parse().unwrap();
        assert_eq!((e.user, e.host.as_str(), e.port), (None, "web", None));
        let e: HostEntry = "[::1]:22".parse().unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", Some(22)));
        assert_eq!(e.to_string(), "[::1]:22");
        assert!("h:0".parse::<HostEntry>().unwrap_err().contains("port"));
        assert!("@h".parse::<HostEntry>().is_err());
        assert!("".parse::<HostEntry>().is_err());
        assert!("a b".parse::<HostEntry>().is_err());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let v = serde_json::json!({"hosts": ["a"], "hostz": 1});
        let e = serde_json::from_value::<SshSettings>(v)
            .unwrap_err()
            .to_string();
        assert!(e.contains("hostz"), "{e}");
        let v = serde_json::json!({"hosts": ["a"], "host_key_check": "maybe"});
        assert!(serde_json::from_value::<SshSettings>(v).is_err());
        let v = serde_json::json!({"hosts": ["a"], "host_key_check": "accept-new", "connect_timeout": "2s"});
        let s = serde_json::from_value::<SshSettings>(v).unwrap();
        assert_eq!(s.host_key_check, HostKeyCheck::AcceptNew);
        assert_eq!(s.connect_timeout(), Duration::from_secs(2));
        let s = SshSettings {
            hosts: vec!["x:99999".into()],
            ..Default::default()
        };
        assert_eq!(s.check()[0].path, "hosts[0]");
    }
}

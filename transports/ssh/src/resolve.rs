//! From a host entry and the placement's settings to everything needed to connect:
//! the ssh config (`~/.ssh/config`, parsed by the `ssh2-config` crate) fills in
//! HostName, User, Port and IdentityFile where the entry and the placement say
//! nothing.

use crate::settings::{HostEntry, HostKeyCheck, SshSettings};
use ssh2_config::{ParseRule, SshConfig};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where and how to connect to one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedHost {
    /// The host entry as written in the placement (the label of its instances).
    pub label: String,
    /// The name or address to connect to.
    pub hostname: String,
    /// TCP port.
    pub port: u16,
    /// Remote user.
    pub user: String,
    /// Key files to try, in order.
    pub identity_files: Vec<PathBuf>,
    /// Passphrase variable for encrypted key files.
    pub passphrase_env: Option<String>,
    /// Host key checking mode.
    pub host_key_check: HostKeyCheck,
    /// known_hosts file.
    pub known_hosts: PathBuf,
    /// Timeout of one connection attempt.
    pub connect_timeout: Duration,
    /// Keepalive interval.
    pub keepalive: Option<Duration>,
}

/// The ssh config could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read ssh config {path}")]
pub struct SshConfigError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// Expands a leading `~/` to `$HOME/`.
pub fn expand_tilde(path: &Path) -> PathBuf {
    match path.strip_prefix("~") {
        Ok(rest) => home().join(rest),
        Err(_) => path.to_path_buf(),
    }
}

fn default_user() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "root".into())
}

/// Reads the ssh config the settings name (`None` when there is none to read).
pub fn load_ssh_config(settings: &SshSettings) -> Result<Option<SshConfig>, SshConfigError> {
    let (path, explicit) = match &settings.ssh_config {
        Some(p) if p.as_os_str() == "none" => return Ok(None),
        Some(p) => (expand_tilde(p), true),
        None => (home().join(".ssh").join("config"), false),
    };
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(None),
        Err(e) => {
            return Err(SshConfigError {
                path,
                source: Box::new(e),
            })
        }
    };
    SshConfig::default()
        .parse(
            &mut BufReader::new(file),
            ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS,
        )
        .map(Some)
        .map_err(|e| SshConfigError {
            path,
            source: Box::new(e),
        })
}

/// Resolves one host entry.
pub fn resolve(
    entry: &HostEntry,
    settings: &SshSettings,
    config: Option<&SshConfig>,
) -> ResolvedHost {
    let params = config.map(|c| c.query(&entry.host));
    let hostname = params
        .as_ref()
        .and_then(|p| p.host_name.clone())
        .unwrap_or_else(|| entry.host.clone());
    let user = entry
        .user
        .clone()
        .or_else(|| settings.user.clone())
        .or_else(|| params.as_ref().and_then(|p| p.user.clone()))
        .unwrap_or_else(default_user);
    let port = entry
        .port
        .or(settings.port)
        .or_else(|| params.as_ref().and_then(|p| p.port))
        .unwrap_or(22);
    let mut identity_files: Vec<PathBuf> = settings
        .identity_files
        .iter()
        .map(|p| expand_tilde(p))
        .collect();
    if let Some(files) = params.as_ref().and_then(|p| p.identity_file.clone()) {
        identity_files.extend(files.iter().map(|p| expand_tilde(p)));
    }
    if identity_files.is_empty() {
        let dir = home().join(".ssh");
        identity_files = ["id_ed25519", "id_ecdsa", "id_rsa"]
            .iter()
            .map(|n| dir.join(n))
            .filter(|p| p.exists())
            .collect();
    }
    let known_hosts = settings
        .known_hosts
        .as_deref()
        .map(expand_tilde)
        .unwrap_or_else(|| home().join(".ssh").join("known_hosts"));
    ResolvedHost {
        label: entry.to_string(),
        hostname,
        port,
        user,
        identity_files,
        passphrase_env: settings.passphrase_env.clone(),
        host_key_check: settings.host_key_check,
        known_hosts,
        connect_timeout: settings.connect_timeout(),
        keepalive: settings.keepalive(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_config_fills_what_the_entry_leaves_open() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config");
        std::fs::write(
            &cfg,
            "Host web\n  HostName 127.0.0.2\n  User deploy\n  Port 2200\n  IdentityFile /keys/web\n\nHost *\n  User other\n",
        )
        .unwrap();
        let settings = SshSettings {
            hosts: vec!["web".into()],
            ssh_config: Some(cfg),
            ..Default::default()
        };
        let config = load_ssh_config(&settings).unwrap();
        let r = resolve(&"web".parse().unwrap(), &settings, config.as_ref());
        assert_eq!(r.hostname, "127.0.0.2");
        assert_eq!(r.user, "deploy");
        assert_eq!(r.port, 2200);
        assert_eq!(r.identity_files, vec![PathBuf::from("/keys/web")]);
        let r = resolve(&"bob@web:23".parse().unwrap(), &settings, config.as_ref());
        assert_eq!((r.user.as_str(), r.port), ("bob", 23));
        let r = resolve(&"db".parse().unwrap(), &settings, config.as_ref());
        assert_eq!(
            (r.hostname.as_str(), r.user.as_str(), r.port),
            ("db", "other", 22)
        );
    }

    #[test]
    fn a_missing_explicit_ssh_config_is_an_error() {
        let settings = SshSettings {
            ssh_config: Some("/nonexistent/ssh_config".into()),
            ..Default::default()
        };
        let e = load_ssh_config(&settings).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ssh_config"));
        let none = SshSettings {
            ssh_config: Some("none".into()),
            ..Default::default()
        };
        assert!(load_ssh_config(&none).unwrap().is_none());
    }
}

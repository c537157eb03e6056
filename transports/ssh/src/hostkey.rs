//! Host key verification against known_hosts: `strict`, `accept-new` or `off`, as
//! OpenSSH's `StrictHostKeyChecking`.

use crate::resolve::ResolvedHost;
use crate::settings::HostKeyCheck;
use russh::keys::{HashAlg, PublicKey};
use std::path::PathBuf;

/// Why a server's host key was refused.
#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    /// The host is not in known_hosts and the mode is `strict`.
    #[error("host key of {host} ({fingerprint}) is not in {path}; add it (ssh-keyscan -p {port} {hostname} >> {path}) or set host_key_check = \"accept-new\"", path = .path.display())]
    Unknown {
        /// The host entry.
        host: String,
        /// Name the key is looked up under.
        hostname: String,
        /// Port.
        port: u16,
        /// SHA256 fingerprint of the offered key.
        fingerprint: String,
        /// known_hosts file.
        path: PathBuf,
    },
    /// known_hosts has another key for this host.
    #[error("host key of {host} has changed: the server offered {fingerprint}, which does not match {path} line {line}; refusing to connect (if the host was reinstalled, remove that line)", path = .path.display())]
    Changed {
        /// The host entry.
        host: String,
        /// SHA256 fingerprint of the offered key.
        fingerprint: String,
        /// known_hosts file.
        path: PathBuf,
        /// The line with the recorded key.
        line: usize,
    },
    /// known_hosts could not be read or written.
    #[error("cannot use known_hosts file {path} for {host}", path = .path.display())]
    File {
        /// The host entry.
        host: String,
        /// known_hosts file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<russh::keys::Error>,
    },
    /// The server presented a certificate.
    #[error("{host} presented a host certificate, which distarch does not verify; set host_key_check = \"off\" to connect anyway")]
    Certificate {
        /// The host entry.
        host: String,
    },
}

/// The SHA256 fingerprint of a key as OpenSSH prints it (`SHA256:...`).
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Creates the directory of a known_hosts file that does not exist yet with mode
/// 0700, as OpenSSH does for `~/.ssh` (russh would make it 0755).
fn create_private_parent(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() && !parent.exists() => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
        }
        _ => Ok(()),
    }
}

/// Checks `key` for `host` per its mode; records it under `accept-new`.
pub fn verify(host: &ResolvedHost, key: &PublicKey) -> Result<(), HostKeyError> {
    if host.host_key_check == HostKeyCheck::Off {
        return Ok(());
    }
    let path = &host.known_hosts;
    let file_error = |source| HostKeyError::File {
        host: host.label.clone(),
        path: path.clone(),
        source: Box::new(source),
    };
    let known = match russh::keys::check_known_hosts_path(&host.hostname, host.port, key, path) {
        Ok(known) => known,
        Err(russh::keys::Error::KeyChanged { line }) => {
            return Err(HostKeyError::Changed {
                host: host.label.clone(),
                fingerprint: fingerprint(key),
                path: path.clone(),
                line,
            })
        }
        Err(russh::keys::Error::IO(e)) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(file_error(e)),
    };
    if known {
        return Ok(());
    }
    match host.host_key_check {
        HostKeyCheck::AcceptNew => {
            create_private_parent(path).map_err(|e| file_error(russh::keys::Error::IO(e)))?;
            russh::keys::known_hosts::learn_known_hosts_path(&host.hostname, host.port, key, path)
                .map_err(file_error)?;
            tracing::info!(host = %host.label, fingerprint = %fingerprint(key), "recorded new host key");
            Ok(())
        }
        _ => Err(HostKeyError::Unknown {
            host: host.label.clone(),
            hostname: host.hostname.clone(),
            port: host.port,
            fingerprint: fingerprint(key),
            path: path.clone(),
        }),
    }
}

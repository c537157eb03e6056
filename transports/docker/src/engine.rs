//! Engine addresses (as the docker CLI reads them) and one shared client per engine.

use bollard::Docker;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;

/// The engine address used when neither the placement nor `DOCKER_HOST` names one.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
/// How long connecting to an engine and agreeing on an API version may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of each API request until its response headers arrive (long-running
/// calls such as `wait` and `attach` answer their headers at once).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Where an engine is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EngineAddress {
    /// `unix:///path`, `tcp://host:port` or `https://host:port`.
    pub url: String,
    /// Folder holding `ca.pem`, `cert.pem` and `key.pem` when the engine speaks TLS.
    pub tls: Option<PathBuf>,
}

impl fmt::Display for EngineAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)?;
        if let Some(certs) = &self.tls {
            write!(f, " (tls, certificates in {})", certs.display())?;
        }
        Ok(())
    }
}

/// Checks the form of an engine address; returns the problem in words.
pub fn check_address(url: &str) -> Result<(), String> {
    normalize(url).map(|_| ())
}

fn normalize(url: &str) -> Result<String, String> {
    let url = url.trim();
    if url.starts_with('/') {
        return Ok(format!("unix://{url}"));
    }
    if let Some(path) = url.strip_prefix("unix://") {
        if !path.starts_with('/') {
            return Err(format!(
                "`{url}`: a unix socket address needs an absolute path (unix:///path)"
            ));
        }
        return Ok(url.to_string());
    }
    for scheme in ["tcp://", "http://", "https://"] {
        if let Some(rest) = url.strip_prefix(scheme) {
            let rest = rest.trim_end_matches('/');
            if rest.is_empty() || rest.contains('/') {
                return Err(format!("`{url}`: expected {scheme}HOST[:PORT]"));
            }
            let has_port = rest
                .rsplit_once(':')
                .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                && !rest.ends_with(']');
            let with_port = if has_port {
                rest.to_string()
            } else {
                let port = if scheme == "https://" { 2376 } else { 2375 };
                format!("{rest}:{port}")
            };
            return Ok(format!("{scheme}{with_port}"));
        }
    }
    Err(format!(
        "`{url}`: unsupported engine address; use unix:///path, tcp://host:port or https://host:port"
    ))
}

impl EngineAddress {
    /// The engine a placement uses: its `host`, else `DOCKER_HOST`, else the default
    /// socket; TLS with `cert_path`, or, for tcp, when `DOCKER_TLS_VERIFY` is set, with
    /// the certificates in `DOCKER_CERT_PATH` (default `~/.docker`), as the docker CLI
    /// does.
    pub fn resolve(host: Option<&str>, cert_path: Option<&Path>) -> Result<Self, String> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let raw = host
            .map(str::to_string)
            .or_else(|| env("DOCKER_HOST"))
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        let url = normalize(&raw)?;
        let remote = !url.starts_with("unix://");
        let tls = match cert_path {
            Some(p) if remote => Some(p.to_path_buf()),
            Some(_) => None,
            None if remote
                && (env("DOCKER_TLS_VERIFY").is_some() || url.starts_with("https://")) =>
            {
                Some(match env("DOCKER_CERT_PATH") {
                    Some(p) => PathBuf::from(p),
                    None => home_docker_dir(),
                })
            }
            None => None,
        };
        Ok(EngineAddress { url, tls })
    }

    /// Short label of the engine for log prefixes and `DISTARCH_HOST`: `docker` for
    /// a local socket, the host name for a remote engine.
    pub fn label(&self) -> String {
        if self.url.starts_with("unix://") {
            return "docker".to_string();
        }
        let rest = self
            .url
            .split_once("://")
            .map_or(self.url.as_str(), |(_, r)| r);
        let host = rest.rsplit_once(':').map_or(rest, |(h, _)| h);
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string()
    }

    /// A client for this engine (nothing is sent yet).
    fn client(&self) -> Result<Docker, bollard::errors::Error> {
        let timeout = REQUEST_TIMEOUT.as_secs();
        let version = bollard::API_DEFAULT_VERSION;
        let docker = if let Some(path) = self.url.strip_prefix("unix://") {
            Docker::connect_with_unix(path, timeout, version)?
        } else if let Some(certs) = &self.tls {
            // bollard looks the process-wide rustls provider up while handshaking;
            // installing fails harmlessly when one is installed already.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let addr = self.url.replacen("https://", "tcp://", 1);
            Docker::connect_with_ssl(
                &addr,
                &certs.join("key.pem"),
                &certs.join("cert.pem"),
                &certs.join("ca.pem"),
                timeout,
                version,
            )?
        } else {
            let addr = self.url.replacen("http://", "tcp://", 1);
            Docker::connect_with_http(&addr, timeout, version)?
        };
        Ok(docker)
    }

    /// Connects: builds a client and agrees on an API version with the engine.
    pub async fn connect(&self) -> Result<Docker, ConnectError> {
        let docker = self.client().map_err(ConnectError::Client)?;
        match tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version()).await {
            Ok(Ok(docker)) => Ok(docker),
            Ok(Err(e)) => Err(ConnectError::Api(e)),
            Err(_) => Err(ConnectError::Timeout(CONNECT_TIMEOUT)),
        }
    }
}

fn home_docker_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
        .join(".docker")
}

/// Why an engine could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The client could not be built (socket file missing, bad certificates).
    #[error("cannot set up a client")]
    Client(#[source] bollard::errors::Error),
    /// The engine did not answer the version request.
    #[error("the engine does not answer")]
    Api(#[source] bollard::errors::Error),
    /// The engine did not answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// One client per engine address, shared by every instance of the run.
#[derive(Default)]
pub(crate) struct Engines {
    clients: Mutex<HashMap<EngineAddress, Arc<OnceCell<Docker>>>>,
}

impl Engines {
    /// The client of `address`, connecting on first use; returns whether this call
    /// made the connection. A failed connection is not remembered: the next call
    /// tries again.
    pub(crate) async fn get(
        &self,
        address: &EngineAddress,
    ) -> Result<(Docker, bool), ConnectError> {
        let cell = {
            let mut map = self.clients.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(address.clone()).or_default().clone()
        };
        let mut fresh = false;
        let docker = cell
            .get_or_try_init(|| {
                fresh = true;
                address.connect()
            })
            .await?;
        Ok((docker.clone(), fresh))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_addresses() {
        assert_eq!(normalize("/run/d.sock").unwrap(), "unix:///run/d.sock");
        assert_eq!(normalize("tcp://h").unwrap(), "tcp://h:2375");
        assert_eq!(normalize("tcp://h:1234/").unwrap(), "tcp://h:1234");
        assert_eq!(normalize("https://h").unwrap(), "https://h:2376");
        assert!(normalize("unix://rel.sock").is_err());
        assert!(normalize("ssh://h").is_err());
        assert!(normalize("tcp://").is_err());
    }

    #[test]
    fn labels() {
        let a = |u: &str| EngineAddress {
            url: normalize(u).unwrap(),
            tls: None,
        };
        assert_eq!(a(DEFAULT_HOST).label(), "docker");
        assert_eq!(a("unix:///tmp/x.sock").label(), "docker");
        assert_eq!(a("tcp://box1:2375").label(), "box1");
    }

    #[test]
    fn explicit_host_and_certs() {
        let a = EngineAddress::resolve(Some("tcp://h:2376"), Some(Path::new("/certs"))).unwrap();
        assert_eq!(a.tls.as_deref(), Some(Path::new("/certs")));
        let a = EngineAddress::resolve(Some("unix:///x.sock"), Some(Path::new("/certs"))).unwrap();
        assert_eq!(a.tls, None);
    }
}

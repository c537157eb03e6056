//! One authenticated SSH connection: TCP connect, handshake with host key check,
//! authentication (agent keys, then key files), all under the connect timeout.

use crate::hostkey::{verify, HostKeyError};
use crate::resolve::ResolvedHost;
use russh::client::{self, Handle};
use russh::keys::agent::client::AgentClient;
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why a connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP connect or the SSH handshake failed.
    #[error("cannot connect to {host} ({hostname}:{port})")]
    Network {
        /// Host entry.
        host: String,
        /// Address.
        hostname: String,
        /// Port.
        port: u16,
        /// Why.
        #[source]
        source: russh::Error,
    },
    /// The attempt took longer than the connect timeout.
    #[error(
        "connecting to {host} ({hostname}:{port}) timed out after {after:?} (connect_timeout)"
    )]
    Timeout {
        /// Host entry.
        host: String,
        /// Address.
        hostname: String,
        /// Port.
        port: u16,
        /// The timeout.
        after: Duration,
    },
    /// The host key was refused.
    #[error(transparent)]
    HostKey(#[from] HostKeyError),
    /// The agent could not be started on the connection.
    #[error(transparent)]
    Agent(#[from] crate::agent::AgentError),
    /// No key was accepted.
    #[error("authentication to {host} as {user} failed (tried: {tried})")]
    Auth {
        /// Host entry.
        host: String,
        /// Remote user.
        user: String,
        /// What was tried, and why some keys could not be used.
        tried: String,
    },
}

impl ConnectError {
    /// True when trying again later may help (network trouble, not a refusal).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ConnectError::Network { .. } | ConnectError::Timeout { .. }
        )
    }
}

/// The russh client handler: checks the host key and keeps the refusal reason.
pub(crate) struct ClientHandler {
    host: Arc<ResolvedHost>,
    refused: Arc<Mutex<Option<HostKeyError>>>,
}

impl client::Handler for ClientHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let result = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => verify(&self.host, key),
            PublicKeyOrCertificate::Certificate(_) => {
                if self.host.host_key_check == crate::settings::HostKeyCheck::Off {
                    Ok(())
                } else {
                    Err(HostKeyError::Certificate {
                        host: self.host.label.clone(),
                    })
                }
            }
        };
        match result {
            Ok(()) => Ok(true),
            Err(e) => {
                if let Ok(mut slot) = self.refused.lock() {
                    *slot = Some(e);
                }
                Ok(false)
            }
        }
    }
}

/// An authenticated connection's handle.
pub(crate) type SshHandle = Handle<ClientHandler>;

/// Connects and authenticates once, within `host.connect_timeout`.
pub(crate) async fn connect(host: &Arc<ResolvedHost>) -> Result<SshHandle, ConnectError> {
    let timeout = host.connect_timeout;
    match tokio::time::timeout(timeout, connect_inner(host)).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Timeout {
            host: host.label.clone(),
            hostname: host.hostname.clone(),
            port: host.port,
            after: timeout,
        }),
    }
}

/// Ciphers in the order offered: russh's own order with AES-GCM first, which
/// ring runs with the processor's AES instructions where it has them: workers'
/// output is most of what crosses a connection, and on this project's machines
/// the master decrypts it with a fraction of the CPU ChaCha20-Poly1305 takes
/// (docs/transports/ssh.md, "Benchmark").
const CIPHERS: &[russh::cipher::Name] = &[
    russh::cipher::AES_256_GCM,
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_256_CTR,
    russh::cipher::AES_192_CTR,
    russh::cipher::AES_128_CTR,
];

async fn connect_inner(host: &Arc<ResolvedHost>) -> Result<SshHandle, ConnectError> {
    let config = client::Config {
        keepalive_interval: host.keepalive,
        keepalive_max: 3,
        nodelay: true,
        preferred: russh::Preferred {
            cipher: std::borrow::Cow::Borrowed(CIPHERS),
            ..Default::default()
        },
        ..Default::default()
    };
    let refused = Arc::new(Mutex::new(None));
    let handler = ClientHandler {
        host: host.clone(),
        refused: refused.clone(),
    };
    let network = |source| ConnectError::Network {
        host: host.label.clone(),
        hostname: host.hostname.clone(),
        port: host.port,
        source,
    };
    let mut handle = match client::connect(
        Arc::new(config),
        (host.hostname.as_str(), host.port),
        handler,
    )
    .await
    {
        Ok(h) => h,
        Err(e) => {
            if let Some(reason) = refused.lock().ok().and_then(|mut r| r.take()) {
                return Err(reason.into());
            }
            return Err(network(e));
        }
    };
    authenticate(&mut handle, host).await.map_err(|e| match e {
        AuthFailure::Network(source) => network(source),
        AuthFailure::Refused(tried) => ConnectError::Auth {
            host: host.label.clone(),
            user: host.user.clone(),
            tried,
        },
    })?;
    Ok(handle)
}

enum AuthFailure {
    Network(russh::Error),
    Refused(String),
}

async fn authenticate(handle: &mut SshHandle, host: &ResolvedHost) -> Result<(), AuthFailure> {
    let mut tried: Vec<String> = Vec::new();
    let rsa_hash = handle
        .best_supported_rsa_hash()
        .await
        .map_err(AuthFailure::Network)?
        .flatten();
    match AgentClient::connect_env().await {
        Ok(mut agent) => match agent.request_identities().await {
            Ok(identities) => {
                tried.push(format!("{} agent key(s)", identities.len()));
                for identity in identities {
                    let key = identity.public_key().into_owned();
                    let hash = if key.algorithm().is_rsa() {
                        rsa_hash
                    } else {
                        None
                    };
                    match handle
                        .authenticate_publickey_with(host.user.clone(), key, hash, &mut agent)
                        .await
                    {
                        Ok(r) if r.success() => return Ok(()),
                        Ok(_) => {}
                        Err(e) => tried.push(format!("agent signing failed: {e}")),
                    }
                }
            }
            Err(e) => tried.push(format!("agent unusable: {e}")),
        },
        Err(russh::keys::Error::EnvVar(_)) => {}
        Err(e) => tried.push(format!("agent unreachable: {e}")),
    }
    let passphrase = host
        .passphrase_env
        .as_ref()
        .and_then(|name| std::env::var(name).ok());
    for path in &host.identity_files {
        let key = match russh::keys::load_secret_key(path, passphrase.as_deref()) {
            Ok(k) => k,
            Err(e) => {
                let hint = match (&host.passphrase_env, &passphrase) {
                    (Some(name), None) => format!(" (passphrase variable {name} is not set)"),
                    _ => String::new(),
                };
                tried.push(format!("{}: unusable: {e}{hint}", path.display()));
                continue;
            }
        };
        let hash = if key.algorithm().is_rsa() {
            rsa_hash
        } else {
            None
        };
        let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
        match handle.authenticate_publickey(host.user.clone(), key).await {
            Ok(r) if r.success() => return Ok(()),
            Ok(_) => tried.push(path.display().to_string()),
            Err(e) => return Err(AuthFailure::Network(e)),
        }
    }
    if tried.is_empty() {
        tried.push("no agent (SSH_AUTH_SOCK unset) and no key file".into());
    }
    Err(AuthFailure::Refused(tried.join(", ")))
}

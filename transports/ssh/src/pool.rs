//! The connection to one host, shared by all its instances, and the agent on it.
//!
//! The first instance of a host connects and starts the agent (one session
//! channel, so one run of the remote login shell); every other instance is a
//! request to that agent. A failed connection attempt is retried with backoff, and
//! instances that were waiting for that attempt get its error instead of each
//! trying again. When the connection drops, the next instance connects anew.

use crate::agent::Agent;
use crate::connection::{connect, ConnectError, SshHandle};
use crate::resolve::ResolvedHost;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connection attempts per connection (the first included).
const CONNECT_ATTEMPTS: u32 = 3;
/// Delay before the second attempt; doubled for each further one, plus jitter.
const CONNECT_BACKOFF: Duration = Duration::from_millis(300);
/// Least time the agent has to say it is ready (the remote login shell's start-up
/// files run first; `connect_timeout` when longer).
const AGENT_STARTUP: Duration = Duration::from_secs(30);

/// No agent could be reached on a host.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// No connection (or no agent on it) could be set up.
    #[error(transparent)]
    Connect(#[from] Arc<ConnectError>),
}

#[derive(Default)]
struct ConnectState {
    failure: Option<(Instant, Arc<ConnectError>)>,
    agent: Option<Arc<Agent>>,
}

/// The connection to one host and the agent running on it.
pub(crate) struct HostPool {
    pub(crate) host: Arc<ResolvedHost>,
    state: tokio::sync::Mutex<ConnectState>,
    current: Mutex<Option<Arc<Agent>>>,
}

impl HostPool {
    pub(crate) fn new(host: ResolvedHost) -> Self {
        HostPool {
            host: Arc::new(host),
            state: tokio::sync::Mutex::new(ConnectState::default()),
            current: Mutex::new(None),
        }
    }

    /// How many live connections the pool holds (0 or 1).
    pub(crate) fn connections(&self) -> usize {
        match self.current.lock() {
            Ok(c) => usize::from(c.as_ref().is_some_and(|a| a.is_alive())),
            Err(_) => 0,
        }
    }

    /// The live agent of this host, connecting and starting one if needed.
    /// Callers waiting for the same failing attempt share its error.
    pub(crate) async fn agent(&self) -> Result<Arc<Agent>, PoolError> {
        let asked = Instant::now();
        let mut state = self.state.lock().await;
        if let Some(agent) = state.agent.as_ref().filter(|a| a.is_alive()) {
            return Ok(agent.clone());
        }
        if let Some((at, error)) = &state.failure {
            if *at >= asked {
                return Err(error.clone().into());
            }
        }
        let result = async {
            let handle = self.connect_with_retries().await.map_err(Arc::new)?;
            let startup = self.host.connect_timeout.max(AGENT_STARTUP);
            Agent::start(
                self.host.label.clone(),
                handle,
                self.host.keepalive,
                startup,
            )
            .await
            .map_err(|e| Arc::new(ConnectError::from(e)))
        }
        .await;
        match result {
            Ok(agent) => {
                state.failure = None;
                state.agent = Some(agent.clone());
                if let Ok(mut c) = self.current.lock() {
                    *c = Some(agent.clone());
                }
                Ok(agent)
            }
            Err(e) => {
                state.failure = Some((Instant::now(), e.clone()));
                Err(e.into())
            }
        }
    }

    async fn connect_with_retries(&self) -> Result<SshHandle, ConnectError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match connect(&self.host).await {
                Ok(h) => return Ok(h),
                Err(e) if e.is_transient() && attempt < CONNECT_ATTEMPTS => {
                    let base = CONNECT_BACKOFF * 2u32.pow(attempt - 1);
                    let jitter = base.mul_f64(fastrand::f64() * 0.3);
                    tracing::debug!(host = %self.host.label, attempt, error = %e, "connection attempt failed; retrying");
                    tokio::time::sleep(base + jitter).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Closes the connection; the agent then ends what is left.
    pub(crate) async fn shutdown(&self) {
        let agent = self.state.lock().await.agent.take();
        if let Some(agent) = agent {
            agent.shutdown().await;
        }
    }
}

//! The connections to one host, shared by all its instances.
//!
//! Each instance is one session channel. Channels go to the first live connection
//! with room; when the server refuses a channel (OpenSSH's `MaxSessions`, 10 by
//! default) the number of channels that connection had open becomes its capacity,
//! and the next channel goes to another connection, opened on demand. Handshakes to
//! a host happen one at a time (well under OpenSSH's `MaxStartups`); a failed
//! connection attempt is retried with backoff, and instances that were waiting for
//! that attempt get its error instead of each trying again.

use crate::connection::{connect, ConnectError, SshHandle};
use crate::resolve::ResolvedHost;
use russh::client::Msg;
use russh::{Channel, ChannelOpenFailure};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connection attempts per connection (the first included).
const CONNECT_ATTEMPTS: u32 = 3;
/// Delay before the second attempt; doubled for each further one, plus jitter.
const CONNECT_BACKOFF: Duration = Duration::from_millis(300);
/// Bound on how many times one channel request may go round the pool.
const MAX_ROUNDS: usize = 64;

/// A session channel could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// No connection could be set up.
    #[error(transparent)]
    Connect(Arc<ConnectError>),
    /// A fresh connection refused its first session channel.
    #[error("{host} refused to open a session channel ({reason:?})")]
    Refused {
        /// Host entry.
        host: String,
        /// The server's reason code.
        reason: ChannelOpenFailure,
    },
    /// Opening the channel failed otherwise.
    #[error("cannot open a session channel to {host}")]
    Channel {
        /// Host entry.
        host: String,
        /// Why.
        #[source]
        source: russh::Error,
    },
    /// The pool kept losing connections.
    #[error("{host} keeps dropping connections")]
    Unstable {
        /// Host entry.
        host: String,
    },
}

/// One connection and how many channels it carries.
pub(crate) struct Conn {
    pub(crate) id: u64,
    pub(crate) handle: SshHandle,
    open: AtomicUsize,
    capacity: AtomicUsize,
    opening: tokio::sync::Mutex<()>,
}

impl Conn {
    fn has_room(&self) -> bool {
        !self.handle.is_closed()
            && self.open.load(Ordering::SeqCst) < self.capacity.load(Ordering::SeqCst)
    }
}

/// Holds one channel's place on its connection; frees it when dropped.
pub(crate) struct ChannelSlot {
    pub(crate) conn: Arc<Conn>,
}

impl Drop for ChannelSlot {
    fn drop(&mut self) {
        self.conn.open.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct ConnectState {
    failure: Option<(Instant, Arc<ConnectError>)>,
}

/// The connections to one host.
pub(crate) struct HostPool {
    pub(crate) host: Arc<ResolvedHost>,
    conns: Mutex<Vec<Arc<Conn>>>,
    connecting: tokio::sync::Mutex<ConnectState>,
    next_id: AtomicU64,
}

impl HostPool {
    pub(crate) fn new(host: ResolvedHost) -> Self {
        HostPool {
            host: Arc::new(host),
            conns: Mutex::new(Vec::new()),
            connecting: tokio::sync::Mutex::new(ConnectState::default()),
            next_id: AtomicU64::new(1),
        }
    }

    fn live(&self) -> Vec<Arc<Conn>> {
        let Ok(mut conns) = self.conns.lock() else {
            return Vec::new();
        };
        conns.retain(|c| !c.handle.is_closed());
        conns.clone()
    }

    /// How many live connections the pool holds.
    pub(crate) fn connections(&self) -> usize {
        self.live().len()
    }

    /// Opens a session channel on a connection with room, connecting if needed.
    pub(crate) async fn open_session(&self) -> Result<(Channel<Msg>, ChannelSlot), PoolError> {
        let started = Instant::now();
        for _ in 0..MAX_ROUNDS {
            for conn in self.live() {
                if !conn.has_room() {
                    continue;
                }
                let _turn = conn.opening.lock().await;
                if !conn.has_room() {
                    continue;
                }
                match conn.handle.channel_open_session().await {
                    Ok(channel) => {
                        conn.open.fetch_add(1, Ordering::SeqCst);
                        return Ok((channel, ChannelSlot { conn: conn.clone() }));
                    }
                    Err(russh::Error::ChannelOpenFailure(reason)) => {
                        let open = conn.open.load(Ordering::SeqCst);
                        if open == 0 {
                            return Err(PoolError::Refused {
                                host: self.host.label.clone(),
                                reason,
                            });
                        }
                        tracing::debug!(host = %self.host.label, conn = conn.id, open, "server refused a channel: connection is full");
                        conn.capacity.store(open, Ordering::SeqCst);
                    }
                    Err(source) => {
                        if !conn.handle.is_closed() {
                            return Err(PoolError::Channel {
                                host: self.host.label.clone(),
                                source,
                            });
                        }
                    }
                }
            }
            let mut state = self.connecting.lock().await;
            if self.live().iter().any(|c| c.has_room()) {
                continue;
            }
            if let Some((at, error)) = &state.failure {
                if *at >= started {
                    return Err(PoolError::Connect(error.clone()));
                }
            }
            match self.connect_with_retries().await {
                Ok(handle) => {
                    state.failure = None;
                    let conn = Arc::new(Conn {
                        id: self.next_id.fetch_add(1, Ordering::SeqCst),
                        handle,
                        open: AtomicUsize::new(0),
                        capacity: AtomicUsize::new(usize::MAX),
                        opening: tokio::sync::Mutex::new(()),
                    });
                    if let Ok(mut conns) = self.conns.lock() {
                        conns.push(conn);
                    }
                }
                Err(e) => {
                    let e = Arc::new(e);
                    state.failure = Some((Instant::now(), e.clone()));
                    return Err(PoolError::Connect(e));
                }
            }
        }
        Err(PoolError::Unstable {
            host: self.host.label.clone(),
        })
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

    /// Closes every connection.
    pub(crate) async fn shutdown(&self) {
        let conns = match self.conns.lock() {
            Ok(mut c) => std::mem::take(&mut *c),
            Err(_) => return,
        };
        for conn in conns {
            let _ = conn
                .handle
                .disconnect(russh::Disconnect::ByApplication, "distarch run over", "en")
                .await;
        }
    }
}

//! SIGINT/SIGTERM/SIGHUP for the launcher, when it is asked to handle them.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// A signal the launcher reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Received {
    Interrupt,
    Terminate,
    /// SIGHUP: handled so that it is not a hard kill of the master (which would
    /// take every worker down without a stop).
    Hangup,
}

/// The signal streams, or nothing when signals are not handled.
pub(crate) struct Signals {
    int: Option<Signal>,
    term: Option<Signal>,
    hup: Option<Signal>,
}

impl Signals {
    pub(crate) fn new(enabled: bool) -> Self {
        if !enabled {
            return Signals {
                int: None,
                term: None,
                hup: None,
            };
        }
        Signals {
            int: signal(SignalKind::interrupt()).ok(),
            term: signal(SignalKind::terminate()).ok(),
            hup: signal(SignalKind::hangup()).ok(),
        }
    }

    /// The next signal; pends forever when none are handled.
    pub(crate) async fn next(&mut self) -> Received {
        loop {
            tokio::select! {
                Some(()) = recv(&mut self.int) => return Received::Interrupt,
                Some(()) = recv(&mut self.term) => return Received::Terminate,
                Some(()) = recv(&mut self.hup) => return Received::Hangup,
                else => std::future::pending::<()>().await,
            }
        }
    }
}

async fn recv(s: &mut Option<Signal>) -> Option<()> {
    match s {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

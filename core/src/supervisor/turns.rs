//! Turns to start. A run starts all its instances at once, one task each; left
//! alone, a thousand of them would all run their spawn before the runtime got to
//! the output and the ends of those already started, and every spawn would copy
//! (and the new process close) the file descriptors of every instance started
//! before, ended or not. Each start takes a turn for its first step instead, so
//! only a few spawns wait to run at any moment and the rest of the run's work
//! goes on between them.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use tokio::sync::Semaphore;

/// How many starts may be in their first step at once: a few, so that both
/// runtime threads can spawn.
const TURNS: usize = 4;

/// The run's turns (cheap to clone).
#[derive(Clone)]
pub(crate) struct StartTurns(Arc<Semaphore>);

impl StartTurns {
    pub(crate) fn new() -> Self {
        StartTurns(Arc::new(Semaphore::new(TURNS)))
    }

    /// Runs `start`, holding a turn for its first poll. A transport that waits
    /// on the network (ssh, docker, kubernetes) gives the turn back at its first
    /// wait, so such starts still overlap freely. One that starts a process
    /// without waiting (local) does its whole start in that poll, and keeps the
    /// turn until the runtime has gone once through the rest of its work (a
    /// yield comes back after the I/O driver was polled): the instances already
    /// started get their output read and their end seen between starts.
    pub(crate) async fn take<F: Future>(&self, start: F) -> F::Output {
        // The semaphore is never closed: `ok()` is always a permit.
        let turn = self.0.acquire().await.ok();
        let mut start = std::pin::pin!(start);
        let first = std::future::poll_fn(|cx| Poll::Ready(start.as_mut().poll(cx))).await;
        match first {
            Poll::Ready(out) => {
                tokio::task::yield_now().await;
                drop(turn);
                out
            }
            Poll::Pending => {
                drop(turn);
                start.await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Starts that wait (on the network) give their turn back at their first
    /// wait: three times as many as there are turns all get going, and the
    /// turns are free while they wait.
    #[tokio::test]
    async fn a_start_that_waits_gives_its_turn_back() {
        let turns = StartTurns::new();
        let (release, wait) = tokio::sync::watch::channel(false);
        let begun = Arc::new(AtomicUsize::new(0));
        let mut starts = Vec::new();
        for _ in 0..TURNS * 3 {
            let (turns, mut wait, begun) = (turns.clone(), wait.clone(), begun.clone());
            starts.push(tokio::spawn(async move {
                turns
                    .take(async move {
                        begun.fetch_add(1, Ordering::SeqCst);
                        wait.wait_for(|go| *go).await.is_ok()
                    })
                    .await
            }));
        }
        tokio::time::timeout(Duration::from_secs(5), async {
            while begun.load(Ordering::SeqCst) < TURNS * 3 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("every start began while the others waited");
        assert_eq!(turns.0.available_permits(), TURNS);
        release.send(true).unwrap();
        for start in starts {
            assert!(start.await.unwrap());
        }
    }

    /// A start that runs in its first poll (a local spawn) holds a turn while it
    /// runs, and gives it back when done.
    #[tokio::test]
    async fn a_start_that_does_not_wait_holds_a_turn_while_it_runs() {
        let turns = StartTurns::new();
        let inner = turns.clone();
        let free = turns.take(async move { inner.0.available_permits() }).await;
        assert_eq!(free, TURNS - 1);
        assert_eq!(turns.0.available_permits(), TURNS);
    }
}

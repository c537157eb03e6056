//! Async helpers for tokio programs (feature `tokio`).

use crate::worker::Worker;
use std::time::Duration;

impl Worker {
    /// Completes when the worker must stop (at once if it already must).
    ///
    /// ```no_run
    /// # async fn work() {}
    /// # async fn example() -> Result<(), distarch_worker::WorkerError> {
    /// let worker = distarch_worker::Worker::from_env()?;
    /// tokio::select! {
    ///     _ = worker.stopped() => worker.info("stopping"),
    ///     _ = work() => {}
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn stopped(&self) {
        self.listen();
        let signal = self.stop_signal();
        loop {
            let mut notified = std::pin::pin!(signal.notify.notified());
            // Register before checking the flag, so that a raise in between is seen.
            notified.as_mut().enable();
            if signal.is_raised() {
                return;
            }
            notified.await;
        }
    }

    /// Sleeps for `duration`, waking early when the worker must stop. Returns
    /// `true` after a full sleep, `false` when it must stop.
    pub async fn sleep_async(&self, duration: Duration) -> bool {
        tokio::time::timeout(duration, self.stopped())
            .await
            .is_err()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use crate::identity::tests::vars;
    use crate::Worker;
    use std::time::Duration;

    #[tokio::test]
    async fn stopped_completes_on_a_stop_frame() {
        let vars = vars();
        let worker = Worker::from_vars(|n| vars.get(n).cloned())
            .unwrap()
            .with_input(&b"\x1e{\"type\":\"stop\"}\n"[..])
            .with_output(std::io::sink())
            .with_master_gone_exit(None);
        assert!(!worker.sleep_async(Duration::from_secs(600)).await);
        worker.stopped().await;
        assert!(worker.must_stop());
    }
}

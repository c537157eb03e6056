//! The README's example worker, written with the SDK: it says who it is and what
//! its `message` param is, tells the master it is ready, then works (a tick a
//! second, with pings) until the master asks it to stop or goes away.
#![forbid(unsafe_code)]

use serde::Deserialize;
use std::time::Duration;

/// The params this worker understands.
#[derive(Debug, Default, Deserialize)]
struct Params {
    /// A message to print (the original example's `message`).
    #[serde(default)]
    message: Option<String>,
    /// Seconds between two ticks (default 1).
    #[serde(default)]
    tick_seconds: Option<f64>,
}

fn main() {
    distarch_worker::run(|worker| -> Result<(), String> {
        let params: Params = worker.params().map_err(|e| e.to_string())?;
        println!(
            "I am instance {} ({}/{} of group {}) on {}, restart {}",
            worker.id(),
            worker.group_id(),
            worker.group_count(),
            worker.group(),
            worker.host(),
            worker.restart()
        );
        if let Some(message) = &params.message {
            worker.info(format!("message: {message}"));
        }
        worker.ready();
        let tick = Duration::from_secs_f64(params.tick_seconds.unwrap_or(1.0).max(0.01));
        let mut n = 0u64;
        while worker.sleep(tick) {
            n += 1;
            worker.status(format!("tick {n}"));
            worker.ping();
        }
        let why = match worker.stop_reason() {
            Some(distarch_worker::StopReason::StopRequested) => "the master asked me to stop",
            Some(distarch_worker::StopReason::MasterGone) => "the master is gone",
            None => "no reason given",
        };
        println!("stopping after {n} tick(s): {why}");
        Ok(())
    })
}

//! A job-pool worker for the end-to-end tests and the bench, on the Rust SDK's
//! `serve`: it answers each job with its payload (an echo), unless the payload
//! asks for something else:
//! - `{"poison": true}`: fails, retryable (dead-lettered after `max_attempts`);
//! - `{"fatal": true}`: fails, not retryable;
//! - `{"crash": true}`: the whole process exits with code 9 (its jobs in flight
//!   go back to the queue);
//! - `{"sleep_ms": N}`: sleeps first.
//!
//! Params: `concurrency` (threads, default 1), `credit` (jobs held at most,
//! default the SDK's), `trace` (a file: the id of every job started is appended
//! to it, one per line).

use distarch_worker::{JobError, Worker};
use serde_json::Value;
use std::io::Write;
use std::time::Duration;

fn main() {
    let worker = match Worker::from_env() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let params = worker.params_json().clone();
    let concurrency = params
        .get("concurrency")
        .and_then(Value::as_u64)
        .unwrap_or(1) as usize;
    let credit = params.get("credit").and_then(Value::as_u64);
    let trace = params
        .get("trace")
        .and_then(Value::as_str)
        .map(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map(std::sync::Mutex::new)
        })
        .transpose()
        .unwrap_or_else(|e| {
            eprintln!("cannot open the trace file: {e}");
            std::process::exit(2);
        });
    worker.ready();
    let handle = |job: &distarch_worker::Job| -> Result<Value, JobError> {
        if let Some(t) = &trace {
            if let Ok(mut f) = t.lock() {
                // One write per line: O_APPEND keeps lines of several processes whole.
                let _ = f.write_all(format!("{}\n", job.id()).as_bytes());
            }
        }
        let p = job.payload();
        if let Some(ms) = p.get("sleep_ms").and_then(Value::as_u64) {
            std::thread::sleep(Duration::from_millis(ms));
        }
        if p.get("crash") == Some(&Value::Bool(true)) {
            std::process::exit(9);
        }
        if p.get("poison") == Some(&Value::Bool(true)) {
            return Err(JobError::retryable("poison job"));
        }
        if p.get("fatal") == Some(&Value::Bool(true)) {
            return Err(JobError::fatal("fatal job"));
        }
        Ok(p.clone())
    };
    match credit {
        Some(c) if concurrency <= 1 => {
            for job in worker.jobs().credit(c) {
                match handle(&job) {
                    Ok(r) => job.done(r),
                    Err(e) => job.fail(e),
                }
            }
        }
        _ => worker.serve(concurrency, handle),
    }
    worker.ended();
}

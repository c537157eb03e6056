//! The Rust SDK's conformance worker: what `distarch-conformance` runs to check
//! the SDK (docs/conformance.md describes the contract).
//!
//! It reports its identity in a log frame named `identity`, sends `ready`, does
//! what `params.conformance` asks (`levels`, `status`, `ping`, `group_count`, `jobs`, or
//! nothing), and returns when it must stop; [`distarch_worker::run`] sends `ended`.

use distarch_worker::{Level, Worker};
use serde_json::{json, Map, Value};
use std::time::Duration;

fn fields(value: Value) -> Option<Map<String, Value>> {
    match value {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

fn main() {
    distarch_worker::run(|worker: &Worker| -> Result<(), String> {
        let params = worker.params_json().clone();
        // Read before `ready`: the runner may resize the group right after it.
        let mut seen = worker.group_count();
        worker.log(
            Level::Info,
            "identity",
            fields(json!({
                "id": worker.id(), "group": worker.group(), "group_id": worker.group_id(),
                "group_count": seen, "host": worker.host(),
                "run_id": worker.run_id(), "restart": worker.restart(), "params": params,
            })),
        );
        worker.ready();
        match params.get("conformance").and_then(Value::as_str) {
            Some("levels") => {
                let levels = [
                    Level::Trace,
                    Level::Debug,
                    Level::Info,
                    Level::Warn,
                    Level::Error,
                ];
                for (n, level) in (1u32..).zip(levels) {
                    worker.log(level, format!("level {level}"), fields(json!({ "n": n })));
                }
            }
            Some("status") => {
                let text = params
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                worker.status(text);
            }
            Some("ping") => {
                while !worker.must_stop() {
                    worker.ping();
                }
            }
            Some("group_count") => {
                while worker.sleep(Duration::from_millis(20)) {
                    let now = worker.group_count();
                    if now != seen {
                        seen = now;
                        worker.log(Level::Info, "group_count", fields(json!({ "count": now })));
                    }
                }
            }
            // Job pools: echo each payload; fail (not retryable) one with `fail`.
            Some("jobs") => worker.serve(2, |job| match job.payload().get("fail") {
                Some(why) => Err(distarch_worker::JobError::fatal(why.to_string())),
                None => Ok(job.payload().clone()),
            }),
            _ => {}
        }
        worker.wait_stop();
        Ok(())
    })
}

//! A tiny worker used by the SDK's integration tests and as a starting point.
//!
//! It sends `ready`, then every 50 ms a plain line, a `log` frame with fields, a
//! `status` and a `ping`, until the master says `stop` (or goes away); then it
//! returns and [`distarch_worker::run`] sends `ended` and exits 0.
//!
//! Params it understands: `message` (text to log), `fail` (return an error instead
//! of a clean end), `ignore_stop` (never look at the stop flag, to show that the SDK
//! still ends the process when the master is gone; the grace is set to 300 ms).

use distarch_worker::Level;
use std::time::Duration;

#[derive(serde::Deserialize)]
struct Params {
    #[serde(default = "default_message")]
    message: String,
    #[serde(default)]
    fail: bool,
    #[serde(default)]
    ignore_stop: bool,
}

fn default_message() -> String {
    "hello".to_string()
}

fn main() {
    distarch_worker::run(|worker| -> Result<(), Box<dyn std::error::Error>> {
        let params: Params = worker.params()?;
        worker.ready();
        if params.ignore_stop {
            worker.set_master_gone_exit(Some(Duration::from_millis(300)));
            worker.info("ignoring stop");
            loop {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let mut step = 0u64;
        while worker.sleep(Duration::from_millis(50)) {
            step += 1;
            println!("plain line {step}");
            let mut fields = serde_json::Map::new();
            fields.insert("step".into(), step.into());
            fields.insert("id".into(), worker.id().into());
            worker.log(Level::Info, params.message.clone(), Some(fields));
            worker.status(format!("step {step}"));
            worker.ping();
            if params.fail {
                return Err("asked to fail by the params".into());
            }
        }
        worker.info(format!("stopping: {:?}", worker.stop_reason()));
        Ok(())
    })
}

//! A minimal master that uses the local transport without the reaper: it starts
//! `sleep 1000` as an instance, prints the worker's pid, and waits forever. The
//! crate's tests SIGKILL it to prove that the parent-death signal alone ends the
//! worker.

use distarch_core::{InstanceSpec, Transport};
use distarch_transport_local::LocalTransport;
use std::time::Duration;

#[tokio::main]
async fn main() {
    let transport = LocalTransport::new();
    let planned = InstanceSpec::builder(["sleep", "1000"])
        .stop_times(Duration::from_secs(1), Duration::from_secs(1))
        .plan(&transport, &serde_json::json!({}));
    let spec = match planned {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    match transport.spawn(&spec).await {
        Ok(instance) => {
            println!("worker {}", instance.describe());
            std::mem::forget(instance);
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

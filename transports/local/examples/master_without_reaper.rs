//! A minimal master that uses the local transport without the reaper: it starts
//! `sleep 1000` as an instance, prints the worker's pid, and waits forever. The
//! crate's tests SIGKILL it to prove that the parent-death signal alone ends the
//! worker.

use distarch_core::{InstanceSpec, Transport};
use distarch_transport_local::LocalTransport;
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() {
    let spec = InstanceSpec {
        run_id: "test".into(),
        group: "g".into(),
        placement: "p".into(),
        id: 1,
        group_id: 1,
        group_count: 1,
        target: "local".into(),
        host: "localhost".into(),
        restart: 0,
        command: vec!["sleep".into(), "1000".into()],
        env: Default::default(),
        workdir: None,
        priority: None,
        settings: Arc::new(Default::default()),
        stop_grace: Duration::from_secs(1),
        kill_after: Duration::from_secs(1),
    };
    match LocalTransport::new().spawn(&spec).await {
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

//! Rough timings of one host: first spawn (with connect), then sequential spawns.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../../../tests/harness/sshd.rs"]
mod sshd;

use distarch_core::{InstanceSpec, Transport};
use distarch_transport_ssh::SshTransport;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let mut fx = sshd::SshFixture::new();
    fx.start("127.0.0.1");
    fx.trust_all();
    let settings: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
        "hosts": [fx.server(0).entry()],
        "identity_files": [fx.client_key.display().to_string()],
        "known_hosts": fx.known_hosts.display().to_string(),
        "ssh_config": "none",
    }))
    .unwrap();
    let spec = InstanceSpec {
        run_id: "t".into(), group: "g".into(), placement: "p".into(), id: 1, group_id: 1, group_count: 1,
        target: fx.server(0).entry(), host: "h".into(), restart: 0,
        command: vec!["true".into()], env: Default::default(), workdir: None, priority: None,
        settings: Arc::new(settings), stop_grace: Duration::from_secs(1), kill_after: Duration::from_secs(1),
    };
    let t = SshTransport::new();
    let mut keep = Vec::new();
    for i in 0..12 {
        let s = Instant::now();
        let mut inst = t.spawn(&spec).await.unwrap();
        let spawned = s.elapsed();
        let _ = inst.wait().await;
        println!("spawn {i}: {:?} (until exit {:?})", spawned, s.elapsed());
        keep.push(inst);
    }
    let s = Instant::now();
    let out = std::process::Command::new("ssh").arg("-i").arg(&fx.client_key).arg("-o").arg(format!("UserKnownHostsFile={}", fx.known_hosts.display())).args(["-o","BatchMode=yes","-F","none","-p"]).arg(fx.server(0).port.to_string()).arg(format!("root@{}", fx.server(0).ip)).arg("true").output().unwrap();
    println!("openssh one command: {:?} {:?}", s.elapsed(), out.status);
}

//! `distarch gc`: remove what runs whose master is gone left behind.

use crate::args::GcArgs;
use distarch_core::Config;

/// Cleans every engine and cluster the configuration names; returns the exit code.
pub async fn gc(args: &GcArgs, config: Option<&Config>) -> anyhow::Result<i32> {
    // Without the docker and kubernetes features there is nothing to clean.
    let _ = (args, config);
    #[allow(unused_mut)]
    let mut code = 0;
    #[allow(unused_mut)]
    let mut printed = gc_local(args.dry_run);
    // Transports that leave objects behind (containers, pods) add their calls here.
    #[cfg(feature = "docker")]
    for report in distarch_transport_docker::gc_config(config, args.dry_run).await {
        println!("{report}");
        printed += 1;
        if report.error.is_some() {
            code = 1;
        }
    }
    #[cfg(feature = "kubernetes")]
    {
        let (lines, ok) = distarch_transport_kubernetes::gc_config(config, args.dry_run).await;
        for line in lines {
            println!("{line}");
            printed += 1;
        }
        if !ok {
            code = 1;
        }
    }
    if !cfg!(any(feature = "docker", feature = "kubernetes")) {
        println!("[master] INFO distarch: gc: nothing to clean for the transports in this build");
    } else if printed == 0 {
        println!(
            "[master] INFO distarch: gc: nothing to check: no docker or kubernetes placement \
             in the configuration, no Docker engine (DOCKER_HOST, /var/run/docker.sock) and \
             no Kubernetes context here"
        );
    }
    Ok(code)
}

/// Local instances: kills and removes the cgroups of runs whose master is gone;
/// returns the number of lines printed.
pub fn gc_local(dry_run: bool) -> usize {
    let lines = distarch_transport_local::gc_cgroups(dry_run);
    for line in &lines {
        println!("[master] INFO distarch: gc: local: {line}");
    }
    lines.len()
}

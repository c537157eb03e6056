//! Start-up of `launch` that must happen before any thread exists: the open-file
//! limit, and the reaper (the watchdog that outlives the master and cleans up after
//! it: local workers, and through `distarch gc` the run's containers and pods).

use crate::args::{ConfigArgs, LaunchArgs};
use distarch_core::Launcher;

/// Raises the open-file limit and forks the reaper; warns (one line each) when
/// either fails.
pub fn start(args: &LaunchArgs) {
    if let Err(e) = distarch_transport_local::raise_open_file_limit() {
        eprintln!("[master] WARN distarch: cannot raise the open-file limit ({e})");
    }
    if let Err(e) = distarch_transport_local::install_reaper_with_gc(gc_args(&args.config)) {
        eprintln!("[master] WARN distarch: cannot start the reaper process ({e}); children of workers may outlive a killed master");
    }
}

/// When the run has docker or kubernetes placements, a master that dies makes the
/// reaper run `distarch gc` with the same configuration, so that the run's
/// containers and pods go within seconds instead of at the next launch.
pub fn arm(launcher: &Launcher) {
    if launcher
        .plan()
        .instances
        .iter()
        .any(|i| matches!(i.transport.as_ref(), "docker" | "kubernetes"))
    {
        distarch_transport_local::arm_gc();
    }
}

/// The run is over: a master exiting now leaves nothing for the gc.
pub fn disarm() {
    distarch_transport_local::disarm_gc();
}

/// `distarch gc` arguments that read the same configuration as this launch.
fn gc_args(config: &ConfigArgs) -> Vec<String> {
    let mut out = vec!["distarch".to_string(), "gc".to_string()];
    if let Some(file) = &config.config {
        let file = std::path::absolute(file).unwrap_or_else(|_| file.clone());
        out.push("--config".into());
        out.push(file.display().to_string());
    }
    for (key, value) in &config.set {
        out.push("--set".into());
        out.push(format!("{key}={value}"));
    }
    if config.no_env {
        out.push("--no-env".into());
    }
    out
}

//! distarch-transport-local: instances as local processes.
//!
//! How it works: each instance is started with `tokio::process` directly from its
//! argv (no shell), in a process group of its own, with the group's environment,
//! working directory and nice value. Terminate and kill signal the whole process
//! group, so children of the worker go too; once the worker has ended, whatever is
//! left of its group is killed. Two mechanisms make sure that nothing outlives a
//! master that dies, even by SIGKILL: when [`install_reaper`] was called at the start
//! of `main`, a small reaper process (forked before any thread exists) learns every
//! process group and kills them all the moment the master's end of its pipe closes;
//! without a live reaper, every worker gets `PR_SET_PDEATHSIG(SIGKILL)` instead
//! (which costs a full `fork()` of the master per instance, so it is skipped while
//! the reaper covers it).
#![deny(unsafe_code)]

mod cgroup;
mod limits;
mod reaper;
mod settings;
mod transport;
mod unix;

pub use cgroup::gc as gc_cgroups;
pub use limits::raise_open_file_limit;
pub use reaper::{
    arm_gc, disarm_gc, install_reaper, install_reaper_with_gc, reaper_pid, PROCESS_NAME,
};
pub use settings::{CgroupMode, LocalSettings, SizeSetting};
pub use transport::{LocalInstance, LocalTransport};

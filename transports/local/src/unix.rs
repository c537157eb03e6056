//! The calls into libc that the local transport cannot make through std or tokio:
//! signals to process groups, the parent-death signal, the nice value, and forking
//! the reaper. This is the only module of the crate allowed to use `unsafe`; each
//! block says why it is sound.
#![allow(unsafe_code)]

use std::io;

/// Sends `signal` to every process of the group `pgid`. A group that no longer
/// exists is not an error.
pub(crate) fn signal_group(pgid: i32, signal: i32) -> io::Result<()> {
    if pgid <= 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to signal process group <= 1",
        ));
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::kill(-pgid, signal) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(err)
    }
}

/// Runs in the child between fork and exec: asks the kernel to SIGKILL the child
/// when the master dies, exits at once if the master is already gone, and applies
/// the nice value. Only async-signal-safe calls are made here.
pub(crate) fn child_setup(master_pid: i32, nice: Option<i32>) -> io::Result<()> {
    // SAFETY: prctl/getppid/setpriority are async-signal-safe system calls with
    // integer arguments; nothing is allocated between fork and exec.
    unsafe {
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        if libc::getppid() != master_pid {
            // The master died between fork and prctl: do not start an orphan.
            libc::_exit(1);
        }
        if let Some(nice) = nice {
            if libc::setpriority(libc::PRIO_PROCESS, 0, nice) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Registers the pre-exec hook that calls [`child_setup`].
pub(crate) fn set_child_setup(command: &mut tokio::process::Command, nice: Option<i32>) {
    let master_pid = std::process::id() as i32;
    // SAFETY: the closure only calls `child_setup`, which is async-signal-safe
    // (see there) and captures two integers by value.
    unsafe {
        command.pre_exec(move || child_setup(master_pid, nice));
    }
}

/// The two ends of a pipe whose read end goes to the forked reaper.
pub(crate) struct Forked {
    /// The master's write end (close-on-exec, so workers never inherit it).
    pub(crate) write_fd: std::os::fd::OwnedFd,
}

/// Forks the reaper process, which runs `child_main(read_fd)` and never returns.
///
/// Must be called while the process has a single thread (at the very start of
/// `main`), because the child goes on running ordinary Rust code.
pub(crate) fn fork_reaper(child_main: fn(std::os::fd::OwnedFd) -> !) -> io::Result<Forked> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two fds into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created by pipe2 and are owned by nobody else.
    let (read_fd, write_fd) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: called while single-threaded (documented contract), so the child may
    // run arbitrary code.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            drop(write_fd);
            // SAFETY: plain system calls on integers; the reaper must survive the
            // terminal's Ctrl-C (it leaves the foreground process group and
            // ignores the usual termination signals) and must not hold the
            // master's stdio open.
            unsafe {
                libc::setpgid(0, 0);
                for sig in [
                    libc::SIGINT,
                    libc::SIGTERM,
                    libc::SIGHUP,
                    libc::SIGPIPE,
                    libc::SIGQUIT,
                ] {
                    libc::signal(sig, libc::SIG_IGN);
                }
                let devnull = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if devnull >= 0 {
                    libc::dup2(devnull, 0);
                    libc::dup2(devnull, 1);
                    libc::dup2(devnull, 2);
                    if devnull > 2 {
                        libc::close(devnull);
                    }
                }
            }
            child_main(read_fd)
        }
        _ => {
            drop(read_fd);
            Ok(Forked { write_fd })
        }
    }
}

/// Ends the reaper process without running destructors or atexit handlers that
/// belong to the master.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no memory.
    unsafe { libc::_exit(code) }
}

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

/// What a child does between fork and exec.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ChildSetup {
    /// Ask for SIGKILL when the master dies (and exit if it already has).
    pub(crate) parent_death: bool,
    /// Nice value to set.
    pub(crate) nice: Option<i32>,
    /// Reset [`STOP_SIGNALS`] to their default action (see [`ignores_stop_signals`]).
    pub(crate) default_signals: bool,
}

/// The signals a worker may be stopped with (or expect to have by default).
const STOP_SIGNALS: [libc::c_int; 7] = [
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
];

/// Whether this process ignores one of [`STOP_SIGNALS`] (a master started in the
/// background by a shell ignores SIGINT and SIGQUIT; `nohup` ignores SIGHUP). An
/// ignored signal stays ignored across exec, and a shell worker cannot even trap it,
/// so its children must reset it. Handled signals need nothing: exec resets them.
pub(crate) fn ignores_stop_signals() -> bool {
    STOP_SIGNALS.iter().any(|&sig| {
        // SAFETY: sigaction with a null new action only reads the current one into
        // a zeroed struct owned here.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction == libc::SIG_IGN
        }
    })
}

/// Runs in the child between fork and exec. Only async-signal-safe calls are made.
fn child_setup(master_pid: i32, setup: ChildSetup) -> io::Result<()> {
    // SAFETY: prctl/getppid/setpriority/signal are async-signal-safe system calls
    // with integer arguments; nothing is allocated between fork and exec.
    unsafe {
        if setup.parent_death {
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
        }
        if let Some(nice) = setup.nice {
            if libc::setpriority(libc::PRIO_PROCESS, 0, nice) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // The worker starts with the default action for the signals it may be
        // stopped with, even when the master was started with them ignored (run in
        // the background by a shell: SIGINT and SIGQUIT ignored; a shell worker
        // cannot trap a signal ignored at its start). Handlers are reset by exec;
        // only "ignored" would be inherited.
        if setup.default_signals {
            for sig in STOP_SIGNALS {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
    Ok(())
}

/// Registers the pre-exec hook that calls [`child_setup`].
pub(crate) fn set_child_setup(command: &mut tokio::process::Command, setup: ChildSetup) {
    let master_pid = std::process::id() as i32;
    // SAFETY: the closure only calls `child_setup`, which is async-signal-safe
    // (see there) and captures plain integers by value.
    unsafe {
        command.pre_exec(move || child_setup(master_pid, setup));
    }
}

/// The two ends of a pipe whose read end goes to the forked reaper.
pub(crate) struct Forked {
    /// The master's write end (close-on-exec, so workers never inherit it).
    pub(crate) write_fd: std::os::fd::OwnedFd,
    /// Process id of the reaper.
    pub(crate) pid: i32,
}

/// Forks the reaper process, which runs `child_main(read_fd)` and then exits.
///
/// Must be called while the process has a single thread (at the very start of
/// `main`), because the child goes on running ordinary Rust code.
pub(crate) fn fork_reaper<F: FnOnce(std::os::fd::OwnedFd)>(child_main: F) -> io::Result<Forked> {
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
            set_process_name(super::reaper::PROCESS_NAME);
            // Ask the OOM killer to take the master, never the reaper that cleans
            // up after it (allowed for root only; otherwise nothing changes).
            let _ = std::fs::write("/proc/self/oom_score_adj", "-1000");
            child_main(read_fd);
            exit_now(0)
        }
        pid => {
            drop(read_fd);
            Ok(Forked { write_fd, pid })
        }
    }
}

/// Ends the reaper process without running destructors or atexit handlers that
/// belong to the master.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no memory.
    unsafe { libc::_exit(code) }
}

/// Raises the soft limit on open files to the hard limit; returns the soft limit
/// now in force.
pub(crate) fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    Ok(lim.rlim_cur)
}

/// The soft limit on open files now in force.
pub(crate) fn nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    lim.rlim_cur
}

/// The effective user id of this process.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() }
}

/// Looks a user up by name: its uid and primary gid.
pub(crate) fn lookup_user(name: &str) -> io::Result<Option<(u32, u32)>> {
    let cname = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in user name"))?;
    let mut buf = vec![0u8; 16384];
    // SAFETY: an all-zero passwd is a valid value of a plain C struct.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to memory we own for the duration of the call,
    // and `buf.len()` is its true size.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok((!result.is_null()).then_some((pwd.pw_uid, pwd.pw_gid)))
}

/// Looks a group up by name: its gid.
pub(crate) fn lookup_group(name: &str) -> io::Result<Option<u32>> {
    let cname = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in group name"))?;
    let mut buf = vec![0u8; 16384];
    // SAFETY: an all-zero group is a valid value of a plain C struct.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as in `lookup_user`.
    let rc = unsafe {
        libc::getgrnam_r(
            cname.as_ptr(),
            &mut grp,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok((!result.is_null()).then_some(grp.gr_gid))
}

/// Names the calling process (what `ps`, `top` and `killall` match: at most 15 bytes).
pub(crate) fn set_process_name(name: &std::ffi::CStr) {
    // SAFETY: PR_SET_NAME reads a NUL-terminated string we own.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0);
    }
}

/// Blocks until the child `pid` has ended (and reaps it).
pub(crate) fn wait_child(pid: i32) {
    let mut status = 0;
    loop {
        // SAFETY: waitpid writes the status integer we own.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid || (rc == -1 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR))
        {
            return;
        }
    }
}

/// Replaces the calling process with `argv` run from `/proc/self/exe` (the binary
/// this process was started from). Returns only on failure.
pub(crate) fn exec_self(argv: &[std::ffi::CString]) -> io::Error {
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: `ptrs` is a NULL-terminated array of pointers to NUL-terminated
    // strings that live until execv returns (it only returns on failure).
    unsafe {
        libc::execv(c"/proc/self/exe".as_ptr(), ptrs.as_ptr());
    }
    io::Error::last_os_error()
}

/// Sends `signal` to one process. A process that no longer exists is not an error.
pub(crate) fn signal_pid(pid: i32, signal: i32) -> io::Result<()> {
    if pid <= 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to signal pid <= 1",
        ));
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    if unsafe { libc::kill(pid, signal) } == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(err)
    }
}

/// The primary gid of the user with this uid, when it has a passwd entry.
pub(crate) fn lookup_user_by_id(uid: u32) -> Option<u32> {
    let mut buf = vec![0u8; 16384];
    // SAFETY: an all-zero passwd is a valid value of a plain C struct.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: as in `lookup_user`.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some(pwd.pw_gid)
}

/// The process group of `pid`, or `None` when it is gone.
pub(crate) fn pgid_of(pid: i32) -> Option<i32> {
    // SAFETY: getpgid takes an integer and touches no memory of ours.
    let pgid = unsafe { libc::getpgid(pid) };
    (pgid >= 0).then_some(pgid)
}

/// The parent pid of `pid`, from `/proc/PID/stat`.
pub(crate) fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

//! The stdin watcher: the entrypoint that makes a container end when the master's
//! attach goes away, whatever program runs in it (`end_with_master = true`).
//!
//! The engine closes the stdin of a `StdinOnce` container when its attach goes
//! away (the master exited, was killed, or lost its connection). SDK workers exit
//! on that end of file; a plain program (`sleep 300`, a web server) does not read
//! stdin and would run on. So the container's command line is run through
//! `stdin_watch.sh` by the image's `/bin/sh`: the worker is exec'ed in place of the
//! shell (same pid, same signals, same exit status), and a small watcher relays
//! stdin to it; when stdin ends, the watcher closes the worker's stdin, waits
//! [`EOF_GRACE`] for it to exit, then sends SIGTERM to its process group, and
//! SIGKILL after the group's `kill_after` (at most [`EOF_KILL_AFTER_MAX`]). An image
//! without `/bin/sh` runs the command as it is.

use bollard::models::ContainerCreateBody;
use std::time::Duration;

/// The script, with its comments (they would show in `ps`) left out at run time.
const SCRIPT: &str = include_str!("stdin_watch.sh");
/// The shell the script needs in the image.
pub(crate) const SHELL: &str = "/bin/sh";
/// How long a worker has to exit on its own after its stdin ended: what the
/// protocol asks of workers ("promptly, within a few seconds"), and what the SDK
/// gives itself before it exits anyway.
pub(crate) const EOF_GRACE: Duration = Duration::from_secs(5);
/// The longest wait between SIGTERM and SIGKILL after stdin ended, so that a
/// container whose master is gone ends within `EOF_GRACE` + this.
pub(crate) const EOF_KILL_AFTER_MAX: Duration = Duration::from_secs(3);

/// The command line the container runs, as the engine resolves it: the body's
/// entrypoint, else the image's; the body's command, else the image's when the
/// entrypoint is the image's too. An entrypoint of `[""]` means none.
pub(crate) fn resolved_argv(
    body: &ContainerCreateBody,
    image_entrypoint: &[String],
    image_cmd: &[String],
) -> Vec<String> {
    let entrypoint = match &body.entrypoint {
        Some(e) if e.len() == 1 && e[0].is_empty() => Vec::new(),
        Some(e) => e.clone(),
        None => image_entrypoint.to_vec(),
    };
    let cmd = match &body.cmd {
        Some(c) => c.clone(),
        None if body.entrypoint.is_none() || entrypoint.is_empty() => image_cmd.to_vec(),
        None => Vec::new(),
    };
    entrypoint.into_iter().chain(cmd).collect()
}

/// Rewrites `body` so that its command line (`argv`, see [`resolved_argv`]) runs
/// under the stdin watcher. Does nothing when there is no command line.
pub(crate) fn wrap(body: &mut ContainerCreateBody, argv: Vec<String>, kill_after: Duration) {
    if argv.is_empty() {
        return;
    }
    let tenths = |d: Duration| (d.as_millis() / 100).max(1).to_string();
    let script: Vec<&str> = SCRIPT
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    body.entrypoint = Some(vec![
        SHELL.to_string(),
        "-c".to_string(),
        script.join("\n"),
        "distarch-docker".to_string(),
        tenths(EOF_GRACE),
        tenths(kill_after.min(EOF_KILL_AFTER_MAX)),
    ]);
    body.cmd = Some(argv);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn body(entrypoint: Option<&[&str]>, cmd: Option<&[&str]>) -> ContainerCreateBody {
        ContainerCreateBody {
            entrypoint: entrypoint.map(v),
            cmd: cmd.map(v),
            ..Default::default()
        }
    }

    #[test]
    fn resolves_like_the_engine() {
        let (ie, ic) = (v(&["/worker"]), v(&["--default"]));
        let r = |e, c| resolved_argv(&body(e, c), &ie, &ic);
        assert_eq!(r(None, None), v(&["/worker", "--default"]));
        assert_eq!(r(None, Some(&["serve"])), v(&["/worker", "serve"]));
        assert_eq!(r(Some(&["/bin/sh", "-c"]), None), v(&["/bin/sh", "-c"]));
        assert_eq!(r(Some(&[""]), Some(&["sleep", "9"])), v(&["sleep", "9"]));
        assert_eq!(r(Some(&[""]), None), v(&["--default"]));
    }

    #[test]
    fn wraps_the_whole_command_line() {
        let mut b = body(Some(&[""]), Some(&["sleep", "300"]));
        let argv = resolved_argv(&b, &[], &[]);
        wrap(&mut b, argv, Duration::from_secs(10));
        let e = b.entrypoint.unwrap();
        assert_eq!(e[0], "/bin/sh");
        assert_eq!(e[1], "-c");
        assert!(!e[2].contains("# "), "comments are left out");
        assert_eq!(&e[3..], &v(&["distarch-docker", "50", "30"])[..]);
        assert_eq!(b.cmd.unwrap(), v(&["sleep", "300"]));
    }
}

//! What crosses to the remote host: the agent script (run once per connection) and
//! the start requests it reads, each value encoded so that no shell ever parses it.
//!
//! sshd runs an exec request as `$SHELL -c COMMAND`. The only COMMAND distarch
//! sends is [`agent_command`]: the agent script as one single-quoted word and two
//! numbers, so the login shell does nothing but remove the quotes. Every value of
//! an instance (workdir, environment, argv) then travels on the agent's stdin as a
//! line `a VALUE` ([`encode`]: `\` becomes `\\`, a newline `\n`); the agent uses it
//! only as a `"$@"` word (`cd -- "$w"`, `export "$1"`, `exec setsid "$@"`).

use std::fmt;
use std::fmt::Write as _;
use std::time::Duration;

/// The POSIX sh agent that runs once per connection (see the comments inside it,
/// and docs/transports/ssh.md).
pub const AGENT: &str = include_str!("agent.sh");

/// A value that cannot be passed to the remote command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The command is empty.
    #[error("the command is empty")]
    Empty,
    /// A NUL byte cannot travel in an argv or environment entry.
    #[error("{what} contains a NUL byte, which no remote command can carry")]
    Nul {
        /// Which value.
        what: String,
    },
    /// An environment variable name the remote shell cannot export.
    #[error("environment variable name `{0}` is not a valid name (letters, digits and `_`, not starting with a digit)")]
    BadEnvName(String),
}

/// Quotes `value` as one single-quoted POSIX shell word.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Encodes `value` for one agent line: `\` becomes `\\` and a newline `\n`, which
/// the agent's `printf %b` turns back; everything else goes as it is.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The exec request that starts the agent: `exec /bin/sh -c '<agent>' distarch-ssh
/// KEEPALIVE WINDOW`.
pub fn agent_command(keepalive: Option<Duration>, window: usize) -> String {
    let keepalive = keepalive.map(|d| d.as_secs().max(1)).unwrap_or(0);
    format!(
        "exec /bin/sh -c {} distarch-ssh {keepalive} {window}",
        quote(AGENT)
    )
}

/// What goes into one remote command.
#[derive(Debug, Clone, Default)]
pub struct RemoteCommand<'a> {
    /// Program and arguments.
    pub argv: &'a [String],
    /// Environment variables to export.
    pub env: Vec<(&'a str, &'a str)>,
    /// Directory to change to first.
    pub workdir: Option<&'a str>,
    /// How long the agent lets the worker end by itself once the master is gone.
    pub grace: Duration,
    /// How long after SIGTERM the agent sends SIGKILL.
    pub kill_after: Duration,
}

fn tenths(d: Duration) -> u128 {
    d.as_millis().div_ceil(100).max(1)
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

fn no_nul(what: impl fmt::Display, value: &str) -> Result<(), CommandError> {
    if value.contains('\0') {
        return Err(CommandError::Nul {
            what: what.to_string(),
        });
    }
    Ok(())
}

impl RemoteCommand<'_> {
    /// Checks every value: no NUL byte, shell names for variables, an argv.
    pub fn check(&self) -> Result<(), CommandError> {
        if self.argv.is_empty() {
            return Err(CommandError::Empty);
        }
        for (i, a) in self.argv.iter().enumerate() {
            no_nul(format_args!("argument {i} of the command"), a)?;
        }
        for (k, v) in &self.env {
            if !valid_env_name(k) {
                return Err(CommandError::BadEnvName(k.to_string()));
            }
            no_nul(format_args!("environment variable {k}"), v)?;
        }
        if let Some(w) = self.workdir {
            no_nul("the working directory", w)?;
        }
        Ok(())
    }

    /// The agent lines that start this command as instance `id`.
    pub fn start_lines(&self, id: u64) -> Result<String, CommandError> {
        self.check()?;
        let mut out = String::new();
        let values = std::iter::once(self.workdir.unwrap_or(""))
            .map(str::to_string)
            .chain(self.env.iter().map(|(k, v)| format!("{k}={v}")))
            .chain(self.argv.iter().cloned());
        for v in values {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "a {}", encode(&v));
        }
        let _ = writeln!(
            out,
            "s {id} {} {} {}",
            tenths(self.grace),
            tenths(self.kill_after),
            self.env.len()
        );
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_single_quotes_and_leaves_the_rest_alone() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("$(x) `y` \\ \n"), "'$(x) `y` \\ \n'");
    }

    #[test]
    fn encodes_backslashes_and_newlines_only() {
        assert_eq!(encode("a\\b\nc'$(x)"), "a\\\\b\\nc'$(x)");
        assert_eq!(encode("\\n"), "\\\\n");
    }

    #[test]
    fn refuses_values_no_command_can_carry() {
        let argv = vec!["a\0b".to_string()];
        let cmd = RemoteCommand {
            argv: &argv,
            ..Default::default()
        };
        assert!(matches!(cmd.start_lines(1), Err(CommandError::Nul { .. })));
        let argv = vec!["true".to_string()];
        let cmd = RemoteCommand {
            argv: &argv,
            env: vec![("1BAD", "x")],
            ..Default::default()
        };
        assert_eq!(
            cmd.start_lines(1),
            Err(CommandError::BadEnvName("1BAD".into()))
        );
        let cmd = RemoteCommand::default();
        assert_eq!(cmd.start_lines(1), Err(CommandError::Empty));
    }

    /// Runs the agent with `program args` and `input` on stdin, which stays open
    /// until the agent reports the end of instance 7; returns its records, each
    /// output chunk as `ID o|e ` and its bytes.
    fn agent_under(program: &str, args: &[&str], path: Option<&str>, input: &str) -> Vec<String> {
        agent_with_window(program, args, path, input, 65536)
    }

    fn agent_with_window(
        program: &str,
        args: &[&str],
        path: Option<&str>,
        input: &str,
        window: usize,
    ) -> Vec<String> {
        use std::io::{BufRead, Read, Write};
        let mut command = std::process::Command::new(program);
        command
            .args(args)
            .args(["-c", AGENT, "distarch-ssh", "0", &window.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        if let Some(path) = path {
            command.env("PATH", path);
        }
        let mut child = command.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut records = Vec::new();
        loop {
            let mut line = String::new();
            if out.read_line(&mut line).unwrap() == 0 {
                break;
            }
            let line = line.trim_end_matches('\n').to_string();
            let fields: Vec<&str> = line.splitn(3, ' ').collect();
            if matches!(fields[1], "o" | "e") {
                let mut bytes = vec![0; fields[2].parse().unwrap()];
                out.read_exact(&mut bytes).unwrap();
                records.push(format!(
                    "{} {} {}",
                    fields[0],
                    fields[1],
                    String::from_utf8_lossy(&bytes)
                ));
                continue;
            }
            let end = line.starts_with("7 x ") || line.starts_with("7 k ");
            records.push(line);
            if end {
                break;
            }
        }
        drop(stdin);
        child.wait().unwrap();
        records
    }

    /// A directory of busybox applets only (no other awk, dd, cat ...).
    fn busybox_only() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for applet in [
            "sh", "awk", "cat", "dd", "mkfifo", "mktemp", "setsid", "rm", "sleep", "kill", "wc",
            "mkdir", "printf",
        ] {
            std::os::unix::fs::symlink("/bin/busybox", dir.path().join(applet)).unwrap();
        }
        dir
    }

    fn start(argv: &[&str], env: Vec<(&str, &str)>) -> String {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        RemoteCommand {
            argv: &argv,
            env,
            workdir: Some("/"),
            grace: Duration::from_millis(200),
            kill_after: Duration::from_millis(200),
        }
        .start_lines(7)
        .unwrap()
    }

    #[test]
    fn the_agent_runs_values_byte_for_byte_under_dash_and_busybox() {
        let lines = start(
            &[
                "sh",
                "-c",
                "printf '%s|' \"$X\" \"$@\"; echo; printf 'no newline\\0nul'",
                "zero",
                "a'b",
                "$(echo no)",
                " sp ",
                "back\\slash\\n",
            ],
            vec![("X", "it's `x`\nline 2")],
        );
        let bb = busybox_only();
        let bb_path = bb.path().to_str().unwrap();
        for (program, args, path) in [
            ("dash", &[][..], None),
            ("busybox", &["sh"][..], None),
            ("/bin/busybox", &["sh"][..], Some(bb_path)),
        ] {
            let out = agent_under(program, args, path, &lines);
            assert_eq!(out[0], "0 h 2", "{program} {path:?}: {out:?}");
            // The pid record comes from the runner, the output from the relays:
            // either may come first (the master files output under the instance
            // from its start on).
            let body = &out[1..out.len() - 1];
            let pids = body.iter().filter(|r| r.starts_with("7 p ")).count();
            assert_eq!(pids, 1, "{program} {path:?}: {out:?}");
            let stdout: String = body
                .iter()
                .filter(|r| !r.starts_with("7 p "))
                .map(|r| r.strip_prefix("7 o ").expect("only stdout chunks"))
                .collect();
            assert_eq!(
                stdout, "it's `x`\nline 2|a'b|$(echo no)| sp |back\\slash\\n|\nno newline\0nul",
                "{program} {path:?}"
            );
            assert_eq!(out.last().unwrap(), "7 x 0", "{program} {path:?}");
        }
    }

    #[test]
    fn the_agent_tells_an_exit_code_of_128_plus_n_from_a_signal() {
        // A worker exiting 130 or 143 exited; one that SIGTERMs itself was killed.
        for (script, expected) in [
            ("exit 130", "7 x 130"),
            ("exit 143", "7 x 143"),
            ("exit 3", "7 x 3"),
            ("kill -TERM $$", "7 k 15"),
            ("kill -KILL $$", "7 k 9"),
        ] {
            let lines = start(&["sh", "-c", script], vec![]);
            for (program, args) in [("dash", &[][..]), ("busybox", &["sh"][..])] {
                let out = agent_under(program, args, None, &lines);
                assert_eq!(
                    out.last().unwrap(),
                    expected,
                    "{program}: {script}: {out:?}"
                );
            }
        }
        // Where the only awk is busybox's (which cannot tell), 128+N is taken
        // for signal N, as a shell's `wait` has it.
        let bb = busybox_only();
        let out = agent_under(
            "/bin/busybox",
            &["sh"],
            bb.path().to_str(),
            &start(&["sh", "-c", "kill -TERM $$"], vec![]),
        );
        assert_eq!(out.last().unwrap(), "7 k 15", "{out:?}");
    }

    #[test]
    fn a_flood_of_both_streams_arrives_whole_in_order_and_apart_under_dash_and_busybox() {
        // Both streams flood at once (spool mode: records of many pipe-fulls),
        // then the worker exits with 3; a window large enough that no grant is
        // needed.
        let script = "seq 1 200000 | sed 's/^/err /' >&2 & seq 1 200000; wait; exit 3";
        let lines = start(&["sh", "-c", script], vec![]);
        let expected_out: String = (1..=200_000).map(|i| format!("{i}\n")).collect();
        let expected_err: String = (1..=200_000).map(|i| format!("err {i}\n")).collect();
        let bb = busybox_only();
        let bb_path = bb.path().to_str().unwrap();
        for (program, args, path) in [
            ("dash", &[][..], None),
            ("busybox", &["sh"][..], None),
            ("/bin/busybox", &["sh"][..], Some(bb_path)),
        ] {
            let out = agent_with_window(program, args, path, &lines, 1 << 30);
            let (mut stdout, mut stderr, mut biggest) = (String::new(), String::new(), 0);
            for record in &out[1..out.len() - 1] {
                if let Some(bytes) = record.strip_prefix("7 o ") {
                    stdout.push_str(bytes);
                    biggest = biggest.max(bytes.len());
                } else if let Some(bytes) = record.strip_prefix("7 e ") {
                    stderr.push_str(bytes);
                }
            }
            assert!(stdout == expected_out, "{program} {path:?}: stdout differs");
            assert!(stderr == expected_err, "{program} {path:?}: stderr differs");
            assert_eq!(out.last().unwrap(), "7 x 3", "{program} {path:?}");
            // Some record carried more than one pipe-full: the spool was used.
            assert!(
                biggest > 65536,
                "{program} {path:?}: largest record {biggest}"
            );
        }
    }
}

//! The remote command line: the wrapper script and the instance's workdir, env and
//! argv, each quoted so that the remote login shell cannot read any value as shell.
//!
//! sshd runs an exec request as `$SHELL -c COMMAND`. Every value distarch puts in
//! COMMAND is a single-quoted word (`'` inside becomes `'\''`), so the shell does
//! nothing but remove the quotes; the wrapper then uses the values only as `"$@"`
//! words (`cd -- "$w"`, `export "$1"`, `exec "$@"`), never re-parses them.

use std::fmt;
use std::time::Duration;

/// The POSIX sh script that runs on the remote host around every instance (see the
/// comments inside it, and docs/transports/ssh.md).
pub const WRAPPER: &str = include_str!("wrapper.sh");

/// The first stdout line the wrapper writes, before the worker starts.
pub const PID_LINE_PREFIX: &str = "distarch-ssh pid ";

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

/// What goes into one remote command.
#[derive(Debug, Clone, Default)]
pub struct RemoteCommand<'a> {
    /// Program and arguments.
    pub argv: &'a [String],
    /// Environment variables to export.
    pub env: Vec<(&'a str, &'a str)>,
    /// Directory to change to first.
    pub workdir: Option<&'a str>,
    /// How long the watcher lets the worker end by itself after stdin ended.
    pub grace: Duration,
    /// How long after SIGTERM the watcher sends SIGKILL.
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
    /// The command line to send in the SSH exec request.
    pub fn build(&self) -> Result<String, CommandError> {
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
        let mut words: Vec<String> = vec![
            "exec".into(),
            "/bin/sh".into(),
            "-c".into(),
            quote(WRAPPER),
            "distarch-ssh".into(),
            quote(&tenths(self.grace).to_string()),
            quote(&tenths(self.kill_after).to_string()),
            quote(self.workdir.unwrap_or("")),
            quote(&self.env.len().to_string()),
        ];
        words.extend(self.env.iter().map(|(k, v)| quote(&format!("{k}={v}"))));
        words.extend(self.argv.iter().map(|a| quote(a)));
        Ok(words.join(" "))
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
    fn refuses_values_no_command_can_carry() {
        let argv = vec!["a\0b".to_string()];
        let cmd = RemoteCommand {
            argv: &argv,
            ..Default::default()
        };
        assert!(matches!(cmd.build(), Err(CommandError::Nul { .. })));
        let argv = vec!["true".to_string()];
        let cmd = RemoteCommand {
            argv: &argv,
            env: vec![("1BAD", "x")],
            ..Default::default()
        };
        assert_eq!(cmd.build(), Err(CommandError::BadEnvName("1BAD".into())));
        let cmd = RemoteCommand::default();
        assert_eq!(cmd.build(), Err(CommandError::Empty));
    }

    #[test]
    fn runs_through_a_real_shell_byte_for_byte() {
        let argv: Vec<String> = [
            "sh",
            "-c",
            "printf '%s|' \"$X\" \"$@\"",
            "zero",
            "a'b",
            "$(echo no)",
            " sp ",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let cmd = RemoteCommand {
            argv: &argv,
            env: vec![("X", "it's `x`")],
            workdir: Some("/"),
            grace: Duration::from_millis(200),
            kill_after: Duration::from_millis(200),
        };
        let line = cmd.build().unwrap();
        let out = std::process::Command::new("setsid")
            .args(["sh", "-c", &line])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let (pid, rest) = text.split_once('\n').unwrap();
        assert!(pid.starts_with(PID_LINE_PREFIX), "{text}");
        assert_eq!(rest, "it's `x`|a'b|$(echo no)| sp |");
    }
}

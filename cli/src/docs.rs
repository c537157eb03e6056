//! `distarch completions SHELL` and `distarch man`: generated from the same clap
//! definition as the parser, so they cannot drift from it.

use crate::args::{Cli, ShellArg};
use clap::CommandFactory;
use std::io::Write;

/// Writes the completion script for `shell` to `out`.
pub fn completions(shell: ShellArg, out: &mut dyn Write) {
    let mut cmd = Cli::command();
    let shell = match shell {
        ShellArg::Bash => clap_complete::Shell::Bash,
        ShellArg::Zsh => clap_complete::Shell::Zsh,
        ShellArg::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "distarch", out);
}

/// Writes the manual page (roff) to `out`: the top-level page, then one section per
/// subcommand with its options.
pub fn man(out: &mut dyn Write) -> std::io::Result<()> {
    let cmd = Cli::command();
    clap_mangen::Man::new(cmd.clone()).render(out)?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        writeln!(out, ".SH \"DISTARCH {}\"", sub.get_name().to_uppercase())?;
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            writeln!(out, "{}", roff_text(&about.to_string()))?;
        }
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            let mut names = Vec::new();
            if let Some(short) = arg.get_short() {
                names.push(format!("\\fB\\-{short}\\fR"));
            }
            if let Some(long) = arg.get_long() {
                names.push(format!(
                    "\\fB\\-\\-{}\\fR",
                    roff_text(long).replace('-', "\\-")
                ));
            }
            let values: Vec<String> = arg
                .get_value_names()
                .unwrap_or_default()
                .iter()
                .map(|v| format!(" \\fI{}\\fR", roff_text(v)))
                .collect();
            if names.is_empty() {
                names.push(format!("\\fI{}\\fR", roff_text(arg.get_id().as_str())));
            }
            writeln!(out, ".TP\n{}{}", names.join(", "), values.concat())?;
            if let Some(help) = arg.get_long_help().or(arg.get_help()) {
                writeln!(out, "{}", roff_text(&help.to_string()))?;
            }
        }
    }
    Ok(())
}

/// Text safe in a roff paragraph: backslashes escaped, no line starting with a
/// control character.
fn roff_text(text: &str) -> String {
    text.replace('\\', "\\e")
        .lines()
        .map(|l| {
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

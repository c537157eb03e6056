//! `distarch-conformance -- CMD ARGS...`: plays the distarch master against a worker
//! program and checks, scenario by scenario, that it speaks protocol version 1 as
//! docs/protocol.md says (and as docs/conformance.md details).
//!
//! How it works: every scenario starts the worker once, as the master would (the
//! `DISTARCH_*` variables, piped stdin/stdout/stderr, its own process group), with
//! `params` that tell a conformance worker what to do (`{"conformance":"levels"}`,
//! ...), reads its stdout with the master's own parser, writes frames on its stdin,
//! and checks what comes back against the shared vectors of conformance/vectors/.
//! It prints one line per scenario and `N passed, M failed`; the exit code is 0 when
//! nothing failed, 1 otherwise, 2 on a usage error.

mod jobs;
mod scenarios;
mod session;
mod vectors;

use clap::Parser;
use std::process::ExitCode;
use std::time::Duration;

/// Checks that a worker program speaks the distarch protocol.
#[derive(Debug, Parser)]
#[command(name = "distarch-conformance", version)]
struct Args {
    /// Run only the scenarios whose name contains this text (repeatable).
    #[arg(long = "only", value_name = "TEXT")]
    only: Vec<String>,
    /// Print the scenario names and exit.
    #[arg(long)]
    list: bool,
    /// How long the worker may take to exit after `stop` or the end of stdin.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    grace: Duration,
    /// How long the worker may take to start and send `ready`.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    startup: Duration,
    /// The worker command and its arguments (after `--`).
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let vectors = match vectors::Vectors::load() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("distarch-conformance: {e}");
            return ExitCode::from(2);
        }
    };
    let scenarios: Vec<_> = scenarios::all(&vectors)
        .into_iter()
        .filter(|s| args.only.is_empty() || args.only.iter().any(|o| s.name.contains(o.as_str())))
        .collect();
    if args.list {
        for s in &scenarios {
            println!("{}", s.name);
        }
        return ExitCode::SUCCESS;
    }
    if args.command.is_empty() {
        eprintln!("distarch-conformance: no worker command; usage: distarch-conformance [OPTIONS] -- CMD ARGS...");
        return ExitCode::from(2);
    }
    let ctx = scenarios::Ctx {
        command: &args.command,
        vectors: &vectors,
        grace: args.grace,
        startup: args.startup,
    };
    let (mut passed, mut failed) = (0usize, 0usize);
    for s in &scenarios {
        match s.run(&ctx) {
            Ok(note) if note.is_empty() => {
                passed += 1;
                println!("ok   {}", s.name);
            }
            Ok(note) => {
                passed += 1;
                println!("ok   {} ({note})", s.name);
            }
            Err(why) => {
                failed += 1;
                println!("FAIL {}: {why}", s.name);
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

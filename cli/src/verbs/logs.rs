//! `distarch logs RUN [-f] [--group G] [--id N] [--since DUR] [--tail N]` and
//! `distarch events RUN`: streams of lines from the master, printed as they come.

use super::{locate, EventsArgs, LogsArgs, OutputFormat, VerbError};
use std::io::Write;
use std::time::{Duration, SystemTime};

/// The query string of `GET /v1/logs`.
fn query(args: &LogsArgs, now: SystemTime) -> Result<String, VerbError> {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for g in &args.groups {
        q.append_pair("group", g);
    }
    for id in &args.ids {
        q.append_pair("id", &id.to_string());
    }
    if let Some(since) = &args.since {
        let d: Duration = humantime::parse_duration(since).map_err(|e| {
            VerbError::new(
                distarch_core::EXIT_CONFIG,
                format!("--since `{since}` is not a duration (e.g. 10m): {e}"),
            )
        })?;
        let at = now.checked_sub(d).unwrap_or(SystemTime::UNIX_EPOCH);
        q.append_pair("since", &humantime::format_rfc3339_millis(at).to_string());
    }
    if let Some(tail) = args.tail {
        q.append_pair("tail", &tail.to_string());
    }
    if args.follow {
        q.append_pair("follow", "true");
    }
    let format = match args.output.output {
        OutputFormat::Text => "text",
        OutputFormat::Json => "json",
    };
    q.append_pair("format", format);
    Ok(q.finish())
}

pub async fn logs(args: LogsArgs) -> Result<i32, VerbError> {
    let q = query(&args, SystemTime::now())?;
    print_stream(&args.run, &format!("/logs?{q}")).await
}

/// Follows `GET /v1/events` of a run.
pub async fn events(args: EventsArgs) -> Result<i32, VerbError> {
    print_stream(&args.run, "/events").await
}

/// Prints every line of the stream at `path` of `run`'s API until it ends (or
/// standard output is closed).
async fn print_stream(run: &str, path: &str) -> Result<i32, VerbError> {
    let found = locate(run).await?;
    let stdout = std::io::stdout();
    found
        .client()
        .line_chunks(path, |chunk| {
            // One write per read of whole lines: a follower of a flood costs the
            // machine as little as it can.
            let mut out = stdout.lock();
            out.write_all(chunk).is_ok() && out.flush().is_ok()
        })
        .await?;
    Ok(0)
}

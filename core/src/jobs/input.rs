//! Reading the jobs: lines of a file, of the master's stdin or of a command's
//! output, on a thread of their own, sent to the pool in small batches through a
//! bounded channel (so the input is read only as fast as the pool takes it).

use super::config::{InputFormat, JobsConfig, MAX_RECORD_BYTES};
use distarch_protocol::LineSplitter;
use serde_json::Value;
use std::collections::HashSet;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use tokio::sync::mpsc;

/// Records per batch sent to the pool.
const BATCH: usize = 256;
/// Batches waiting in the channel.
const QUEUE: usize = 4;

/// One input record: its id (1-based line number) and its payload, or why the
/// line is not a job (it is then dead-lettered at once).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    pub(crate) id: u64,
    pub(crate) payload: Result<Value, (Value, String)>,
}

/// What the input thread reports.
#[derive(Debug)]
pub(crate) enum InputMsg {
    /// More records.
    Records(Vec<Record>),
    /// The input is over; `error` when it could not be read to its end.
    End {
        /// Why the input ended early.
        error: Option<String>,
        /// Records skipped because the journal has them done.
        skipped: u64,
    },
}

/// Starts reading; `done` holds the ids a journal says are done.
pub(crate) fn start(config: &JobsConfig, done: HashSet<u64>) -> mpsc::Receiver<InputMsg> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let format = config.format;
    let source = Source::of(config);
    let spawned = std::thread::Builder::new()
        .name("distarch-jobs-input".into())
        .spawn({
            let tx = tx.clone();
            move || read_all(source, format, &done, &tx)
        });
    if let Err(e) = spawned {
        let _ = tx.try_send(InputMsg::End {
            error: Some(format!("cannot start the input thread: {e}")),
            skipped: 0,
        });
    }
    rx
}

enum Source {
    Stdin,
    File(std::path::PathBuf),
    Command(Result<Vec<String>, String>),
}

impl Source {
    fn of(config: &JobsConfig) -> Source {
        match (&config.input, &config.input_command) {
            (_, Some(c)) => Source::Command(c.argv()),
            (Some(p), None) if p.as_os_str() == "-" => Source::Stdin,
            (Some(p), None) => Source::File(p.clone()),
            (None, None) => Source::Command(Err("no input configured".into())),
        }
    }
}

/// A command's child, killed when reading stops early.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

fn read_all(source: Source, format: InputFormat, done: &HashSet<u64>, tx: &mpsc::Sender<InputMsg>) {
    let mut child = None;
    let opened: Result<Box<dyn Read>, String> = match source {
        Source::Stdin => Ok(Box::new(std::io::stdin())),
        Source::File(path) => std::fs::File::open(&path)
            .map(|f| Box::new(f) as Box<dyn Read>)
            .map_err(|e| format!("cannot open the job input {}: {e}", path.display())),
        Source::Command(argv) => argv.and_then(|argv| spawn(&argv)).map(|mut c| {
            let out = c.stdout.take();
            child = Some(Reaped(c));
            match out {
                Some(out) => Box::new(out) as Box<dyn Read>,
                None => Box::new(std::io::empty()) as Box<dyn Read>,
            }
        }),
    };
    let mut reader = match opened {
        Ok(r) => r,
        Err(error) => {
            let _ = tx.blocking_send(InputMsg::End {
                error: Some(error),
                skipped: 0,
            });
            return;
        }
    };
    let mut reading = Reading {
        format,
        done,
        line: 0,
        skipped: 0,
        batch: Vec::with_capacity(BATCH),
        tx,
        gone: false,
    };
    let mut splitter = LineSplitter::new(MAX_RECORD_BYTES);
    let mut buf = vec![0u8; 64 * 1024];
    let mut error = None;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                error = Some(format!("reading the job input failed: {e}"));
                break;
            }
        };
        splitter.feed(&buf[..n], |line| reading.line(line.bytes, line.truncated));
        if reading.gone {
            return; // the pool is gone: nobody wants the rest
        }
    }
    splitter.finish(|line| reading.line(line.bytes, line.truncated));
    reading.flush();
    if let Some(c) = child.as_mut() {
        match c.0.wait() {
            Ok(status) if !status.success() && error.is_none() => {
                error = Some(format!("the input command ended with {status}"));
            }
            _ => {}
        }
    }
    let skipped = reading.skipped;
    let _ = tx.blocking_send(InputMsg::End { error, skipped });
}

fn spawn(argv: &[String]) -> Result<Child, String> {
    let (prog, args) = argv.split_first().ok_or("the input command is empty")?;
    Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start the input command `{prog}`: {e}"))
}

struct Reading<'a> {
    format: InputFormat,
    done: &'a HashSet<u64>,
    line: u64,
    skipped: u64,
    batch: Vec<Record>,
    tx: &'a mpsc::Sender<InputMsg>,
    gone: bool,
}

impl Reading<'_> {
    fn line(&mut self, bytes: &[u8], truncated: bool) {
        self.line += 1;
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        if bytes.iter().all(u8::is_ascii_whitespace) && !truncated {
            return; // blank lines are no jobs (they still count as lines for ids)
        }
        if self.done.contains(&self.line) {
            self.skipped += 1;
            return;
        }
        let payload = parse(self.format, bytes, truncated);
        self.batch.push(Record {
            id: self.line,
            payload,
        });
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.batch.is_empty() || self.gone {
            return;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        if self.tx.blocking_send(InputMsg::Records(batch)).is_err() {
            self.gone = true;
        }
    }
}

/// The payload of one line.
pub(crate) fn parse(
    format: InputFormat,
    bytes: &[u8],
    truncated: bool,
) -> Result<Value, (Value, String)> {
    let text = || Value::String(String::from_utf8_lossy(bytes).into_owned());
    if truncated {
        return Err((
            Value::Null,
            format!("input record longer than {MAX_RECORD_BYTES} bytes"),
        ));
    }
    match format {
        InputFormat::Text => Ok(text()),
        InputFormat::Json => serde_json::from_slice(bytes)
            .map_err(|e| (text(), format!("input line is not JSON: {e}"))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn lines_become_records_numbered_by_line_skipping_blank_and_done() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        std::fs::write(&path, "1\n\n{\"a\":2}\nnot json\n[3]\n").unwrap();
        let config = JobsConfig {
            input: Some(path),
            ..JobsConfig::default()
        };
        let mut rx = start(&config, [5].into_iter().collect());
        let mut records = Vec::new();
        let skipped = loop {
            match rx.recv().await.unwrap() {
                InputMsg::Records(r) => records.extend(r),
                InputMsg::End { error, skipped } => {
                    assert_eq!(error, None);
                    break skipped;
                }
            }
        };
        assert_eq!(skipped, 1, "line 5 is done in the journal");
        let ids: Vec<u64> = records.iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![1, 3, 4]);
        assert_eq!(records[0].payload, Ok(json!(1)));
        assert_eq!(records[1].payload, Ok(json!({"a": 2})));
        assert!(
            matches!(&records[2].payload, Err((v, e)) if v == "not json" && e.contains("not JSON"))
        );
    }

    #[tokio::test]
    async fn a_command_is_an_input_and_its_failure_is_reported() {
        let config = JobsConfig {
            input_command: Some(crate::config::CommandLine::Argv(vec![
                "sh".into(),
                "-c".into(),
                "printf 'a\\nb\\n'; exit 3".into(),
            ])),
            format: InputFormat::Text,
            ..JobsConfig::default()
        };
        let mut rx = start(&config, HashSet::new());
        let mut records = Vec::new();
        let error = loop {
            match rx.recv().await.unwrap() {
                InputMsg::Records(r) => records.extend(r),
                InputMsg::End { error, .. } => break error,
            }
        };
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].payload, Ok(json!("b")));
        assert!(error.unwrap().contains("exit status: 3"));
    }
}

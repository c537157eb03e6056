//! The worker's output, from the attach and, after the attach dropped, from the
//! container's log: what the master has read of each stream is counted (whole
//! lines, then bytes of the line in progress), so that a replay of the log skips
//! exactly that and nothing is lost, doubled or reordered.

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use bollard::Docker;
use futures_util::StreamExt;
use tokio::io::{AsyncWriteExt, DuplexStream};

/// The attach's (or a log's) multiplexed output.
pub(crate) type Output = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>,
>;

/// How far one stream has been read: whole lines, then bytes of the next line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    lines: u64,
    partial: u64,
}

impl Position {
    /// Counts `bytes` as read.
    fn advance(&mut self, bytes: &[u8]) {
        match bytes.iter().rposition(|&b| b == b'\n') {
            Some(last) => {
                self.lines += bytes.iter().filter(|&&b| b == b'\n').count() as u64;
                self.partial = (bytes.len() - last - 1) as u64;
            }
            None => self.partial += bytes.len() as u64,
        }
    }

    /// Drops from the front of `bytes` what is still to be skipped of a replay
    /// that started at the beginning of the stream; returns what is new.
    fn skip<'a>(&mut self, bytes: &'a [u8]) -> &'a [u8] {
        let mut rest = bytes;
        while self.lines > 0 {
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.lines -= 1;
                    rest = &rest[i + 1..];
                }
                None => return &[],
            }
        }
        let n = rest
            .len()
            .min(usize::try_from(self.partial).unwrap_or(usize::MAX));
        self.partial -= n as u64;
        &rest[n..]
    }
}

/// Which stream a chunk belongs to.
#[derive(Debug, Clone, Copy)]
enum Stream {
    Out = 0,
    Err = 1,
}

/// The write ends of the stdout and stderr pipes the supervisor reads, and how
/// much has gone through each.
pub(crate) struct Pipes {
    ends: [Option<DuplexStream>; 2],
    read: [Position; 2],
}

/// How an output stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StreamEnd {
    /// The engine closed it.
    Closed,
    /// Reading it failed: why, and the engine's HTTP status when it answered.
    Failed(String, Option<u16>),
}

impl Pipes {
    /// Pipes to the supervisor's stdout and stderr readers.
    pub(crate) fn new(stdout: DuplexStream, stderr: DuplexStream) -> Self {
        Pipes {
            ends: [Some(stdout), Some(stderr)],
            read: [Position::default(); 2],
        }
    }

    async fn write(&mut self, stream: Stream, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.read[stream as usize].advance(bytes);
        let end = &mut self.ends[stream as usize];
        if let Some(w) = end {
            if w.write_all(bytes).await.is_err() {
                // The master stopped reading this stream: drop what comes.
                *end = None;
            }
        }
    }

    /// Copies the frames of `output` into the pipes until it ends.
    pub(crate) async fn pump(&mut self, output: &mut Output) -> StreamEnd {
        while let Some(item) = output.next().await {
            match classify(item) {
                Ok(Some((stream, bytes))) => self.write(stream, &bytes).await,
                Ok(None) => {}
                Err(end) => return end,
            }
        }
        StreamEnd::Closed
    }

    /// Replays the container's log from its start, skipping what has been read
    /// already; with `follow`, goes on until the container ends.
    pub(crate) async fn replay(&mut self, docker: &Docker, id: &str, follow: bool) -> StreamEnd {
        let options = LogsOptions {
            follow,
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let mut skip = self.read;
        let mut log = docker.logs(id, Some(options));
        while let Some(item) = log.next().await {
            match classify(item) {
                Ok(Some((stream, bytes))) => {
                    let new = skip[stream as usize].skip(&bytes);
                    self.write(stream, new).await;
                }
                Ok(None) => {}
                Err(end) => return end,
            }
        }
        StreamEnd::Closed
    }
}

fn classify(
    item: Result<LogOutput, bollard::errors::Error>,
) -> Result<Option<(Stream, bytes::Bytes)>, StreamEnd> {
    match item {
        Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
            Ok(Some((Stream::Out, message)))
        }
        Ok(LogOutput::StdErr { message }) => Ok(Some((Stream::Err, message))),
        Ok(LogOutput::StdIn { .. }) => Ok(None),
        Err(e) => Err(StreamEnd::Failed(
            crate::api::engine_message(&e),
            crate::api::status_code(&e),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(chunks: &[&str]) -> Position {
        let mut p = Position::default();
        for c in chunks {
            p.advance(c.as_bytes());
        }
        p
    }

    /// A replay in other chunks than the original yields exactly the unread rest.
    #[test]
    fn replay_skips_exactly_what_was_read() {
        let whole = "line 1\nline 2\nline 3 is long\nline 4\n";
        for seen in [
            vec![],
            vec!["line 1\n"],
            vec!["line 1\nli"],
            vec!["line 1\n", "line 2\nline 3 "],
            vec!["line 1\nline 2\nline 3 is long\nline 4\n"],
        ] {
            let seen_text: String = seen.concat();
            for replay_chunks in [
                vec![whole.to_string()],
                whole.split_inclusive('\n').map(str::to_string).collect(),
                whole.chars().map(|c| c.to_string()).collect::<Vec<_>>(),
            ] {
                let mut skip = read(&seen);
                let mut rest = String::new();
                for c in &replay_chunks {
                    rest.push_str(std::str::from_utf8(skip.skip(c.as_bytes())).unwrap());
                }
                assert_eq!(format!("{seen_text}{rest}"), whole, "seen {seen:?}");
            }
        }
    }

    #[test]
    fn positions_count_lines_and_the_partial_rest() {
        assert_eq!(
            read(&["a\nb", "c\n", "de"]),
            Position {
                lines: 2,
                partial: 2
            }
        );
        assert_eq!(
            read(&["abc"]),
            Position {
                lines: 0,
                partial: 3
            }
        );
    }
}

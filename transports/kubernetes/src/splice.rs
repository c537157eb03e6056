//! `output = "attach"`: stdout and stderr apart from the attach, with the start the
//! attach cannot carry taken from the log.
//!
//! An attach only carries what the container writes after it connected: the
//! runtime keeps no history for it (containerd's CRI attach, Docker's without
//! `logs`). A real kubelet reports the container running, which is when distarch
//! can attach, some hundred milliseconds to seconds after it started, so an SDK
//! worker's `hello` and first lines would be lost. The log, followed from its first
//! byte, has them (stdout and stderr merged, in the order written). So the log's
//! lines are passed on (all as stdout) until the point where the attach begins, the
//! first line the attach delivers, found again in the log; from there on the
//! attach's stdout and stderr are passed on apart and the log is dropped.
//!
//! [`Splicer`] decides, line by line, without I/O; [`splice`] runs it over the three
//! streams.

use std::collections::VecDeque;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader, ReadHalf, SimplexStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long the attach's first lines wait for the log to reach them, after which
/// the log is given up (a log that lags that much loses the rest of the start, not
/// the attach); and how long lines the log passed on ahead of the attach are looked
/// for in what the attach delivers.
const CATCH_UP: Duration = Duration::from_secs(5);
/// How long a log line is held before it is passed on, so that the attach, when it
/// carries the same line, passes it first (with its stream) in the usual case of a
/// log a little behind or even with the attach.
const HOLD: Duration = Duration::from_millis(300);
/// How many of the log's latest lines are kept to find the attach's first line in
/// (the log is ahead of the attach by a few lines at most).
const SEEN: usize = 1000;
/// Buffer of each output pipe.
const PIPE: usize = 64 * 1024;

/// Where a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The container log (stdout and stderr merged).
    Log,
    /// The attach's stdout.
    Stdout,
    /// The attach's stderr.
    Stderr,
}

/// Where a line goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// The instance's stdout (frames and `info` lines).
    Stdout,
    /// The instance's stderr (`warn` lines).
    Stderr,
}

/// A line to pass on.
pub type Out = (Dest, Vec<u8>);

/// The line-by-line decision of what to pass on (see the module doc).
#[derive(Debug, Default)]
pub struct Splicer {
    /// The attach has taken over: the log is no longer used.
    attach: bool,
    /// The log has ended (the container has).
    log_ended: bool,
    /// The log's latest lines passed on, while the attach has delivered nothing.
    seen: VecDeque<Vec<u8>>,
    /// The attach's lines held until the log reaches one of them.
    pending: Vec<Out>,
    /// Lines the log passed on ahead of the attach, which the attach delivers again.
    skip: Vec<Vec<u8>>,
    /// Per attach stream (stdout, stderr): where its next line is looked for in
    /// `skip` (`None`: not matched yet); `Some(usize::MAX)` once it got past.
    cursor: [Option<usize>; 2],
}

impl Splicer {
    /// A splicer that starts on the log.
    pub fn new() -> Self {
        Splicer::default()
    }

    /// Whether the log is still needed.
    pub fn wants_log(&self) -> bool {
        !self.attach
    }

    /// Whether the attach's lines are waiting for the log to reach them.
    pub fn waiting(&self) -> bool {
        !self.attach && !self.pending.is_empty()
    }

    /// Whether lines the log passed on ahead of the attach are still looked for in
    /// what the attach delivers.
    pub fn skipping(&self) -> bool {
        self.attach && !self.skip.is_empty()
    }

    /// How many lines the log had passed on ahead of the attach (the lines looked for).
    pub fn log_ahead(&self) -> usize {
        self.skip.len()
    }

    fn take_over(&mut self) -> Vec<Out> {
        self.attach = true;
        self.seen.clear();
        std::mem::take(&mut self.pending)
    }

    /// A line from `source`; returns what to pass on now.
    pub fn line(&mut self, source: Source, line: Vec<u8>) -> Vec<Out> {
        let (dest, stream) = match source {
            Source::Log => return self.log_line(line),
            Source::Stdout => (Dest::Stdout, 0),
            Source::Stderr => (Dest::Stderr, 1),
        };
        if self.attach {
            if self.skipped(stream, &line) {
                return Vec::new();
            }
            return vec![(dest, line)];
        }
        if !self.pending.is_empty() {
            self.pending.push((dest, line));
            return Vec::new();
        }
        // The attach's first line. The log is ahead when it already passed it on:
        // what it passed on since is delivered by the attach too.
        if let Some(k) = self.seen.iter().rposition(|s| *s == line) {
            self.skip = std::mem::take(&mut self.seen).into();
            self.cursor[stream] = Some(k + 1);
            self.take_over();
            return Vec::new();
        }
        if self.log_ended {
            self.take_over();
            return vec![(dest, line)];
        }
        self.pending.push((dest, line));
        Vec::new()
    }

    /// Whether `line` of attach stream `stream` was passed on by the log already.
    /// Each stream's lines are in the log in its order: after its first line found
    /// (the latest equal line), the next is looked for after it; the first line
    /// not found there means the stream got past what the log passed on.
    fn skipped(&mut self, stream: usize, line: &[u8]) -> bool {
        let found = match self.cursor[stream] {
            Some(usize::MAX) => None,
            Some(from) => self
                .skip
                .get(from..)
                .and_then(|rest| rest.iter().position(|s| s == line))
                .map(|i| from + i),
            None => self.skip.iter().rposition(|s| s == line),
        };
        self.cursor[stream] = Some(found.map_or(usize::MAX, |i| i + 1));
        if self.cursor.iter().all(|c| *c == Some(usize::MAX)) {
            self.skip.clear();
        }
        found.is_some()
    }

    fn log_line(&mut self, line: Vec<u8>) -> Vec<Out> {
        if self.attach {
            return Vec::new();
        }
        // The log reached the attach's start: from here on the attach has it all.
        if self.pending.iter().any(|(_, p)| *p == line) {
            return self.take_over();
        }
        if self.pending.is_empty() {
            if self.seen.len() == SEEN {
                self.seen.pop_front();
            }
            self.seen.push_back(line.clone());
        }
        vec![(Dest::Stdout, line)]
    }

    /// The end of `source`; returns what to pass on now.
    pub fn end(&mut self, source: Source) -> Vec<Out> {
        match source {
            Source::Log => {
                self.log_ended = true;
                if self.waiting() {
                    return self.take_over();
                }
            }
            // An ended stream has nothing more to skip.
            Source::Stdout => self.cursor[0] = Some(usize::MAX),
            Source::Stderr => self.cursor[1] = Some(usize::MAX),
        }
        Vec::new()
    }

    /// Time is up: the log did not reach the attach's lines in time, so the attach
    /// takes over; or what the log passed on ahead is no longer looked for (the
    /// attach has long caught up).
    pub fn give_up(&mut self) -> Vec<Out> {
        if self.waiting() {
            return self.take_over();
        }
        self.skip.clear();
        Vec::new()
    }
}

/// Runs a [`Splicer`] over the followed `log` and the attach's `stdout` and
/// `stderr`: returns the instance's stdout and stderr. They end once the attach has
/// ended (and the log, while it is used).
pub fn splice<L, O, E>(
    log: L,
    stdout: O,
    stderr: E,
) -> (ReadHalf<SimplexStream>, ReadHalf<SimplexStream>)
where
    L: AsyncRead + Send + Unpin + 'static,
    O: AsyncRead + Send + Unpin + 'static,
    E: AsyncRead + Send + Unpin + 'static,
{
    let (out_r, out_w) = tokio::io::simplex(PIPE);
    let (err_r, err_w) = tokio::io::simplex(PIPE);
    let (tx, rx) = mpsc::channel(64);
    let log_task = tokio::spawn(lines(Source::Log, log, tx.clone()));
    tokio::spawn(lines(Source::Stdout, stdout, tx.clone()));
    tokio::spawn(lines(Source::Stderr, stderr, tx));
    tokio::spawn(run(Splicer::new(), rx, Some(log_task), (out_w, err_w)));
    (out_r, err_r)
}

/// Sends each line of `r` (with its `\n`; a last line may lack it), then `None`.
async fn lines<R: AsyncRead + Unpin>(
    source: Source,
    r: R,
    tx: mpsc::Sender<(Source, Option<Vec<u8>>)>,
) {
    let mut r = BufReader::new(r);
    loop {
        let mut line = Vec::new();
        match r.read_until(b'\n', &mut line).await {
            Ok(n) if n > 0 => {
                if tx.send((source, Some(line))).await.is_err() {
                    return;
                }
            }
            _ => {
                let _ = tx.send((source, None)).await;
                return;
            }
        }
    }
}

type Writers = (
    tokio::io::WriteHalf<SimplexStream>,
    tokio::io::WriteHalf<SimplexStream>,
);

async fn write(w: &mut Writers, passed: Vec<Out>) {
    for (dest, line) in passed {
        let w = match dest {
            Dest::Stdout => &mut w.0,
            Dest::Stderr => &mut w.1,
        };
        // A reader that is gone only loses its own lines.
        let _ = w.write_all(&line).await;
    }
}

/// Waits until `at`, or forever.
async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn run(
    mut splicer: Splicer,
    mut rx: mpsc::Receiver<(Source, Option<Vec<u8>>)>,
    mut log_task: Option<tokio::task::JoinHandle<()>>,
    mut w: Writers,
) {
    let mut attach_open = 2;
    let mut log_open = true;
    // The log's lines, held for HOLD before they are passed on, and its end.
    let mut held: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut log_end_held = false;
    let mut deadline: Option<Instant> = None;
    loop {
        // Held log lines go on once due, or at once when the attach leads.
        let now = Instant::now();
        let mut passed = Vec::new();
        while let Some((due, _)) = held.front() {
            if *due > now && !splicer.waiting() && splicer.wants_log() {
                break;
            }
            if let Some((_, line)) = held.pop_front() {
                passed.extend(splicer.line(Source::Log, line));
            }
        }
        if held.is_empty() && log_end_held {
            log_end_held = false;
            passed.extend(splicer.end(Source::Log));
        }
        if !splicer.wants_log() {
            held.clear();
            if let Some(task) = log_task.take() {
                // The attach has taken over: the log request is no longer needed.
                tracing::debug!(
                    log_ahead = splicer.log_ahead(),
                    "the attach takes the output over from the log"
                );
                task.abort();
                log_open = false;
            }
        }
        write(&mut w, passed).await;
        let log_pending = splicer.wants_log() && (log_open || !held.is_empty() || log_end_held);
        if attach_open == 0 && !log_pending {
            break;
        }
        if !(splicer.waiting() || splicer.skipping()) {
            deadline = None;
        } else if deadline.is_none() {
            deadline = Some(Instant::now() + CATCH_UP);
        }
        let passed = tokio::select! {
            msg = rx.recv() => match msg {
                Some((Source::Log, Some(line))) => {
                    if splicer.wants_log() {
                        held.push_back((Instant::now() + HOLD, line));
                    }
                    Vec::new()
                }
                Some((Source::Log, None)) => {
                    log_open = false;
                    log_end_held = true;
                    Vec::new()
                }
                Some((source, Some(line))) => splicer.line(source, line),
                Some((source, None)) => {
                    attach_open -= 1;
                    splicer.end(source)
                }
                None => break,
            },
            () = until(held.front().map(|(due, _)| *due)) => Vec::new(),
            () = until(deadline) => {
                deadline = None;
                splicer.give_up()
            }
        };
        write(&mut w, passed).await;
    }
    let leftover = splicer.give_up();
    write(&mut w, leftover).await;
    let _ = w.0.shutdown().await;
    let _ = w.1.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(s: &str) -> Vec<u8> {
        format!("{s}\n").into_bytes()
    }

    fn out(lines: &[(Dest, &str)]) -> Vec<Out> {
        lines.iter().map(|(d, s)| (*d, l(s))).collect()
    }

    use Dest::{Stderr as E, Stdout as O};

    #[test]
    fn the_start_comes_from_the_log_and_the_rest_from_the_attach() {
        let mut s = Splicer::new();
        assert_eq!(s.line(Source::Log, l("hello")), out(&[(O, "hello")]));
        assert_eq!(
            s.line(Source::Log, l("early-err")),
            out(&[(O, "early-err")])
        );
        // The attach is ahead of the log: its lines wait for the log to get there.
        assert_eq!(s.line(Source::Stderr, l("late-err")), out(&[]));
        assert!(s.waiting());
        assert_eq!(s.line(Source::Stdout, l("late-out")), out(&[]));
        assert_eq!(s.line(Source::Log, l("before")), out(&[(O, "before")]));
        assert_eq!(
            s.line(Source::Log, l("late-err")),
            out(&[(E, "late-err"), (O, "late-out")])
        );
        assert!(!s.wants_log());
        assert_eq!(s.line(Source::Log, l("late-out")), out(&[]));
        assert_eq!(s.line(Source::Stderr, l("more")), out(&[(E, "more")]));
        assert_eq!(s.end(Source::Log), out(&[]));
    }

    #[test]
    fn lines_the_log_passed_ahead_of_the_attach_are_not_passed_twice() {
        let mut s = Splicer::new();
        for line in ["a", "b", "c", "d"] {
            assert_eq!(s.line(Source::Log, l(line)), out(&[(O, line)]));
        }
        // The attach begins at "b": the log already passed it and what follows.
        assert_eq!(s.line(Source::Stdout, l("b")), out(&[]));
        assert!(!s.wants_log());
        assert_eq!(s.line(Source::Stderr, l("d")), out(&[]));
        assert_eq!(s.line(Source::Stdout, l("c")), out(&[]));
        assert_eq!(s.line(Source::Stdout, l("c")), out(&[(O, "c")]));
        assert_eq!(s.line(Source::Stderr, l("e")), out(&[(E, "e")]));
    }

    #[test]
    fn an_attach_from_the_first_byte_passes_everything_apart() {
        let mut s = Splicer::new();
        assert_eq!(s.line(Source::Stdout, l("hello")), out(&[]));
        assert_eq!(s.line(Source::Stderr, l("oops")), out(&[]));
        assert_eq!(
            s.line(Source::Log, l("hello")),
            out(&[(O, "hello"), (E, "oops")])
        );
        assert_eq!(s.line(Source::Log, l("oops")), out(&[]));
    }

    #[test]
    fn an_attach_after_the_end_of_the_log_adds_nothing_it_had() {
        let mut s = Splicer::new();
        assert_eq!(s.line(Source::Log, l("a")), out(&[(O, "a")]));
        assert_eq!(s.line(Source::Log, l("b")), out(&[(O, "b")]));
        assert_eq!(s.end(Source::Log), out(&[]));
        assert_eq!(s.line(Source::Stdout, l("b")), out(&[]));
        // A line the log never had (written as the log ended) is passed.
        assert_eq!(s.line(Source::Stderr, l("c")), out(&[(E, "c")]));
    }

    #[test]
    fn a_log_that_ends_or_lags_gives_the_attach_its_held_lines() {
        let mut s = Splicer::new();
        assert_eq!(s.line(Source::Stdout, l("x")), out(&[]));
        assert_eq!(s.end(Source::Log), out(&[(O, "x")]));
        assert_eq!(s.line(Source::Stderr, l("y")), out(&[(E, "y")]));

        let mut s = Splicer::new();
        assert_eq!(s.line(Source::Stdout, l("x")), out(&[]));
        assert_eq!(s.line(Source::Stderr, l("y")), out(&[]));
        assert_eq!(s.give_up(), out(&[(O, "x"), (E, "y")]));
        assert_eq!(s.line(Source::Log, l("x")), out(&[]));
        assert_eq!(s.give_up(), out(&[]));
    }

    #[test]
    fn a_log_ahead_is_matched_on_both_streams_in_their_order() {
        let mut s = Splicer::new();
        for line in ["hello", "early", "late-err", "late-out", "last"] {
            assert_eq!(s.line(Source::Log, l(line)), out(&[(O, line)]));
        }
        // stdout's first line arrives before stderr's, though written after it.
        assert_eq!(s.line(Source::Stdout, l("late-out")), out(&[]));
        assert!(s.skipping());
        assert_eq!(s.line(Source::Stderr, l("late-err")), out(&[]));
        assert_eq!(s.line(Source::Stdout, l("last")), out(&[]));
        assert_eq!(s.line(Source::Stdout, l("hello")), out(&[(O, "hello")]));
        assert_eq!(s.line(Source::Stderr, l("early")), out(&[(E, "early")]));
        assert!(!s.skipping(), "both streams got past the log");
    }

    #[test]
    fn lines_ahead_are_looked_for_only_until_time_is_up() {
        let mut s = Splicer::new();
        assert_eq!(s.line(Source::Log, l("x")), out(&[(O, "x")]));
        assert_eq!(s.line(Source::Log, l("y")), out(&[(O, "y")]));
        assert_eq!(s.line(Source::Stdout, l("y")), out(&[]));
        assert!(s.skipping());
        assert_eq!(s.give_up(), out(&[]));
        assert!(!s.skipping());
        assert_eq!(s.line(Source::Stderr, l("x")), out(&[(E, "x")]));
    }

    #[tokio::test]
    async fn splice_runs_over_streams() {
        use tokio::io::AsyncReadExt;
        // Whichever source is read first, the log's line is the start, the attach's
        // lines (which the log never had) come apart, and both outputs end.
        let (mut out, mut err) = splice(&b"hello\n"[..], &b"x\ny"[..], &b"oops\n"[..]);
        let (mut o, mut e) = (String::new(), String::new());
        let (a, b) = tokio::join!(out.read_to_string(&mut o), err.read_to_string(&mut e));
        a.expect("stdout");
        b.expect("stderr");
        assert_eq!(o, "hello\nx\ny");
        assert_eq!(e, "oops\n");
    }
}

//! `output = "attach"`: stdout and stderr apart from the attach, with the start the
//! attach cannot carry taken from the log.
//!
//! An attach only carries what the container writes after it connected: the
//! runtime keeps no history for it (containerd's CRI attach, Docker's without
//! `logs`). A real kubelet reports the container running, which is when distarch
//! can attach, some hundred milliseconds to seconds after it started, so an SDK
//! worker's `hello` and first lines would be lost. The log, followed from its first
//! byte, has them (stdout and stderr merged, in the order written). So both are
//! read: the attach's lines are passed on at once, with their stream; each log line
//! is held for [`HOLD`] and dropped when the attach delivers the same line
//! meanwhile (its twin), else passed on as stdout. A log line whose twin the attach
//! already passed on, or an attach line that takes a held log line, shows that the
//! log has reached where the attach began: the log is no longer read (every later
//! line comes through the attach), and the lines it still holds, which it had
//! before that point, go on when due unless their twins arrive.
//!
//! Not lost: lines written before the attach connected (from the log) and after
//! (from the attach). Shown twice: a line whose attach copy comes more than
//! [`HOLD`] after its log copy. The one confusion: a line the attach carries that
//! repeats verbatim a line written just before the attach connected (and still
//! held) is taken for its twin, so the held lines after that one are dropped.
//!
//! [`Splicer`] decides, line by line, without I/O; [`splice`] runs it over the three
//! streams.

use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader, ReadHalf, SimplexStream};
use tokio::sync::mpsc;

/// How long a log line is held, waiting for its twin from the attach, before it
/// is passed on as stdout.
pub const HOLD: Duration = Duration::from_millis(300);
/// How long an attach line passed on waits for its log twin to be dropped (the log
/// lags the attach by less than that).
const TWIN_WAIT: Duration = Duration::from_secs(5);
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
    /// The log is no longer read: it reached where the attach began, or ended.
    log_done: bool,
    /// Log lines not passed on yet, with when they are due.
    held: VecDeque<(Instant, Vec<u8>)>,
    /// Attach lines passed on while the log is read, with when they stop waiting
    /// for their log twin.
    passed: VecDeque<(Instant, Vec<u8>)>,
}

impl Splicer {
    /// A splicer that reads the log.
    pub fn new() -> Self {
        Splicer::default()
    }

    /// Whether the log is still read.
    pub fn wants_log(&self) -> bool {
        !self.log_done
    }

    /// When the next held log line is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.held.front().map(|(due, _)| *due)
    }

    /// Whether log lines are still held.
    pub fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// The log reached where the attach began: later log lines are the attach's.
    fn reached(&mut self) {
        self.log_done = true;
        self.passed.clear();
    }

    /// A line from `source` at `now`; returns what to pass on now.
    pub fn line(&mut self, now: Instant, source: Source, line: Vec<u8>) -> Vec<Out> {
        let dest = match source {
            Source::Log => {
                self.log_line(now, line);
                return Vec::new();
            }
            Source::Stdout => Dest::Stdout,
            Source::Stderr => Dest::Stderr,
        };
        if let Some(i) = self.held.iter().position(|(_, l)| *l == line) {
            // Its log twin: what the log holds after it is the attach's too.
            self.held.truncate(i);
            self.reached();
        } else if !self.log_done {
            self.passed.retain(|(until, _)| *until > now);
            self.passed.push_back((now + TWIN_WAIT, line.clone()));
        }
        vec![(dest, line)]
    }

    fn log_line(&mut self, now: Instant, line: Vec<u8>) {
        if self.log_done {
            return;
        }
        self.passed.retain(|(until, _)| *until > now);
        if self.passed.iter().any(|(_, l)| *l == line) {
            // The twin of a line the attach passed on.
            self.reached();
            return;
        }
        self.held.push_back((now + HOLD, line));
    }

    /// The log's end.
    pub fn log_end(&mut self) {
        self.log_done = true;
        self.passed.clear();
    }

    /// The held log lines due at `now` (all of them with `all`), to pass on.
    pub fn due(&mut self, now: Instant, all: bool) -> Vec<Out> {
        let mut out = Vec::new();
        while let Some((due, _)) = self.held.front() {
            if *due > now && !all {
                break;
            }
            if let Some((_, line)) = self.held.pop_front() {
                out.push((Dest::Stdout, line));
            }
        }
        out
    }
}

/// Runs a [`Splicer`] over the followed `log` and the attach's `stdout` and
/// `stderr`: returns the instance's stdout and stderr. They end once the attach has
/// ended and the log is no longer read.
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
    tokio::spawn(run(rx, Some(log_task), (out_w, err_w)));
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
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn run(
    mut rx: mpsc::Receiver<(Source, Option<Vec<u8>>)>,
    mut log_task: Option<tokio::task::JoinHandle<()>>,
    mut w: Writers,
) {
    let mut splicer = Splicer::new();
    let mut attach_open = 2;
    loop {
        if !splicer.wants_log() {
            if let Some(task) = log_task.take() {
                // The log request is no longer needed.
                tracing::debug!("the attach carries the output on from the log");
                task.abort();
            }
        }
        if attach_open == 0 && !splicer.wants_log() && !splicer.holding() {
            break;
        }
        let passed = tokio::select! {
            msg = rx.recv() => match msg {
                Some((source, Some(line))) => splicer.line(Instant::now(), source, line),
                Some((Source::Log, None)) => {
                    splicer.log_end();
                    Vec::new()
                }
                Some((_, None)) => {
                    attach_open -= 1;
                    if attach_open == 0 {
                        // No twin can come any more.
                        splicer.due(Instant::now(), true)
                    } else {
                        Vec::new()
                    }
                }
                None => break,
            },
            () = until(splicer.next_due()) => splicer.due(Instant::now(), attach_open == 0),
        };
        write(&mut w, passed).await;
    }
    let rest = splicer.due(Instant::now(), true);
    write(&mut w, rest).await;
    let _ = w.0.shutdown().await;
    let _ = w.1.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use Dest::{Stderr as E, Stdout as O};

    fn l(s: &str) -> Vec<u8> {
        format!("{s}\n").into_bytes()
    }

    fn out(lines: &[(Dest, &str)]) -> Vec<Out> {
        lines.iter().map(|(d, s)| (*d, l(s))).collect()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_start_comes_from_the_log_and_the_rest_from_the_attach() {
        let t = Instant::now();
        let mut s = Splicer::new();
        assert_eq!(s.line(t, Source::Log, l("hello")), out(&[]));
        assert_eq!(s.line(t, Source::Log, l("early-err")), out(&[]));
        assert_eq!(s.due(t + ms(100), false), out(&[]));
        assert_eq!(
            s.due(t + HOLD, false),
            out(&[(O, "hello"), (O, "early-err")])
        );
        // The attach connected: its lines go at once, apart; the log's copies of
        // them, arriving later, show that it reached the attach's start.
        let t = t + ms(1000);
        assert_eq!(
            s.line(t, Source::Stderr, l("late-err")),
            out(&[(E, "late-err")])
        );
        assert_eq!(
            s.line(t, Source::Stdout, l("late-out")),
            out(&[(O, "late-out")])
        );
        assert_eq!(s.line(t, Source::Log, l("late-err")), out(&[]));
        assert!(!s.wants_log());
        assert_eq!(s.line(t, Source::Log, l("late-out")), out(&[]));
        assert_eq!(s.due(t + ms(1000), true), out(&[]));
        assert_eq!(s.line(t, Source::Stderr, l("more")), out(&[(E, "more")]));
    }

    #[test]
    fn a_log_line_whose_twin_the_attach_brings_in_time_is_not_passed() {
        let t = Instant::now();
        let mut s = Splicer::new();
        for line in ["before", "late-err", "late-out", "last"] {
            assert_eq!(s.line(t, Source::Log, l(line)), out(&[]));
        }
        // stdout's copy comes first: the log's lines after it are the attach's.
        assert_eq!(
            s.line(t + ms(50), Source::Stdout, l("late-out")),
            out(&[(O, "late-out")])
        );
        assert!(!s.wants_log());
        assert_eq!(
            s.line(t + ms(60), Source::Stderr, l("late-err")),
            out(&[(E, "late-err")])
        );
        assert_eq!(s.due(t + HOLD, false), out(&[(O, "before")]));
        assert!(!s.holding());
        assert_eq!(
            s.line(t + ms(400), Source::Stdout, l("last")),
            out(&[(O, "last")])
        );
    }

    #[test]
    fn the_attach_from_the_first_byte_passes_everything_apart() {
        let t = Instant::now();
        let mut s = Splicer::new();
        assert_eq!(s.line(t, Source::Stdout, l("hello")), out(&[(O, "hello")]));
        assert_eq!(s.line(t, Source::Stderr, l("oops")), out(&[(E, "oops")]));
        assert_eq!(s.line(t + ms(20), Source::Log, l("hello")), out(&[]));
        assert!(!s.wants_log());
        assert_eq!(s.line(t + ms(20), Source::Log, l("oops")), out(&[]));
        assert_eq!(s.due(t + ms(1000), true), out(&[]));
    }

    #[test]
    fn a_late_attach_copy_is_shown_twice_never_lost() {
        let t = Instant::now();
        let mut s = Splicer::new();
        assert_eq!(s.line(t, Source::Log, l("x")), out(&[]));
        assert_eq!(s.due(t + HOLD, false), out(&[(O, "x")]));
        assert_eq!(
            s.line(t + ms(500), Source::Stderr, l("x")),
            out(&[(E, "x")])
        );
    }

    #[test]
    fn an_ended_log_passes_what_it_holds() {
        let t = Instant::now();
        let mut s = Splicer::new();
        assert_eq!(s.line(t, Source::Log, l("a")), out(&[]));
        s.log_end();
        assert!(!s.wants_log());
        assert!(s.holding());
        assert_eq!(s.due(t, true), out(&[(O, "a")]));
    }

    #[tokio::test]
    async fn splice_runs_over_streams() {
        use tokio::io::AsyncReadExt;
        // Whichever source is read first: the log's line the attach never had goes
        // to stdout, the attach's lines apart, each once, and both outputs end.
        let (mut out, mut err) = splice(&b"hello\nx\n"[..], &b"x\ny\n"[..], &b"oops\n"[..]);
        let (mut o, mut e) = (String::new(), String::new());
        let (a, b) = tokio::join!(out.read_to_string(&mut o), err.read_to_string(&mut e));
        a.expect("stdout");
        b.expect("stderr");
        assert_eq!(e, "oops\n");
        let mut lines: Vec<&str> = o.lines().collect();
        lines.sort_unstable();
        assert_eq!(lines, ["hello", "x", "y"], "{o:?}");
    }
}

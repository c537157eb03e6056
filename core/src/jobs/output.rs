//! Writing what the pool produces, on a thread of its own: results, dead letters
//! and the journal, each batch flushed in that order (a job is journaled only once
//! its result is written). The pool waits when this thread is behind, so a slow
//! output slows the whole pool down instead of growing its memory.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// Batches waiting for the writer.
const QUEUE: usize = 8;

/// One batch of lines (each ends with `\n`).
#[derive(Debug, Default)]
pub(crate) struct OutBatch {
    pub(crate) results: Vec<u8>,
    pub(crate) dead: Vec<u8>,
    pub(crate) journal: Vec<u8>,
}

impl OutBatch {
    pub(crate) fn is_empty(&self) -> bool {
        self.results.is_empty() && self.dead.is_empty() && self.journal.is_empty()
    }
}

/// Where the writer writes.
pub(crate) struct Targets {
    /// `None`: the master's stdout.
    pub(crate) output: Option<PathBuf>,
    pub(crate) dead_letter: Option<PathBuf>,
    pub(crate) journal: Option<PathBuf>,
    /// Append to the output files (a resumed run) instead of truncating them.
    pub(crate) append: bool,
}

/// The running writer: send batches, then `finish` for its verdict.
pub(crate) struct Writer {
    pub(crate) tx: mpsc::Sender<OutBatch>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl Writer {
    /// Opens every target (errors name the file) and starts the thread.
    pub(crate) fn start(targets: Targets) -> Result<Writer, String> {
        let open = |path: &Path, append: bool| {
            let mut o = OpenOptions::new();
            o.create(true).write(true);
            if append {
                o.append(true);
            } else {
                o.truncate(true);
            }
            o.open(path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))
        };
        let output: Box<dyn Write + Send> = match &targets.output {
            Some(p) => Box::new(open(p, targets.append)?),
            None => Box::new(std::io::stdout()),
        };
        let dead = match &targets.dead_letter {
            Some(p) => Some(open(p, targets.append)?),
            None => None,
        };
        let journal = match &targets.journal {
            Some(p) => Some(open(p, true)?),
            None => None,
        };
        let (tx, mut rx) = mpsc::channel::<OutBatch>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("distarch-jobs-output".into())
            .spawn(move || {
                let mut files = Files {
                    output,
                    dead,
                    journal,
                };
                while let Some(batch) = rx.blocking_recv() {
                    files.write(&batch)?;
                }
                Ok(())
            })
            .map_err(|e| format!("cannot start the job output thread: {e}"))?;
        Ok(Writer {
            tx,
            thread: Some(thread),
        })
    }

    /// Waits until everything sent is written; `Err` says what failed.
    pub(crate) async fn finish(mut self) -> Result<(), String> {
        drop(self.tx);
        match self.thread.take() {
            Some(t) => tokio::task::spawn_blocking(move || t.join())
                .await
                .map_err(|e| e.to_string())?
                .map_err(|_| "the job output thread panicked".to_string())?,
            None => Ok(()),
        }
    }
}

struct Files {
    output: Box<dyn Write + Send>,
    dead: Option<File>,
    journal: Option<File>,
}

impl Files {
    fn write(&mut self, batch: &OutBatch) -> Result<(), String> {
        if !batch.results.is_empty() {
            self.output
                .write_all(&batch.results)
                .and_then(|()| self.output.flush())
                .map_err(|e| format!("writing job results failed: {e}"))?;
        }
        if let Some(f) = self.dead.as_mut().filter(|_| !batch.dead.is_empty()) {
            f.write_all(&batch.dead)
                .map_err(|e| format!("writing the dead-letter output failed: {e}"))?;
        }
        if let Some(f) = self.journal.as_mut().filter(|_| !batch.journal.is_empty()) {
            f.write_all(&batch.journal)
                .map_err(|e| format!("writing the job journal failed: {e}"))?;
        }
        Ok(())
    }
}

/// The ids a journal holds (none when the file does not exist). A last line cut
/// by a crash is ignored.
pub(crate) fn read_journal(path: &Path) -> Result<HashSet<u64>, String> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => return Err(format!("cannot read the journal {}: {e}", path.display())),
    };
    let mut done = HashSet::new();
    let mut reader = BufReader::new(file);
    let mut line = Vec::with_capacity(24);
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("cannot read the journal {}: {e}", path.display()))?;
        // A line without its newline was cut by a crash ("123" may read "12").
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok(done);
        }
        if let Some(id) = std::str::from_utf8(&line)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            done.insert(id);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_reach_their_files_and_the_journal_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let (out, dead, journal) = (
            dir.path().join("out"),
            dir.path().join("dead"),
            dir.path().join("journal"),
        );
        std::fs::write(&journal, "7\n").unwrap();
        let writer = Writer::start(Targets {
            output: Some(out.clone()),
            dead_letter: Some(dead.clone()),
            journal: Some(journal.clone()),
            append: false,
        })
        .unwrap();
        writer
            .tx
            .send(OutBatch {
                results: b"{\"id\":1}\n".to_vec(),
                dead: b"{\"id\":2}\n".to_vec(),
                journal: b"1\n12".to_vec(),
            })
            .await
            .unwrap();
        writer.finish().await.unwrap();
        assert_eq!(std::fs::read_to_string(out).unwrap(), "{\"id\":1}\n");
        assert_eq!(std::fs::read_to_string(dead).unwrap(), "{\"id\":2}\n");
        let ids = read_journal(&journal).unwrap();
        assert_eq!(
            ids,
            [7, 1].into_iter().collect(),
            "the cut `12` is not read"
        );
        assert!(read_journal(&dir.path().join("none")).unwrap().is_empty());
    }
}

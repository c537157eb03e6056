//! Cutting a byte stream into lines with a hard bound on buffered bytes.

/// Default longest line kept whole: 1 MiB. Longer lines are cut at this length.
pub const DEFAULT_MAX_LINE: usize = 1024 * 1024;

/// One line produced by a [`LineSplitter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawLine<'a> {
    /// The line's bytes without the `\n`; at most the splitter's bound.
    pub bytes: &'a [u8],
    /// True when the line was longer than the bound: `bytes` holds its first part
    /// and the rest, up to the next `\n`, was dropped.
    pub truncated: bool,
}

/// Splits a stream of byte chunks into `\n`-terminated lines.
///
/// It keeps at most `max_line` bytes of an unfinished line; a longer line is cut:
/// its first `max_line` bytes are delivered (flagged `truncated`) as soon as the
/// bound is reached, and the rest of it is skipped up to the next `\n`. So memory
/// stays bounded whatever the input, including a huge line with no newline.
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    max_line: usize,
    skipping: bool,
}

impl LineSplitter {
    /// A splitter that keeps lines of up to `max_line` bytes (at least 1).
    pub fn new(max_line: usize) -> Self {
        LineSplitter {
            buf: Vec::new(),
            max_line: max_line.max(1),
            skipping: false,
        }
    }

    /// The bound given to [`LineSplitter::new`].
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Bytes currently held for an unfinished line (never more than the bound).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Feeds a chunk; calls `emit` for every line completed (or cut) by it.
    pub fn feed(&mut self, mut input: &[u8], mut emit: impl FnMut(RawLine<'_>)) {
        while !input.is_empty() {
            let newline = memchr::memchr(b'\n', input);
            if self.skipping {
                match newline {
                    Some(pos) => {
                        self.skipping = false;
                        input = &input[pos + 1..];
                        continue;
                    }
                    None => return,
                }
            }
            let room = self.max_line - self.buf.len();
            match newline {
                Some(pos) if pos <= room => {
                    let (line, rest) = (&input[..pos], &input[pos + 1..]);
                    if self.buf.is_empty() {
                        emit(RawLine {
                            bytes: line,
                            truncated: false,
                        });
                    } else {
                        self.buf.extend_from_slice(line);
                        emit(RawLine {
                            bytes: &self.buf,
                            truncated: false,
                        });
                        self.buf.clear();
                    }
                    input = rest;
                }
                _ if input.len() <= room => {
                    // No newline in reach and the bound is not reached: keep it.
                    self.buf.extend_from_slice(input);
                    return;
                }
                _ => {
                    // The line reaches the bound before its newline: cut it.
                    self.buf.extend_from_slice(&input[..room]);
                    emit(RawLine {
                        bytes: &self.buf,
                        truncated: true,
                    });
                    self.buf.clear();
                    input = &input[room..];
                    self.skipping = true;
                }
            }
        }
    }

    /// Gives back memory kept from a long line once no line is being gathered (a
    /// stream that once carried a long line does not hold its buffer for life).
    pub fn release_spare(&mut self) {
        const KEEP: usize = 4 * 1024;
        if self.buf.is_empty() && self.buf.capacity() > KEEP {
            self.buf = Vec::new();
        }
    }

    /// Ends the stream: delivers an unfinished last line, if any.
    pub fn finish(&mut self, mut emit: impl FnMut(RawLine<'_>)) {
        if !self.buf.is_empty() {
            emit(RawLine {
                bytes: &self.buf,
                truncated: false,
            });
            self.buf.clear();
        }
        self.skipping = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, |l| out.push((l.bytes.to_vec(), l.truncated)));
            assert!(s.buffered() <= max);
        }
        s.finish(|l| out.push((l.bytes.to_vec(), l.truncated)));
        out
    }

    #[test]
    fn a_long_line_s_buffer_is_given_back_once_the_line_is_done() {
        let mut s = LineSplitter::new(1 << 20);
        let long = vec![b'x'; 100_000];
        s.feed(&long, |_| {});
        s.release_spare();
        assert_eq!(s.buffered(), 100_000, "an unfinished line is kept");
        let mut lines = 0;
        s.feed(b"\n", |_| lines += 1);
        s.release_spare();
        assert_eq!(lines, 1);
        assert_eq!(s.buf.capacity(), 0);
    }

    #[test]
    fn splits_across_chunks() {
        let out = split(100, &[b"ab", b"c\nde", b"f\n\ng"]);
        let lines: Vec<_> = out.iter().map(|(b, _)| b.as_slice()).collect();
        assert_eq!(lines, vec![&b"abc"[..], b"def", b"", b"g"]);
    }

    #[test]
    fn cuts_long_lines_and_resumes_after_newline() {
        let out = split(4, &[b"abcdefgh", b"ij\nxy\n"]);
        assert_eq!(out, vec![(b"abcd".to_vec(), true), (b"xy".to_vec(), false)]);
    }

    #[test]
    fn a_line_of_exactly_the_bound_is_whole() {
        let out = split(4, &[b"abcd\nef\n"]);
        assert_eq!(
            out,
            vec![(b"abcd".to_vec(), false), (b"ef".to_vec(), false)]
        );
    }
}

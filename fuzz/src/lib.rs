//! Fuzz targets of distarch: each takes arbitrary bytes, must never panic, hang or
//! grow without bound, and checks the property its code promises (a frame
//! re-encodes to itself, the splitter matches a reference model, the loader either
//! loads or names what is wrong, a quoted word reads back as the original value).
//!
//! The same functions are driven two ways: by `distarch-fuzz` (src/main.rs), a
//! mutation driver on stable Rust with a time bound, used in CI; and by libFuzzer
//! (fuzz/libfuzzer, coverage-guided) through scripts/fuzz.sh for long runs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a fuzz target fails by panicking

use distarch_protocol::{
    encode_master_frame, encode_worker_frame, parse_master_line, parse_worker_line, LineSplitter,
    MasterLine, WorkerLine,
};
use std::path::PathBuf;

/// A fuzz target: takes any bytes, panics on a finding.
pub type Target = fn(&[u8]);

/// The targets, by name (also the corpus folder names under fuzz/corpus/).
pub const TARGETS: &[(&str, Target)] = &[
    ("frame_decoder", frame_decoder),
    ("line_splitter", line_splitter),
    ("config_loader", config_loader),
    ("ssh_quote", ssh_quote),
];

/// Worker and master lines: classification never panics, and every frame that
/// parses re-encodes to a line that parses to the same frame.
pub fn frame_decoder(data: &[u8]) {
    match parse_worker_line(data) {
        WorkerLine::Frame(frame) => {
            let line = encode_worker_frame(&frame);
            assert_eq!(line.last(), Some(&b'\n'));
            let again = parse_worker_line(&line[..line.len() - 1]);
            assert_eq!(again, WorkerLine::Frame(frame), "worker frame round trip");
        }
        WorkerLine::Text(_) => assert_ne!(data.first(), Some(&0x1e), "a marked line as text"),
        _ => assert_eq!(data.first(), Some(&0x1e), "only marked lines are frames"),
    }
    if let MasterLine::Frame(frame) = parse_master_line(data) {
        let line = encode_master_frame(&frame);
        let again = parse_master_line(&line[..line.len() - 1]);
        assert_eq!(again, MasterLine::Frame(frame), "master frame round trip");
    }
}

/// The line splitter, fed `data` in chunks whose sizes and bound come from its
/// first bytes, gives exactly the lines of a reference model, never holds more than
/// its bound, and never emits a line longer than it.
pub fn line_splitter(data: &[u8]) {
    let (head, body) = data.split_at(data.len().min(2));
    let max = usize::from(head.first().copied().unwrap_or(7) % 64) + 1;
    let step = usize::from(head.get(1).copied().unwrap_or(3) % 17) + 1;
    let mut splitter = LineSplitter::new(max);
    let mut got: Vec<(Vec<u8>, bool)> = Vec::new();
    let mut emit = |l: distarch_protocol::RawLine<'_>| {
        assert!(l.bytes.len() <= max, "line longer than the bound");
        got.push((l.bytes.to_vec(), l.truncated));
    };
    for (i, chunk) in body.chunks(step).enumerate() {
        // Vary chunk sizes: every other chunk is split once more.
        if i % 2 == 1 && chunk.len() > 1 {
            let (a, b) = chunk.split_at(chunk.len() / 2);
            splitter.feed(a, &mut emit);
            splitter.feed(b, &mut emit);
        } else {
            splitter.feed(chunk, &mut emit);
        }
        assert!(splitter.buffered() <= max, "buffered more than the bound");
    }
    splitter.finish(&mut emit);
    assert_eq!(splitter.buffered(), 0);
    assert_eq!(
        got,
        reference_lines(body, max),
        "lines differ from the model"
    );
}

/// What splitting `data` into `\n`-terminated lines of at most `max` bytes gives:
/// longer lines cut to `max` and flagged, an unterminated non-empty tail kept.
fn reference_lines(data: &[u8], max: usize) -> Vec<(Vec<u8>, bool)> {
    let mut parts: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let tail = parts.pop().unwrap_or_default();
    let mut out: Vec<(Vec<u8>, bool)> = parts.into_iter().map(|p| cut(p, max)).collect();
    if !tail.is_empty() {
        out.push(cut(tail, max));
    }
    out
}

fn cut(line: &[u8], max: usize) -> (Vec<u8>, bool) {
    if line.len() <= max {
        (line.to_vec(), false)
    } else {
        (line[..max].to_vec(), true)
    }
}

thread_local! {
    static CONFIG_DIR: tempfile::TempDir = tempfile::tempdir().expect("temp dir");
}

/// The config loader on a file of any bytes (TOML, YAML or JSON by the first byte):
/// it loads, or returns errors that each say something; it never panics.
pub fn config_loader(data: &[u8]) {
    let (kind, body) = match data.split_first() {
        Some((k, rest)) => (*k, rest),
        None => (0, data),
    };
    let ext = ["toml", "yaml", "json"][usize::from(kind % 3)];
    let path: PathBuf = CONFIG_DIR.with(|d| d.path().join(format!("c.{ext}")));
    std::fs::write(&path, body).expect("write the config file");
    let sources = distarch_core::config::ConfigSources {
        file: Some(path),
        ignore_env: true,
        ..Default::default()
    };
    match distarch_core::config::load(&sources) {
        Ok(loaded) => {
            // A loaded config plans (with no transports, every placement is an
            // unknown transport) without panicking, within the instance bound.
            let registry = distarch_core::TransportRegistry::new();
            let _ = distarch_core::build_plan_limited(&loaded.config, &registry, &[], 1000);
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error without any problem in it");
            for e in &errors.0 {
                assert!(!e.message.is_empty(), "an empty error message");
            }
        }
    }
}

/// The ssh transport's quoting: any value becomes one POSIX shell word made only of
/// single-quoted runs and `\'`, which reads back as the value.
pub fn ssh_quote(data: &[u8]) {
    let value = String::from_utf8_lossy(data);
    let word = distarch_transport_ssh::command::quote(&value);
    assert_eq!(
        read_shell_word(&word).as_deref(),
        Some(&*value),
        "quote({value:?}) = {word}"
    );
}

/// Reads a word made of `'...'` runs and `\'`, as sh would; `None` when the word has
/// anything else outside quotes (anything the shell could read as syntax).
pub fn read_shell_word(word: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = word.chars();
    let mut saw_quote = false;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                saw_quote = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => out.push(c),
                    }
                }
            }
            '\\' => match chars.next()? {
                '\'' => out.push('\''),
                _ => return None,
            },
            _ => return None,
        }
    }
    saw_quote.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(name: &str) -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        files.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    #[test]
    fn every_corpus_input_passes_its_target() {
        for (name, target) in TARGETS {
            let inputs = corpus(name);
            assert!(!inputs.is_empty(), "fuzz/corpus/{name} is empty");
            for input in inputs {
                target(&input);
            }
        }
    }

    #[test]
    fn the_word_reader_rejects_what_the_shell_would_parse() {
        assert_eq!(read_shell_word("'a b'\\''c'").as_deref(), Some("a b'c"));
        assert_eq!(read_shell_word("'it's'"), None);
        assert_eq!(read_shell_word("'a';id"), None);
        assert_eq!(read_shell_word("$x"), None);
    }

    #[test]
    fn quoted_corpus_values_read_back_through_a_real_shell() {
        for input in corpus("ssh_quote") {
            let value = String::from_utf8_lossy(&input).replace('\0', "");
            let word = distarch_transport_ssh::command::quote(&value);
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {word}"))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), value, "{word}");
        }
    }

    #[test]
    fn the_splitter_model_is_the_documented_one() {
        assert_eq!(
            reference_lines(b"ab\nabcdef\n\nxyz", 3),
            vec![
                (b"ab".to_vec(), false),
                (b"abc".to_vec(), true),
                (Vec::new(), false),
                (b"xyz".to_vec(), false)
            ]
        );
    }
}

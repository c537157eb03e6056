//! `distarch-fuzz`: a bounded mutation fuzzer on stable Rust for the targets of
//! distarch-fuzz. For each target it runs every input of the corpus
//! (fuzz/corpus/TARGET/), then mutates corpus inputs (bit flips, interesting
//! bytes, insertions of protocol and config tokens, deletions, splices) until its
//! share of the time is spent. A panic is a finding: the input is written to
//! fuzz/artifacts/TARGET/ and the exit code is 1. Coverage-guided runs use
//! libFuzzer instead (scripts/fuzz.sh).
//!
//! Usage: distarch-fuzz [--seconds N] [--corpus DIR] [--artifacts DIR] [--seed N] [TARGET...]

use distarch_fuzz::{Target, TARGETS};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest input tried (libFuzzer's default `-max_len` is 4096; configs need more).
const MAX_INPUT: usize = 64 * 1024;
/// Most mutated inputs kept for further mutation, besides the corpus.
const POOL: usize = 512;

/// Tokens worth inserting: the frame marker, JSON, TOML and YAML syntax, keys.
const TOKENS: &[&[u8]] = &[
    b"\x1e",
    b"\n",
    b"\r\n",
    b"{\"type\":\"",
    b"\"log\"",
    b"\"level\":\"error\"",
    b"\"message\":",
    b"\"status\"",
    b"\"text\":",
    b"\"hello\"",
    b"\"protocol\":1",
    b"[groups.g]\n",
    b"command = ",
    b"instances = ",
    b"placements.p = { transport = \"local\" }\n",
    b"[launcher]\n",
    b"groups:\n  g:\n",
    b"{\"groups\":{\"g\":",
    b"'",
    b"\\'",
    b"\"",
    b"[",
    b"]",
    b"{",
    b"}",
    b": ",
    b"- ",
    b"&a ",
    b"*a",
    b"!!",
    b"\xff\xfe",
    b"\0",
    b"4294967296",
    b"-1",
    b"1e999",
];

struct Options {
    seconds: f64,
    corpus: PathBuf,
    artifacts: PathBuf,
    seed: u64,
    targets: Vec<String>,
}

fn parse_args() -> Result<Options, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut o = Options {
        seconds: 40.0,
        corpus: root.join("corpus"),
        artifacts: root.join("artifacts"),
        seed: fastrand::u64(..),
        targets: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--seconds" => {
                o.seconds = value("--seconds")?
                    .parse()
                    .map_err(|e| format!("--seconds: {e}"))?
            }
            "--corpus" => o.corpus = value("--corpus")?.into(),
            "--artifacts" => o.artifacts = value("--artifacts")?.into(),
            "--seed" => o.seed = value("--seed")?.parse().map_err(|e| format!("--seed: {e}"))?,
            "-h" | "--help" => {
                return Err("usage: distarch-fuzz [--seconds N] [--corpus DIR] [--artifacts DIR] [--seed N] [TARGET...]".into())
            }
            t if TARGETS.iter().any(|(n, _)| *n == t) => o.targets.push(t.to_string()),
            other => {
                let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
                return Err(format!("unknown target `{other}` (targets: {})", names.join(", ")));
            }
        }
    }
    Ok(o)
}

fn corpus_of(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .map(|mut b| {
            b.truncate(MAX_INPUT);
            b
        })
        .collect()
}

fn mutate(rng: &mut fastrand::Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.usize(1..=4) {
        let len = out.len();
        match rng.u8(0..8) {
            0 if len > 0 => {
                let i = rng.usize(..len);
                out[i] ^= 1 << rng.u8(0..8);
            }
            1 if len > 0 => {
                let i = rng.usize(..len);
                out[i] = rng
                    .choice([0u8, 0x1e, b'\n', b'\'', b'"', 0x7f, 0x80, 0xff])
                    .unwrap_or(0);
            }
            2 => {
                let token = rng.choice(TOKENS).copied().unwrap_or(b"\n");
                let i = rng.usize(..=len);
                out.splice(i..i, token.iter().copied());
            }
            3 if len > 0 => {
                let a = rng.usize(..len);
                let b = rng.usize(a..=len.min(a + 64));
                out.drain(a..b);
            }
            4 if len > 0 => {
                // Repeat a slice (deep nesting, long lines).
                let a = rng.usize(..len);
                let b = rng.usize(a..=len.min(a + 8));
                let piece = out[a..b].to_vec();
                for _ in 0..rng.usize(1..64) {
                    out.splice(b..b, piece.iter().copied());
                }
            }
            5 if !other.is_empty() => {
                // Splice in a part of another input.
                let a = rng.usize(..other.len());
                let b = rng.usize(a..=other.len());
                let i = rng.usize(..=len);
                out.splice(i..i, other[a..b].iter().copied());
            }
            6 => {
                let i = rng.usize(..=len);
                let n = rng.usize(1..8);
                out.splice(i..i, (0..n).map(|_| rng.u8(..)));
            }
            _ if len > 1 => out.truncate(rng.usize(1..len)),
            _ => out.push(rng.u8(..)),
        }
    }
    out.truncate(MAX_INPUT);
    out
}

/// The panic message of the last caught panic.
type LastPanic = Arc<Mutex<String>>;

fn run_one(target: Target, input: &[u8], last: &LastPanic) -> Result<(), String> {
    match catch_unwind(AssertUnwindSafe(|| target(input))) {
        Ok(()) => Ok(()),
        Err(_) => Err(last.lock().map(|m| m.clone()).unwrap_or_default()),
    }
}

fn save(artifacts: &Path, name: &str, input: &[u8]) -> PathBuf {
    let dir = artifacts.join(name);
    let _ = std::fs::create_dir_all(&dir);
    let hash = input.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    });
    let path = dir.join(format!("crash-{hash:016x}"));
    let _ = std::fs::write(&path, input);
    path
}

fn main() {
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("distarch-fuzz: {e}");
            std::process::exit(2);
        }
    };
    let last: LastPanic = Arc::new(Mutex::new(String::new()));
    let hook_last = last.clone();
    std::panic::set_hook(Box::new(move |info| {
        if let Ok(mut m) = hook_last.lock() {
            *m = info.to_string();
        }
    }));
    let chosen: Vec<&(&str, Target)> = TARGETS
        .iter()
        .filter(|(n, _)| options.targets.is_empty() || options.targets.iter().any(|t| t == n))
        .collect();
    let share = Duration::from_secs_f64(options.seconds.max(0.0) / chosen.len().max(1) as f64);
    let mut rng = fastrand::Rng::with_seed(options.seed);
    let mut failures = 0usize;
    let mut tried = 0usize;
    println!(
        "distarch-fuzz: seed {}, {:.1}s per target",
        options.seed,
        share.as_secs_f64()
    );
    for (name, target) in chosen {
        tried += 1;
        let corpus = corpus_of(&options.corpus.join(name));
        let started = Instant::now();
        let mut runs = 0u64;
        let mut finding = None;
        for input in &corpus {
            runs += 1;
            if let Err(why) = run_one(*target, input, &last) {
                finding = Some((input.clone(), why));
                break;
            }
        }
        let mut pool: Vec<Vec<u8>> = Vec::new();
        while finding.is_none() && started.elapsed() < share {
            let seeds = corpus.len() + pool.len();
            let pick = |i: usize| {
                if i < corpus.len() {
                    &corpus[i]
                } else {
                    &pool[i - corpus.len()]
                }
            };
            let base: &[u8] = if seeds == 0 {
                &[]
            } else {
                pick(rng.usize(..seeds))
            };
            let other: &[u8] = if seeds == 0 {
                &[]
            } else {
                pick(rng.usize(..seeds))
            };
            let input = mutate(&mut rng, base, other);
            runs += 1;
            if let Err(why) = run_one(*target, &input, &last) {
                finding = Some((input, why));
                break;
            }
            if pool.len() < POOL {
                pool.push(input);
            } else {
                let i = rng.usize(..POOL);
                pool[i] = input;
            }
        }
        match finding {
            None => println!(
                "{name}: {runs} inputs ({} from the corpus) in {:.1}s, no failure",
                corpus.len(),
                started.elapsed().as_secs_f64()
            ),
            Some((input, why)) => {
                failures += 1;
                let path = save(&options.artifacts, name, &input);
                println!(
                    "{name}: FAILED after {runs} inputs: {why}\n  input saved to {}",
                    path.display()
                );
            }
        }
    }
    // The plain closing line CI reads.
    println!("fuzz: {} passed, {failures} failed", tried - failures);
    std::process::exit(i32::from(failures > 0));
}

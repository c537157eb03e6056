//! The shared test vectors of `conformance/vectors/`, compiled into the runner.
//!
//! The same files are read by the SDKs' own unit tests (Rust, Python, PHP), so
//! every implementation is held to the same bytes.

use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// `frames.json`: frames to encode and decode, byte exact.
#[derive(Debug, Deserialize)]
pub struct Frames {
    /// What a worker writes.
    pub worker: Vec<WorkerVector>,
    /// What a worker reads, and what it must make of it (checked by the SDKs' own
    /// unit tests: a runner cannot see how a worker classifies a line).
    #[allow(dead_code)]
    pub master: Vec<MasterVector>,
}

/// One worker frame and its exact line.
#[derive(Debug, Deserialize)]
pub struct WorkerVector {
    /// Name of the vector.
    pub name: String,
    /// The frame as a JSON object.
    pub frame: Map<String, Value>,
    /// The exact line (marker included, newline excluded).
    pub line: String,
}

/// One line from the master and its meaning.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
pub struct MasterVector {
    /// Name of the vector.
    pub name: String,
    /// The line, newline excluded.
    pub line: String,
    /// What it means: `{"kind":"stop"}`, `{"kind":"group_count","count":N}`, `{"kind":"ignored"}`.
    pub expect: Value,
}

/// `env.json`: environment sets, valid and broken.
#[derive(Debug, Deserialize)]
pub struct Envs {
    /// Sets a worker must accept, with what it must report.
    pub valid: Vec<ValidEnv>,
    /// Sets a worker must refuse.
    pub broken: Vec<BrokenEnv>,
}

/// A valid environment and the identity a worker must report for it.
#[derive(Debug, Deserialize)]
pub struct ValidEnv {
    /// Name of the set.
    pub name: String,
    /// The `DISTARCH_*` variables.
    pub env: BTreeMap<String, String>,
    /// The identity fields the worker must report.
    pub expect: Map<String, Value>,
}

/// A broken environment and the variable the worker must name.
#[derive(Debug, Deserialize)]
pub struct BrokenEnv {
    /// Name of the set.
    pub name: String,
    /// The `DISTARCH_*` variables (one missing or malformed).
    pub env: BTreeMap<String, String>,
    /// The variable the worker's message on stderr must name.
    pub names: String,
}

/// `params.json`: params sets to round-trip.
#[derive(Debug, Deserialize)]
pub struct Params {
    /// The sets.
    pub params: Vec<ParamsVector>,
}

/// One params object.
#[derive(Debug, Deserialize)]
pub struct ParamsVector {
    /// Name of the set.
    pub name: String,
    /// The params.
    pub params: Map<String, Value>,
}

/// `stdin.json`: what the master writes on a worker's stdin, and what must follow.
#[derive(Debug, Deserialize)]
pub struct Stdin {
    /// The sequences.
    pub sequences: Vec<Sequence>,
}

/// One stdin sequence.
#[derive(Debug, Deserialize)]
pub struct Sequence {
    /// Name of the sequence.
    pub name: String,
    /// Chunks written one at a time.
    pub chunks: Vec<String>,
    /// Whether stdin is closed after the chunks.
    pub close: bool,
    /// `stop`, `exit` or `running`.
    pub expect: String,
}

/// Every vector file, parsed.
#[derive(Debug)]
pub struct Vectors {
    /// frames.json
    pub frames: Frames,
    /// env.json
    pub envs: Envs,
    /// params.json
    pub params: Params,
    /// stdin.json
    pub stdin: Stdin,
}

/// A vector file that does not parse (only possible if the files were edited badly).
#[derive(Debug)]
pub struct BadVectors(pub &'static str, pub serde_json::Error);

impl std::fmt::Display for BadVectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "conformance/vectors/{} does not parse: {}",
            self.0, self.1
        )
    }
}

fn parse<T: serde::de::DeserializeOwned>(name: &'static str, text: &str) -> Result<T, BadVectors> {
    serde_json::from_str(text).map_err(|e| BadVectors(name, e))
}

impl Vectors {
    /// Parses the vector files compiled into the binary.
    pub fn load() -> Result<Vectors, BadVectors> {
        Ok(Vectors {
            frames: parse("frames.json", include_str!("../vectors/frames.json"))?,
            envs: parse("env.json", include_str!("../vectors/env.json"))?,
            params: parse("params.json", include_str!("../vectors/params.json"))?,
            stdin: parse("stdin.json", include_str!("../vectors/stdin.json"))?,
        })
    }

    /// The exact line of the worker vector named `name`.
    pub fn worker_line(&self, name: &str) -> Option<&str> {
        self.frames
            .worker
            .iter()
            .find(|v| v.name == name)
            .map(|v| v.line.as_str())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use distarch_protocol::{
        encode_worker_frame, parse_master_line, MasterFrame, MasterLine, WorkerFrame,
    };

    #[test]
    fn the_vectors_parse_and_the_rust_codec_agrees_with_them() {
        let v = Vectors::load().unwrap();
        for w in &v.frames.worker {
            let frame: WorkerFrame =
                serde_json::from_value(Value::Object(w.frame.clone())).unwrap();
            let line = encode_worker_frame(&frame);
            assert_eq!(
                String::from_utf8(line).unwrap(),
                format!("{}\n", w.line),
                "vector {}",
                w.name
            );
        }
        for m in &v.frames.master {
            let got = match parse_master_line(m.line.as_bytes()) {
                MasterLine::Frame(MasterFrame::Stop) => serde_json::json!({"kind":"stop"}),
                MasterLine::Frame(MasterFrame::GroupCount { count }) => {
                    serde_json::json!({"kind":"group_count","count":count})
                }
                _ => serde_json::json!({"kind":"ignored"}),
            };
            assert_eq!(got, m.expect, "vector {}", m.name);
        }
        assert!(v.envs.broken.len() > 9 && v.params.params.len() == 4);
        assert!(v.stdin.sequences.iter().any(|s| s.expect == "running"));
    }
}

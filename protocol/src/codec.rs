//! Encoding frames to lines and classifying received lines.

use crate::frame::{MasterFrame, WorkerFrame};
use crate::FRAME_MARKER;

/// Encodes a worker frame as one line: the marker, compact JSON, `\n`.
pub fn encode_worker_frame(frame: &WorkerFrame) -> Vec<u8> {
    encode(frame)
}

/// Encodes a master frame as one line: the marker, compact JSON, `\n`.
pub fn encode_master_frame(frame: &MasterFrame) -> Vec<u8> {
    encode(frame)
}

fn encode<T: serde::Serialize>(frame: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(FRAME_MARKER);
    // Serializing these enums cannot fail: every field is a string, a map with
    // string keys, or a JSON value, and writing into a Vec cannot fail either.
    if serde_json::to_writer(&mut out, frame).is_err() {
        out.truncate(1);
        out.extend_from_slice(br#"{"type":"ping"}"#);
    }
    out.push(b'\n');
    out
}

/// What a line received from a worker's stdout turned out to be.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WorkerLine {
    /// A well-formed frame.
    Frame(WorkerFrame),
    /// Plain text (invalid UTF-8 replaced by U+FFFD).
    Text(String),
    /// A valid frame (a JSON object with a string `type`) of a type this version
    /// does not know: a newer worker's frame. The master ignores it, but it still
    /// shows that the worker speaks the protocol.
    Unknown {
        /// The frame's `type`.
        kind: String,
    },
    /// A line that starts with the marker but is not a valid frame; `text` is the
    /// line after the marker (lossily decoded), `error` says what was wrong.
    Malformed {
        /// The line after the marker.
        text: String,
        /// Why it is not a frame.
        error: String,
    },
}

/// Classifies one line (without its `\n`, a trailing `\r` is tolerated) received
/// from a worker. Never fails and never panics, whatever the bytes.
pub fn parse_worker_line(line: &[u8]) -> WorkerLine {
    let line = strip_cr(line);
    match line.split_first() {
        Some((&FRAME_MARKER, body)) if !is_object(body) => WorkerLine::Malformed {
            text: String::from_utf8_lossy(body).into_owned(),
            error: "not a JSON object".into(),
        },
        Some((&FRAME_MARKER, body)) => match serde_json::from_slice::<WorkerFrame>(body) {
            Ok(frame) => WorkerLine::Frame(frame),
            Err(e) => match unknown_type(body) {
                Some(kind) => WorkerLine::Unknown { kind },
                None => WorkerLine::Malformed {
                    text: String::from_utf8_lossy(body).into_owned(),
                    error: e.to_string(),
                },
            },
        },
        _ => WorkerLine::Text(String::from_utf8_lossy(line).into_owned()),
    }
}

/// What a line received from the master on stdin turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MasterLine {
    /// A well-formed frame.
    Frame(MasterFrame),
    /// Anything else: a worker ignores it (a newer master may send frames this
    /// version does not know).
    Other,
}

/// Classifies one line received from the master. Never panics.
pub fn parse_master_line(line: &[u8]) -> MasterLine {
    let line = strip_cr(line);
    match line.split_first() {
        Some((&FRAME_MARKER, body)) if !is_object(body) => MasterLine::Other,
        Some((&FRAME_MARKER, body)) => match serde_json::from_slice::<MasterFrame>(body) {
            Ok(frame) => MasterLine::Frame(frame),
            Err(_) => MasterLine::Other,
        },
        _ => MasterLine::Other,
    }
}

/// The `type` of a JSON object whose type is not a known worker frame type; `None`
/// when the body is not such an object (or its type is known, so the error was in
/// another member).
fn unknown_type(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Typed {
        #[serde(rename = "type")]
        kind: String,
    }
    let typed: Typed = serde_json::from_slice(body).ok()?;
    const KNOWN: [&str; 9] = [
        "hello", "ping", "log", "ready", "ended", "status", "want", "done", "failed",
    ];
    (!KNOWN.contains(&typed.kind.as_str())).then_some(typed.kind)
}

/// Whether a frame body can be a JSON object. serde reads an internally tagged
/// enum from an array too (`["stop"]` would be a stop frame); a frame is an object.
fn is_object(body: &[u8]) -> bool {
    body.trim_ascii_start().first() == Some(&b'{')
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Level;

    #[test]
    fn frames_have_the_documented_wire_form() {
        let ping = encode_worker_frame(&WorkerFrame::Ping);
        assert_eq!(ping, b"\x1e{\"type\":\"ping\"}\n");
        let log = encode_worker_frame(&WorkerFrame::Log {
            level: Level::Warn,
            message: "disk full".into(),
            fields: None,
        });
        assert_eq!(
            log,
            b"\x1e{\"type\":\"log\",\"level\":\"warn\",\"message\":\"disk full\"}\n"
        );
        assert_eq!(
            encode_master_frame(&MasterFrame::Stop),
            b"\x1e{\"type\":\"stop\"}\n"
        );
    }

    #[test]
    fn plain_and_malformed_lines_are_not_frames() {
        assert_eq!(
            parse_worker_line(b"hello\r"),
            WorkerLine::Text("hello".into())
        );
        match parse_worker_line(b"\x1e{\"type\":\"log\"}") {
            WorkerLine::Malformed { text, .. } => assert_eq!(text, "{\"type\":\"log\"}"),
            other => panic!("expected malformed, got {other:?}"),
        }
        match parse_worker_line(b"\x1e{\"kind\":\"bogus\"}") {
            WorkerLine::Malformed { .. } => {}
            other => panic!("expected malformed, got {other:?}"),
        }
        assert_eq!(
            parse_worker_line(b"\x1e{\"type\":\"ready\"}"),
            WorkerLine::Frame(WorkerFrame::Ready)
        );
        assert_eq!(
            parse_master_line(b"\x1e{\"type\":\"stop\"}"),
            MasterLine::Frame(MasterFrame::Stop)
        );
        assert_eq!(parse_master_line(b"stop"), MasterLine::Other);
    }

    #[test]
    fn a_frame_is_an_object_never_an_array() {
        // serde reads internally tagged enums from sequences too.
        assert_eq!(parse_master_line(b"\x1e[\"stop\"]"), MasterLine::Other);
        assert!(matches!(
            parse_worker_line(b"\x1e[\"ready\"]"),
            WorkerLine::Malformed { .. }
        ));
        assert_eq!(
            parse_master_line(b"\x1e {\"type\":\"stop\"}"),
            MasterLine::Frame(MasterFrame::Stop)
        );
    }

    #[test]
    fn unknown_frame_types_are_valid_but_unknown() {
        assert_eq!(
            parse_worker_line(b"\x1e{\"type\":\"progress\",\"pct\":3}"),
            WorkerLine::Unknown {
                kind: "progress".into()
            }
        );
        assert_eq!(
            parse_master_line(b"\x1e{\"type\":\"resize\"}"),
            MasterLine::Other
        );
    }

    #[test]
    fn hello_and_group_count_have_the_documented_wire_form() {
        let hello = encode_worker_frame(&WorkerFrame::Hello {
            protocol: 1,
            sdk: Some("distarch-worker-rust".into()),
            version: Some("0.1.0".into()),
        });
        assert_eq!(
            hello,
            b"\x1e{\"type\":\"hello\",\"protocol\":1,\"sdk\":\"distarch-worker-rust\",\"version\":\"0.1.0\"}\n"
        );
        assert_eq!(
            parse_worker_line(b"\x1e{\"type\":\"hello\",\"protocol\":1}"),
            WorkerLine::Frame(WorkerFrame::Hello {
                protocol: 1,
                sdk: None,
                version: None
            })
        );
        assert_eq!(
            encode_master_frame(&MasterFrame::GroupCount { count: 5 }),
            b"\x1e{\"type\":\"group_count\",\"count\":5}\n"
        );
    }

    #[test]
    fn job_frames_have_the_documented_wire_form() {
        let job = MasterFrame::Job {
            id: 7,
            payload: serde_json::json!({"n": 3}),
        };
        assert_eq!(
            encode_master_frame(&job),
            b"\x1e{\"type\":\"job\",\"id\":7,\"payload\":{\"n\":3}}\n"
        );
        assert_eq!(
            parse_master_line(b"\x1e{\"type\":\"job\",\"id\":7,\"payload\":{\"n\":3}}"),
            MasterLine::Frame(job)
        );
        assert_eq!(
            encode_worker_frame(&WorkerFrame::Want { n: 4 }),
            b"\x1e{\"type\":\"want\",\"n\":4}\n"
        );
        assert_eq!(
            encode_worker_frame(&WorkerFrame::Done {
                id: 7,
                result: Some(serde_json::json!([1, "a"]))
            }),
            b"\x1e{\"type\":\"done\",\"id\":7,\"result\":[1,\"a\"]}\n"
        );
        assert_eq!(
            parse_worker_line(b"\x1e{\"type\":\"done\",\"id\":7}"),
            WorkerLine::Frame(WorkerFrame::Done {
                id: 7,
                result: None
            })
        );
        assert_eq!(
            parse_worker_line(b"\x1e{\"type\":\"failed\",\"id\":8,\"error\":\"boom\"}"),
            WorkerLine::Frame(WorkerFrame::Failed {
                id: 8,
                error: "boom".into(),
                retryable: true
            })
        );
        assert!(matches!(
            parse_worker_line(b"\x1e{\"type\":\"want\",\"n\":-1}"),
            WorkerLine::Malformed { .. }
        ));
    }

    #[test]
    fn unknown_extra_fields_are_tolerated() {
        assert_eq!(
            parse_worker_line(b"\x1e{\"type\":\"ping\",\"seq\":3}"),
            WorkerLine::Frame(WorkerFrame::Ping)
        );
    }
}

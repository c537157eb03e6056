//! JSON lines of output batches: the batched writer (shared fields serialised once)
//! writes exactly what serialising one `serde_json` object per line writes.
#![allow(clippy::unwrap_used)]

use distarch_core::{format_json, Event, InstanceLabel, LogLines, LogStream};
use distarch_protocol::Level;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// One object per line, the plain way.
fn expected(lines: &LogLines) -> Vec<u8> {
    let mut out = Vec::new();
    let time = humantime::format_rfc3339_millis(lines.time).to_string();
    for (text, truncated) in lines.iter() {
        let mut obj = Map::new();
        obj.insert("time".into(), json!(time));
        obj.insert("level".into(), json!(lines.level.as_str()));
        obj.insert("group".into(), json!(&*lines.instance.group));
        obj.insert("host".into(), json!(&*lines.instance.host));
        obj.insert("id".into(), json!(lines.instance.id));
        obj.insert("group_id".into(), json!(lines.instance.group_id));
        obj.insert("restart".into(), json!(lines.instance.restart));
        let stream = match lines.stream {
            LogStream::Stdout => "stdout",
            _ => "stderr",
        };
        obj.insert("stream".into(), json!(stream));
        obj.insert("message".into(), json!(text));
        if truncated {
            obj.insert("truncated".into(), json!(true));
        }
        serde_json::to_writer(&mut out, &Value::Object(obj)).unwrap();
        out.push(b'\n');
    }
    out
}

proptest! {
    #[test]
    fn batched_json_lines_are_the_plain_objects(
        group in "\\PC{1,8}",
        host in "[a-z\"\\\\]{1,8}",
        id in 0u64..5000,
        restart in 0u32..9,
        stderr in any::<bool>(),
        texts in proptest::collection::vec(("\\PC{0,20}|[\"\\\\\u{1}\t]{0,4}", any::<bool>()), 1..6),
        millis in 0u64..4_000_000_000_000,
    ) {
        let label = Arc::new(InstanceLabel::new(group.into(), host.into(), id, id % 7, 9, restart));
        let (level, stream) = if stderr {
            (Level::Warn, LogStream::Stderr)
        } else {
            (Level::Info, LogStream::Stdout)
        };
        let time = SystemTime::UNIX_EPOCH + Duration::from_millis(millis);
        let mut lines = LogLines::new(time, label, level, stream);
        for (t, cut) in &texts {
            lines.push(t.as_bytes(), *cut);
        }
        let mut got = Vec::new();
        format_json(&mut got, &Event::Lines(lines.clone()));
        prop_assert_eq!(String::from_utf8(got).unwrap(), String::from_utf8(expected(&lines)).unwrap());
    }
}

/// The escape check of a batch is found once and kept: a line added after a
/// first formatting must still be escaped, in text and in JSON.
#[test]
fn a_line_added_after_a_batch_was_formatted_is_still_escaped() {
    let label = Arc::new(InstanceLabel::new("g".into(), "h".into(), 1, 1, 1, 0));
    let mut lines = LogLines::new(
        SystemTime::UNIX_EPOCH,
        label,
        Level::Info,
        LogStream::Stdout,
    );
    lines.push(b"plain", false);
    let mut event = Event::Lines(lines);
    let mut first = Vec::new();
    distarch_core::format_text(&mut first, &event);
    format_json(&mut first, &event);
    let Event::Lines(lines) = &mut event else {
        unreachable!()
    };
    lines.push(b"bell\x07 \"quoted\"", false);
    let mut text = Vec::new();
    distarch_core::format_text(&mut text, &event);
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("bell\\x07"), "{text}");
    let mut json = Vec::new();
    format_json(&mut json, &event);
    let Event::Lines(lines) = &event else {
        unreachable!()
    };
    assert_eq!(json, expected(lines));
}

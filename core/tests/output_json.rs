//! JSON lines of output batches: the batched writer (shared fields serialised once)
//! writes exactly what serialising one `serde_json` object per line writes; and
//! text lines of a batch (one head put together for all its lines) are what the
//! same lines formatted one by one give.
#![allow(clippy::unwrap_used)]

use distarch_core::{
    format_json, format_text_at, Event, InstanceLabel, LogLines, LogStream, TimeZone,
};
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

proptest! {
    #[test]
    fn a_batch_of_text_lines_is_its_lines_formatted_one_by_one(
        group in "\\PC{1,8}",
        id in 0u64..5000,
        stderr in any::<bool>(),
        stamped in any::<bool>(),
        texts in proptest::collection::vec(("\\PC{0,20}|[\"\\\\\u{1}\u{1b}\t]{0,4}", any::<bool>()), 1..6),
        before in "[a-z\n]{0,10}",
        millis in 0u64..4_000_000_000_000,
    ) {
        let label = Arc::new(InstanceLabel::new(group.into(), "h".into(), id, id % 7, 9, 0));
        let (level, stream) = if stderr {
            (Level::Warn, LogStream::Stderr)
        } else {
            (Level::Info, LogStream::Stdout)
        };
        let time = SystemTime::UNIX_EPOCH + Duration::from_millis(millis);
        let zone = stamped.then_some(TimeZone::Utc);
        let mut lines = LogLines::new(time, label.clone(), level, stream);
        // What the buffer held before stays, and each line comes out as it would alone.
        let mut expected = before.clone().into_bytes();
        for (t, cut) in &texts {
            lines.push(t.as_bytes(), *cut);
            let mut one = LogLines::new(time, label.clone(), level, stream);
            one.push(t.as_bytes(), *cut);
            format_text_at(&mut expected, &Event::Lines(one), zone);
        }
        let mut got = before.into_bytes();
        format_text_at(&mut got, &Event::Lines(lines), zone);
        prop_assert_eq!(String::from_utf8(got).unwrap(), String::from_utf8(expected).unwrap());
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

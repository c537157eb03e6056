//! Property tests: frames round-trip, and arbitrary bytes never panic or exceed the bound.

use distarch_protocol::*;
use proptest::prelude::*;

fn level() -> impl Strategy<Value = Level> {
    prop_oneof![
        Just(Level::Trace),
        Just(Level::Debug),
        Just(Level::Info),
        Just(Level::Warn),
        Just(Level::Error)
    ]
}

fn worker_frame() -> impl Strategy<Value = WorkerFrame> {
    prop_oneof![
        Just(WorkerFrame::Ping),
        Just(WorkerFrame::Ready),
        Just(WorkerFrame::Ended),
        any::<String>().prop_map(|text| WorkerFrame::Status { text }),
        (
            level(),
            any::<String>(),
            proptest::option::of(proptest::collection::btree_map(
                any::<String>(),
                any::<String>(),
                0..4
            ))
        )
            .prop_map(|(level, message, fields)| WorkerFrame::Log {
                level,
                message,
                fields: fields.map(|m| m
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::Value::String(v)))
                    .collect()),
            }),
    ]
}

proptest! {
    #[test]
    fn worker_frames_round_trip(frame in worker_frame()) {
        let line = encode_worker_frame(&frame);
        // One line: exactly one newline, at the end.
        prop_assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        prop_assert_eq!(line.last(), Some(&b'\n'));
        let mut got = Vec::new();
        let mut s = LineSplitter::new(DEFAULT_MAX_LINE);
        s.feed(&line, |l| got.push(parse_worker_line(l.bytes)));
        prop_assert_eq!(got, vec![WorkerLine::Frame(frame)]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_worker_line(&bytes);
        let _ = parse_master_line(&bytes);
    }

    #[test]
    fn splitter_is_bounded_and_loses_no_short_line(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20),
        max in 1usize..64,
    ) {
        let mut s = LineSplitter::new(max);
        let mut lines = Vec::new();
        for c in &chunks {
            s.feed(c, |l| { assert!(l.bytes.len() <= max); lines.push((l.bytes.to_vec(), l.truncated)); });
            prop_assert!(s.buffered() <= max);
        }
        s.finish(|l| lines.push((l.bytes.to_vec(), l.truncated)));
        // Every short line of the input comes out whole and in order.
        let all: Vec<u8> = chunks.concat();
        let expected: Vec<Vec<u8>> = all.split(|&b| b == b'\n').map(|l| l.to_vec()).collect();
        let mut expected_kept = Vec::new();
        let n = expected.len();
        for (i, l) in expected.into_iter().enumerate() {
            if i == n - 1 && l.is_empty() { continue; }
            if l.len() <= max { expected_kept.push((l, false)); } else { expected_kept.push((l[..max].to_vec(), true)); }
        }
        prop_assert_eq!(lines, expected_kept);
    }
}

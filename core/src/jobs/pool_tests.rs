#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::jobs::input::Record;
use distarch_protocol::{encode_master_frame, parse_master_line, MasterFrame, MasterLine};
use serde_json::json;

fn pool(config: JobsConfig) -> Pool {
    Pool::new(Arc::from("g"), &config, Arc::new(JobCounters::new("g")))
}

fn records(ids: std::ops::RangeInclusive<u64>) -> Vec<Record> {
    ids.map(|id| Record {
        id,
        payload: Ok(json!(id * 10)),
    })
    .collect()
}

fn attach(p: &mut Pool, slot: u64, credit: u64) -> mpsc::UnboundedReceiver<Vec<u8>> {
    let (tx, rx) = mpsc::unbounded_channel();
    p.handle(PoolMsg::Attach {
        slot,
        instance: slot,
        frames: tx,
    });
    p.handle(PoolMsg::Replies {
        slot,
        replies: vec![Reply::Want(credit)],
    });
    rx
}

/// The ids of the job frames sent so far.
fn sent(rx: &mut mpsc::UnboundedReceiver<Vec<u8>>) -> Vec<u64> {
    let mut ids = Vec::new();
    while let Ok(bytes) = rx.try_recv() {
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match parse_master_line(line) {
                MasterLine::Frame(MasterFrame::Job { id, .. }) => ids.push(id),
                other => panic!("not a job frame: {other:?}"),
            }
        }
    }
    ids
}

fn results(p: &mut Pool) -> Vec<serde_json::Value> {
    let out = std::mem::take(&mut p.out.results);
    out.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

fn answer(p: &mut Pool, slot: u64, reply: Reply) {
    p.handle(PoolMsg::Replies {
        slot,
        replies: vec![reply],
    });
}

#[test]
fn job_frames_are_encoded_like_the_protocol_crate_does() {
    let mut buf = Vec::new();
    let payload = json!({"a": [1, "x\n"]});
    encode_job(&mut buf, 42, &payload);
    assert_eq!(
        buf,
        encode_master_frame(&MasterFrame::Job { id: 42, payload })
    );
}

#[test]
fn jobs_go_out_only_against_credit_and_results_come_back_once() {
    let mut p = pool(JobsConfig::default());
    p.add(records(1..=5));
    p.dispatch();
    let mut rx = attach(&mut p, 1, 2);
    p.dispatch();
    assert_eq!(sent(&mut rx), vec![1, 2], "credit 2: two jobs");
    p.dispatch();
    assert!(sent(&mut rx).is_empty(), "no credit left");
    answer(
        &mut p,
        1,
        Reply::Done {
            id: 2,
            result: Some(json!("two")),
        },
    );
    answer(
        &mut p,
        1,
        Reply::Done {
            id: 2,
            result: Some(json!("again")),
        },
    );
    answer(
        &mut p,
        1,
        Reply::Done {
            id: 99,
            result: None,
        },
    );
    assert_eq!(results(&mut p), vec![json!({"id": 2, "result": "two"})]);
    assert_eq!(p.out.journal, b"2\n");
    assert_eq!(p.outstanding(), 4);
    p.publish();
    let s = p.counters.stats();
    assert_eq!((s.done, s.in_flight, s.queued), (1, 1, 3));
}

#[test]
fn an_ended_instance_gives_its_jobs_back_and_attempts_run_out() {
    let mut p = pool(JobsConfig {
        max_attempts: 2,
        dead_letter: Some("dead".into()),
        ..JobsConfig::default()
    });
    p.add(records(1..=1));
    let mut a = attach(&mut p, 1, 1);
    p.dispatch();
    assert_eq!(sent(&mut a), vec![1]);
    p.handle(PoolMsg::Detach { slot: 1 });
    let mut b = attach(&mut p, 2, 5);
    p.dispatch();
    assert_eq!(sent(&mut b), vec![1], "the job went to the next instance");
    answer(
        &mut p,
        2,
        Reply::Failed {
            id: 1,
            error: "boom".into(),
            retryable: true,
        },
    );
    assert!(p.out.results.is_empty());
    let dead: serde_json::Value =
        serde_json::from_slice(p.out.dead.strip_suffix(b"\n").unwrap()).unwrap();
    assert_eq!(dead["id"], 1);
    assert_eq!(dead["payload"], 10);
    assert_eq!(dead["attempts"], 2);
    assert!(dead["error"].as_str().unwrap().starts_with("boom"));
    assert_eq!(p.outstanding(), 0);
    assert!(p.out.journal.is_empty(), "dead letters are not journaled");
}

#[test]
fn a_fatal_failure_is_dead_at_once_and_a_retryable_one_is_retried() {
    let mut p = pool(JobsConfig::default());
    p.add(records(1..=2));
    let mut a = attach(&mut p, 1, 2);
    p.dispatch();
    assert_eq!(sent(&mut a), vec![1, 2]);
    answer(
        &mut p,
        1,
        Reply::Failed {
            id: 1,
            error: "bad input".into(),
            retryable: false,
        },
    );
    answer(
        &mut p,
        1,
        Reply::Failed {
            id: 2,
            error: "flaky".into(),
            retryable: true,
        },
    );
    assert_eq!(p.counters.stats().failed, 1);
    assert_eq!(p.notes.len(), 1, "no dead-letter file: logged");
    answer(&mut p, 1, Reply::Want(1));
    p.dispatch();
    assert_eq!(sent(&mut a), vec![2], "retried");
    assert_eq!(p.counters.stats().retried, 1);
}

#[test]
fn keep_order_holds_results_back_until_the_earlier_ones_are_done() {
    let mut p = pool(JobsConfig {
        keep_order: true,
        ..JobsConfig::default()
    });
    p.add(records(1..=3));
    let mut a = attach(&mut p, 1, 3);
    p.dispatch();
    assert_eq!(sent(&mut a), vec![1, 2, 3]);
    answer(
        &mut p,
        1,
        Reply::Done {
            id: 3,
            result: None,
        },
    );
    answer(
        &mut p,
        1,
        Reply::Done {
            id: 2,
            result: None,
        },
    );
    assert!(results(&mut p).is_empty(), "1 is not done yet");
    p.publish();
    assert_eq!(p.counters.stats().held, 2);
    answer(
        &mut p,
        1,
        Reply::Done {
            id: 1,
            result: None,
        },
    );
    let ids: Vec<u64> = results(&mut p)
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 2, 3]);
    assert_eq!(p.out.journal, b"1\n2\n3\n");
    assert_eq!(p.outstanding(), 0);
}

#[test]
fn a_record_that_is_not_json_is_dead_lettered_without_an_attempt() {
    let mut p = pool(JobsConfig {
        dead_letter: Some("dead".into()),
        ..JobsConfig::default()
    });
    p.add(vec![Record {
        id: 4,
        payload: Err((json!("{oops"), "input line is not JSON".into())),
    }]);
    assert_eq!(p.outstanding(), 0);
    let dead: serde_json::Value =
        serde_json::from_slice(p.out.dead.strip_suffix(b"\n").unwrap()).unwrap();
    assert_eq!(
        dead,
        json!({"id": 4, "payload": "{oops", "error": "input line is not JSON", "attempts": 0})
    );
}

#[test]
fn only_a_job_alone_in_flight_is_blamed_for_its_instance_ending() {
    let mut p = pool(JobsConfig {
        max_attempts: 2,
        dead_letter: Some("dead".into()),
        ..JobsConfig::default()
    });
    p.add(records(1..=3));
    let mut a = attach(&mut p, 1, 3);
    p.dispatch();
    assert_eq!(sent(&mut a), vec![1, 2, 3]);
    p.handle(PoolMsg::Detach { slot: 1 });
    // Three in flight: none is blamed; each is retried alone.
    let mut b = attach(&mut p, 2, 10);
    p.dispatch();
    assert_eq!(sent(&mut b), vec![1], "a suspect goes alone");
    p.dispatch();
    assert!(sent(&mut b).is_empty(), "nothing beside a suspect");
    p.handle(PoolMsg::Detach { slot: 2 });
    // Job 1 alone when instance 2 ended: one attempt counted.
    let mut c = attach(&mut p, 3, 10);
    p.dispatch();
    assert_eq!(sent(&mut c), vec![1]);
    answer(
        &mut p,
        3,
        Reply::Done {
            id: 1,
            result: None,
        },
    );
    p.dispatch();
    assert_eq!(sent(&mut c), vec![2], "suspects one after another");
    answer(
        &mut p,
        3,
        Reply::Done {
            id: 2,
            result: None,
        },
    );
    p.dispatch();
    assert_eq!(sent(&mut c), vec![3]);
    p.handle(PoolMsg::Detach { slot: 3 });
    let mut d = attach(&mut p, 4, 10);
    p.dispatch();
    assert_eq!(sent(&mut d), vec![3]);
    p.handle(PoolMsg::Detach { slot: 4 });
    // Job 3 was alone twice (the first loss, beside others, was not counted).
    let dead: serde_json::Value =
        serde_json::from_slice(p.out.dead.strip_suffix(b"\n").unwrap()).unwrap();
    assert_eq!(dead["id"], 3);
    assert_eq!(dead["attempts"], 2);
    assert_eq!(p.counters.stats().done, 2);
}

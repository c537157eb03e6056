//! The job-pool scenario (docs/protocol.md §12): the worker asks for work with
//! `want`, gets no more jobs than it asked for, answers each exactly once (`done`
//! with the payload as result, `failed` not retryable for a payload with `fail`),
//! keeps asking until all are done, and ends cleanly on `stop`.

use crate::scenarios::{clean_end, prelude, scenario_params, start, Ctx, STOP};
use crate::session::Fail;
use distarch_protocol::{encode_master_frame, MasterFrame, WorkerFrame};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Instant;

/// Jobs sent in the scenario.
const JOBS: u64 = 40;

fn payload(id: u64) -> Value {
    match id % 5 {
        0 => json!({"n": id, "text": "é/\"q\"\n"}),
        1 => json!(id),
        2 => json!(format!("line {id}")),
        3 => json!([id, null, true]),
        _ if id == 9 => json!({"fail": "no good"}),
        _ => json!(null),
    }
}

pub fn credit_and_answers(c: &Ctx<'_>) -> Result<String, Fail> {
    let mut s = start(c, &scenario_params("jobs"))?;
    prelude(c, &mut s)?;
    let mut credit: u64 = 0;
    let mut next: u64 = 1;
    let mut sent: BTreeMap<u64, Value> = BTreeMap::new();
    let mut answered: BTreeMap<u64, Result<Option<Value>, (String, bool)>> = BTreeMap::new();
    let deadline = Instant::now() + c.startup * 3;
    while answered.len() < JOBS as usize {
        // Hand out what the worker asked for, several per write.
        let mut batch = Vec::new();
        while credit > 0 && next <= JOBS {
            let p = payload(next);
            batch.extend(encode_master_frame(&MasterFrame::Job {
                id: next,
                payload: p.clone(),
            }));
            sent.insert(next, p);
            next += 1;
            credit -= 1;
        }
        if !batch.is_empty() {
            s.write(&batch)?;
        }
        let Some(line) = s.next_line(deadline) else {
            return Err(format!(
                "{} of {JOBS} jobs answered, {} sent; no more progress{}",
                answered.len(),
                sent.len(),
                s.context()
            ));
        };
        match line.frame() {
            Some(WorkerFrame::Want { n }) => credit += n,
            Some(WorkerFrame::Done { id, result }) => {
                if !sent.contains_key(id) {
                    return Err(format!("`done` for job {id}, never sent"));
                }
                if answered.insert(*id, Ok(result.clone())).is_some() {
                    return Err(format!("job {id} answered twice"));
                }
            }
            Some(WorkerFrame::Failed {
                id,
                error,
                retryable,
            }) => {
                if !sent.contains_key(id) {
                    return Err(format!("`failed` for job {id}, never sent"));
                }
                if answered
                    .insert(*id, Err((error.clone(), *retryable)))
                    .is_some()
                {
                    return Err(format!("job {id} answered twice"));
                }
            }
            _ => {}
        }
    }
    for (id, answer) in &answered {
        let expected = &sent[id];
        match answer {
            Ok(result) if expected.get("fail").is_none() => {
                let got = result.clone().unwrap_or(Value::Null);
                if &got != expected {
                    return Err(format!(
                        "job {id}: result {got}, expected the payload {expected}"
                    ));
                }
            }
            Err((_, false)) if expected.get("fail").is_some() => {}
            other => {
                return Err(format!(
                    "job {id} with payload {expected}: wrong answer {other:?}"
                ))
            }
        }
    }
    s.write(STOP)?;
    clean_end(c, &mut s)?;
    Ok(format!("{JOBS} jobs"))
}
